"""The vault_kv store against a real OpenBao dev server (KV v2 at `secret/`)."""

from __future__ import annotations

import json
import uuid

import hvac
import pytest

from keyturn.fingerprint import fingerprint
from keyturn.stores.base import Store, StoredVersion
from keyturn.stores.errors import (
    StoreAccessDenied,
    StoreConfigError,
    StoreConflict,
    StoreError,
    StoreInvalidRequest,
    StoreNotFound,
    TransientStoreError,
)
from keyturn.stores.vault_kv import KEPT_VERSION_METADATA, METADATA_PREFIX, VaultKvStore

pytestmark = pytest.mark.integration

SECRET_1 = {"aws_access_key_id": "AKIAONE", "aws_secret_access_key": "first-secret-value"}
SECRET_2 = {"aws_access_key_id": "AKIATWO", "aws_secret_access_key": "second-secret-value"}


def meta(secret: dict[str, str], run: str) -> dict[str, str]:
    return {"fingerprint": fingerprint(secret), "run": run}


@pytest.fixture
def store(openbao) -> VaultKvStore:
    return VaultKvStore("vault", {"address": openbao.url, "token": openbao.root_token})


@pytest.fixture
def path() -> str:
    return f"keyturn-tests/{uuid.uuid4().hex}/ci/aws"


def assert_clean(err: BaseException, *values: str) -> None:
    while err is not None:
        for value in values:
            assert value not in str(err) and value not in repr(err)
        err = err.__cause__ or err.__context__


def test_store_satisfies_the_protocol(store):
    assert isinstance(store, Store)
    assert store.name == "vault"


def test_missing_path_reads_as_none(store, path):
    assert store.read(path) is None
    assert store.read(path, version=3) is None


def test_write_then_read_round_trips_secret_version_and_metadata(store, path):
    version = store.write(path, SECRET_1, meta(SECRET_1, "run-a"))
    assert version == 1
    assert store.read(path) == StoredVersion(SECRET_1, 1, meta(SECRET_1, "run-a"))


def test_each_version_keeps_its_own_metadata(store, path):
    assert store.write(path, SECRET_1, meta(SECRET_1, "run-a")) == 1
    assert store.write(path, SECRET_2, meta(SECRET_2, "run-b")) == 2
    assert store.read(path) == StoredVersion(SECRET_2, 2, meta(SECRET_2, "run-b"))
    assert store.read(path, version=1) == StoredVersion(SECRET_1, 1, meta(SECRET_1, "run-a"))
    assert store.read(path, version=2) == store.read(path)
    assert store.read(path, version=3) is None


def test_kv_data_is_exactly_the_secret(store, path, vault_client):
    store.write(path, SECRET_1, meta(SECRET_1, "run-a"))
    raw = vault_client.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)
    assert raw["data"]["data"] == SECRET_1
    entry = raw["data"]["metadata"]["custom_metadata"][f"{METADATA_PREFIX}1"]
    assert json.loads(entry) == meta(SECRET_1, "run-a")
    assert "first-secret-value" not in entry


def test_empty_metadata_and_unicode_values(store, path):
    secret = {"password": "pässwörd ✓"}
    store.write(path, secret, {})
    assert store.read(path) == StoredVersion(secret, 1, {})


def test_deleted_and_destroyed_versions_read_as_none(store, path, vault_client):
    for n in range(3):
        store.write(path, {"v": str(n)}, {"n": str(n)})
    vault_client.secrets.kv.v2.delete_secret_versions(path, [1])
    vault_client.secrets.kv.v2.destroy_secret_versions(path, [2])
    assert store.read(path, version=1) is None
    assert store.read(path, version=2) is None
    assert store.read(path, version=3) == StoredVersion({"v": "2"}, 3, {"n": "2"})
    vault_client.secrets.kv.v2.delete_latest_version_of_secret(path)
    assert store.read(path) is None


def test_destroy_removes_every_version_and_tolerates_missing_paths(store, path, vault_client):
    store.write(path, SECRET_1, {})
    store.write(path, SECRET_2, {})
    store.destroy(path)
    assert store.read(path) is None
    assert store.read(path, version=1) is None
    assert (
        path.split("/")[1]
        not in (vault_client.secrets.kv.v2.list_secrets("keyturn-tests")["data"]["keys"])
    )
    store.destroy(path)  # already gone: fine
    assert store.write(path, SECRET_1, {}) == 1  # a fresh history


def test_write_keeps_operator_settings_and_custom_metadata(store, path, vault_client):
    store.write(path, SECRET_1, {})
    vault_client.secrets.kv.v2.update_metadata(
        path, delete_version_after="720h", max_versions=5, custom_metadata={"owner": "platform"}
    )
    store.write(path, SECRET_2, {"run": "r"})
    settings = vault_client.secrets.kv.v2.read_secret_metadata(path)["data"]
    assert settings["delete_version_after"] == "720h0m0s"
    assert settings["max_versions"] == 5
    assert settings["custom_metadata"]["owner"] == "platform"
    assert store.read(path).metadata == {"run": "r"}


