"""The signing.vault_pki_cert provider against a real OpenBao dev server's PKI engine.

Each test module run gets its own PKI mount (a root CA and a role with
code_signing_flag); every test uses its own common name. Faults come from the
fault proxy in front of OpenBao and from a token whose policy only lists.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import hvac
import pytest
from conformance.harness_vault_pki import issue as issue_directly
from conformance.harness_vault_pki import self_signed, setup_pki
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from fakes.fault_proxy import FaultProxy
from hvac import exceptions as vault

from keyturn.providers.base import Provider, ProviderContext
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.vault_pki_cert import (
    CA_CHAIN,
    CERTIFICATE,
    PRIVATE_KEY,
    SERIAL,
    VaultPkiCertProvider,
    serial_int,
)

pytestmark = pytest.mark.integration


def wait_until_expired(secret: dict[str, str], timeout: float = 10.0) -> None:
    """Wait until the clock is past the certificate's notAfter (issued with a 1 s TTL)."""
    cert = x509.load_pem_x509_certificate(secret[CERTIFICATE].encode())
    deadline = time.monotonic() + timeout
    while datetime.now(UTC) <= cert.not_valid_after_utc:
        assert time.monotonic() < deadline, f"still valid after {timeout}s: {cert.not_valid_after_utc}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def admin(openbao) -> hvac.Client:
    return hvac.Client(url=openbao.url, token=openbao.root_token)


@pytest.fixture(scope="module")
def mount(admin) -> str:
    name = f"pki-test-{uuid.uuid4().hex[:8]}"
    setup_pki(admin, name)
    yield name
    admin.sys.disable_secrets_engine(name)


