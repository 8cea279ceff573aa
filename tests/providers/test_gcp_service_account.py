"""The gcp.service_account_key provider against the local GCP IAM fake (tests/fakes/gcp_iam.py).

The fake speaks the real IAM gRPC protocol (driven here through google-cloud-iam)
and the OAuth2 token endpoint google-auth posts a key's signed JWT to, so a key
"works" exactly when the fake's token endpoint grants a token for it.
"""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fakes.gcp_iam import FakeGcpIam, forged, token_granted
from google.cloud.iam_admin_v1 import IAMClient, types
from google.cloud.iam_admin_v1.services.iam.transports import IAMGrpcTransport

from keyturn.providers.base import Provider, ProviderContext
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    QuotaExceeded,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.gcp_service_account import (
    ENDPOINT_ENV,
    KEY_JSON,
    GcpServiceAccountKeyProvider,
    GcpServiceAccountTarget,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fake():
    with FakeGcpIam() as server:
        yield server


@pytest.fixture(scope="module")
def iam(fake) -> IAMClient:
    """A client of the fake that bypasses the provider, to read the server's state."""
    return IAMClient(transport=IAMGrpcTransport(channel=grpc.insecure_channel(fake.address)))


@pytest.fixture
def provider(fake) -> GcpServiceAccountKeyProvider:
    return GcpServiceAccountKeyProvider(
        endpoint=fake.address, propagation_attempts=2, propagation_delay=0, timeout=5
    )


@pytest.fixture
def account(fake):
    email = f"kt-{uuid.uuid4().hex[:12]}@keyturn-test.iam.gserviceaccount.com"
    fake.add_service_account(email)
    yield email
    fake.remove_service_account(email)


@pytest.fixture
def target(account) -> dict[str, str]:
    return {"service_account": account}


@pytest.fixture
def make_key(fake, account, secrets_seen):
    """A new user-managed key, made at the fake directly; returns it as the provider's secret."""

    def make(disabled: bool = False, email: str | None = None) -> dict[str, str]:
        secret = {KEY_JSON: fake.create_key(email or account, disabled=disabled)}
        secrets_seen.extend([secret[KEY_JSON], key_file(secret)["private_key"]])
        return secret

    return make


def key_file(secret: dict[str, str]) -> dict[str, str]:
    return json.loads(secret[KEY_JSON])


def kid(secret: dict[str, str]) -> str:
    return key_file(secret)["private_key_id"]


def accepts(secret: dict[str, str]) -> bool:
    """Does the token endpoint grant a token for this key file? Asked without the provider."""
    return token_granted(secret[KEY_JSON])


def broken(secret: dict[str, str]) -> dict[str, str]:
    """The same key file with another RSA key in it: its signatures do not verify."""
    return {KEY_JSON: forged(secret[KEY_JSON])}


def test_provider_satisfies_the_protocol(provider):
    assert isinstance(provider, Provider)
    assert (provider.name, provider.family) == ("gcp.service_account_key", "gcp")
    assert provider.target_model is GcpServiceAccountTarget


def test_full_rotation_leaves_only_the_new_enabled_key(
    provider, fake, iam, account, target, make_key, secrets_seen, raises
):
    old = make_key()
    old_id = kid(old)

    check = provider.precheck(target)
    assert check.old_credential_ids == [old_id]
    assert check.removed_inactive == []

    new = provider.create(target)
    new_file = key_file(new.secret)
    secrets_seen.extend([new.secret[KEY_JSON], new_file["private_key"]])
    assert list(new.secret) == [KEY_JSON]
    assert new.credential_id == new_file["private_key_id"] != old_id
    assert new.generated_by is None
    assert new_file["type"] == "service_account"
    assert new_file["client_email"] == account
    assert new_file["project_id"] == "keyturn-test"
    assert new_file["token_uri"] == fake.token_url
    assert sorted(provider.list_credential_ids(target)) == sorted([old_id, new.credential_id])

    provider.verify(target, new.secret)
    assert fake.granted[-1] == new.credential_id

    provider.disable(target, old_id)
    assert fake.key_states(account)[old_id] is True
    assert not accepts(old)
    raises(
        StillValid,
        provider.confirm_revoked,
        target,
        old_id,
        ProviderContext(old_secret=old),
        match="disabled",
    )

    provider.delete(target, old_id)
    provider.delete(target, old_id)  # already gone: fine
    provider.confirm_revoked(target, old_id, ProviderContext(old_secret=old))

    assert fake.key_states(account) == {new.credential_id: False}
    assert accepts(new.secret)
    # Google kept the public half of the key file it handed out, and nothing more.
    stored = iam.get_service_account_key(
        request={
            "name": f"projects/-/serviceAccounts/{account}/keys/{new.credential_id}",
            "public_key_type": types.ServiceAccountPublicKeyType.TYPE_X509_PEM_FILE,
        }
    )
    private = serialization.load_pem_private_key(new_file["private_key"].encode(), None)
    public = x509.load_pem_x509_certificate(stored.public_key_data).public_key()
    assert public.public_numbers() == private.public_key().public_numbers()
    assert not stored.private_key_data


def test_enable_undoes_disable(provider, fake, account, target, make_key):
    old = make_key()
    provider.disable(target, kid(old))
    provider.enable(target, kid(old))
    assert fake.key_states(account) == {kid(old): False}
    assert accepts(old)


def test_system_managed_keys_are_not_credentials(provider, iam, account, target, make_key):
    old = make_key()
    every_key = iam.list_service_account_keys(name=f"projects/-/serviceAccounts/{account}").keys
    assert len(every_key) == 2  # the fake gives each account one system-managed key
    assert provider.list_credential_ids(target) == [kid(old)]
    assert provider.precheck(target).old_credential_ids == [kid(old)]


def test_project_defaults_from_the_email_and_may_be_given():
    email = "ci@acme-prod.iam.gserviceaccount.com"
    assert GcpServiceAccountTarget(service_account=email).resource == (
        f"projects/acme-prod/serviceAccounts/{email}"
    )
    assert GcpServiceAccountTarget(service_account=email, project="other").resource == (
        f"projects/other/serviceAccounts/{email}"
    )
    compute = "123-compute@developer.gserviceaccount.com"
    assert GcpServiceAccountTarget(service_account=compute).resource == (
        f"projects/-/serviceAccounts/{compute}"
    )


def test_explicit_project_reaches_the_service(provider, account, make_key):
    old = make_key()
    right = {"service_account": account, "project": "keyturn-test"}
    assert provider.list_credential_ids(right) == [kid(old)]
    wrong = {"service_account": account, "project": "elsewhere"}
    with pytest.raises(CredentialNotFound, match="elsewhere"):
        provider.list_credential_ids(wrong)


@pytest.mark.parametrize(
    "bad", [{}, {"service_account": "no-at-sign"}, {"service_account": "a@b", "extra": 1}]
)
def test_invalid_target_is_permanent(provider, bad, raises):
    raises(PermanentProviderError, provider.precheck, bad, match="invalid gcp.service_account_key")


def test_precheck_deletes_a_disabled_key_at_quota_and_reports_it(
    provider, fake, account, target, make_key
):
    old = make_key()
    spares = [kid(make_key(disabled=True)) for _ in range(9)]
    check = provider.precheck(target)
    assert check.old_credential_ids == [kid(old)]
    assert len(check.removed_inactive) == 1 and check.removed_inactive[0] in spares
    assert check.removed_inactive[0] not in fake.key_states(account)
    assert len(fake.key_states(account)) == 9
    provider.create(target)  # there is room again


def test_precheck_refuses_ten_enabled_keys(provider, fake, account, target, make_key, raises):
    ids = [kid(make_key()) for _ in range(10)]
    err = raises(QuotaExceeded, provider.precheck, target)
    assert f"service account {account!r} already has 10 enabled user-managed keys" in str(err)
    assert all(key_id in str(err) for key_id in ids)
    assert not err.retryable
    assert len(fake.key_states(account)) == 10


def test_create_beyond_the_quota_is_quota_exceeded(provider, account, target, make_key, raises):
    for _ in range(10):
        make_key(disabled=True)
    err = raises(QuotaExceeded, provider.create, target, match="CreateServiceAccountKey")
    assert "FAILED_PRECONDITION" in str(err) and account in str(err)


def test_account_without_keys_has_nothing_to_rotate(provider, account, target, raises):
    err = raises(CredentialNotFound, provider.precheck, target)
    assert account in str(err) and "no enabled user-managed key" in str(err)


def test_account_with_only_disabled_keys_has_nothing_to_rotate(provider, target, make_key, raises):
    spare = make_key(disabled=True)
    err = raises(CredentialNotFound, provider.precheck, target)
    assert kid(spare) in str(err)


@pytest.mark.parametrize("method", ["precheck", "list_credential_ids", "create"])
def test_unknown_account_is_credential_not_found(provider, method, raises):
    ghost = f"kt-ghost-{uuid.uuid4().hex[:8]}@keyturn-test.iam.gserviceaccount.com"
    err = raises(CredentialNotFound, getattr(provider, method), {"service_account": ghost})
    assert ghost in str(err) and "ServiceAccountKey" in str(err)
    assert not err.retryable


def test_disable_and_enable_of_unknown_key_are_credential_not_found(
    provider, target, make_key, raises
):
    make_key()
    ghost = "0" * 40
    raises(
        CredentialNotFound,
        provider.disable,
        target,
        ghost,
        match=f"DisableServiceAccountKey {ghost}",
    )
    raises(
        CredentialNotFound, provider.enable, target, ghost, match=f"EnableServiceAccountKey {ghost}"
    )


def test_delete_of_a_gone_key_or_account_is_fine(provider, target):
    provider.delete(target, "0" * 40)
    gone = f"kt-gone-{uuid.uuid4().hex[:8]}@keyturn-test.iam.gserviceaccount.com"
    provider.delete({"service_account": gone}, "0" * 40)


def test_a_credential_id_that_is_not_a_key_id_is_refused(provider, target, raises):
    raises(PermanentProviderError, provider.delete, target, "../other", match="not a key id")


def test_verify_rejects_a_key_file_with_the_wrong_private_key(
    provider, target, make_key, secrets_seen, raises
):
    real = make_key()
    bogus = broken(real)
    secrets_seen.extend([bogus[KEY_JSON], key_file(bogus)["private_key"]])
    err = raises(VerificationFailed, provider.verify, target, bogus)
    assert kid(real) in str(err) and "Invalid JWT Signature" in str(err)


def test_verify_rejects_a_disabled_key(provider, target, make_key, raises):
    disabled = make_key(disabled=True)
    raises(VerificationFailed, provider.verify, target, disabled, match="on all 2 attempts")


def test_verify_rejects_a_key_of_another_account(provider, fake, target, make_key, raises):
    other = f"kt-other-{uuid.uuid4().hex[:8]}@keyturn-test.iam.gserviceaccount.com"
    fake.add_service_account(other)
    try:
        foreign = make_key(email=other)
        raises(VerificationFailed, provider.verify, target, foreign, match=other)
    finally:
        fake.remove_service_account(other)


def test_verify_needs_a_service_account_key_file(provider, target, make_key, raises):
    key = make_key()
    fields = key_file(key)
    without_key = {KEY_JSON: json.dumps({k: v for k, v in fields.items() if k != "private_key"})}
    raises(PermanentProviderError, provider.verify, target, without_key, match="private_key")
    raises(PermanentProviderError, provider.verify, target, {}, match=KEY_JSON)
    raises(PermanentProviderError, provider.verify, target, {KEY_JSON: "{"}, match=KEY_JSON)
    user_creds = {KEY_JSON: json.dumps({**fields, "type": "authorized_user"})}
    raises(PermanentProviderError, provider.verify, target, user_creds, match="authorized_user")
    garbled_pem = "-----BEGIN PRIVATE KEY-----\nnot a key\n"
    garbled = {KEY_JSON: json.dumps({**fields, "private_key": garbled_pem})}
    err = raises(PermanentProviderError, provider.verify, target, garbled, match="cannot load")
    assert not isinstance(err, VerificationFailed)


def test_confirm_revoked_fails_while_the_old_key_exists(provider, target, make_key, raises):
    old = make_key()
    old_id = kid(old)
    with_secret = ProviderContext(old_secret=old)
    raises(StillValid, provider.confirm_revoked, target, old_id, with_secret, match="enabled")
    raises(StillValid, provider.confirm_revoked, target, old_id, match="still exists")


def test_confirm_revoked_refuses_while_the_old_key_file_still_works(
    provider, target, make_key, raises
):
    # Two keys were in use; the store holds the second one, which is still enabled.
    first, second = make_key(), make_key()
    provider.delete(target, kid(first))
    ctx = ProviderContext(old_secret=second)
    err = raises(StillValid, provider.confirm_revoked, target, kid(first), ctx)
    assert kid(second) in str(err) and "still accepted" in str(err)


def test_confirm_revoked_without_secret_checks_the_listing_only(provider, target, make_key):
    old = make_key()
    provider.delete(target, kid(old))
    provider.confirm_revoked(target, kid(old))


def test_confirm_revoked_accepts_a_deleted_account(provider, fake, target, account, make_key):
    old = make_key()
    fake.remove_service_account(account)
    provider.confirm_revoked(target, kid(old), ProviderContext(old_secret=old))


def test_confirm_revoked_refuses_an_old_secret_of_another_account(
    provider, fake, target, make_key, raises
):
    other = f"kt-other-{uuid.uuid4().hex[:8]}@keyturn-test.iam.gserviceaccount.com"
    fake.add_service_account(other)
    foreign = make_key(email=other)
    fake.remove_service_account(other)
    ctx = ProviderContext(old_secret=foreign)
    err = raises(PermanentProviderError, provider.confirm_revoked, target, kid(foreign), ctx)
    assert not isinstance(err, StillValid) and other in str(err)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, AccessDenied),
        (grpc.StatusCode.UNAUTHENTICATED, AccessDenied),
        (grpc.StatusCode.NOT_FOUND, CredentialNotFound),
        (grpc.StatusCode.FAILED_PRECONDITION, QuotaExceeded),
        (grpc.StatusCode.INVALID_ARGUMENT, PermanentProviderError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, TransientProviderError),
        (grpc.StatusCode.UNAVAILABLE, TransientProviderError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, TransientProviderError),
        (grpc.StatusCode.INTERNAL, TransientProviderError),
    ],
)
def test_grpc_status_codes_are_classified(provider, fake, account, target, code, error, raises):
    with fake.failing(code, "injected"):
        err = raises(error, provider.list_credential_ids, target)
    assert type(err) is error
    assert err.retryable is (error is TransientProviderError)
    assert str(err) == (
        f"ListServiceAccountKeys for service account {account!r} failed: {code.name}: injected"
    )


