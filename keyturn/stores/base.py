"""The Store protocol: where new secret values are staged and delivered.

A store holds versioned secrets at paths. Staging, promotion and clean-up are
built from these few operations by the activities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from keyturn.randomness import RandomSource
from keyturn.stores.fields import Data


@dataclass(frozen=True)
class StoredVersion:
    """A value at a path: its fields (JSON values), its version and the metadata written with it."""

    secret: Data
    version: int
    metadata: dict[str, str]


@runtime_checkable
class Store(Protocol):
    """A secret store. Optional capabilities (`StoreDefaults` holds their defaults; a store
    type that does not declare one gets the default when the registry loads it):

    readable: False for a write-only store (GitHub Actions secrets): `read` always
        answers None, so it cannot stage a value or be the first deliver target.
    random_source(): the store's own random source for generated values (Vault's
        sys/tools/random, KMS GenerateRandom), or None for the OS CSPRNG.
    """

    name: str
    readable: ClassVar[bool]

    def random_source(self) -> RandomSource | None:
        """The store's random source for generated secret values, or None."""

    def read(self, path: str, version: int | None = None) -> StoredVersion | None:
        """The value at `path` (latest, or `version`), or None if there is none."""

    def write(
        self, path: str, secret: Data, metadata: dict[str, str], cas: int | None = None
    ) -> int:
        """Write a new version; metadata (fingerprint, run) is kept beside it. Returns the version.

        With `cas` (check-and-set), write only if the latest version is still `cas`
        (0: only if the path holds nothing); otherwise raise StoreConflict.
        """

    def write_problem(self, path: str) -> str | None:
        """Why a write to `path` would be refused, where the store can tell without writing
        (Vault: the token's capabilities); None when it would pass or the store cannot tell."""

    def destroy(self, path: str) -> None:
        """Remove every version and the metadata at `path`. Missing paths are fine."""


class StoreDefaults:
    """The defaults of the Store protocol's optional capabilities.

    Built-in stores derive from it; the registry gives a store type that does not
    declare a capability this default when it loads it (and the activities do so
    for stores injected without the registry), so keyturn reads each capability
    as a plain attribute.
    """

    readable: ClassVar[bool] = True

    def random_source(self) -> RandomSource | None:
        """None: values are generated from the OS CSPRNG."""
        return None
