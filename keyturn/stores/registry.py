"""Find store types by name: the "keyturn.stores" entry point group, checked when loaded.

A store type (`vault_kv`, ...) is a class declared under this entry point group
with a `type` class attribute equal to its entry point name, a constructor
`(name, config)` and the Store protocol's methods. keyturn.plugins validates it
when loaded, so a broken plugin fails with an error naming its entry point
before any secret is written.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from keyturn.plugins import PluginRegistry
from keyturn.stores.base import Store, StoreDefaults
from keyturn.stores.errors import StoreConfigError

GROUP = "keyturn.stores"


class StoreLoadError(StoreConfigError):
    """A store type is unknown, or its plugin does not satisfy the Store protocol."""


def _constructor_problems(cls: type) -> list[str]:
    try:
        inspect.signature(cls).bind("name", {})
    except TypeError:
        return [f"constructor {cls.__name__}{inspect.signature(cls)} is not (name, config)"]
    return []


STORES = PluginRegistry(
    group=GROUP,
    protocol=Store,
    kind="store type",
    key="type",
    error=StoreLoadError,
    checks=[_constructor_problems],
    defaults=StoreDefaults,
)
store_names = STORES.names
store_class = STORES.get
register = STORES.register
unregister = STORES.unregister


def open_store(name: str, type: str, config: Mapping[str, Any]) -> Store:
    """The store called `name` (as in a runbook's `stores:`) of store type `type`.

    A `type` key inside `config`, as the runbook writes it, must agree and is dropped.
    """
    config = dict(config)
    declared = config.pop("type", type)
    if declared != type:
        raise StoreConfigError(f"store {name!r}: config says type {declared!r}, not {type!r}")
    store: Store = store_class(type)(name, config)
    return store


P = TypeVar("P")


def with_capabilities(store_for: Callable[[P], Store]) -> Callable[[P], Store]:
    """`store_for`, with each store's class given the defaults of the capabilities it does
    not declare: for stores the worker is handed directly (tests, embedding), not loaded."""

    def opened(plan: P) -> Store:
        store = store_for(plan)
        STORES.complete(type(store))
        return store

    return opened
