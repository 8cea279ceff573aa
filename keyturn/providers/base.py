"""The Provider protocol: what every credential kind implements.

A provider knows one kind of credential on one service and nothing else. It is
stateless apart from an injected client factory; the rotation protocol (order of
steps, staging, audit, rollback) lives in the activities and workflows, not here.
Secret values cross this interface as `Secret` dicts and never leave activities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

Secret = dict[str, str]
"""A credential's secret material as named fields, e.g. {"aws_access_key_id": ..., ...}."""


@dataclass(frozen=True)
class Precheck:
    """What precheck found: the credential(s) to replace and any quota clean-up it did."""

    old_credential_ids: list[str]
    removed_inactive: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NewCredential:
    """A freshly created credential: its public id and its secret (activity-local only)."""

    credential_id: str
    secret: Secret


@runtime_checkable
class Provider(Protocol):
    """One credential kind. Methods raise `keyturn.providers.errors.ProviderError` subclasses."""

    name: ClassVar[str]
    target_model: ClassVar[type[BaseModel]]

    def precheck(self, target: Any) -> Precheck:
        """Find the current credential; make quota room (recorded) or refuse clearly."""

    def list_credential_ids(self, target: Any) -> list[str]:
        """Every credential that currently exists for the target."""

    def create(self, target: Any) -> NewCredential:
        """Create a replacement credential."""

    def verify(self, target: Any, secret: Secret) -> None:
        """Authenticate with `secret`; raise VerificationFailed if it does not work."""

    def disable(self, target: Any, credential_id: str) -> None:
        """Make the credential unusable but recoverable (where the service allows)."""

    def enable(self, target: Any, credential_id: str) -> None:
        """Undo `disable` (rollback of a revoke-first rotation)."""

    def delete(self, target: Any, credential_id: str) -> None:
        """Remove the credential for good. Deleting one already gone is not an error."""

    def confirm_revoked(self, target: Any, credential_id: str, old_secret: Secret | None) -> None:
        """Prove the credential is dead: gone from the service and, given its secret, rejected."""
