"""Code-signing certificates from a Vault/OpenBao PKI mount: the `signing.vault_pki_cert` provider.

Issues a certificate with the codeSigning extended key usage from a PKI role
(`{mount}/issue/{role}`, the role set up with `code_signing_flag: true`) and
revokes the old one. The credential id is the certificate's serial number as
Vault writes it (`1a:2b:...`); the secret is the certificate, its private key,
the issuing CA chain (PEM, joined) and the serial.

Which certificates are "current": Vault does not record the role a stored
certificate was issued by, so a target's certificates are those on its mount
whose subject CN is the target's `common_name`, that carry the codeSigning EKU,
and that are neither expired nor revoked. Candidates come from OpenBao's
`LIST {mount}/certs/detailed` (CN and expiry without reading every
certificate); on a Vault without that listing every stored serial is read.
Each candidate is then read (`{mount}/cert/{serial}`) for its revocation state.
The role must store its certificates (`no_store: false`, the default).

PKI has no way to suspend a certificate, so `disable` and `enable` are no-ops:
the old certificate stays valid until `delete` revokes it (also under
`strategy: revoke-first`). Revocation is final. An expired certificate is
already dead; Vault refuses to put it on the CRL and `confirm_revoked` accepts
expiry as proof.

Configuration: Vault address from the target's `address`, else the constructor,
else KEYTURN_VAULT_ADDR, else VAULT_ADDR; token from the constructor, else
VAULT_TOKEN; namespace from the target, else the constructor, else
VAULT_NAMESPACE. The environment is read at first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import hvac
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hvac import exceptions as vault
from pydantic import BaseModel, ConfigDict, Field

from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    ProviderDefaults,
    SecretShape,
)
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    ProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.targets import parse_target
from keyturn.secret import Secret
from keyturn.vault_http import retrying_session

ClientFactory = Callable[[str, str, str | None], Any]
"""callable(address, token, namespace) -> hvac.Client."""

CERTIFICATE = "certificate"
PRIVATE_KEY = "private_key"
CA_CHAIN = "ca_chain"
SERIAL = "serial_number"
SECRET_FIELDS = (CERTIFICATE, PRIVATE_KEY, CA_CHAIN, SERIAL)
TEST_MESSAGE = b"keyturn: proof that this key signs and its certificate verifies"

# The one table from hvac exceptions (looked up along the MRO) to provider errors.
ERRORS: dict[type[Exception], type[ProviderError]] = {
    vault.Unauthorized: AccessDenied,
    vault.Forbidden: AccessDenied,
    vault.InvalidPath: CredentialNotFound,
    vault.InvalidRequest: PermanentProviderError,
    vault.ParamValidationError: PermanentProviderError,
    vault.UnsupportedOperation: PermanentProviderError,
    vault.VaultNotInitialized: PermanentProviderError,
    vault.PreconditionFailed: TransientProviderError,  # a standby has not caught up yet
    vault.RateLimitExceeded: TransientProviderError,
    vault.InternalServerError: TransientProviderError,
    vault.BadGateway: TransientProviderError,
    vault.VaultDown: TransientProviderError,  # sealed, or in maintenance
    vault.UnexpectedError: TransientProviderError,  # statuses hvac does not know: 504 and such
    requests.ConnectionError: TransientProviderError,
    requests.Timeout: TransientProviderError,
}


class VaultPkiCertTarget(BaseModel):
    """Which code-signing certificate to rotate: a PKI role and the certificate's common name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mount: str = Field(default="pki", pattern=r"^[\w.-]+(/[\w.-]+)*$")
    role: str = Field(pattern=r"^[\w.-]+$")
    common_name: str = Field(min_length=1, max_length=64)
    ttl: str | None = Field(default=None, pattern=r"^(\d+[smhd]?)+$")
    address: str | None = Field(default=None, pattern=r"^https?://\S+$")
    namespace: str | None = Field(default=None, min_length=1)


def classify(exc: Exception) -> type[ProviderError]:
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return PermanentProviderError


def default_client_factory(address: str, token: str, namespace: str | None) -> Any:
    """An hvac client sending LIST as `GET ?list=true`, which every HTTP proxy passes."""
    return hvac.Client(url=address, token=token, namespace=namespace, timeout=30, strict_http=True,
                       session=retrying_session())  # in-call retries of reads and refused connects