@pytest.fixture(scope="module")
def proxy(openbao):
    proxy = FaultProxy(openbao.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def provider(openbao) -> VaultPkiCertProvider:
    return VaultPkiCertProvider(address=openbao.url, token=openbao.root_token)


@pytest.fixture
def target(mount) -> dict[str, str]:
    return {"mount": mount, "role": "signer", "common_name": f"signer-{uuid.uuid4().hex[:8]}",
            "ttl": "1h"}


@pytest.fixture
def issue(admin, secrets_seen):
    """Issue a certificate directly (not through the provider), in the provider's secret shape."""

    def make(target: dict[str, str], role: str = "signer", ttl: str = "1h") -> dict[str, str]:
        secret = issue_directly(admin, target["mount"], target["common_name"], role, ttl)
        secrets_seen.append(secret[PRIVATE_KEY])
        return secret

    return make


def revocation_time(admin: hvac.Client, mount: str, serial: str) -> int:
    return admin.read(f"{mount}/cert/{serial}")["data"]["revocation_time"]


def on_crl(admin: hvac.Client, mount: str, serial: str) -> bool:
    crl = x509.load_der_x509_crl(admin.adapter.get(f"/v1/{mount}/crl").content)
    return crl.get_revoked_certificate_by_serial_number(serial_int(serial)) is not None


def test_provider_satisfies_the_protocol(provider):
    assert isinstance(provider, Provider)
    assert provider.name == "signing.vault_pki_cert" and provider.family == "vault"


def test_full_rotation_revokes_the_old_certificate(
    provider, target, issue, admin, secrets_seen, raises
):
    mount = target["mount"]
    old = issue(target)

    assert provider.precheck(target).old_credential_ids == [old[SERIAL]]

    new = provider.create(target)
    secrets_seen.append(new.secret[PRIVATE_KEY])
    assert new.credential_id == new.secret[SERIAL] != old[SERIAL]
    assert new.generated_by is None  # Vault generated the key pair
    assert set(new.secret) == {CERTIFICATE, PRIVATE_KEY, CA_CHAIN, SERIAL}
    cert = x509.load_pem_x509_certificate(new.secret[CERTIFICATE].encode())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert sorted(provider.list_credential_ids(target)) == sorted([old[SERIAL], new.credential_id])

    provider.verify(target, new.secret)
    provider.verify(target, old)

    provider.disable(target, old[SERIAL])  # no-op: PKI cannot suspend a certificate
    assert revocation_time(admin, mount, old[SERIAL]) == 0
    raises(StillValid, provider.confirm_revoked, target, old[SERIAL],
           ProviderContext(old_secret=old), match="not revoked")

    provider.delete(target, old[SERIAL])
    provider.delete(target, old[SERIAL])  # already revoked: fine
    assert revocation_time(admin, mount, old[SERIAL]) > 0
    assert on_crl(admin, mount, old[SERIAL])
    provider.confirm_revoked(target, old[SERIAL], ProviderContext(old_secret=old))
    provider.confirm_revoked(target, old[SERIAL])

    assert provider.list_credential_ids(target) == [new.credential_id]
    raises(VerificationFailed, provider.verify, target, old, match="revoked")
    assert revocation_time(admin, mount, new.credential_id) == 0


def test_confirm_revoked_rebuilds_a_lazily_built_crl(openbao, admin, issue):
    mount = f"pki-lazy-{uuid.uuid4().hex[:8]}"
    setup_pki(admin, mount)
    try:
        admin.write(f"{mount}/config/crl", auto_rebuild=True)  # revocations wait for a rebuild
        target = {"mount": mount, "role": "signer", "common_name": "lazy"}
        provider = VaultPkiCertProvider(address=openbao.url, token=openbao.root_token)
        old = issue(target)
        provider.delete(target, old[SERIAL])
        assert not on_crl(admin, mount, old[SERIAL])
        provider.confirm_revoked(target, old[SERIAL], ProviderContext(old_secret=old))
        assert on_crl(admin, mount, old[SERIAL])
    finally:
        admin.sys.disable_secrets_engine(mount)


def test_only_unexpired_unrevoked_code_signing_certs_of_the_cn_are_current(
    provider, target, issue, admin
):
    current = issue(target)
    revoked = issue(target)
    admin.write(f"{target['mount']}/revoke", serial_number=revoked[SERIAL])
    issue(target, role="tls")  # same CN, no codeSigning EKU
    issue({**target, "common_name": "someone-else"})
    expired = issue(target, ttl="1s")
    wait_until_expired(expired)
    assert provider.list_credential_ids(target) == [current[SERIAL]]
    assert provider.precheck(target).old_credential_ids == [current[SERIAL]]
    # An expired certificate is dead: Vault will not list it on the CRL, and need not.
    provider.delete(target, expired[SERIAL])
    provider.confirm_revoked(target, expired[SERIAL], ProviderContext(old_secret=expired))


def test_vault_without_the_detailed_listing_reads_every_certificate(openbao, target, issue):
    """HashiCorp Vault has no LIST certs/detailed: the provider falls back to reading serials."""

    class NoDetailedListing(hvac.adapters.JSONAdapter):
        def list(self, url, **kwargs):
            if url.endswith("/certs/detailed"):
                raise vault.InvalidPath(errors=["1 error occurred:\n\t* unsupported path\n\n"])
            return super().list(url, **kwargs)

    def factory(address, token, namespace):
        return hvac.Client(url=address, token=token, adapter=NoDetailedListing,
                           strict_http=True)

    provider = VaultPkiCertProvider(address=openbao.url, token=openbao.root_token,
                                    client_factory=factory)
    old = issue(target)
    issue({**target, "common_name": "someone-else"})
    assert provider.list_credential_ids(target) == [old[SERIAL]]


def test_precheck_without_a_current_certificate_is_credential_not_found(
    provider, target, raises
):
    err = raises(CredentialNotFound, provider.precheck, target, match="nothing to rotate")
    assert target["common_name"] in str(err)


def test_missing_mount_is_credential_not_found(provider, target, raises):
    ghost = {**target, "mount": f"no-such-{uuid.uuid4().hex[:6]}"}
    err = raises(CredentialNotFound, provider.list_credential_ids, ghost, match="ListCertificates")
    assert ghost["mount"] in str(err) and not err.retryable


def test_unknown_role_is_permanent(provider, target, raises):
    err = raises(PermanentProviderError, provider.create, {**target, "role": "nope"},
                 match="unknown role")
    assert "IssueCertificate" in str(err) and not err.retryable


def test_create_refuses_a_role_without_code_signing_and_revokes_what_it_issued(
    provider, target, admin, raises
):
    tls = {**target, "role": "tls"}
    raises(PermanentProviderError, provider.create, tls, match="code_signing_flag")
    stored = admin.list(f"{target['mount']}/certs/detailed")["data"]["key_info"]
    issued = [s for s, info in stored.items() if info["common_name"] == target["common_name"]]
    assert len(issued) == 1 and revocation_time(admin, target["mount"], issued[0]) > 0


def test_verify_rejects_a_foreign_key(provider, target, issue, secrets_seen, raises):
    real = issue(target)
    other_key = self_signed(target["common_name"])[PRIVATE_KEY]
    secrets_seen.append(other_key)
    raises(VerificationFailed, provider.verify, target, {**real, PRIVATE_KEY: other_key},
           match="does not match")


def test_verify_rejects_a_certificate_vault_did_not_issue(
    provider, target, secrets_seen, raises
):
    forged = self_signed(target["common_name"])
    secrets_seen.append(forged[PRIVATE_KEY])
    raises(VerificationFailed, provider.verify, target, forged, match="did not issue")


def test_verify_rejects_a_wrong_serial_or_chain(provider, target, issue, raises):
    real = issue(target)
    other = issue(target)
    raises(VerificationFailed, provider.verify, target, {**real, SERIAL: other[SERIAL]},
           match="serial")
    foreign_ca = self_signed("some other CA")[CERTIFICATE]
    raises(VerificationFailed, provider.verify, target, {**real, CA_CHAIN: foreign_ca},
           match="ca_chain")


def test_verify_rejects_a_certificate_without_code_signing(provider, target, issue, raises):
    tls = issue(target, role="tls")
    raises(VerificationFailed, provider.verify, target, tls, match="codeSigning")


def test_verify_rejects_an_expired_certificate(provider, target, issue, raises):
    short = issue(target, ttl="1s")
    wait_until_expired(short)
    raises(VerificationFailed, provider.verify, target, short, match="outside its validity")


def test_verify_rejects_a_malformed_secret(provider, target, issue, raises):
    real = issue(target)
    raises(VerificationFailed, provider.verify, target, {SERIAL: real[SERIAL]}, match="lacks")
    raises(VerificationFailed, provider.verify, target, {**real, PRIVATE_KEY: "garbage"},
           match="private_key is not")


def test_confirm_revoked_refuses_a_secret_of_another_certificate(
    provider, target, issue, raises
):
    old, other = issue(target), issue(target)
    provider.delete(target, old[SERIAL])
    err = raises(PermanentProviderError, provider.confirm_revoked, target, old[SERIAL],
                 ProviderContext(old_secret=other))
    assert not isinstance(err, StillValid)


def test_delete_of_an_unknown_serial_is_fine(provider, target):
    provider.delete(target, "01:02:03:04")


def test_a_malformed_serial_is_permanent(provider, target, raises):
    raises(PermanentProviderError, provider.delete, target, "not a serial", match="serial")


def test_target_is_validated(provider, target, raises):
    raises(PermanentProviderError, provider.precheck, {**target, "mount": "../sys"},
           match="mount")
    raises(PermanentProviderError, provider.precheck, {**target, "token": "x"}, match="token")


def test_token_without_permission_is_access_denied(openbao, admin, target, issue, raises):
    admin.sys.create_or_update_policy(
        "pki-list-only", f'path "{target["mount"]}/certs/*" {{ capabilities = ["list"] }}'
    )
    token = admin.auth.token.create(policies=["pki-list-only"], ttl="5m")["auth"]["client_token"]
    provider = VaultPkiCertProvider(address=openbao.url, token=token)
    old = issue(target)
    err = raises(AccessDenied, provider.create, target, match="IssueCertificate")
    assert "permission denied" in str(err) and not err.retryable
    raises(AccessDenied, provider.delete, target, old[SERIAL], match="RevokeCertificate")
    assert provider.list_credential_ids(target) == [old[SERIAL]]  # cert/<serial> is public
    nothing = admin.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    provider = VaultPkiCertProvider(address=openbao.url, token=nothing)
    raises(AccessDenied, provider.list_credential_ids, target, match="ListCertificates")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (403, b'{"errors":["permission denied"]}', AccessDenied),
        (503, b'{"errors":["Vault is sealed"]}', TransientProviderError),
        (500, b'{"errors":["internal error"]}', TransientProviderError),
        (429, b'{"errors":["rate limit quota exceeded"]}', TransientProviderError),
        (400, b'{"errors":["bad request"]}', PermanentProviderError),
    ],
)
def test_errors_are_classified(proxy, openbao, target, issue, status, body, expected, raises):
    provider = VaultPkiCertProvider(address=proxy.url, token=openbao.root_token)
    old = issue(target)
    with proxy.failing(status, body):
        for call, args in [
            (provider.precheck, (target,)),
            (provider.create, (target,)),
            (provider.verify, (target, old)),
            (provider.delete, (target, old[SERIAL])),
            (provider.confirm_revoked, (target, old[SERIAL])),
        ]:
            err = raises(expected, call, *args)
            assert err.retryable == (expected is TransientProviderError)
            assert target["common_name"] in str(err)


def test_unreachable_vault_is_transient(target, issue, raises):
    provider = VaultPkiCertProvider(address="http://127.0.0.1:9", token="t")
    err = raises(TransientProviderError, provider.precheck, target, match="ListCertificates")
    assert err.retryable


def test_address_and_token_come_from_the_environment(openbao, target, issue, monkeypatch,
                                                     raises):
    old = issue(target)
    monkeypatch.delenv("KEYTURN_VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("VAULT_ADDR", openbao.url)
    raises(PermanentProviderError, VaultPkiCertProvider().precheck, target, match="VAULT_TOKEN")
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    assert VaultPkiCertProvider().list_credential_ids(target) == [old[SERIAL]]
    monkeypatch.setenv("KEYTURN_VAULT_ADDR", "http://127.0.0.1:9")  # wins over VAULT_ADDR
    raises(TransientProviderError, VaultPkiCertProvider().precheck, target)
    # The target's address wins over both.
    ok = {**target, "address": openbao.url}
    assert VaultPkiCertProvider().list_credential_ids(ok) == [old[SERIAL]]
