"""The aws_secrets_manager store against moto (key checking on); faults through a FaultProxy.

The store reads credentials from the standard AWS environment; each test
builds it under moto's admin environment (or a weaker one) and checks what
Secrets Manager holds directly: versions, staging labels and tags.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError
from conformance.harness_aws_secrets_manager import admin_env, build_store
from fakes.fault_proxy import FaultProxy

from keyturn.stores.aws_secrets_manager import (
    KEPT_VERSION_METADATA,
    AwsSecretsManagerStore,
    classify,
    decode_metadata,
    encode_metadata,
    version_token,
)
from keyturn.stores.base import Store, StoredVersion
from keyturn.stores.errors import (
    PermanentStoreError,
    StoreAccessDenied,
    StoreConfigError,
    StoreConflict,
    StoreInvalidRequest,
    StoreNotFound,
    TransientStoreError,
)
from keyturn.stores.fields import TEXT

pytestmark = pytest.mark.integration

SECRET_1 = {"aws_access_key_id": "AKIAONE", "aws_secret_access_key": "first-secret-value"}
SECRET_2 = {"aws_access_key_id": "AKIATWO", "aws_secret_access_key": "second-secret-value"}
META_1 = {"fingerprint": "sha256:1111", "keyturn_run": "run-a", "credential_id": "AKIAONE"}
META_2 = {"fingerprint": "sha256:2222", "keyturn_run": "run-b", "credential_id": "AKIATWO",
          "replaces_version": "1"}
TAG_SAFE = re.compile(r"^[\w.:/=+\-@ ]*$")  # what AWS allows in tag keys and values


@pytest.fixture(scope="module")
def faults(moto) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def store(moto) -> AwsSecretsManagerStore:
    return build_store(admin_env(moto), endpoint_url=moto.url)


@pytest.fixture
def faulty(moto, faults) -> AwsSecretsManagerStore:
    return build_store(admin_env(moto), endpoint_url=faults.url)


@pytest.fixture
def sm(store):
    """The admin's own client, for looking at the server directly."""
    return store._client


@pytest.fixture
def path() -> str:
    return f"keyturn-tests/{uuid.uuid4().hex[:12]}/ci/aws"


def stages(sm, path: str) -> dict[str, list[str]]:
    listed = sm.list_secret_version_ids(SecretId=path, IncludeDeprecated=True)["Versions"]
    return {v["VersionId"]: sorted(v.get("VersionStages", [])) for v in listed}


def tags(sm, path: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=path).get("Tags", [])}


def assert_clean(err: BaseException, *values: str) -> None:
    current: BaseException | None = err
    while current is not None:
        for value in values:
            assert value not in str(current) and value not in repr(current)
        current = current.__cause__ or current.__context__


def test_store_satisfies_the_protocol(store):
    assert isinstance(store, Store)
    assert (store.name, store.type, store.region) == ("aws", "aws_secrets_manager", "us-east-1")


def test_missing_path_reads_as_none(store, path):
    assert store.read(path) is None
    assert store.read(path, version=3) is None


def test_write_then_read_round_trips_secret_version_and_metadata(store, sm, path):
    assert store.write(path, SECRET_1, META_1) == 1
    assert store.read(path) == StoredVersion(SECRET_1, 1, META_1)
    current = sm.get_secret_value(SecretId=path, VersionStage="AWSCURRENT")
    assert json.loads(current["SecretString"]) == SECRET_1
    assert current["VersionId"] == version_token(1)
    assert stages(sm, path) == {version_token(1): ["AWSCURRENT"]}


def test_a_second_write_moves_awscurrent_and_keeps_awsprevious(store, sm, path):
    store.write(path, SECRET_1, META_1)
    assert store.write(path, SECRET_2, META_2) == 2
    assert stages(sm, path) == {
        version_token(1): ["AWSPREVIOUS"],
        version_token(2): ["AWSCURRENT"],  # AWSPENDING removed once the move is done
    }
    previous = sm.get_secret_value(SecretId=path, VersionStage="AWSPREVIOUS")
    assert json.loads(previous["SecretString"]) == SECRET_1
    assert store.read(path) == StoredVersion(SECRET_2, 2, META_2)
    assert store.read(path, version=1) == StoredVersion(SECRET_1, 1, META_1)
    assert store.read(path, version=2) == store.read(path)
    assert store.read(path, version=3) is None


def test_metadata_lives_in_tag_safe_tags_without_secret_values(store, sm, path):
    store.write(path, SECRET_1, META_1)
    sm.tag_resource(SecretId=path, Tags=[{"Key": "owner", "Value": "platform"}])
    store.write(path, SECRET_2, META_2)
    found = tags(sm, path)
    assert found["owner"] == "platform"
    keyturn = {k: v for k, v in found.items() if k.startswith("keyturn:")}
    assert set(keyturn) == {"keyturn:v1", "keyturn:v2"}
    for key, value in keyturn.items():
        assert TAG_SAFE.match(key) and TAG_SAFE.match(value) and len(value) <= 256
        assert "secret-value" not in value
    assert decode_metadata([keyturn["keyturn:v2"]]) == META_2


