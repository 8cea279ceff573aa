"""AWS KMS keys behind an alias: the `aws.kms_key` provider.

Applications name a KMS key by its alias (`alias/release-signing`), so rotating
"the key" means changing what the alias stands for. Two kinds of key are
rotated in two different ways, one strategy class each, sharing the small
`kms_keys.KmsKeys` base:

- symmetric encryption keys are rotated in place (RotateKeyOnDemand); a
  credential is one key material, `<key id>@rotation-<n>`
  (keyturn.providers.kms_symmetric);
- asymmetric signing keys are replaced by a new key behind a staging alias,
  and the alias moves when the old key is revoked; a credential is a key id
  (keyturn.providers.kms_signing).

This class only picks the strategy: by the key the alias names (precheck,
list, create) or by the form of the credential id (the other steps).

KMS keys have no secret material anyone can hold: the "secret" this provider
returns holds only references (credential id, key id, ARN, alias, key spec,
and for signing keys the signing algorithm, public key PEM and its SHA-256),
so nothing sensitive is ever delivered to a store.

boto3 clients come from an injected factory (default: the standard AWS
environment, AWS_ENDPOINT_URL and AWS_DEFAULT_REGION included); a target may
name its region. KMS is eventually consistent: verify and confirm_revoked
retry a bounded number of times.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from pydantic import BaseModel

from keyturn.providers.aws_common import AwsProviderBase
from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    SecretShape,
)
from keyturn.providers.errors import PermanentProviderError
from keyturn.providers.kms_keys import AwsKmsKeyTarget, field, is_symmetric, where
from keyturn.providers.kms_signing import SigningKeys
from keyturn.providers.kms_symmetric import SymmetricKeys, parse_rotation_id
from keyturn.providers.targets import parse_target
from keyturn.secret import Secret

SYMMETRIC_FIELDS = ("credential_id", "key_id", "key_arn", "alias", "key_spec")
SIGNING_FIELDS = ("signing_algorithm", "public_key_pem", "public_key_sha256")
"""The secret's fields: every key's names, then what only a signing key adds."""


class AwsKmsKeyProvider(AwsProviderBase):
    """Rotates the KMS key behind an alias: on-demand rotation, or a replacement signing key."""

    name: ClassVar[str] = "aws.kms_key"
    target_model: ClassVar[type[BaseModel]] = AwsKmsKeyTarget
    default_attempts: ClassVar[int] = 5

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        """Both kinds write the key's names; a signing key adds its public key and algorithm."""
        return SecretShape(fields=SYMMETRIC_FIELDS + SIGNING_FIELDS,
                           optional=frozenset(SIGNING_FIELDS))

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        strategy, current = self._by_key(t)
        return strategy.precheck(t, current)

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        t = _target(target)
        strategy, current = self._by_key(t)
        return strategy.list_ids(t, current)

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        strategy, current = self._by_key(t)
        return strategy.create(t, current)

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        key_id = field(secret, "key_id", t)
        self._by_id(field(secret, "credential_id", t)).verify(t, secret, key_id)

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        self._by_id(credential_id).disable(_target(target), credential_id)

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        self._by_id(credential_id).enable(_target(target), credential_id)

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        self._by_id(credential_id).delete(_target(target), credential_id)

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        material = parse_rotation_id(credential_id)
        key_id = material[0] if material else credential_id
        if ctx.old_secret and ctx.old_secret.get("key_id", key_id) != key_id:
            raise PermanentProviderError(
                f"confirm_revoked: the old value given for {where(t)} is not for key {key_id}"
            )
        self._by_id(credential_id).confirm_revoked(t, credential_id)

    @cached_property
    def _symmetric(self) -> SymmetricKeys:
        return SymmetricKeys(self._kms, self._propagation)

    @cached_property
    def _signing(self) -> SigningKeys:
        return SigningKeys(self._kms, self._propagation)

    @cached_property
    def _clients(self) -> dict[str | None, Any]:
        """KMS clients by target region (None: the environment's), each built on first use."""
        return {}

    def _kms(self, t: AwsKmsKeyTarget) -> Any:
        if t.region not in self._clients:
            kwargs = {"region_name": t.region} if t.region else {}
            self._clients[t.region] = self._client_factory("kms", **kwargs)
        return self._clients[t.region]

    def _by_key(self, t: AwsKmsKeyTarget) -> tuple[SymmetricKeys | SigningKeys, dict[str, Any]]:
        """The strategy for the key the alias names now, and that key."""
        current = self._symmetric.current(t)
        return (self._symmetric if is_symmetric(current) else self._signing), current

    def _by_id(self, credential_id: str) -> SymmetricKeys | SigningKeys:
        """Key material ids are symmetric keys', plain key ids signing keys'."""
        return self._symmetric if parse_rotation_id(credential_id) is not None else self._signing


def _target(target: Any) -> AwsKmsKeyTarget:
    return parse_target(AwsKmsKeyTarget, "aws.kms_key", target)
