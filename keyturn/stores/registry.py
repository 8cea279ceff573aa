"""Find store types by name: the "keyturn.stores" entry point group, checked when loaded.

A store type (`vault_kv`, ...) is a class declared under this entry point group
with a `type` class attribute equal to its entry point name, a constructor
`(name, config)` and the Store protocol's methods. It is validated when loaded,
so a broken plugin fails with an error naming its entry point before any
secret is written.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from keyturn.stores.base import Store
from keyturn.stores.errors import StoreConfigError

GROUP = "keyturn.stores"

PROTOCOL_METHODS = tuple(
    name for name, value in vars(Store).items() if not name.startswith("_") and callable(value)
)

_registered: dict[str, type] = {}
_loaded: dict[str, type] = {}


class StoreLoadError(StoreConfigError):
    """A store type is unknown, or its plugin does not satisfy the Store protocol."""


def store_names() -> list[str]:
    """Every store type available: installed entry points and in-process registrations."""
    return sorted({ep.name for ep in entry_points(group=GROUP)} | _registered.keys())


def store_class(store_type: str) -> type:
    """The checked class for store type `store_type`."""
    if store_type in _registered:
        return _registered[store_type]
    if store_type not in _loaded:
        _loaded[store_type] = _load_entry_point(store_type)
    return _loaded[store_type]


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


def register(cls: type) -> type:
    """Add a store class in-process (tests, embedding); checked now. Usable as a decorator."""
    kind = getattr(cls, "type", None)
    check_store_class(cls, kind if isinstance(kind, str) else repr(kind), f"class {cls!r}")
    _registered[kind] = cls
    return cls


def unregister(store_type: str) -> None:
    """Remove an in-process registration (missing names are ignored)."""
    _registered.pop(store_type, None)


def check_store_class(cls: object, expected_type: str, origin: str) -> None:
    """Raise StoreLoadError unless `cls` is a class that satisfies the Store protocol."""
    if not isinstance(cls, type):
        raise StoreLoadError(f"store type {expected_type!r} ({origin}) is not a class: {cls!r}")
    problems: list[str] = []
    if getattr(cls, "type", None) != expected_type:
        problems.append(f"type is {getattr(cls, 'type', None)!r}, expected {expected_type!r}")
    try:
        inspect.signature(cls).bind("name", {})
    except TypeError:
        problems.append(f"constructor {cls.__name__}{inspect.signature(cls)} is not (name, config)")
    for method in PROTOCOL_METHODS:
        impl = getattr(cls, method, None)
        if not callable(impl):
            problems.append(f"{method} is missing or not callable")
            continue
        expected = inspect.signature(getattr(Store, method))
        try:
            inspect.signature(impl).bind(*expected.parameters)
        except TypeError:
            problems.append(
                f"{method}{inspect.signature(impl)} cannot be called as {method}{expected}"
            )
    if problems:
        raise StoreLoadError(
            f"store type {expected_type!r} ({origin}) does not satisfy the Store protocol: "
            + "; ".join(problems)
        )


def _load_entry_point(store_type: str) -> type:
    matches = {ep.value: ep for ep in entry_points(group=GROUP) if ep.name == store_type}
    if not matches:
        known = ", ".join(store_names()) or "none installed"
        raise StoreLoadError(f"unknown store type {store_type!r} (known: {known})")
    if len(matches) > 1:
        # Refuse to guess which package gets to receive secrets under this name.
        raise StoreLoadError(
            f"store type {store_type!r} is declared by several entry points: "
            + ", ".join(sorted(matches))
        )
    (ep,) = matches.values()
    origin = f"entry point {ep.name} = {ep.value}"
    try:
        cls = ep.load()
    except Exception as exc:
        raise StoreLoadError(
            f"store type {store_type!r} ({origin}) failed to import: {exc}"
        ) from exc
    check_store_class(cls, store_type, origin)
    return cls
