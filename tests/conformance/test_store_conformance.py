"""The store conformance suite: every store type, against its real or faithful server.

Readable stores keep versions with their metadata; write-only stores (GitHub
Actions secrets) are checked by asking the server what it holds. Every store
classifies failures: permanent ones are not retried, transient ones are.
"""

from __future__ import annotations

import pytest

from keyturn.stores.errors import StoreError

STORE_TYPES = ["vault_kv", "aws_secrets_manager", "github_actions_secret"]
FIRST = {"username": "app_blue", "password": "first-Value-0123456789"}
SECOND = {"username": "app_green", "password": "second-Value-9876543210"}


@pytest.fixture(params=STORE_TYPES)
def harness(request: pytest.FixtureRequest):
    return request.getfixturevalue(f"store_harness_{request.param}")


def test_writes_reach_the_server(harness):
    store, path = harness.store(), harness.new_path()
    store.write(path, FIRST, {"fingerprint": "sha256:1", "credential_id": "one"})
    assert harness.server_value(path) == FIRST
    store.write(path, SECOND, {"fingerprint": "sha256:2", "credential_id": "two"})
    assert harness.server_value(path) == SECOND


def test_readable_stores_keep_versions_with_their_metadata(harness):
    store, path = harness.store(), harness.new_path()
    if not harness.readable:
        store.write(path, FIRST, {"fingerprint": "sha256:1"})
        assert store.read(path) is None, "a write-only store must not pretend to read"
        return
    assert store.read(path) is None
    v1 = store.write(path, FIRST, {"fingerprint": "sha256:1", "credential_id": "one"})
    v2 = store.write(path, SECOND, {"fingerprint": "sha256:2", "credential_id": "two",
                                    "replaces_version": str(v1)})
    assert v2 > v1
    latest = store.read(path)
    assert (latest.secret, latest.version) == (SECOND, v2)
    assert latest.metadata["credential_id"] == "two"
    assert latest.metadata["replaces_version"] == str(v1)
    previous = store.read(path, version=v1)
    assert (previous.secret, previous.metadata["fingerprint"]) == (FIRST, "sha256:1")


def test_destroy_removes_the_value_and_tolerates_a_missing_path(harness):
    store, path = harness.store(), harness.new_path()
    store.write(path, FIRST, {"fingerprint": "sha256:1"})
    store.destroy(path)
    assert harness.server_value(path) is None
    assert store.read(path) is None
    store.destroy(path)
    store.destroy(harness.new_path())


@pytest.mark.parametrize(("kind", "retryable"), [("permanent", False), ("transient", True)])
def test_failures_are_classified_and_never_quote_the_value(harness, kind, retryable):
    store, path = harness.store(), harness.new_path()
    with harness.fault(kind), pytest.raises(StoreError) as failure:
        store.write(path, FIRST, {"fingerprint": "sha256:1"})
    assert failure.value.retryable is retryable, str(failure.value)
    assert path in str(failure.value) or path.rsplit("/", 1)[-1] in str(failure.value)
    assert FIRST["password"] not in str(failure.value)