def test_long_metadata_spans_several_tags_and_too_long_is_refused(store, sm, path):
    long = {"fingerprint": "sha256:1", "note": "n" * 300, "generated_by": "vault:sys/tools/random"}
    assert len(encode_metadata(long)) == 2
    store.write(path, SECRET_1, long)
    assert {"keyturn:v1", "keyturn:v1:1"} <= set(tags(sm, path))
    assert store.read(path).metadata == long
    with pytest.raises(StoreInvalidRequest, match="more than 3 tags"):
        store.write(path, SECRET_2, {"note": "n" * 700})
    with pytest.raises(StoreInvalidRequest, match="must be strings"):
        store.write(path, SECRET_2, {"n": 1})  # type: ignore[dict-item]
    assert store.read(path).version == 1


def test_old_metadata_is_pruned_but_old_values_stay_readable(store, sm, path):
    last = KEPT_VERSION_METADATA + 2
    for n in range(1, last + 1):
        assert store.write(path, {"v": str(n)}, {"n": str(n)}) == n
    keyturn = sorted(k for k in tags(sm, path) if k.startswith("keyturn:"))
    assert len(keyturn) == KEPT_VERSION_METADATA
    assert "keyturn:v2" not in keyturn and f"keyturn:v{last}" in keyturn
    assert store.read(path, version=1) == StoredVersion({"v": "1"}, 1, {})
    assert store.read(path, version=3) == StoredVersion({"v": "3"}, 3, {"n": "3"})
    assert store.read(path) == StoredVersion({"v": str(last)}, last, {"n": str(last)})


def test_a_value_written_outside_keyturn_is_numbered_and_adopted(store, sm, path):
    sm.create_secret(Name=path, SecretString=json.dumps({"password": "console", "port": 5432}))
    console = {"password": "console", "port": 5432}  # values keep their JSON types
    assert store.read(path) == StoredVersion(console, 1, {})
    assert store.read(path, version=1) == store.read(path)
    assert store.write(path, SECRET_1, META_1) == 2
    assert store.read(path, version=1) == StoredVersion(console, 1, {})  # what it replaced
    assert store.read(path) == StoredVersion(SECRET_1, 2, META_1)
    rotated = str(uuid.uuid4())  # as a rotation Lambda does it: pending, then current
    sm.put_secret_value(SecretId=path, ClientRequestToken=rotated, VersionStages=["AWSPENDING"],
                        SecretString=json.dumps({"password": "lambda"}))
    sm.update_secret_version_stage(SecretId=path, VersionStage="AWSCURRENT",
                                   MoveToVersionId=rotated, RemoveFromVersionId=version_token(2))
    assert store.read(path) == StoredVersion({"password": "lambda"}, 3, {})
    assert store.write(path, SECRET_2, META_2) == 4
    assert store.read(path, version=3).secret == {"password": "lambda"}
    assert store.read(path, version=2) == StoredVersion(SECRET_1, 2, META_1)


def test_a_value_that_is_not_a_json_object_reads_and_writes_as_one_text_field(store, sm, path):
    sm.create_secret(Name=path, SecretString="plain-text")
    assert store.read(path) == StoredVersion({TEXT: "plain-text"}, 1, {})
    assert store.write(path, {TEXT: "next-text"}, META_1, cas=1) == 2
    current = sm.get_secret_value(SecretId=path, VersionStage="AWSCURRENT")
    assert current["SecretString"] == "next-text"


def test_a_check_and_set_write_refuses_a_changed_secret(store, sm, path):
    assert store.write(path, SECRET_1, META_1, cas=0) == 1
    with pytest.raises(StoreConflict, match="another writer"):
        store.write(path, SECRET_2, META_2, cas=0)
    assert store.write(path, SECRET_2, META_2, cas=1) == 2
    with pytest.raises(StoreConflict):
        store.write(path, SECRET_1, META_1, cas=1)
    assert store.read(path) == StoredVersion(SECRET_2, 2, META_2)


def test_destroy_removes_every_version_and_tolerates_missing_paths(store, sm, path):
    store.write(path, SECRET_1, META_1)
    store.write(path, SECRET_2, META_2)
    store.destroy(path)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        sm.describe_secret(SecretId=path)
    assert store.read(path) is None and store.read(path, version=1) is None
    store.destroy(path)
    assert store.write(path, SECRET_1, {}) == 1  # a fresh history


