"""What the demo rotates, made on the local stack as an administrator would have left it.

For each credential of the demo runbook one current (old) credential: an IAM
user with one access key, a code-signing certificate from an OpenBao PKI role
(mount, root CA and role created on first use), or a KMS signing key behind its
alias. Its value goes to the credential's first `deliver` location, where the
rotation finds the old value, and comes back to the caller for the summary's
proofs. The stack keeps running between demos, so seeding first retires what
an earlier demo left: the user's keys, the CN's unrevoked certificates, the
keys behind the alias and its staging and retired aliases.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import hvac
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from keyturn.providers.kms_keys import AwsKmsKeyTarget
from keyturn.providers.vault_pki_cert import VaultPkiCertTarget
from keyturn.runbook.models import Credential, Deliver, Runbook
from keyturn.secret import Secret

SIGNING_KEY_SPEC = "ECC_NIST_P256"
SIGNING_ALGORITHM = "ECDSA_SHA_256"


@dataclass
class Admin:
    """Clients for the stack's servers, as the administrator dev.env names."""

    vault: hvac.Client
    iam: Any
    kms: Any
    secrets: Any
    aws: dict[str, str]  # region and endpoint, for clients signed with other keys

    @classmethod
    def from_env(cls) -> Admin:
        aws = {"region_name": os.environ["AWS_DEFAULT_REGION"],
               "endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
        return cls(
            vault=hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"]),
            iam=boto3.client("iam", **aws),
            kms=boto3.client("kms", **aws),
            secrets=boto3.client("secretsmanager", **aws),
            aws=aws,
        )

    def sts_for(self, secret: Secret) -> Any:
        """An STS client signing with the access key in `secret`."""
        return boto3.client("sts", aws_access_key_id=secret["aws_access_key_id"],
                            aws_secret_access_key=secret["aws_secret_access_key"], **self.aws)


@dataclass
class Seeded:
    """The old credential of one runbook credential: its value, id, and where it was put."""

    secret: Secret
    credential_id: str
    described: str  # what it is, for the seeding log
    location: str


def seed(runbook: Runbook, admin: Admin) -> dict[str, Seeded]:
    """Seed every credential of `runbook`; credential id -> what was seeded."""
    seeded = {}
    for cred in runbook.credentials():
        if cred.provider not in SEEDERS:
            raise SystemExit(f"the demo cannot seed {cred.id}: provider {cred.provider} "
                             f"(it seeds {', '.join(sorted(SEEDERS))})")
        secret, credential_id, described = SEEDERS[cred.provider](admin, cred)
        location = write(admin, runbook, cred.deliver[0], secret)
        seeded[cred.id] = Seeded(secret, credential_id, described, location)
    return seeded


def write(admin: Admin, runbook: Runbook, location: Deliver, secret: Secret) -> str:
    """Make `secret` the current value at `location`; returns where that is, for people."""
    store = runbook.spec.stores[location.store]
    if store.type == "vault_kv":
        mount = store.config.get("mount", "secret")
        admin.vault.secrets.kv.v2.create_or_update_secret(
            path=location.path, mount_point=mount, secret=secret)
        return f"vault {mount}/{location.path}"
    if store.type == "aws_secrets_manager":
        try:  # a fresh secret: an earlier demo's versions and keyturn tags go with the old one
            admin.secrets.delete_secret(SecretId=location.path, ForceDeleteWithoutRecovery=True)
        except admin.secrets.exceptions.ResourceNotFoundException:
            pass
        admin.secrets.create_secret(Name=location.path, SecretString=json.dumps(secret))
        return f"secrets manager {location.path}"
    raise SystemExit(f"the demo cannot seed store {location.store!r} of type {store.type}")


def seed_access_key(admin: Admin, cred: Credential) -> tuple[Secret, str, str]:
    """The IAM user, with exactly one access key."""
    user = cred.target["user_name"]
    try:
        admin.iam.create_user(UserName=user)
    except admin.iam.exceptions.EntityAlreadyExistsException:
        for key in admin.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
            admin.iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    key = admin.iam.create_access_key(UserName=user)["AccessKey"]
    secret = {"aws_access_key_id": key["AccessKeyId"],
              "aws_secret_access_key": key["SecretAccessKey"]}
    return secret, key["AccessKeyId"], f"IAM user {user}, key {key['AccessKeyId']}"


def seed_certificate(admin: Admin, cred: Credential) -> tuple[Secret, str, str]:
    """The PKI mount with a root CA and a code-signing role; one unrevoked certificate."""
    t = VaultPkiCertTarget.model_validate(cred.target)
    vault = admin.vault
    if f"{t.mount}/" not in vault.sys.list_mounted_secrets_engines()["data"]:
        vault.sys.enable_secrets_engine("pki", path=t.mount, config={"max_lease_ttl": "8760h"})
        vault.write_data(f"{t.mount}/root/generate/internal", data={
            "common_name": "keyturn demo root CA", "key_type": "ec", "ttl": "8760h"})
    vault.write_data(f"{t.mount}/roles/{t.role}", data={
        "code_signing_flag": True, "server_flag": False, "client_flag": False,
        "key_type": "ec", "allow_any_name": True, "enforce_hostnames": False,
        "ttl": "24h", "max_ttl": "24h"})
    for serial in vault.list(f"{t.mount}/certs")["data"]["keys"]:
        record = vault.read(f"{t.mount}/cert/{serial}")["data"]
        cert = x509.load_pem_x509_certificate(record["certificate"].encode())
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not record.get("revocation_time") and names and names[0].value == t.common_name:
            vault.write_data(f"{t.mount}/revoke", data={"serial_number": serial})
    body = {"common_name": t.common_name, **({"ttl": t.ttl} if t.ttl else {})}
    issued = vault.write_data(f"{t.mount}/issue/{t.role}", data=body)["data"]
    secret = {
        "certificate": issued["certificate"],
        "private_key": issued["private_key"],
        "ca_chain": "\n".join(issued["ca_chain"]),
        "serial_number": issued["serial_number"],
    }
    serial = issued["serial_number"]
    return secret, serial, f"certificate CN {t.common_name!r}, serial {short(serial)}"


def seed_signing_key(admin: Admin, cred: Credential) -> tuple[Secret, str, str]:
    """A fresh ECC signing key behind the alias; keys an earlier demo left are scheduled away."""
    t = AwsKmsKeyTarget.model_validate(cred.target)
    kms = admin.kms
    for alias in (t.alias, t.staged_alias, t.retired_alias):
        try:
            old = kms.describe_key(KeyId=alias)["KeyMetadata"]
        except kms.exceptions.NotFoundException:
            continue
        if old["KeyState"] != "PendingDeletion":
            kms.schedule_key_deletion(KeyId=old["KeyId"], PendingWindowInDays=7)
        kms.delete_alias(AliasName=alias)
    key = kms.create_key(KeySpec=SIGNING_KEY_SPEC, KeyUsage="SIGN_VERIFY",
                         Description="keyturn demo: signs release artifacts",
                         Tags=[{"TagKey": "team", "TagValue": "release"}])["KeyMetadata"]
    kms.create_alias(AliasName=t.alias, TargetKeyId=key["KeyId"])
    der = kms.get_public_key(KeyId=key["KeyId"])["PublicKey"]
    pem = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    secret = {  # references only, in the shape aws.kms_key delivers: KMS keeps the private key
        "credential_id": key["KeyId"],
        "key_id": key["KeyId"],
        "key_arn": key["Arn"],
        "alias": t.alias,
        "key_spec": key["KeySpec"],
        "signing_algorithm": SIGNING_ALGORITHM,
        "public_key_pem": pem.decode(),
        "public_key_sha256": hashlib.sha256(der).hexdigest(),
    }
    return secret, key["KeyId"], f"KMS key {short(key['KeyId'])} behind {t.alias}"


def short(identifier: str, keep: int = 11) -> str:
    """A long serial or key id cut to its first characters, for tables."""
    return identifier if len(identifier) <= keep + 1 else identifier[:keep] + "…"


SEEDERS: dict[str, Callable[[Admin, Credential], tuple[Secret, str, str]]] = {
    "aws.iam_access_key": seed_access_key,
    "signing.vault_pki_cert": seed_certificate,
    "aws.kms_key": seed_signing_key,
}
