"""Find providers by name: the "keyturn.providers" entry point group, checked when loaded.

A third party adds a credential kind by shipping a package that declares an
entry point in this group; keyturn.plugins loads and checks it against the
Provider protocol, and here a provider must also bring a pydantic target model
and a `family` (which task queue, and so which rate limit, its activities use).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from keyturn.plugins import PluginRegistry
from keyturn.providers.base import Provider, ProviderDefaults
from keyturn.providers.errors import PermanentProviderError

GROUP = "keyturn.providers"


class ProviderLoadError(PermanentProviderError):
    """A provider name is unknown, or its plugin does not satisfy the Provider protocol."""


def _target_model_problems(cls: type) -> list[str]:
    model = getattr(cls, "target_model", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return []
    return [f"target_model {model!r} is not a pydantic BaseModel subclass"]


def _family_problems(cls: type) -> list[str]:
    family = getattr(cls, "family", None)
    if isinstance(family, str) and family.isidentifier() and family.islower():
        return []
    return [f"family {family!r} is not a lower-case identifier (it names a task queue)"]


PROVIDERS = PluginRegistry(
    group=GROUP,
    protocol=Provider,
    kind="provider",
    key="name",
    error=ProviderLoadError,
    checks=[_target_model_problems, _family_problems],
    defaults=ProviderDefaults,
)
provider_names = PROVIDERS.names
provider_class = PROVIDERS.get
register = PROVIDERS.register
unregister = PROVIDERS.unregister


def get_provider(name: str, **factory_kwargs: Any) -> Provider:
    """An instance of provider `name`, built with `factory_kwargs` (e.g. client_factory=...)."""
    provider: Provider = provider_class(name)(**factory_kwargs)
    return provider