def test_old_version_metadata_is_pruned_to_stay_in_vault_limits(store, path, vault_client):
    total = KEPT_VERSION_METADATA + 3
    for n in range(1, total + 1):
        assert store.write(path, {"v": str(n)}, {"n": str(n)}) == n
    custom = vault_client.secrets.kv.v2.read_secret_metadata(path)["data"]["custom_metadata"]
    kept = sorted(int(k.removeprefix(METADATA_PREFIX)) for k in custom)
    assert kept == list(range(total - KEPT_VERSION_METADATA + 1, total + 1))
    assert store.read(path) == StoredVersion({"v": str(total)}, total, {"n": str(total)})


def test_metadata_over_vault_limits_is_refused_before_writing(store, path):
    with pytest.raises(StoreInvalidRequest, match="512") as info:
        store.write(path, SECRET_1, {"note": "x" * 600})
    assert not info.value.retryable
    assert_clean(info.value, "first-secret-value")
    assert store.read(path) is None


def test_metadata_must_be_strings(store, path):
    with pytest.raises(StoreInvalidRequest, match="'attempt'"):
        store.write(path, SECRET_1, {"attempt": 1})
    assert store.read(path) is None


def test_metadata_changed_outside_keyturn_is_reported(store, path, vault_client):
    store.write(path, SECRET_1, {"run": "r"})
    vault_client.secrets.kv.v2.update_metadata(path, custom_metadata={f"{METADATA_PREFIX}1": "[]"})
    with pytest.raises(StoreError, match="changed outside keyturn") as info:
        store.read(path)
    assert_clean(info.value, "first-secret-value")


def test_empty_path_is_refused(store):
    with pytest.raises(StoreInvalidRequest, match="empty path"):
        store.write("/", SECRET_1, {})


def test_token_from_environment(openbao, path, monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    store = VaultKvStore("vault", {"address": openbao.url})
    assert store.write(path, SECRET_1, {}) == 1


def test_missing_token_is_a_config_error(openbao, monkeypatch):
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    with pytest.raises(StoreConfigError, match="VAULT_TOKEN"):
        VaultKvStore("vault", {"address": openbao.url})


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"token": "t0ken-value"}, "address"),
        ({"address": "http://x", "token": "t0ken-value", "mountpoint": "kv"}, "mountpoint"),
        ({"address": "http://x", "token": ["t0ken-value"]}, "token"),
    ],
)
def test_bad_config_is_a_config_error_that_hides_the_token(config, problem):
    with pytest.raises(StoreConfigError, match=problem) as info:
        VaultKvStore("vault", config)
    assert "vault" in str(info.value)
    assert_clean(info.value, "t0ken-value")


def test_bad_token_is_access_denied(openbao, path):
    store = VaultKvStore("vault", {"address": openbao.url, "token": "wrong-token-value"})
    for call in (lambda: store.read(path), lambda: store.write(path, SECRET_1, {})):
        with pytest.raises(StoreAccessDenied) as info:
            call()
        assert not info.value.retryable
        assert "'vault'" in str(info.value) and f"secret/{path}" in str(info.value)
        assert_clean(info.value, "first-secret-value", "wrong-token-value")


def test_missing_mount_is_not_found_not_an_empty_path(openbao, path):
    store = VaultKvStore(
        "vault", {"address": openbao.url, "token": openbao.root_token, "mount": "no-such-kv"}
    )
    for call in (
        lambda: store.read(path),
        lambda: store.write(path, SECRET_1, {}),
        lambda: store.destroy(path),
    ):
        with pytest.raises(StoreNotFound, match=f"no-such-kv/{path}") as info:
            call()
        assert_clean(info.value, "first-secret-value")


def test_unreachable_server_is_transient(path):
    store = VaultKvStore("vault", {"address": "http://127.0.0.1:9", "token": "t0ken-value"})
    with pytest.raises(TransientStoreError) as info:
        store.write(path, SECRET_1, {})
    assert info.value.retryable
    assert_clean(info.value, "first-secret-value", "t0ken-value")


def test_a_check_and_set_write_refuses_a_changed_path(store, path):
    assert store.write(path, SECRET_1, meta(SECRET_1, "run-a"), cas=0) == 1
    with pytest.raises(StoreConflict, match="another writer changed it after version 0"):
        store.write(path, SECRET_2, meta(SECRET_2, "run-b"), cas=0)
    assert store.write(path, SECRET_2, meta(SECRET_2, "run-b"), cas=1) == 2
    with pytest.raises(StoreConflict):
        store.write(path, SECRET_1, meta(SECRET_1, "run-c"), cas=1)
    assert store.read(path).secret == SECRET_2


def test_values_keep_their_json_types(store, path):
    data = {"host": "db.internal", "port": 5432, "tls": True, "password": "pw-value-0001"}
    store.write(path, data, {})
    assert store.read(path).secret == data


def test_write_problem_reads_the_token_capabilities(store, openbao, path):
    assert store.write_problem(path) is None  # the root token may do anything
    admin = hvac.Client(url=openbao.url, token=openbao.root_token)
    policy = f"reader-{uuid.uuid4().hex[:8]}"
    admin.sys.create_or_update_policy(
        policy, 'path "secret/data/*" { capabilities = ["read"] }')
    token = admin.auth.token.create(policies=[policy], ttl="5m")["auth"]["client_token"]
    reader = VaultKvStore("vault", {"address": openbao.url, "token": token})
    problem = reader.write_problem(path)
    assert problem is not None and f"secret/data/{path}" in problem
    assert "['read']" in problem and "create and update" in problem