def serial_int(serial: str) -> int:
    """Vault's `1a:2b:...` (or `1a-2b-...`) serial as the integer X.509 carries."""
    digits = serial.replace(":", "").replace("-", "")
    try:
        return int(digits, 16)
    except ValueError:
        raise PermanentProviderError(f"{serial!r} is not a certificate serial number") from None


def is_code_signing(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CODE_SIGNING in usages


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def in_validity(cert: x509.Certificate, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def signs(key: Any, cert: x509.Certificate) -> bool:
    """Sign a test message with `key` and verify it with the certificate's public key."""
    public = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
            sig = key.sign(TEST_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
            public.verify(sig, TEST_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
            public, ec.EllipticCurvePublicKey
        ):
            sig = key.sign(TEST_MESSAGE, ec.ECDSA(hashes.SHA256()))
            public.verify(sig, TEST_MESSAGE, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
            public.verify(key.sign(TEST_MESSAGE), TEST_MESSAGE)
        else:
            return False
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def load_certificate(pem: str) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None


def load_chain(pem: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return []


def load_private_key(pem: str) -> Any:
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return None  # never chain the parser's error: it concerns the secret


class VaultPkiCertProvider(ProviderDefaults):
    """Issues, verifies and revokes code-signing certificates of one PKI role."""

    name: ClassVar[str] = "signing.vault_pki_cert"
    target_model: ClassVar[type[BaseModel]] = VaultPkiCertTarget
    family: ClassVar[str] = "vault"

    def __init__(
        self,
        *,
        address: str | None = None,
        token: str | None = None,
        namespace: str | None = None,
        client_factory: ClientFactory = default_client_factory,
    ) -> None:
        self._address = address
        self._token = token
        self._namespace = namespace
        self._client_factory = client_factory
        self._clients: dict[tuple[str, str | None], Any] = {}

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        return SecretShape(fields=SECRET_FIELDS)

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        current = self._current_serials(t)
        if not current:
            raise CredentialNotFound(
                f"{_where(t)} has no unexpired, unrevoked code-signing certificate; "
                "nothing to rotate"
            )
        return Precheck(old_credential_ids=current)

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        return self._current_serials(_target(target))

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        body = {"common_name": t.common_name, "format": "pem"}
        if t.ttl:
            body["ttl"] = t.ttl
        data = self._call(t, "IssueCertificate", "post", f"issue/{t.role}", json=body)["data"]
        serial = str(data[SERIAL])
        cert = load_certificate(data[CERTIFICATE])
        if cert is None or not is_code_signing(cert):
            self.delete(t, serial)
            raise PermanentProviderError(
                f"IssueCertificate for {_where(t)}: role {t.role!r} issued certificate {serial} "
                "without the codeSigning extended key usage (revoked it); set "
                "code_signing_flag=true on the role"
            )
        secret = {
            CERTIFICATE: data[CERTIFICATE],
            PRIVATE_KEY: data[PRIVATE_KEY],
            CA_CHAIN: "\n".join(data.get("ca_chain") or [data["issuing_ca"]]),
            SERIAL: serial,
        }
        return NewCredential(credential_id=serial, secret=secret)

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        serial, cert = _certificate(secret, t)
        fail = f"verify: certificate {serial} of {_where(t)}"
        if cert.serial_number != serial_int(serial):
            raise VerificationFailed(f"{fail}: the certificate's serial is not {serial}")
        record = self._read_cert(t, serial)
        if record is None or load_certificate(record[CERTIFICATE]) != cert:
            raise VerificationFailed(f"{fail}: this mount did not issue it")
        if record.get("revocation_time"):
            raise VerificationFailed(f"{fail}: revoked")
        if common_name(cert) != t.common_name:
            raise VerificationFailed(f"{fail}: its CN is {common_name(cert)!r}")
        if not is_code_signing(cert):
            raise VerificationFailed(f"{fail}: no codeSigning extended key usage")
        if not in_validity(cert):
            raise VerificationFailed(
                f"{fail}: outside its validity ({cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} "
                f"to {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ})"
            )
        found = self._issuer_of(t, cert)
        if found is None:
            raise VerificationFailed(f"{fail}: no issuer of this mount signed it")
        if found[1] not in load_chain(secret.get(CA_CHAIN, "")):
            raise VerificationFailed(f"{fail}: its ca_chain lacks the issuing CA")
        key = load_private_key(secret.get(PRIVATE_KEY, ""))
        if key is None:
            raise VerificationFailed(f"{fail}: private_key is not an unencrypted PEM key")
        if not signs(key, cert):
            raise VerificationFailed(
                f"{fail}: the private key does not match the certificate (test signature failed)"
            )

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op: a certificate cannot be suspended; `delete` revokes it."""
        _target(target)

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op, as `disable` is."""
        _target(target)

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """Revoke the certificate; already revoked, expired or tidied away is fine."""
        t = _target(target)
        serial_int(credential_id)
        try:
            self._client(t).adapter.post(
                f"/v1/{t.mount}/revoke", json={"serial_number": credential_id}
            )
        except vault.InvalidRequest as exc:
            if any("not found" in e for e in exc.errors or []):
                return  # no longer stored: expired and tidied away, long dead
            raise _error(exc, f"RevokeCertificate {credential_id}", t) from exc
        except (vault.VaultError, requests.RequestException) as exc:
            raise _error(exc, f"RevokeCertificate {credential_id}", t) from exc

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        serial = serial_int(credential_id)
        where = f"certificate {credential_id} of {_where(t)}"
        cert = None
        if ctx.old_secret is not None:
            old_serial, cert = _certificate(ctx.old_secret, t, PermanentProviderError)
            if serial_int(old_serial) != serial or cert.serial_number != serial:
                raise PermanentProviderError(
                    f"confirm_revoked: the old secret given for {_where(t)} is not "
                    f"certificate {credential_id}"
                )
        record = self._read_cert(t, credential_id)
        if record is not None:
            cert = load_certificate(record[CERTIFICATE])
        if cert is None:
            return  # neither stored nor known: expired and tidied away
        if not in_validity(cert):
            return  # expired: rejected by every verifier, CRL or not
        if record is not None and not record.get("revocation_time"):
            raise StillValid(f"{where} is not revoked (revocation_time 0)")
        if not self._on_crl(t, cert):
            raise StillValid(f"{where} is not on its issuer's CRL, even after a CRL rebuild")

    # -- Vault calls ------------------------------------------------------------

    def _client(self, t: VaultPkiCertTarget) -> Any:
        address = (
            t.address
            or self._address
            or os.environ.get("KEYTURN_VAULT_ADDR")
            or os.environ.get("VAULT_ADDR")
        )
        if not address:
            raise PermanentProviderError(
                f"{_where(t)}: no Vault address; set `address` in the target, "
                "KEYTURN_VAULT_ADDR or VAULT_ADDR"
            )
        namespace = t.namespace or self._namespace or os.environ.get("VAULT_NAMESPACE") or None
        key = (address, namespace)
        if key not in self._clients:
            token = self._token or os.environ.get("VAULT_TOKEN")
            if not token:
                raise PermanentProviderError(f"{_where(t)}: no Vault token; set VAULT_TOKEN")
            self._clients[key] = self._client_factory(address, token, namespace)
        return self._clients[key]

    def _call(self, t: VaultPkiCertTarget, operation: str, method: str, path: str,
              **kwargs: Any) -> Any:
        """`method` on `{mount}/{path}`; every failure becomes a classified provider error."""
        try:
            return getattr(self._client(t).adapter, method)(f"/v1/{t.mount}/{path}", **kwargs)
        except (vault.VaultError, requests.RequestException) as exc:
            raise _error(exc, operation, t) from exc

    def _read_cert(self, t: VaultPkiCertTarget, serial: str) -> dict[str, Any] | None:
        """Vault's record of a stored certificate, or None if the mount has no such serial."""
        try:
            return self._call(t, f"ReadCertificate {serial}", "get", f"cert/{serial}")["data"]
        except CredentialNotFound as exc:
            if isinstance(exc.__cause__, vault.InvalidPath) and not exc.__cause__.errors:
                return None  # a bare 404: no such certificate (the mount itself answered)
            raise

    def _candidate_serials(self, t: VaultPkiCertTarget) -> list[str]:
        """Serials that may be current: OpenBao's detailed listing, else every stored serial."""
        try:
            listing = self._call(t, "ListCertificates", "list", "certs/detailed")["data"]
        except CredentialNotFound as exc:
            errors = getattr(exc.__cause__, "errors", None)
            if not errors:
                return []  # a bare 404: the mount holds no certificates
            if "unsupported path" not in " ".join(errors):
                raise  # the mount itself is missing
            # Vault without the detailed listing: every serial is a candidate.
            try:
                return list(self._call(t, "ListCertificates", "list", "certs")["data"]["keys"])
            except CredentialNotFound:
                return []
        now = datetime.now(UTC)
        return [
            serial
            for serial, info in (listing.get("key_info") or {}).items()
            if info.get("common_name") == t.common_name
            and datetime.fromisoformat(info["not_after"]) > now
        ]

    def _current_serials(self, t: VaultPkiCertTarget) -> list[str]:
        current = []
        for serial in self._candidate_serials(t):
            record = self._read_cert(t, serial)
            if record is None or record.get("revocation_time"):
                continue
            cert = load_certificate(record[CERTIFICATE])
            if (
                cert is not None
                and common_name(cert) == t.common_name
                and is_code_signing(cert)
                and in_validity(cert)
            ):
                current.append(serial)
        return current

    def _issuer_of(
        self, t: VaultPkiCertTarget, cert: x509.Certificate
    ) -> tuple[str, x509.Certificate] | None:
        """The id and certificate of the mount's issuer that directly signed `cert`, if any."""
        try:
            ids = self._call(t, "ListIssuers", "list", "issuers")["data"]["keys"]
        except CredentialNotFound:
            return None
        for issuer_id in ids:
            data = self._call(t, f"ReadIssuer {issuer_id}", "get", f"issuer/{issuer_id}/json")
            issuer = load_certificate(data["data"]["certificate"])
            if issuer is not None and issued_by(cert, issuer):
                return issuer_id, issuer
        return None

    def _on_crl(self, t: VaultPkiCertTarget, cert: x509.Certificate) -> bool:
        """Is `cert` on its issuer's CRL? Rebuilds the CRLs once if it is not (yet)."""
        found = self._issuer_of(t, cert)
        if found is None:
            return False
        issuer_id, issuer = found
        for attempt in range(2):
            if attempt:
                self._call(t, "RotateCRL", "get", "crl/rotate")
            der = self._call(t, f"ReadCRL {issuer_id}", "get", f"issuer/{issuer_id}/crl/der")
            crl = x509.load_der_x509_crl(der.content)
            if not crl.is_signature_valid(issuer.public_key()):
                raise PermanentProviderError(
                    f"ReadCRL {issuer_id} for {_where(t)}: the CRL's signature does not verify"
                )
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                return True
        return False

def _where(t: VaultPkiCertTarget) -> str:
    return f"PKI mount {t.mount!r} role {t.role!r} CN {t.common_name!r}"


def _error(exc: Exception, operation: str, t: VaultPkiCertTarget) -> ProviderError:
    """Classify `exc`; the message carries Vault's error list, never a response body."""
    if isinstance(exc, vault.VaultError):
        detail = ", ".join(exc.errors or []) or "no error message"
    else:
        detail = str(exc)
    return classify(exc)(f"{operation} for {_where(t)} failed: {type(exc).__name__}: {detail}")


def _target(target: Any) -> VaultPkiCertTarget:
    return parse_target(VaultPkiCertTarget, "signing.vault_pki_cert", target)


def _certificate(
    secret: Secret, t: VaultPkiCertTarget, error: type[ProviderError] = VerificationFailed
) -> tuple[str, x509.Certificate]:
    """The secret's serial and parsed certificate; a malformed secret raises `error`."""
    missing = [f for f in SECRET_FIELDS if not secret.get(f)]
    if missing:
        raise error(f"secret for {_where(t)} lacks field(s) {', '.join(missing)}")
    cert = load_certificate(secret[CERTIFICATE])
    if cert is None:
        raise error(f"secret for {_where(t)}: `certificate` is not a PEM certificate")
    return secret[SERIAL], cert
