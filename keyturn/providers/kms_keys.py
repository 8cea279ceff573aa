"""What the two `aws.kms_key` strategies share: the target, the error table and KMS calls.

`KmsKeys` is the small base of `kms_symmetric.SymmetricKeys` (on-demand
rotation of key material) and `kms_signing.SigningKeys` (a replacement key and
the alias moved); `aws_kms.AwsKmsKeyProvider` picks one per key. It holds a
KMS client per target region and the propagation retries, and knows how to
describe a key, read and point aliases, and list rotations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from keyturn.providers.aws_common import classify, error_code, error_detail
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    ProviderError,
    QuotaExceeded,
    TransientProviderError,
)
from keyturn.providers.propagation import Propagation
from keyturn.secret import Secret

STAGED_PREFIX = "alias/keyturn/staged/"
RETIRED_PREFIX = "alias/keyturn/retired/"
GONE_STATES = frozenset({"PendingDeletion", "PendingReplicaDeletion"})

# The one table from KMS error codes to provider errors. Codes not listed are
# classified by HTTP status (403 denied, 5xx transient, else permanent);
# connection failures are transient.
ERROR_CODES: dict[str, type[ProviderError]] = {
    "NotFoundException": CredentialNotFound,
    "AccessDeniedException": AccessDenied,
    "UnrecognizedClientException": AccessDenied,
    "InvalidSignatureException": AccessDenied,
    "ExpiredTokenException": AccessDenied,
    "LimitExceededException": QuotaExceeded,
    "ThrottlingException": TransientProviderError,
    "KMSInternalException": TransientProviderError,
    "KeyUnavailableException": TransientProviderError,
    "DependencyTimeoutException": TransientProviderError,
    "ConflictException": TransientProviderError,  # an on-demand rotation is still running
    "ServiceUnavailableException": TransientProviderError,
    "InternalFailure": TransientProviderError,
}

# What KMS answers when a key may not be used: missing, disabled, pending deletion.
REJECTED_CODES = frozenset({"NotFoundException", "DisabledException", "KMSInvalidStateException"})


class AwsKmsKeyTarget(BaseModel):
    """Which KMS key to rotate: the alias applications use, in which region."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alias: str = Field(pattern=r"^alias/[A-Za-z0-9/_-]+$", max_length=256 - len(RETIRED_PREFIX))
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")
    pending_window_days: int = Field(default=30, ge=7, le=30)
    """Days a replaced signing key stays recoverable (CancelKeyDeletion) before KMS deletes it."""

    @field_validator("alias")
    @classmethod
    def _customer_alias(cls, alias: str) -> str:
        if alias.startswith(("alias/aws/", "alias/keyturn/")):
            raise ValueError("aliases under alias/aws/ and alias/keyturn/ are not rotatable")
        return alias

    @property
    def name(self) -> str:
        return self.alias.removeprefix("alias/")

    @property
    def staged_alias(self) -> str:
        return STAGED_PREFIX + self.name

    @property
    def retired_alias(self) -> str:
        return RETIRED_PREFIX + self.name


def map_kms_error(exc: Exception, operation: str, target: AwsKmsKeyTarget) -> ProviderError:
    """Classify `exc`; the message names the operation, alias and region (KMS has no secrets)."""
    detail = error_detail(exc)
    return classify(exc, ERROR_CODES)(f"{operation} for {where(target)} failed: {detail}")


def where(t: AwsKmsKeyTarget) -> str:
    return f"KMS alias {t.alias!r}" + (f" in {t.region}" if t.region else "")


def field(secret: Secret, name: str, t: AwsKmsKeyTarget) -> str:
    if not secret.get(name):
        raise PermanentProviderError(f"the value given for {where(t)} lacks field {name!r}")
    return secret[name]


def is_symmetric(key: dict[str, Any]) -> bool:
    return key.get("KeySpec") == "SYMMETRIC_DEFAULT" and key.get("KeyUsage") == "ENCRYPT_DECRYPT"


class KmsKeys:
    """The base of both strategies: KMS calls through the provider's clients, and the
    propagation retries. A strategy implements the Provider protocol's
    steps for a target `t` whose alias names a key of its kind (`current`)."""

    def __init__(self, kms: Callable[[AwsKmsKeyTarget], Any], propagation: Propagation) -> None:
        self.kms = kms
        """The KMS client for a target (its region's), shared by both strategies."""
        self._propagation = propagation

    def call(
        self, t: AwsKmsKeyTarget, operation: str, subject: str, *,
        ok: set[str] | frozenset[str] = frozenset(), **kwargs: Any,
    ) -> Any:
        """KMS `operation` (e.g. "DescribeKey"); None if it fails with a code in `ok`."""
        try:
            return getattr(self.kms(t), xform_name(operation))(**kwargs)
        except ClientError as exc:
            if error_code(exc) in ok:
                return None
            raise map_kms_error(exc, f"{operation} {subject}", t) from exc
        except BotoCoreError as exc:
            raise map_kms_error(exc, f"{operation} {subject}", t) from exc

    def pages(self, t: AwsKmsKeyTarget, method: str, subject: str, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from self.kms(t).get_paginator(method).paginate(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            operation = "".join(part.capitalize() for part in method.split("_"))
            raise map_kms_error(exc, f"{operation} {subject}", t) from exc

    def describe(self, t: AwsKmsKeyTarget, key: str) -> dict[str, Any] | None:
        """DescribeKey of a key id, ARN or alias; None if there is no such key or alias."""
        answer = self.call(t, "DescribeKey", key, ok={"NotFoundException"}, KeyId=key)
        return None if answer is None else answer["KeyMetadata"]

    def current(self, t: AwsKmsKeyTarget) -> dict[str, Any]:
        """The key the target's alias names; refused if gone or of a kind not rotated here."""
        key = self.describe(t, t.alias)
        if key is None:
            raise CredentialNotFound(f"{where(t)} does not exist; nothing to rotate")
        if key["KeyState"] in GONE_STATES:
            raise CredentialNotFound(
                f"{where(t)} names key {key['KeyId']}, which is {key['KeyState']}"
            )
        if not (is_symmetric(key) or key["KeyUsage"] == "SIGN_VERIFY"):
            raise PermanentProviderError(
                f"{where(t)} names a {key['KeySpec']} {key['KeyUsage']} key; aws.kms_key "
                "rotates symmetric encryption keys and RSA/ECC signing keys"
            )
        return key

    def alias_key_id(self, t: AwsKmsKeyTarget, alias: str) -> str | None:
        key = self.describe(t, alias)
        return None if key is None else key["KeyId"]