def test_a_secret_scheduled_for_deletion_reads_as_none_and_refuses_writes(store, sm, path):
    store.write(path, SECRET_1, META_1)
    sm.delete_secret(SecretId=path, RecoveryWindowInDays=7)
    assert store.read(path) is None
    with pytest.raises(StoreInvalidRequest, match="scheduled for deletion"):
        store.write(path, SECRET_2, META_2)
    store.destroy(path)


def test_kms_key_id_encrypts_created_secrets(moto, sm, path):
    kms_store = build_store(admin_env(moto), endpoint_url=moto.url, kms_key_id="alias/kt-secrets")
    kms_store.write(path, SECRET_1, {})
    assert sm.describe_secret(SecretId=path)["KmsKeyId"] == "alias/kt-secrets"


@pytest.mark.parametrize(
    "config",
    [{"address": "http://x"}, {"region": "not a region"}, {"token": "s3cr3t-token"}],
)
def test_bad_config_is_a_config_error_without_echoing_it(moto, config):
    with pytest.raises(StoreConfigError, match="bad config") as info:
        build_store(admin_env(moto), **config)
    assert_clean(info.value, "s3cr3t-token")


def test_no_region_anywhere_is_a_config_error(moto, tmp_path):
    env = admin_env(moto)
    del env["AWS_DEFAULT_REGION"]
    env |= {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_REGION": ""}
    with pytest.raises(StoreConfigError, match="no region"):
        build_store(env)


def test_a_principal_without_permission_gets_access_denied(moto, iam_client, path):
    user = f"kt-{uuid.uuid4().hex[:12]}"
    iam_client.create_user(UserName=user)
    key = iam_client.create_access_key(UserName=user)["AccessKey"]
    env = admin_env(moto) | {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    weak = build_store(env, endpoint_url=moto.url)
    for call, args in ((weak.write, (path, SECRET_1, META_1)), (weak.read, (path,))):
        with pytest.raises(StoreAccessDenied, match=re.escape(path)) as info:
            call(*args)
        assert_clean(info.value, key["SecretAccessKey"], SECRET_1["aws_secret_access_key"])


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, b'{"__type":"AccessDeniedException","Message":"no"}', StoreAccessDenied),
        (400, b'{"__type":"ThrottlingException","Message":"slow"}', TransientStoreError),
        (500, b'{"__type":"InternalServiceError","Message":"oops"}', TransientStoreError),
        (503, b"", TransientStoreError),
        (400, b'{"__type":"InvalidRequestException","Message":"no"}', StoreInvalidRequest),
    ],
)
def test_injected_faults_are_classified(faulty, faults, path, status, body, expected):
    with faults.failing(status, body, "application/x-amz-json-1.1"):
        for call, args in ((faulty.write, (path, SECRET_1, META_1)), (faulty.read, (path,)),
                           (faulty.destroy, (path,))):
            err = pytest.raises(expected, call, *args).value
            assert type(err) is expected and path in str(err)


def test_a_value_echoed_in_an_error_is_redacted_and_not_chained(store, path, monkeypatch):
    store.write(path, SECRET_1, META_1)
    echo = f"bad value {SECRET_2['aws_secret_access_key']}"

    def put_secret_value(**kwargs):
        error = {"Code": "InvalidParameterException", "Message": echo}
        raise ClientError({"Error": error}, "PutSecretValue")

    monkeypatch.setattr(store._client, "put_secret_value", put_secret_value)
    err = pytest.raises(StoreInvalidRequest, store.write, path, SECRET_2, META_2).value
    assert_clean(err, SECRET_2["aws_secret_access_key"])
    assert "bad value [redacted]" in str(err)


def test_an_unreachable_endpoint_is_transient(moto, path):
    gone = build_store(admin_env(moto), endpoint_url="http://127.0.0.1:9")
    with pytest.raises(TransientStoreError, match="EndpointConnectionError"):
        gone.read(path)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDeniedException", 400, StoreAccessDenied),
        ("403", 403, StoreAccessDenied),
        ("ResourceNotFoundException", 400, StoreNotFound),
        ("InvalidParameterException", 400, StoreInvalidRequest),
        ("LimitExceededException", 400, StoreInvalidRequest),
        ("ResourceExistsException", 400, StoreConflict),
        ("ThrottlingException", 400, TransientStoreError),
        ("InternalServiceError", 500, TransientStoreError),
        ("SomethingNew", 502, TransientStoreError),
        ("EncryptionFailure", 400, PermanentStoreError),
    ],
)
def test_error_table(code, status, expected):
    exc = ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutSecretValue",
    )
    assert classify(exc) is expected
    assert classify(EndpointConnectionError(endpoint_url="http://127.0.0.1:9")) is (
        TransientStoreError
    )
    assert classify(NoRegionError()) is StoreConfigError
