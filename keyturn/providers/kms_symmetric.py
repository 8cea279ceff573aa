"""Symmetric KMS encryption keys, rotated in place: the first `aws.kms_key` strategy.

A symmetric key (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT) is rotated with
RotateKeyOnDemand: the key id and alias stay, new key material encrypts from
then on, and KMS keeps every earlier material to decrypt what it encrypted. A
credential is one key material, `<key id>@rotation-<n>`, n the number of
completed rotations (ListKeyRotations) when it became current, 0 for the
original. Earlier material cannot be disabled or deleted without the whole key,
so `disable`, `enable` and `delete` are no-ops for these ids (a rollback leaves
the key rotated, which breaks nothing), and `confirm_revoked` proves only that
the old material is no longer the current one.
"""

from __future__ import annotations

import secrets
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from keyturn.providers.aws_common import error_code
from keyturn.providers.base import NewCredential, Precheck
from keyturn.providers.errors import (
    PermanentProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.kms_keys import (
    GONE_STATES,
    REJECTED_CODES,
    AwsKmsKeyTarget,
    KmsKeys,
    map_kms_error,
    where,
)

ROTATION_MARK = "@rotation-"


def rotation_id(key_id: str, rotations: int) -> str:
    return f"{key_id}{ROTATION_MARK}{rotations}"


def parse_rotation_id(credential_id: str) -> tuple[str, int] | None:
    """(key id, rotation number) for a symmetric key material id, else None (a key id)."""
    key_id, mark, number = credential_id.partition(ROTATION_MARK)
    return (key_id, int(number)) if mark and number.isdigit() else None


class SymmetricKeys(KmsKeys):
    """On-demand rotation of a symmetric key's material; credentials are material ids."""

    def precheck(self, t: AwsKmsKeyTarget, current: dict[str, Any]) -> Precheck:
        if current["KeyState"] != "Enabled":
            raise PermanentProviderError(
                f"{where(t)} names key {current['KeyId']}, which is {current['KeyState']}; "
                "KMS rotates only enabled keys"
            )
        ids = self.list_ids(t, current)
        if len(ids) > 1:
            raise TransientProviderError(
                f"an on-demand rotation of key {current['KeyId']} ({where(t)}) is still "
                "running; try again when it completes"
            )
        return Precheck(old_credential_ids=ids)

    def list_ids(self, t: AwsKmsKeyTarget, current: dict[str, Any]) -> list[str]:
        """The current material's id, and the next one's while an on-demand rotation runs."""
        key_id = current["KeyId"]
        done = len(self._rotations(t, key_id))
        status = self.call(t, "GetKeyRotationStatus", key_id, KeyId=key_id)
        ids = [rotation_id(key_id, done)]
        if status.get("OnDemandRotationStartDate"):
            ids.append(rotation_id(key_id, done + 1))
        return ids

    def create(self, t: AwsKmsKeyTarget, current: dict[str, Any]) -> NewCredential:
        done = len(self._rotations(t, current["KeyId"]))
        self.call(t, "RotateKeyOnDemand", current["KeyId"], KeyId=current["KeyId"])
        credential_id = rotation_id(current["KeyId"], done + 1)
        secret = {
            "credential_id": credential_id,
            "key_id": current["KeyId"],
            "key_arn": current["Arn"],
            "alias": t.alias,
            "key_spec": current["KeySpec"],
        }
        return NewCredential(credential_id=credential_id, secret=secret)

    def verify(self, t: AwsKmsKeyTarget, secret: dict[str, str], key_id: str) -> None:
        """The rotation has completed and the key encrypts and decrypts a round trip."""
        material = parse_rotation_id(secret["credential_id"])
        assert material is not None
        number = material[1]
        if self.alias_key_id(t, t.alias) != key_id:
            raise VerificationFailed(f"verify: {where(t)} does not name key {key_id}")
        done = self._propagation.settle(
            lambda: len(self._rotations(t, key_id)), lambda count: count >= number
        )
        if done < number:
            raise VerificationFailed(
                f"verify: rotation {number} of key {key_id} ({where(t)}) had not completed "
                f"after {self._propagation.attempts} attempts ({done} completed)"
            )
        self._round_trip(t, key_id)

    def disable(self, t: AwsKmsKeyTarget, credential_id: str) -> None:
        """Nothing: earlier key material cannot be disabled apart from its key."""

    def enable(self, t: AwsKmsKeyTarget, credential_id: str) -> None:
        """Nothing: `disable` changed nothing."""

    def delete(self, t: AwsKmsKeyTarget, credential_id: str) -> None:
        """Nothing: KMS keeps earlier key material for decryption; only the key can go."""

    def confirm_revoked(self, t: AwsKmsKeyTarget, credential_id: str) -> None:
        material = parse_rotation_id(credential_id)
        assert material is not None
        key_id, number = material
        key = self.describe(t, key_id)
        if key is None or key["KeyState"] in GONE_STATES:
            return  # the whole key, and every material with it, is gone
        done = len(self._rotations(t, key_id))
        if done <= number:
            raise StillValid(
                f"key material rotation-{number} is still the current material of key "
                f"{key_id} ({where(t)}): {done} rotation(s) completed"
            )

    def _rotations(self, t: AwsKmsKeyTarget, key_id: str) -> list[dict[str, Any]]:
        pages = self.pages(t, "list_key_rotations", key_id, KeyId=key_id)
        return [rotation for page in pages for rotation in page.get("Rotations", [])]

    def _round_trip(self, t: AwsKmsKeyTarget, key_id: str) -> None:
        plaintext = secrets.token_bytes(32)
        context = {"keyturn": "verify"}
        try:
            blob = self.kms(t).encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)
            back = self.kms(t).decrypt(
                CiphertextBlob=blob["CiphertextBlob"], KeyId=key_id, EncryptionContext=context
            )
        except ClientError as exc:
            if error_code(exc) in REJECTED_CODES:
                raise VerificationFailed(
                    f"verify: key {key_id} ({where(t)}) refused to encrypt: {error_code(exc)}"
                ) from exc
            raise map_kms_error(exc, f"Encrypt/Decrypt with key {key_id}", t) from exc
        except BotoCoreError as exc:
            raise map_kms_error(exc, f"Encrypt/Decrypt with key {key_id}", t) from exc
        if back["Plaintext"] != plaintext:
            raise VerificationFailed(f"verify: key {key_id} ({where(t)}) failed a round trip")
