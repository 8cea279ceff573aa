"""Conformance harness for signing.vault_pki_cert: OpenBao's PKI engine behind a fault proxy.

One PKI mount per session (an EC root CA and a `signer` role with
code_signing_flag); each subject is a fresh common name holding one certificate
issued directly through OpenBao. The provider talks to OpenBao through a
FaultProxy so `fault()` can answer 403 (permission denied) or 503 (sealed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import hvac
import pytest
from conformance.harness import FaultKind, Subject
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fakes.fault_proxy import FaultProxy

from keyturn.providers.vault_pki_cert import (
    CA_CHAIN,
    CERTIFICATE,
    PRIVATE_KEY,
    SERIAL,
    VaultPkiCertProvider,
)
from keyturn.secret import Secret

FAULTS = {
    "permanent": (403, b'{"errors":["permission denied"]}'),
    "transient": (503, b'{"errors":["Vault is sealed"]}'),
}


def setup_pki(client: hvac.Client, mount: str) -> None:
    """A PKI mount with an EC root CA, a code-signing role `signer` and a TLS role `tls`."""
    client.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "87600h"})
    client.write(f"{mount}/root/generate/internal", common_name=f"{mount} root", key_type="ec",
                 ttl="87600h")
    common = {"allow_any_name": True, "enforce_hostnames": False, "key_type": "ec",
              "max_ttl": "24h", "server_flag": False, "client_flag": False}
    client.write(f"{mount}/roles/signer", code_signing_flag=True, **common)
    client.write(f"{mount}/roles/tls", **{**common, "server_flag": True})


def issue(client: hvac.Client, mount: str, common_name: str, role: str = "signer",
          ttl: str = "1h") -> Secret:
    """A certificate issued directly through Vault, in the provider's secret shape."""
    data = client.write(f"{mount}/issue/{role}", common_name=common_name, ttl=ttl)["data"]
    return {
        CERTIFICATE: data["certificate"],
        PRIVATE_KEY: data["private_key"],
        CA_CHAIN: "\n".join(data["ca_chain"]),
        SERIAL: data["serial_number"],
    }


def self_signed(common_name: str) -> Secret:
    """A code-signing certificate and key of the provider's secret shape that no Vault issued."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    serial = cert.serial_number.to_bytes(20, "big").hex(":")
    return {CERTIFICATE: cert_pem, PRIVATE_KEY: key_pem, CA_CHAIN: cert_pem, SERIAL: serial}


class VaultPkiHarness:
    provider_name = "signing.vault_pki_cert"
    quota = None  # PKI has no per-name limit
    public_fields = frozenset({SERIAL})  # the credential id

    def __init__(self, client: hvac.Client, mount: str, proxy: FaultProxy) -> None:
        self._client = client
        self._mount = mount
        self._proxy = proxy

    def provider(self) -> VaultPkiCertProvider:
        return VaultPkiCertProvider(address=self._proxy.url, token=self._client.token)

    def new_subject(self) -> Subject:
        common_name = f"conformance-{uuid.uuid4().hex[:10]}"
        initial = issue(self._client, self._mount, common_name)
        target = {"mount": self._mount, "role": "signer", "common_name": common_name, "ttl": "1h"}
        return Subject(target=target, initial=initial, initial_id=initial[SERIAL])

    def works(self, subject: Subject, secret: Secret) -> bool:
        """Vault holds the certificate unrevoked, it is in validity, chains to an issuer of
        the mount, and the private key is the certificate's."""
        cert = x509.load_pem_x509_certificate(secret[CERTIFICATE].encode())
        record = self._client.read(f"{self._mount}/cert/{secret[SERIAL]}")
        if record is None or record["data"]["revocation_time"]:
            return False
        if x509.load_pem_x509_certificate(record["data"]["certificate"].encode()) != cert:
            return False
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return False
        key = serialization.load_pem_private_key(secret[PRIVATE_KEY].encode(), password=None)
        if key.public_key() != cert.public_key():
            return False
        for issuer_id in self._client.list(f"{self._mount}/issuers")["data"]["keys"]:
            pem = self._client.read(f"{self._mount}/issuer/{issuer_id}/json")["data"]
            try:
                cert.verify_directly_issued_by(x509.load_pem_x509_certificate(
                    pem["certificate"].encode()))
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
        return False

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        raise NotImplementedError("PKI has no quota")

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        status, body = FAULTS[kind]
        return self._proxy.failing(status, body)

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        return self_signed(subject.target["common_name"])

    def supply(self, subject: Subject) -> Secret:
        raise NotImplementedError("Vault issues certificates by API")


@pytest.fixture(scope="session")
def harness_signing_vault_pki_cert(openbao) -> Iterator[VaultPkiHarness]:
    client = hvac.Client(url=openbao.url, token=openbao.root_token)
    mount = f"pki-conformance-{uuid.uuid4().hex[:8]}"
    setup_pki(client, mount)
    proxy = FaultProxy(openbao.url).start()
    try:
        yield VaultPkiHarness(client, mount, proxy)
    finally:
        proxy.stop()
        client.sys.disable_secrets_engine(mount)
