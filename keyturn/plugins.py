"""Plugins found by name through an entry point group, and checked when loaded.

Providers and store types are both plugins. Like pluggy, a plugin is validated
when it is loaded, not at its first call: a class that does not satisfy its
protocol (name, protocol methods with compatible signatures, plus any checks
of its own kind) is refused with an error naming the entry point, before any
rotation starts. A name declared by two packages is refused rather than guessed.

A protocol's optional capabilities have their defaults in a class of their own
(`defaults`); a plugin that does not declare one is given the default when it
is loaded or registered (`complete`), so callers read capabilities as plain
attributes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points


class PluginRegistry:
    """One entry point group: names, loading, checking, in-process registration."""

    def __init__(
        self,
        *,
        group: str,
        protocol: type,
        kind: str,
        key: str,
        error: type[Exception],
        checks: Iterable[Callable[[type], list[str]]] = (),
        defaults: type | None = None,
    ) -> None:
        self.group = group
        self.protocol = protocol
        self.kind = kind  # "provider", "store type": how messages name a plugin
        self.key = key  # the class attribute that must equal the entry point name
        self.error = error
        self._checks = tuple(checks)
        self._defaults = {
            name: value for name, value in vars(defaults or object).items() if not name.startswith("_")
        }
        self.methods = tuple(
            name for name, value in vars(protocol).items()
            if not name.startswith("_") and name not in self._defaults
            and (callable(value) or isinstance(value, classmethod))
        )
        self._registered: dict[str, type] = {}
        self._loaded: dict[str, type] = {}

    def names(self) -> list[str]:
        """Every name available: installed entry points and in-process registrations."""
        return sorted({ep.name for ep in entry_points(group=self.group)} | self._registered.keys())

    def get(self, name: str) -> type:
        """The checked class for `name`."""
        if name in self._registered:
            return self._registered[name]
        if name not in self._loaded:
            self._loaded[name] = self._load(name)
        return self._loaded[name]

    def register(self, cls: type) -> type:
        """Add a class in-process (tests, embedding); checked now. Usable as a decorator."""
        name = getattr(cls, self.key, None)
        self.check(cls, name if isinstance(name, str) else repr(name), f"class {cls!r}")
        self._registered[name] = self.complete(cls)
        return cls

    def complete(self, cls: type) -> type:
        """Give `cls` the default of each optional capability it does not declare."""
        for name, default in self._defaults.items():
            if not hasattr(cls, name):
                setattr(cls, name, default)
        return cls

    def unregister(self, name: str) -> None:
        """Remove an in-process registration (missing names are ignored)."""
        self._registered.pop(name, None)

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """Inside: nothing registered in-process and nothing loaded yet (tests); restored after."""
        saved = self._registered, self._loaded
        self._registered, self._loaded = {}, {}
        try:
            yield
        finally:
            self._registered, self._loaded = saved

    def check(self, cls: object, expected: str, origin: str) -> None:
        """Raise `error` unless `cls` is a class that satisfies the protocol."""
        if not isinstance(cls, type):
            raise self.error(f"{self.kind} {expected!r} ({origin}) is not a class: {cls!r}")
        problems: list[str] = []
        actual = getattr(cls, self.key, None)
        if actual != expected:
            problems.append(f"{self.key} is {actual!r}, expected {expected!r}")
        for check in self._checks:
            problems.extend(check(cls))
        for method in self.methods:
            problems.extend(self._method_problems(cls, method))
        if problems:
            raise self.error(
                f"{self.kind} {expected!r} ({origin}) does not satisfy the "
                f"{self.protocol.__name__} protocol: " + "; ".join(problems)
            )

    def _method_problems(self, cls: type, method: str) -> list[str]:
        impl = getattr(cls, method, None)
        if not callable(impl):
            return [f"{method} is missing or not callable"]
        expected = inspect.signature(getattr(self.protocol, method))
        try:
            inspect.signature(impl).bind(*expected.parameters)
        except TypeError:
            return [f"{method}{inspect.signature(impl)} cannot be called as {method}{expected}"]
        return []

    def _load(self, name: str) -> type:
        matches = {ep.value: ep for ep in entry_points(group=self.group) if ep.name == name}
        if not matches:
            known = ", ".join(self.names()) or "none installed"
            raise self.error(f"unknown {self.kind} {name!r} (known: {known})")
        if len(matches) > 1:
            # Refuse to guess which package gets credentials or secrets under this name.
            raise self.error(
                f"{self.kind} {name!r} is declared by several entry points: "
                + ", ".join(sorted(matches))
            )
        (ep,) = matches.values()
        origin = f"entry point {ep.name} = {ep.value}"
        try:
            cls = ep.load()
        except Exception as exc:
            raise self.error(f"{self.kind} {name!r} ({origin}) failed to import: {exc}") from exc
        self.check(cls, name, origin)
        return self.complete(cls)