def test_every_call_fails_under_an_injected_fault(provider, fake, target, make_key, raises):
    old = make_key()
    key_id = kid(old)
    with fake.failing(grpc.StatusCode.PERMISSION_DENIED):
        raises(AccessDenied, provider.precheck, target)
        raises(AccessDenied, provider.create, target)
        raises(AccessDenied, provider.disable, target, key_id)
        raises(AccessDenied, provider.enable, target, key_id)
        raises(AccessDenied, provider.delete, target, key_id)
        raises(AccessDenied, provider.confirm_revoked, target, key_id)
        # The token endpoint answers 403: the key is not accepted.
        raises(VerificationFailed, provider.verify, target, old, match="permission_denied")


def test_a_failing_token_endpoint_is_transient(provider, fake, target, make_key, raises):
    old = make_key()
    with fake.failing(grpc.StatusCode.UNAVAILABLE):  # 503, after google-auth's own retries
        err = raises(TransientProviderError, provider.verify, target, old)
    assert "token exchange for service account" in str(err) and err.retryable


def test_unreachable_servers_are_transient(target, make_key, raises):
    nowhere = GcpServiceAccountKeyProvider(
        endpoint="127.0.0.1:9", propagation_attempts=1, propagation_delay=0, timeout=2
    )
    err = raises(TransientProviderError, nowhere.precheck, target)
    assert "ListServiceAccountKeys" in str(err) and "UNAVAILABLE" in str(err)
    key = {KEY_JSON: json.dumps({**key_file(make_key()), "token_uri": "http://127.0.0.1:9/token"})}
    err = raises(TransientProviderError, nowhere.verify, target, key)
    assert "TransportError" in str(err)


def test_endpoint_comes_from_the_environment_at_first_use(fake, target, make_key, monkeypatch):
    old = make_key()
    provider = GcpServiceAccountKeyProvider()  # built before the variable is set
    monkeypatch.setenv(ENDPOINT_ENV, fake.address)
    assert provider.list_credential_ids(target) == [kid(old)]


def test_an_unreadable_key_file_is_deleted_again(fake, iam, account, target, raises):
    class Garbling:
        """The real client, except that CreateServiceAccountKey's key file comes back garbled."""

        def __getattr__(self, name):
            return getattr(iam, name)

        def create_service_account_key(self, **kwargs):
            key = iam.create_service_account_key(**kwargs)
            key.private_key_data = json.dumps({"private_key_id": 1}).encode()
            return key

    provider = GcpServiceAccountKeyProvider(client_factory=Garbling)
    err = raises(PermanentProviderError, provider.create, target, match="deleted again")
    assert "CreateServiceAccountKey" in str(err)
    assert fake.key_states(account) == {}
