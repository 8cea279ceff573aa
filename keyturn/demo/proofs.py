"""The demo's summary: one table row per credential, each proof asked of the servers.

Nothing here goes through keyturn: the checks use the servers' own APIs (moto's
IAM, STS and KMS, OpenBao's PKI and KV, Secrets Manager), the old values the
demo seeded and the new values the stores now hold. A proof reads `✓ …` when it
holds and `✗ …` when it does not; the demo succeeds only if every one holds.
Ids, serials and fingerprints are shown, never a secret value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from hvac.exceptions import VaultError
from rich.table import Table

from keyturn.demo.seed import Admin, Seeded, short
from keyturn.providers.kms_keys import AwsKmsKeyTarget
from keyturn.providers.vault_pki_cert import VaultPkiCertTarget
from keyturn.runbook.models import Credential, Deliver, Runbook
from keyturn.secret import Secret

ECDSA_HASHES = {"ECDSA_SHA_256": hashes.SHA256, "ECDSA_SHA_384": hashes.SHA384,
                "ECDSA_SHA_512": hashes.SHA512}


@dataclass
class Row:
    """One credential's row: what it is, its old and new ids, where the new value is stored,
    and the proofs."""

    kind: str
    old: str
    new: str
    where: str
    proofs: list[str] = field(default_factory=list)
    ok: bool = True

    def proof(self, holds: bool, text: str) -> None:
        self.ok = self.ok and holds
        self.proofs.append(f"[green]✓[/] {text}" if holds else f"[red]✗ {text}[/]")

    def cell(self) -> str:
        return "\n".join([f"[dim]→ {self.where}[/]", *self.proofs])


Prover = Callable[[Admin, Credential, Seeded, Secret, str], Row]
"""(admin, credential, what was seeded, the stored new value, where it is stored) -> Row."""


def summary(runbook: Runbook, admin: Admin, seeded: dict[str, Seeded]) -> tuple[Table, bool]:
    """The table of every credential in run order; True if every proof holds."""
    table = Table(title="rotated, and proven by the servers", show_lines=True)
    for column in ("credential", "kind", "old", "new", "proofs"):
        table.add_column(column)
    ok = True
    for tier in runbook.spec.tiers:
        for cred in tier.credentials:
            try:
                new, where = stored(admin, runbook, cred.deliver[0])
                row = PROVERS[cred.provider](admin, cred, seeded[cred.id], new, where)
            except (ClientError, VaultError, LookupError, ValueError) as exc:
                # a refused call or a missing value is a failed proof, not a crash
                row = Row(cred.provider, short(seeded[cred.id].credential_id), "?", "?")
                row.proof(False, f"could not check: {type(exc).__name__}: {exc}")
            table.add_row(f"{cred.id}\n[dim]{tier.id} {tier.name}[/]", row.kind, row.old,
                          row.new, row.cell())
            ok = ok and row.ok
    return table, ok


def stored(admin: Admin, runbook: Runbook, location: Deliver) -> tuple[Secret, str]:
    """The current value at `location`, and which version that is, for people."""
    store = runbook.spec.stores[location.store]
    if store.type == "vault_kv":
        mount = store.config.get("mount", "secret")
        read = admin.vault.secrets.kv.v2.read_secret_version(
            path=location.path, mount_point=mount, raise_on_deleted_version=True)["data"]
        return read["data"], f"vault {mount}/{location.path} v{read['metadata']['version']}"
    answer = admin.secrets.get_secret_value(SecretId=location.path, VersionStage="AWSCURRENT")
    return json.loads(answer["SecretString"]), f"secrets manager {location.path} AWSCURRENT"


def prove_access_key(admin: Admin, cred: Credential, old: Seeded, new: Secret,
                     where: str) -> Row:
    """STS refuses the old key; the stored key is IAM's only key for the user, and STS
    accepts it as that user."""
    user = cred.target["user_name"]
    keys = [k["AccessKeyId"] for k in
            admin.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
    new_id = new["aws_access_key_id"]
    row = Row(f"IAM access key\nuser {user}", old.credential_id, new_id, where)
    row.proof(caller(admin, old.secret) is None, "STS rejects the old key")
    row.proof(keys == [new_id] and new_id != old.credential_id,
              "IAM lists the stored key only" if keys == [new_id]
              else f"IAM lists {', '.join(keys) or 'no key'}")
    row.proof(caller(admin, new) == user, f"STS accepts the stored key as {user}")
    return row


def caller(admin: Admin, secret: Secret) -> str | None:
    """The IAM user STS says the access key belongs to, or None if STS refuses the key."""
    try:
        arn = admin.sts_for(secret).get_caller_identity()["Arn"]
    except ClientError:
        return None
    return arn.rsplit("/", 1)[-1]


def prove_certificate(admin: Admin, cred: Credential, old: Seeded, new: Secret,
                      where: str) -> Row:
    """The old serial revoked and on the CA's signed CRL; the stored certificate is the
    one PKI issued, unrevoked, in validity, for code signing, and chains to the CA."""
    t = VaultPkiCertTarget.model_validate(cred.target)
    ca = x509.load_pem_x509_certificate(
        vault_read(admin, f"{t.mount}/cert/ca")["certificate"].encode())
    crl = x509.load_der_x509_crl(admin.vault.adapter.get(f"/v1/{t.mount}/crl").content)
    old_record = vault_read(admin, f"{t.mount}/cert/{old.credential_id}")
    old_cert = x509.load_pem_x509_certificate(old_record["certificate"].encode())
    serial = new["serial_number"]
    cert = x509.load_pem_x509_certificate(new["certificate"].encode())
    record = vault_read(admin, f"{t.mount}/cert/{serial}")
    now = datetime.now(UTC)

    issued = x509.load_pem_x509_certificate(record["certificate"].encode())
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()

    row = Row(f"code-signing certificate\nCN {t.common_name}", short(old.credential_id),
              f"{short(serial)}\nsha256 {fingerprint[:8]}…", where)
    row.proof(bool(old_record.get("revocation_time")), "PKI lists the old serial as revoked")
    row.proof(crl.is_signature_valid(ca.public_key())
              and crl.get_revoked_certificate_by_serial_number(old_cert.serial_number)
              is not None, f"the old serial is on {t.mount}'s signed CRL")
    row.proof(issued == cert and cert.serial_number == int(serial.replace(":", ""), 16)
              and cert.serial_number != old_cert.serial_number
              and not record.get("revocation_time"),
              "PKI issued the stored certificate, unrevoked")
    row.proof(ExtendedKeyUsageOID.CODE_SIGNING in extended_key_usage(cert)
              and chains_to(cert, ca), f"codeSigning EKU, signed by {t.mount}'s CA")
    row.proof(cert.not_valid_before_utc <= now <= cert.not_valid_after_utc,
              f"valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z")
    return row


def vault_read(admin: Admin, path: str) -> dict[str, Any]:
    """The data OpenBao answers a read of `path` with; LookupError if there is nothing."""
    answer = admin.vault.read(path)
    if answer is None:
        raise LookupError(f"OpenBao has nothing at {path}")
    return answer["data"]


def extended_key_usage(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return []


def chains_to(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def prove_signing_key(admin: Admin, cred: Credential, old: Seeded, new: Secret,
                      where: str) -> Row:
    """The alias names the stored key; the old key is disabled or pending deletion and KMS
    refuses to sign with it; the alias signs and the stored public key verifies that."""
    t = AwsKmsKeyTarget.model_validate(cred.target)
    kms = admin.kms
    current = kms.describe_key(KeyId=t.alias)["KeyMetadata"]["KeyId"]
    old_state = kms.describe_key(KeyId=old.credential_id)["KeyMetadata"]["KeyState"]
    algorithm = new["signing_algorithm"]
    message = b"keyturn demo " + os.urandom(16)
    public = serialization.load_pem_public_key(new["public_key_pem"].encode())
    public_der = public.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    row = Row(f"KMS signing key\n{t.alias}", short(old.credential_id), short(current), where)
    row.proof(old_state in ("Disabled", "PendingDeletion"), f"the old key is {old_state}")
    row.proof(kms_signature(admin, old.credential_id, message, algorithm) is None,
              "KMS refuses to sign with the old key")
    row.proof(new["key_id"] == current and current != old.credential_id
              and public_der == kms.get_public_key(KeyId=current)["PublicKey"],
              f"{t.alias} names the stored key")
    row.proof(verifies(public, kms_signature(admin, t.alias, message, algorithm), message,
                       algorithm), f"it signs; {algorithm} verified with the stored key")
    return row


def kms_signature(admin: Admin, key: str, message: bytes, algorithm: str) -> bytes | None:
    """KMS's signature of `message` with `key`, or None if KMS refuses to sign."""
    try:
        return admin.kms.sign(KeyId=key, Message=message, MessageType="RAW",
                              SigningAlgorithm=algorithm)["Signature"]
    except ClientError:
        return None


def verifies(public: Any, signature: bytes | None, message: bytes, algorithm: str) -> bool:
    """Does `signature` verify with `public`? The demo seeds ECC keys, so ECDSA only."""
    if signature is None or algorithm not in ECDSA_HASHES:
        return False
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return False
    try:
        public.verify(signature, message, ec.ECDSA(ECDSA_HASHES[algorithm]()))
    except InvalidSignature:
        return False
    return True


PROVERS: dict[str, Prover] = {
    "aws.iam_access_key": prove_access_key,
    "signing.vault_pki_cert": prove_certificate,
    "aws.kms_key": prove_signing_key,
}
