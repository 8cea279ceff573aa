"""The Store protocol: where new secret values are staged and delivered.

A store holds versioned secrets at paths. Staging, promotion and clean-up are
built from these few operations by the activities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from keyturn.providers.base import Secret


@dataclass(frozen=True)
class StoredVersion:
    """A value at a path: its version and the metadata written with it."""

    secret: Secret
    version: int
    metadata: dict[str, str]


@runtime_checkable
class Store(Protocol):
    name: str

    def read(self, path: str, version: int | None = None) -> StoredVersion | None:
        """The value at `path` (latest, or `version`), or None if there is none."""

    def write(self, path: str, secret: Secret, metadata: dict[str, str]) -> int:
        """Write a new version; metadata (fingerprint, run) is kept beside it. Returns the version."""

    def destroy(self, path: str) -> None:
        """Remove every version and the metadata at `path`. Missing paths are fine."""
