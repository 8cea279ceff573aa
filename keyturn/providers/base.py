"""The Provider protocol: what every credential kind implements.

A provider knows one kind of credential on one service and nothing else. It is
stateless apart from an injected client factory; the rotation protocol (order of
steps, staging, audit, rollback) lives in the activities and workflows, not here.
Secret values cross this interface as `Secret` dicts and never leave activities.

Every method takes a `ProviderContext` last (defaulting to an empty one): the
values the activity holds for this credential (the old and new secret, read
from the stores) and the random source the runbook provides. Providers that
authenticate as the credential itself (npm tokens) or must present the old
value to revoke it (leaked GitHub tokens) take what they need from it.

`verify` and `confirm_revoked` usually ask the service, a bounded number of
times, whether it accepts a secret; a provider built on
`keyturn.providers.probing.Probing` states that question once as `probe` and
gets the retries and the error wording from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from keyturn.randomness import OS_RANDOM, RandomSource
from keyturn.secret import Secret


@dataclass(frozen=True)
class SecretShape:
    """The named fields of a provider's secret, as the provider writes and reads them.

    fields: every field the provider writes; a deliver target's `fields:` mapping
        may rename each of them (the names `keyturn providers` shows).
    optional: fields an existing value may lack (written only by some kinds of
        the credential, e.g. a KMS signing key's public key).
    id_field: the field that holds the credential's public id, when there is
        one (an access key id): precheck refuses a store holding an id the
        service no longer has, since that store is stale.
    reads_current: the provider needs the current value from the store to
        rotate (it authenticates with it or must present it to revoke it), so
        the first deliver target must hold it before the first run.
    """

    fields: tuple[str, ...]
    optional: frozenset[str] = frozenset()
    id_field: str | None = None
    reads_current: bool = False

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if f not in self.optional)


@dataclass(frozen=True)
class Precheck:
    """What precheck found: the credential(s) to replace and any quota clean-up it did."""

    old_credential_ids: list[str]
    removed_inactive: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NewCredential:
    """A freshly created credential: its public id and its secret (activity-local only).

    `generated_by` names what generated a value the provider did not get from the
    service itself: `random.name` when the provider drew it from `ctx.random`.
    None means the service generated it (an IAM key, an issued certificate).
    """

    credential_id: str
    secret: Secret
    generated_by: str | None = None


@dataclass(frozen=True)
class ProviderContext:
    """What the activity knows about this credential beyond its target.

    old_secret: the value being replaced, as the first deliver target holds it
        (None when the store has none, or the store cannot be read back).
    new_secret: the replacement: staged before promote, delivered after; for a
        `supplied` provider's `create`, the value the operator supplied.
    random: where generated secret values (passwords, webhook secrets) come from.
    credential: the runbook's credential id, for messages.
    dry_run: precheck only looks (preflight): quota clean-up it would do is
        reported in `removed_inactive`, not done.
    """

    old_secret: Secret | None = None
    new_secret: Secret | None = None
    random: RandomSource = OS_RANDOM
    credential: str = ""
    dry_run: bool = False


NO_CONTEXT = ProviderContext()


class ProviderDefaults:
    """The defaults of the Provider protocol's optional capabilities.

    Built-in providers derive from it; the registry gives a plugin that does not
    declare a capability this default when it loads the plugin, so keyturn
    reads each capability as a plain attribute.
    """

    supplied: ClassVar[bool] = False
    supplied_field: ClassVar[str] = "token"
    step_timeout: ClassVar[timedelta | None] = None


@runtime_checkable
class Provider(Protocol):
    """One credential kind. Methods raise `keyturn.providers.errors.ProviderError` subclasses.

    Class attributes besides `name` and `target_model`:
    family: the provider family (`aws`, `github`, ...): its activities run on the
        task queue of that family, rate-limited to the service's published quota.

    Optional capabilities (`ProviderDefaults` holds their defaults; a provider
    that does not declare one gets the default when the registry loads it):
    supplied: True when no API can create the replacement (GitHub PATs): the run
        waits at a `supply` step for an operator to put the value into the store,
        and `create` then only identifies `ctx.new_secret` (returns its id).
    supplied_field: the secret field a supplied value goes into (`keyturn supply`).
    step_timeout: the longest one step may take, when the service is slower than
        keyturn's default of 30 s (propagation delays); None for the default.
    """

    name: ClassVar[str]
    target_model: ClassVar[type[BaseModel]]
    family: ClassVar[str]
    supplied: ClassVar[bool]
    supplied_field: ClassVar[str]
    step_timeout: ClassVar[timedelta | None]

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        """The secret's fields for `target` (None: for a target with every default)."""

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        """Find the current credential; make quota room (recorded) or refuse clearly.

        With ctx.dry_run nothing changes: the clean-up is only reported.
        """

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        """Every credential that currently exists for the target."""

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        """Create a replacement credential (a `supplied` provider identifies ctx.new_secret)."""

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        """Authenticate with `secret`; raise VerificationFailed if it does not work."""

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """Make the credential unusable but recoverable (where the service allows)."""

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """Undo `disable` (rollback of a revoke-first rotation)."""

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """Remove the credential for good. Deleting one already gone is not an error."""

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        """Prove the credential is dead: gone from the service and, given ctx.old_secret, rejected."""
