"""AWS KMS keys behind an alias: the `aws.kms_key` provider.

Applications name a KMS key by its alias (`alias/release-signing`), so rotating
"the key" means changing what the alias stands for. Two kinds are supported:

Symmetric encryption keys (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT) are rotated in
place with RotateKeyOnDemand: the key id and alias stay, new key material is
used for new encryptions, and KMS keeps every earlier material to decrypt what
it encrypted. A credential is one key material: `<key id>@rotation-<n>`, n the
number of completed rotations (ListKeyRotations) when it became current, 0 for
the original. Earlier material cannot be disabled or deleted without the whole
key, so `disable`, `enable` and `delete` are documented no-ops for these ids
(a rollback leaves the key rotated, which breaks nothing), and
`confirm_revoked` proves only that the old material no longer encrypts.

Asymmetric signing keys (RSA_* or ECC_* with SIGN_VERIFY) cannot be rotated in
place. `create` makes a new key with the same spec, usage, description, key
policy and tags, reachable only through the staging alias
`alias/keyturn/staged/<name>`, so consumers keep signing with the old key while
the new one is verified and its public key is delivered. The alias moves when
the old key is revoked: `disable(old)` (or `delete(old)`, for revoke-first,
where disable ran before the replacement existed) points the alias at the
staged key and the retired alias `alias/keyturn/retired/<name>` at the old one,
then disables it. A rollback deletes the staged key, so the alias never left
the old key. `delete` schedules deletion (pending window from the target,
7-30 days); `confirm_revoked` requires the key to be pending deletion or gone,
the alias elsewhere, and a signing attempt with it to fail. Key grants are not
copied; multi-Region keys are refused.

KMS keys have no secret material anyone can hold: the "secret" this provider
returns holds only references (credential id, key id, ARN, alias, key spec,
and for signing keys the signing algorithm, public key PEM and its SHA-256),
so nothing sensitive is ever delivered to a store.

boto3 clients come from an injected factory (default: the standard AWS
environment, AWS_ENDPOINT_URL and AWS_DEFAULT_REGION included); a target may
name its region. KMS is eventually consistent: verify and
confirm_revoked retry a bounded number of times.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, ClassVar

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from keyturn.providers.aws_common import AwsProviderBase, classify, error_code, error_detail
from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    SecretShape,
)
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    ProviderError,
    QuotaExceeded,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.targets import parse_target
from keyturn.secret import Secret

ROTATION_MARK = "@rotation-"
SYMMETRIC_FIELDS = ("credential_id", "key_id", "key_arn", "alias", "key_spec")
SIGNING_FIELDS = ("signing_algorithm", "public_key_pem", "public_key_sha256")
"""The secret's fields: every key's names, then what only a signing key adds."""
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

_PSS = "RSASSA_PSS_"
_PKCS1 = "RSASSA_PKCS1_V1_5_"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
SIGNING_ALGORITHMS = [
    prefix + digest for prefix in (_PSS, _PKCS1, "ECDSA_") for digest in _HASHES
]
"""The KMS signing algorithms `verify` can check locally against the public key."""


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
    return classify(exc, ERROR_CODES)(f"{operation} for {_where(target)} failed: {detail}")


def rotation_id(key_id: str, rotations: int) -> str:
    return f"{key_id}{ROTATION_MARK}{rotations}"


def parse_rotation_id(credential_id: str) -> tuple[str, int] | None:
    """(key id, rotation number) for a symmetric key material id, else None (a key id)."""
    key_id, mark, number = credential_id.partition(ROTATION_MARK)
    return (key_id, int(number)) if mark and number.isdigit() else None


class AwsKmsKeyProvider(AwsProviderBase):
    """Rotates the KMS key behind an alias: on-demand rotation, or a replacement signing key."""

    name: ClassVar[str] = "aws.kms_key"
    target_model: ClassVar[type[BaseModel]] = AwsKmsKeyTarget
    default_attempts: ClassVar[int] = 5

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        """Both kinds write the key's names; a signing key adds its public key and algorithm."""
        return SecretShape(fields=SYMMETRIC_FIELDS + SIGNING_FIELDS,
                           optional=frozenset(SIGNING_FIELDS))

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        current = self._current(t)
        if _is_symmetric(current):
            if current["KeyState"] != "Enabled":
                raise PermanentProviderError(
                    f"{_where(t)} names key {current['KeyId']}, which is {current['KeyState']}; "
                    "KMS rotates only enabled keys"
                )
            ids = self._material_ids(t, current["KeyId"])
            if len(ids) > 1:
                raise TransientProviderError(
                    f"an on-demand rotation of key {current['KeyId']} ({_where(t)}) is still "
                    "running; try again when it completes"
                )
            return Precheck(old_credential_ids=ids)
        _signing_algorithm(current, t)  # refuse key kinds `verify` cannot check
        if current.get("MultiRegion"):
            raise PermanentProviderError(
                f"{_where(t)} names multi-Region key {current['KeyId']}; its replicas cannot be "
                "replaced by keyturn, rotate it by hand"
            )
        staged = self._live_key(t, t.staged_alias)
        if staged is not None:
            raise PermanentProviderError(
                f"{t.staged_alias} already names key {staged['KeyId']}: another rotation of "
                f"{t.alias} is in progress or was abandoned; finish or roll it back, or schedule "
                "that key's deletion and delete the staging alias"
            )
        return Precheck(old_credential_ids=[current["KeyId"]])

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        t = _target(target)
        current = self._current(t)
        if _is_symmetric(current):
            return self._material_ids(t, current["KeyId"])
        ids = [current["KeyId"]]
        for alias in (t.staged_alias, t.retired_alias):
            key = self._live_key(t, alias)
            if key is not None and key["KeyId"] not in ids:
                ids.append(key["KeyId"])
        return ids

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        current = self._current(t)
        if _is_symmetric(current):
            return self._rotate(t, current)
        return self._replace(t, current)

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        key_id = _field(secret, "key_id", t)
        material = parse_rotation_id(_field(secret, "credential_id", t))
        if material is not None:
            self._verify_material(t, material[1], key_id)
        else:
            self._verify_signing_key(t, secret, key_id)

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        if parse_rotation_id(credential_id) is not None:
            return  # earlier key material cannot be disabled apart from its key
        if not self._aliases_naming(t, credential_id):
            raise _unrelated(t, credential_id, "disable")
        self._promote_staged(t, credential_id)
        self._call(t, "DisableKey", credential_id, ok={"KMSInvalidStateException"},
                   KeyId=credential_id)

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        if parse_rotation_id(credential_id) is not None:
            return
        naming = self._aliases_naming(t, credential_id)
        if not naming:
            raise _unrelated(t, credential_id, "enable")
        if naming == {t.retired_alias}:
            # disable moved the alias away from this key: move it back, as it was.
            self._point(t, t.staged_alias, self._current(t)["KeyId"])
            self._point(t, t.alias, credential_id)
            self._call(t, "DeleteAlias", t.retired_alias, ok={"NotFoundException"},
                       AliasName=t.retired_alias)
        self._call(t, "EnableKey", credential_id, KeyId=credential_id)

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        if parse_rotation_id(credential_id) is not None:
            return  # KMS keeps earlier key material for decryption; only the key can go
        key = self._describe(t, credential_id)
        if key is None or key["KeyState"] in GONE_STATES:
            return  # already gone or going: the goal of delete
        naming = self._aliases_naming(t, credential_id)
        if not naming:
            raise _unrelated(t, credential_id, "delete")
        if t.alias in naming:
            self._promote_staged(t, credential_id)  # revoke-first: disable ran before create
            naming = self._aliases_naming(t, credential_id)
            if t.alias in naming:
                raise PermanentProviderError(
                    f"key {credential_id} is what {_where(t)} names and no replacement is "
                    "staged; refusing to schedule its deletion"
                )
        self._call(t, "ScheduleKeyDeletion", credential_id, ok={"KMSInvalidStateException"},
                   KeyId=credential_id, PendingWindowInDays=t.pending_window_days)
        for alias in naming:
            self._call(t, "DeleteAlias", alias, ok={"NotFoundException"}, AliasName=alias)

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        material = parse_rotation_id(credential_id)
        key_id = material[0] if material else credential_id
        if ctx.old_secret and ctx.old_secret.get("key_id", key_id) != key_id:
            raise PermanentProviderError(
                f"confirm_revoked: the old value given for {_where(t)} is not for key {key_id}"
            )
        if material is not None:
            self._confirm_material_retired(t, *material)
        else:
            self._confirm_key_revoked(t, credential_id)

    # -- symmetric keys: on-demand rotation ------------------------------------------

    def _material_ids(self, t: AwsKmsKeyTarget, key_id: str) -> list[str]:
        """The current material's id, and the next one's while an on-demand rotation runs."""
        done = len(self._rotations(t, key_id))
        status = self._call(t, "GetKeyRotationStatus", key_id, KeyId=key_id)
        ids = [rotation_id(key_id, done)]
        if status.get("OnDemandRotationStartDate"):
            ids.append(rotation_id(key_id, done + 1))
        return ids

    def _rotate(self, t: AwsKmsKeyTarget, key: dict[str, Any]) -> NewCredential:
        done = len(self._rotations(t, key["KeyId"]))
        self._call(t, "RotateKeyOnDemand", key["KeyId"], KeyId=key["KeyId"])
        credential_id = rotation_id(key["KeyId"], done + 1)
        secret = {
            "credential_id": credential_id,
            "key_id": key["KeyId"],
            "key_arn": key["Arn"],
            "alias": t.alias,
            "key_spec": key["KeySpec"],
        }
        return NewCredential(credential_id=credential_id, secret=secret)

    def _verify_material(self, t: AwsKmsKeyTarget, number: int, key_id: str) -> None:
        if self._alias_key_id(t, t.alias) != key_id:
            raise VerificationFailed(f"verify: {_where(t)} does not name key {key_id}")
        done = self._propagation.settle(
            lambda: len(self._rotations(t, key_id)), lambda count: count >= number
        )
        if done < number:
            raise VerificationFailed(
                f"verify: rotation {number} of key {key_id} ({_where(t)}) had not completed "
                f"after {self._propagation.attempts} attempts ({done} completed)"
            )
        probe = secrets.token_bytes(32)
        context = {"keyturn": "verify"}
        try:
            blob = self._kms(t).encrypt(KeyId=key_id, Plaintext=probe, EncryptionContext=context)
            back = self._kms(t).decrypt(
                CiphertextBlob=blob["CiphertextBlob"], KeyId=key_id, EncryptionContext=context
            )
        except ClientError as exc:
            if error_code(exc) in REJECTED_CODES:
                raise VerificationFailed(
                    f"verify: key {key_id} ({_where(t)}) refused to encrypt: {error_code(exc)}"
                ) from exc
            raise map_kms_error(exc, f"Encrypt/Decrypt with key {key_id}", t) from exc
        except BotoCoreError as exc:
            raise map_kms_error(exc, f"Encrypt/Decrypt with key {key_id}", t) from exc
        if back["Plaintext"] != probe:
            raise VerificationFailed(f"verify: key {key_id} ({_where(t)}) failed a round trip")

    def _confirm_material_retired(self, t: AwsKmsKeyTarget, key_id: str, number: int) -> None:
        key = self._describe(t, key_id)
        if key is None or key["KeyState"] in GONE_STATES:
            return  # the whole key, and every material with it, is gone
        done = len(self._rotations(t, key_id))
        if done <= number:
            raise StillValid(
                f"key material rotation-{number} is still the current material of key "
                f"{key_id} ({_where(t)}): {done} rotation(s) completed"
            )

    # -- signing keys: a replacement key, and the alias moved -------------------------------

    def _replace(self, t: AwsKmsKeyTarget, old: dict[str, Any]) -> NewCredential:
        old_id = old["KeyId"]
        _signing_algorithm(old, t)
        policy = self._call(t, "GetKeyPolicy", old_id, KeyId=old_id, PolicyName="default")
        tags = [tag for page in self._pages(t, "list_resource_tags", old_id, KeyId=old_id)
                for tag in page.get("Tags", [])]
        spec: dict[str, Any] = {
            "Policy": policy["Policy"],
            "Description": old.get("Description", ""),
            "KeyUsage": old["KeyUsage"],
            "KeySpec": old["KeySpec"],
        }
        if tags:
            spec["Tags"] = tags
        new = self._call(t, "CreateKey", f"replacing key {old_id}", **spec)["KeyMetadata"]
        try:
            self._point(t, t.staged_alias, new["KeyId"])
        except ProviderError:
            # Unreachable through any alias, the key would be lost to keyturn: remove it.
            self._call(t, "ScheduleKeyDeletion", new["KeyId"], ok={"KMSInvalidStateException"},
                       KeyId=new["KeyId"], PendingWindowInDays=t.pending_window_days)
            raise
        return NewCredential(credential_id=new["KeyId"], secret=self._signing_secret(t, new))

    def _signing_secret(self, t: AwsKmsKeyTarget, key: dict[str, Any]) -> Secret:
        der = self._call(t, "GetPublicKey", key["KeyId"], KeyId=key["KeyId"])["PublicKey"]
        pem = serialization.load_der_public_key(der).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "credential_id": key["KeyId"],
            "key_id": key["KeyId"],
            "key_arn": key["Arn"],
            "alias": t.alias,
            "key_spec": key["KeySpec"],
            "signing_algorithm": _signing_algorithm(key, t),
            "public_key_pem": pem.decode(),
            "public_key_sha256": hashlib.sha256(der).hexdigest(),
        }

    def _verify_signing_key(self, t: AwsKmsKeyTarget, secret: Secret, key_id: str) -> None:
        try:
            public = serialization.load_pem_public_key(
                _field(secret, "public_key_pem", t).encode()
            )
        except ValueError as exc:
            raise VerificationFailed(
                f"verify: the public key given for key {key_id} is not PEM"
            ) from exc
        if key_id not in (self._alias_key_id(t, t.staged_alias), self._alias_key_id(t, t.alias)):
            raise VerificationFailed(
                f"verify: key {key_id} is neither the staged nor the current key of {_where(t)}"
            )
        message = b"keyturn verify " + secrets.token_bytes(16)
        signed = self._settle(lambda: self._sign(t, key_id, message), accepted=True)
        if not isinstance(signed, tuple):
            raise VerificationFailed(
                f"verify: key {key_id} ({_where(t)}) could not sign ({signed}) "
                f"on all {self._propagation.attempts} attempts"
            )
        algorithm, signature = signed
        try:
            _check_signature(public, algorithm, signature, message)
        except (InvalidSignature, TypeError) as exc:
            raise VerificationFailed(
                f"verify: a signature by key {key_id} ({_where(t)}) does not verify with the "
                "public key delivered for it"
            ) from exc

    def _confirm_key_revoked(self, t: AwsKmsKeyTarget, key_id: str) -> None:
        key = self._describe(t, key_id)
        if key is not None and key["KeyState"] not in GONE_STATES:
            raise StillValid(f"key {key_id} of {_where(t)} is still {key['KeyState']}")
        if self._alias_key_id(t, t.alias) == key_id:
            raise StillValid(f"{_where(t)} still names key {key_id}")
        signed = self._settle(lambda: self._sign(t, key_id, b"keyturn confirm"), accepted=False)
        if isinstance(signed, tuple):
            raise StillValid(
                f"key {key_id} of {_where(t)} is pending deletion but KMS still signed with it "
                f"on all {self._propagation.attempts} attempts"
            )

    def _sign(self, t: AwsKmsKeyTarget, key_id: str, message: bytes) -> tuple[str, bytes] | str:
        """(algorithm, signature) if KMS signs `message` with the key, else why it refused."""
        key = self._describe(t, key_id)
        if key is None:
            return "NotFoundException"
        algorithm = _signing_algorithm(key, t)
        try:
            answer = self._kms(t).sign(
                KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm=algorithm
            )
        except ClientError as exc:
            if error_code(exc) in REJECTED_CODES:
                return error_code(exc)
            raise map_kms_error(exc, f"Sign with key {key_id}", t) from exc
        except BotoCoreError as exc:
            raise map_kms_error(exc, f"Sign with key {key_id}", t) from exc
        return algorithm, answer["Signature"]

    def _promote_staged(self, t: AwsKmsKeyTarget, old_id: str) -> None:
        """Point the alias at the staged key, and the retired alias at `old_id`, if still due.

        Safe to repeat: each step checks what the aliases name now.
        """
        staged_key = self._live_key(t, t.staged_alias)
        staged = staged_key["KeyId"] if staged_key else None
        if staged is None or staged == old_id:
            return
        current = self._alias_key_id(t, t.alias)
        if current not in (old_id, staged):
            raise PermanentProviderError(
                f"{_where(t)} names key {current}, neither the old key {old_id} nor the staged "
                f"replacement {staged}; refusing to move it"
            )
        if current == old_id:
            self._point(t, t.retired_alias, old_id)
            self._point(t, t.alias, staged)
        self._call(t, "DeleteAlias", t.staged_alias, ok={"NotFoundException"},
                   AliasName=t.staged_alias)

    # -- AWS calls ----------------------------------------------------------------

    @cached_property
    def _clients(self) -> dict[str | None, Any]:
        """KMS clients by target region (None: the environment's), each built on first use."""
        return {}

    def _kms(self, t: AwsKmsKeyTarget) -> Any:
        if t.region not in self._clients:
            kwargs = {"region_name": t.region} if t.region else {}
            self._clients[t.region] = self._client_factory("kms", **kwargs)
        return self._clients[t.region]

    def _call(
        self, t: AwsKmsKeyTarget, operation: str, subject: str, *,
        ok: set[str] | frozenset[str] = frozenset(), **kwargs: Any,
    ) -> Any:
        """KMS `operation` (e.g. "DescribeKey"); None if it fails with a code in `ok`."""
        try:
            return getattr(self._kms(t), xform_name(operation))(**kwargs)
        except ClientError as exc:
            if error_code(exc) in ok:
                return None
            raise map_kms_error(exc, f"{operation} {subject}", t) from exc
        except BotoCoreError as exc:
            raise map_kms_error(exc, f"{operation} {subject}", t) from exc

    def _pages(self, t: AwsKmsKeyTarget, method: str, subject: str, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from self._kms(t).get_paginator(method).paginate(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            operation = "".join(part.capitalize() for part in method.split("_"))
            raise map_kms_error(exc, f"{operation} {subject}", t) from exc

    def _rotations(self, t: AwsKmsKeyTarget, key_id: str) -> list[dict[str, Any]]:
        pages = self._pages(t, "list_key_rotations", key_id, KeyId=key_id)
        return [rotation for page in pages for rotation in page.get("Rotations", [])]

    def _describe(self, t: AwsKmsKeyTarget, key: str) -> dict[str, Any] | None:
        """DescribeKey of a key id, ARN or alias; None if there is no such key or alias."""
        answer = self._call(t, "DescribeKey", key, ok={"NotFoundException"}, KeyId=key)
        return None if answer is None else answer["KeyMetadata"]

    def _current(self, t: AwsKmsKeyTarget) -> dict[str, Any]:
        key = self._describe(t, t.alias)
        if key is None:
            raise CredentialNotFound(f"{_where(t)} does not exist; nothing to rotate")
        if key["KeyState"] in GONE_STATES:
            raise CredentialNotFound(
                f"{_where(t)} names key {key['KeyId']}, which is {key['KeyState']}"
            )
        if not (_is_symmetric(key) or key["KeyUsage"] == "SIGN_VERIFY"):
            raise PermanentProviderError(
                f"{_where(t)} names a {key['KeySpec']} {key['KeyUsage']} key; aws.kms_key "
                "rotates symmetric encryption keys and RSA/ECC signing keys"
            )
        return key

    def _alias_key_id(self, t: AwsKmsKeyTarget, alias: str) -> str | None:
        key = self._describe(t, alias)
        return None if key is None else key["KeyId"]

    def _aliases_naming(self, t: AwsKmsKeyTarget, key_id: str) -> set[str]:
        """Which of the target's aliases (its own, staged, retired) name `key_id`."""
        aliases = (t.alias, t.staged_alias, t.retired_alias)
        return {alias for alias in aliases if self._alias_key_id(t, alias) == key_id}

    def _live_key(self, t: AwsKmsKeyTarget, alias: str) -> dict[str, Any] | None:
        """The key `alias` names, unless there is none or it is pending deletion."""
        key = self._describe(t, alias)
        return None if key is None or key["KeyState"] in GONE_STATES else key

    def _point(self, t: AwsKmsKeyTarget, alias: str, key_id: str) -> None:
        """Make `alias` name `key_id`, creating the alias if needed."""
        if self._call(t, "UpdateAlias", alias, ok={"NotFoundException"},
                      AliasName=alias, TargetKeyId=key_id) is None:
            self._call(t, "CreateAlias", alias, AliasName=alias, TargetKeyId=key_id)

    def _settle(self, probe: Callable[[], Any], accepted: bool) -> Any:
        """Run `probe` until it signs (or is refused), a bounded number of times.

        Returns the last answer: (algorithm, signature) or the reason KMS refused.
        """
        return self._propagation.settle(
            probe, lambda answer: isinstance(answer, tuple) == accepted
        )


def _is_symmetric(key: dict[str, Any]) -> bool:
    return key.get("KeySpec") == "SYMMETRIC_DEFAULT" and key.get("KeyUsage") == "ENCRYPT_DECRYPT"


def _signing_algorithm(key: dict[str, Any], t: AwsKmsKeyTarget) -> str:
    """The first of the key's signing algorithms that `verify` can check."""
    offered = key.get("SigningAlgorithms") or []
    for algorithm in offered:
        if algorithm in SIGNING_ALGORITHMS:
            return algorithm
    raise PermanentProviderError(
        f"key {key['KeyId']} ({_where(t)}) is {key['KeySpec']} with signing algorithms "
        f"{', '.join(offered) or 'none'}; aws.kms_key supports RSA and ECDSA signing keys"
    )


def _check_signature(public: Any, algorithm: str, signature: bytes, message: bytes) -> None:
    """Raise InvalidSignature (or TypeError for a mismatched key type) unless it verifies."""
    digest = _HASHES[algorithm[-7:]]()
    if algorithm.startswith(_PSS) and isinstance(public, rsa.RSAPublicKey):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        public.verify(signature, message, pss, digest)
    elif algorithm.startswith(_PKCS1) and isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, message, padding.PKCS1v15(), digest)
    elif isinstance(public, ec.EllipticCurvePublicKey) and algorithm.startswith("ECDSA_"):
        public.verify(signature, message, ec.ECDSA(digest))
    else:
        raise TypeError(f"a {type(public).__name__} cannot check {algorithm}")


def _unrelated(t: AwsKmsKeyTarget, key_id: str, action: str) -> PermanentProviderError:
    return PermanentProviderError(
        f"key {key_id} is neither the current, staged nor retired key of {_where(t)}; "
        f"refusing to {action} it"
    )


def _where(t: AwsKmsKeyTarget) -> str:
    return f"KMS alias {t.alias!r}" + (f" in {t.region}" if t.region else "")


def _field(secret: Secret, name: str, t: AwsKmsKeyTarget) -> str:
    if not secret.get(name):
        raise PermanentProviderError(f"the value given for {_where(t)} lacks field {name!r}")
    return secret[name]


def _target(target: Any) -> AwsKmsKeyTarget:
    return parse_target(AwsKmsKeyTarget, "aws.kms_key", target)

