"""Find providers by name: the "keyturn.providers" entry point group, checked when loaded.

A third party adds a credential kind by shipping a package that declares an
entry point in this group. Like pluggy, a plugin is validated when it is loaded,
not at its first call: a class that does not satisfy the Provider protocol is
refused with an error naming the entry point, before any rotation starts.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from keyturn.providers.base import Provider
from keyturn.providers.errors import PermanentProviderError

GROUP = "keyturn.providers"

PROTOCOL_METHODS = tuple(
    name for name, value in vars(Provider).items() if not name.startswith("_") and callable(value)
)

_registered: dict[str, type] = {}
_loaded: dict[str, type] = {}


class ProviderLoadError(PermanentProviderError):
    """A provider name is unknown, or its plugin does not satisfy the Provider protocol."""


def provider_names() -> list[str]:
    """Every provider name available: installed entry points and in-process registrations."""
    return sorted({ep.name for ep in entry_points(group=GROUP)} | _registered.keys())


def provider_class(name: str) -> type:
    """The checked provider class for `name` (e.g. to validate targets with its target_model)."""
    if name in _registered:
        return _registered[name]
    if name not in _loaded:
        _loaded[name] = _load_entry_point(name)
    return _loaded[name]


def get_provider(name: str, **factory_kwargs: Any) -> Provider:
    """An instance of provider `name`, built with `factory_kwargs` (e.g. client_factory=...)."""
    provider: Provider = provider_class(name)(**factory_kwargs)
    return provider


def register(cls: type) -> type:
    """Add a provider class in-process (tests, embedding); checked now. Usable as a decorator."""
    name = getattr(cls, "name", None)
    check_provider_class(cls, name if isinstance(name, str) else repr(name), f"class {cls!r}")
    _registered[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove an in-process registration (missing names are ignored)."""
    _registered.pop(name, None)


def check_provider_class(cls: object, expected_name: str, origin: str) -> None:
    """Raise ProviderLoadError unless `cls` is a class that satisfies the Provider protocol."""
    problems: list[str] = []
    if not isinstance(cls, type):
        raise ProviderLoadError(f"provider {expected_name!r} ({origin}) is not a class: {cls!r}")
    if getattr(cls, "name", None) != expected_name:
        problems.append(f"name is {getattr(cls, 'name', None)!r}, expected {expected_name!r}")
    model = getattr(cls, "target_model", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        problems.append(f"target_model {model!r} is not a pydantic BaseModel subclass")
    for method in PROTOCOL_METHODS:
        problems.extend(_method_problems(cls, method))
    if problems:
        raise ProviderLoadError(
            f"provider {expected_name!r} ({origin}) does not satisfy the Provider protocol: "
            + "; ".join(problems)
        )


def _method_problems(cls: type, method: str) -> list[str]:
    impl = getattr(cls, method, None)
    if not callable(impl):
        return [f"{method} is missing or not callable"]
    expected = inspect.signature(getattr(Provider, method))
    try:
        inspect.signature(impl).bind(*expected.parameters)
    except TypeError:
        return [f"{method}{inspect.signature(impl)} cannot be called as {method}{expected}"]
    return []


def _load_entry_point(name: str) -> type:
    matches = {ep.value: ep for ep in entry_points(group=GROUP) if ep.name == name}
    if not matches:
        known = ", ".join(provider_names()) or "none installed"
        raise ProviderLoadError(f"unknown provider {name!r} (known: {known})")
    if len(matches) > 1:
        # Refuse to guess which package gets to handle credentials under this name.
        raise ProviderLoadError(
            f"provider {name!r} is declared by several entry points: {', '.join(sorted(matches))}"
        )
    (ep,) = matches.values()
    origin = f"entry point {ep.name} = {ep.value}"
    try:
        cls = ep.load()
    except Exception as exc:
        raise ProviderLoadError(f"provider {name!r} ({origin}) failed to import: {exc}") from exc
    check_provider_class(cls, name, origin)
    return cls
