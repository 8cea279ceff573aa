"""Store lookup through the "keyturn.stores" entry points, checked when loaded."""

from __future__ import annotations

import pytest

from keyturn.stores import registry
from keyturn.stores.base import Store
from keyturn.stores.errors import StoreConfigError
from keyturn.stores.registry import (
    StoreLoadError,
    open_store,
    register,
    store_class,
    store_names,
    unregister,
)
from keyturn.stores.vault_kv import VaultKvStore


class MemoryStore:
    type = "test.memory"

    def __init__(self, name, config):
        self.name = name
        self.config = config

    def read(self, path, version=None): ...
    def write(self, path, secret, metadata, cas=None): ...
    def write_problem(self, path): ...
    def destroy(self, path): ...


@pytest.fixture(autouse=True)
def fake_entry_points(plugin_registry):
    """A clean STORES registry in every test; call it to replace the installed entry points."""
    return plugin_registry(registry.STORES)


def test_installed_entry_point_resolves_to_vault_kv():
    assert "vault_kv" in store_names()
    assert store_class("vault_kv") is VaultKvStore


@pytest.mark.integration
def test_open_store_builds_a_working_vault_kv_store(openbao):
    config = {"type": "vault_kv", "address": openbao.url, "token": openbao.root_token}
    store = open_store("vault", "vault_kv", config)
    assert isinstance(store, VaultKvStore) and isinstance(store, Store)
    assert store.name == "vault"
    assert store.read("keyturn-tests/registry/never-written") is None
    assert config["type"] == "vault_kv"  # the caller's dict is left alone


def test_open_store_refuses_a_conflicting_type_in_config():
    with pytest.raises(StoreConfigError, match="config says type 'aws_sm', not 'vault_kv'"):
        open_store("vault", "vault_kv", {"type": "aws_sm", "address": "http://x"})


def test_unknown_store_type_names_the_known_ones():
    with pytest.raises(StoreLoadError, match="unknown store type 'nope'.*vault_kv"):
        open_store("x", "nope", {})
    assert issubclass(StoreLoadError, StoreConfigError) and not StoreLoadError.retryable


def test_register_adds_a_checked_store():
    register(MemoryStore)
    assert "test.memory" in store_names()
    store = open_store("mem", "test.memory", {"a": 1})
    assert isinstance(store, MemoryStore) and store.name == "mem" and store.config == {"a": 1}
    unregister("test.memory")
    assert "test.memory" not in store_names()


def bad_variant(**changes):
    return type("Bad", (MemoryStore,), changes)


def no_args_init(self):
    pass


@pytest.mark.parametrize(
    ("cls", "problem"),
    [
        (bad_variant(type=None), "type is None"),
        (bad_variant(write=None), "write is missing or not callable"),
        (bad_variant(read=lambda self, path: None), r"read\(self, path\) cannot be called"),
        (bad_variant(__init__=no_args_init), r"constructor Bad\(\) is not \(name, config\)"),
    ],
)
def test_register_rejects_a_class_that_breaks_the_protocol(cls, problem):
    with pytest.raises(StoreLoadError, match=problem) as info:
        register(cls)
    assert "does not satisfy the Store protocol" in str(info.value)


def test_entry_point_that_is_not_a_store_is_rejected_naming_it(fake_entry_points):
    fake_entry_points(("vault_kv", "keyturn.providers.aws_iam:AwsIamAccessKeyProvider"))
    with pytest.raises(StoreLoadError) as info:
        store_class("vault_kv")
    message = str(info.value)
    assert "entry point vault_kv = keyturn.providers.aws_iam:AwsIamAccessKeyProvider" in message
    assert "type is None, expected 'vault_kv'" in message
    assert "read is missing" in message


def test_entry_point_that_fails_to_import_is_rejected(fake_entry_points):
    fake_entry_points(("ghost", "keyturn.stores.no_such_module:Ghost"))
    with pytest.raises(StoreLoadError, match="'ghost' .*no_such_module.* failed to import"):
        store_class("ghost")


def test_a_type_claimed_by_two_packages_is_refused(fake_entry_points):
    fake_entry_points(
        ("vault_kv", "keyturn.stores.vault_kv:VaultKvStore"),
        ("vault_kv", "evil_pkg.vault:Store"),
    )
    with pytest.raises(StoreLoadError, match="several entry points.*evil_pkg"):
        store_class("vault_kv")
