"""Asymmetric KMS signing keys, replaced by a new key: the second `aws.kms_key` strategy.

A signing key (RSA_* or ECC_* with SIGN_VERIFY) cannot be rotated in place.
`create` makes a new key with the same spec, usage, description, key policy and
tags, reachable only through the staging alias `alias/keyturn/staged/<name>`,
so consumers keep signing with the old key while the new one is verified and
its public key is delivered. The alias moves when the old key is revoked:
`disable(old)` (or `delete(old)`, for revoke-first, where disable ran before
the replacement existed) points the alias at the staged key and the retired
alias `alias/keyturn/retired/<name>` at the old one, then disables it. A
rollback deletes the staged key, so the alias never left the old key. `delete`
schedules deletion (pending window from the target, 7-30 days);
`confirm_revoked` requires the key to be pending deletion or gone, the alias
elsewhere, and a signing attempt with it to fail. Key grants are not copied;
multi-Region keys are refused. The probe (keyturn.providers.probing) is a
signature: verify checks it against the delivered public key.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from keyturn.providers.aws_common import error_code
from keyturn.providers.base import NewCredential, Precheck
from keyturn.providers.errors import (
    PermanentProviderError,
    ProviderError,
    StillValid,
    VerificationFailed,
)
from keyturn.providers.kms_keys import (
    GONE_STATES,
    REJECTED_CODES,
    AwsKmsKeyTarget,
    KmsKeys,
    field,
    map_kms_error,
    where,
)
from keyturn.providers.kms_signatures import check_signature, signing_algorithm
from keyturn.providers.probing import Answer, Probing, accepted, refused
from keyturn.secret import Secret


class SigningKeys(Probing, KmsKeys):
    """A replacement signing key behind the staging alias; credentials are key ids."""

    def precheck(self, t: AwsKmsKeyTarget, current: dict[str, Any]) -> Precheck:
        signing_algorithm(current, t)  # refuse key kinds `verify` cannot check
        if current.get("MultiRegion"):
            raise PermanentProviderError(
                f"{where(t)} names multi-Region key {current['KeyId']}; its replicas cannot be "
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

    def list_ids(self, t: AwsKmsKeyTarget, current: dict[str, Any]) -> list[str]:
        ids = [current["KeyId"]]
        for alias in (t.staged_alias, t.retired_alias):
            key = self._live_key(t, alias)
            if key is not None and key["KeyId"] not in ids:
                ids.append(key["KeyId"])
        return ids

    def create(self, t: AwsKmsKeyTarget, current: dict[str, Any]) -> NewCredential:
        old_id = current["KeyId"]
        signing_algorithm(current, t)
        policy = self.call(t, "GetKeyPolicy", old_id, KeyId=old_id, PolicyName="default")
        tags = [tag for page in self.pages(t, "list_resource_tags", old_id, KeyId=old_id)
                for tag in page.get("Tags", [])]
        spec: dict[str, Any] = {
            "Policy": policy["Policy"],
            "Description": current.get("Description", ""),
            "KeyUsage": current["KeyUsage"],
            "KeySpec": current["KeySpec"],
        }
        if tags:
            spec["Tags"] = tags
        new = self.call(t, "CreateKey", f"replacing key {old_id}", **spec)["KeyMetadata"]
        try:
            self._point(t, t.staged_alias, new["KeyId"])
        except ProviderError:
            # Unreachable through any alias, the key would be lost to keyturn: remove it.
            self.call(t, "ScheduleKeyDeletion", new["KeyId"], ok={"KMSInvalidStateException"},
                      KeyId=new["KeyId"], PendingWindowInDays=t.pending_window_days)
            raise
        return NewCredential(credential_id=new["KeyId"], secret=self._secret(t, new))

    def verify(self, t: AwsKmsKeyTarget, secret: Secret, key_id: str) -> None:
        try:
            public = serialization.load_pem_public_key(field(secret, "public_key_pem", t).encode())
        except ValueError as exc:
            raise VerificationFailed(
                f"verify: the public key given for key {key_id} is not PEM"
            ) from exc
        if key_id not in (self.alias_key_id(t, t.staged_alias), self.alias_key_id(t, t.alias)):
            raise VerificationFailed(
                f"verify: key {key_id} is neither the staged nor the current key of {where(t)}"
            )
        algorithm, signature, message = self.expect_accepted(
            t, key_id, f"key {key_id} ({where(t)}) could not sign"
        )
        try:
            check_signature(public, algorithm, signature, message)
        except (InvalidSignature, TypeError) as exc:
            raise VerificationFailed(
                f"verify: a signature by key {key_id} ({where(t)}) does not verify with the "
                "public key delivered for it"
            ) from exc

    def disable(self, t: AwsKmsKeyTarget, credential_id: str) -> None:
        if not self._aliases_naming(t, credential_id):
            raise _unrelated(t, credential_id, "disable")
        self._promote_staged(t, credential_id)
        self.call(t, "DisableKey", credential_id, ok={"KMSInvalidStateException"},
                  KeyId=credential_id)

    def enable(self, t: AwsKmsKeyTarget, credential_id: str) -> None:
        naming = self._aliases_naming(t, credential_id)
        if not naming:
            raise _unrelated(t, credential_id, "enable")
        if naming == {t.retired_alias}:
            # disable moved the alias away from this key: move it back, as it was.
            self._point(t, t.staged_alias, self.current(t)["KeyId"])
            self._point(t, t.alias, credential_id)
            self.call(t, "DeleteAlias", t.retired_alias, ok={"NotFoundException"},
                      AliasName=t.retired_alias)
        self.call(t, "EnableKey", credential_id, KeyId=credential_id)

    def delete(self, t: AwsKmsKeyTarget, credential_id: str) -> None:
        key = self.describe(t, credential_id)
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
                    f"key {credential_id} is what {where(t)} names and no replacement is "
                    "staged; refusing to schedule its deletion"
                )
        self.call(t, "ScheduleKeyDeletion", credential_id, ok={"KMSInvalidStateException"},
                  KeyId=credential_id, PendingWindowInDays=t.pending_window_days)
        for alias in naming:
            self.call(t, "DeleteAlias", alias, ok={"NotFoundException"}, AliasName=alias)

    def confirm_revoked(self, t: AwsKmsKeyTarget, credential_id: str) -> None:
        key = self.describe(t, credential_id)
        if key is not None and key["KeyState"] not in GONE_STATES:
            raise StillValid(f"key {credential_id} of {where(t)} is still {key['KeyState']}")
        if self.alias_key_id(t, t.alias) == credential_id:
            raise StillValid(f"{where(t)} still names key {credential_id}")
        self.expect_refused(
            t, credential_id,
            f"key {credential_id} of {where(t)} is pending deletion but KMS still signed with it",
        )

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """Sign a fresh message with key `secret` (a key id): accepted with (algorithm,
        signature, message), or refused with KMS's error code."""
        t, key_id = target, str(secret)
        key = self.describe(t, key_id)
        if key is None:
            return refused("NotFoundException")
        algorithm = signing_algorithm(key, t)
        message = b"keyturn " + step.encode() + b" " + secrets.token_bytes(16)
        try:
            answer = self.kms(t).sign(
                KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm=algorithm
            )
        except ClientError as exc:
            if error_code(exc) in REJECTED_CODES:
                return refused(error_code(exc))
            raise map_kms_error(exc, f"Sign with key {key_id}", t) from exc
        except BotoCoreError as exc:
            raise map_kms_error(exc, f"Sign with key {key_id}", t) from exc
        return accepted((algorithm, answer["Signature"], message))

    def _secret(self, t: AwsKmsKeyTarget, key: dict[str, Any]) -> Secret:
        der = self.call(t, "GetPublicKey", key["KeyId"], KeyId=key["KeyId"])["PublicKey"]
        pem = serialization.load_der_public_key(der).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "credential_id": key["KeyId"],
            "key_id": key["KeyId"],
            "key_arn": key["Arn"],
            "alias": t.alias,
            "key_spec": key["KeySpec"],
            "signing_algorithm": signing_algorithm(key, t),
            "public_key_pem": pem.decode(),
            "public_key_sha256": hashlib.sha256(der).hexdigest(),
        }

    # -- the target's aliases: its own, staged and retired ---------------------------

    def _live_key(self, t: AwsKmsKeyTarget, alias: str) -> dict[str, Any] | None:
        """The key `alias` names, unless there is none or it is pending deletion."""
        key = self.describe(t, alias)
        return None if key is None or key["KeyState"] in GONE_STATES else key

    def _aliases_naming(self, t: AwsKmsKeyTarget, key_id: str) -> set[str]:
        """Which of the target's aliases (its own, staged, retired) name `key_id`."""
        aliases = (t.alias, t.staged_alias, t.retired_alias)
        return {alias for alias in aliases if self.alias_key_id(t, alias) == key_id}

    def _point(self, t: AwsKmsKeyTarget, alias: str, key_id: str) -> None:
        """Make `alias` name `key_id`, creating the alias if needed."""
        if self.call(t, "UpdateAlias", alias, ok={"NotFoundException"},
                     AliasName=alias, TargetKeyId=key_id) is None:
            self.call(t, "CreateAlias", alias, AliasName=alias, TargetKeyId=key_id)

    def _promote_staged(self, t: AwsKmsKeyTarget, old_id: str) -> None:
        """Point the alias at the staged key, and the retired alias at `old_id`, if still due.

        Safe to repeat: each step checks what the aliases name now.
        """
        staged_key = self._live_key(t, t.staged_alias)
        staged = staged_key["KeyId"] if staged_key else None
        if staged is None or staged == old_id:
            return
        current = self.alias_key_id(t, t.alias)
        if current not in (old_id, staged):
            raise PermanentProviderError(
                f"{where(t)} names key {current}, neither the old key {old_id} nor the staged "
                f"replacement {staged}; refusing to move it"
            )
        if current == old_id:
            self._point(t, t.retired_alias, old_id)
            self._point(t, t.alias, staged)
        self.call(t, "DeleteAlias", t.staged_alias, ok={"NotFoundException"},
                  AliasName=t.staged_alias)


def _unrelated(t: AwsKmsKeyTarget, key_id: str, action: str) -> PermanentProviderError:
    return PermanentProviderError(
        f"key {key_id} is neither the current, staged nor retired key of {where(t)}; "
        f"refusing to {action} it"
    )
