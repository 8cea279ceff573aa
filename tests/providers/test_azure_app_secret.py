"""The azure.app_secret provider against a local Entra fake (Graph over http, token endpoint over https).

The fake (tests/fakes/azure_graph.py) speaks Graph v1.0's addPassword /
removePassword / $select=passwordCredentials and the v2.0 token endpoint that
azure-identity's ClientSecretCredential uses; tests assert on its state and ask
its token endpoint directly whether a secret still works.
"""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from azure.identity import ClientSecretCredential
from fakes.azure_graph import EntraFake

from keyturn.providers.azure_app_secret import (
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT_ID,
    AzureAppSecretProvider,
)
from keyturn.providers.base import Provider, ProviderContext
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def entra():
    fake = EntraFake().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def tenant(entra) -> str:
    return entra.add_tenant()


@pytest.fixture(scope="module")
def admin(entra, tenant) -> tuple[str, str]:
    return entra.admin(tenant)


@pytest.fixture
def secrets_seen(admin) -> list[str]:
    """Every secret value a test handles; no exception message may contain one."""
    return [admin[1]]


def make_provider(entra: EntraFake, admin: tuple[str, str], **overrides) -> AzureAppSecretProvider:
    options = {
        "client_id": admin[0],
        "client_secret": admin[1],
        "authority": entra.authority,
        "graph_url": entra.graph_url,
        "connection_verify": entra.ca_file,
        "token_retries": 0,
        "propagation_attempts": 2,
        "propagation_delay": 0,
    }
    return AzureAppSecretProvider(**{**options, **overrides})


@pytest.fixture
def provider(entra, admin) -> AzureAppSecretProvider:
    return make_provider(entra, admin)


@pytest.fixture
def app(entra, tenant):
    return entra.add_application(tenant, "orders-api")


@pytest.fixture
def initial(entra, app, tenant, secrets_seen) -> tuple[str, dict[str, str]]:
    """The app's one working secret: (keyId, secret as delivered)."""
    key_id, text = entra.add_password(app)
    secrets_seen.append(text)
    return key_id, {TENANT_ID: tenant, CLIENT_ID: app.app_id, CLIENT_SECRET: text}


@pytest.fixture
def target(app, tenant) -> dict[str, str]:
    return {"tenant_id": tenant, "client_id": app.app_id, "application_id": app.id}


def works(entra: EntraFake, secret: dict[str, str]) -> bool:
    return entra.token_accepted(secret[TENANT_ID], secret[CLIENT_ID], secret[CLIENT_SECRET])


def test_satisfies_the_provider_protocol(provider):
    assert isinstance(provider, Provider)
    assert (provider.name, provider.family) == ("azure.app_secret", "azure")


def test_full_rotation_of_an_application_secret(
    entra, app, provider, target, initial, raises, secrets_seen
):
    old_id, old_secret = initial
    assert provider.precheck(target).old_credential_ids == [old_id]

    new = provider.create(target, ProviderContext(credential="orders-api-secret"))
    secrets_seen.append(new.secret[CLIENT_SECRET])
    assert set(new.secret) == {TENANT_ID, CLIENT_ID, CLIENT_SECRET}
    assert new.generated_by is None  # Entra generated it
    assert entra.key_ids(app) == [old_id, new.credential_id]
    assert app.passwords[-1].display_name == "keyturn orders-api-secret"
    assert sorted(provider.list_credential_ids(target)) == sorted([old_id, new.credential_id])
    provider.verify(target, new.secret)

    provider.disable(target, old_id)  # Entra has no disable: nothing changes
    assert works(entra, old_secret)
    provider.enable(target, old_id)

    provider.delete(target, old_id)
    assert entra.key_ids(app) == [new.credential_id]
    assert not works(entra, old_secret)
    assert works(entra, new.secret)
    provider.confirm_revoked(target, old_id, ProviderContext(old_secret=old_secret))
    assert provider.precheck(target).old_credential_ids == [new.credential_id]


def test_service_principal_secret(entra, tenant, app, provider, secrets_seen):
    sp = entra.add_service_principal(app)
    old_id, text = entra.add_password(sp)
    secrets_seen.append(text)
    old = {TENANT_ID: tenant, CLIENT_ID: app.app_id, CLIENT_SECRET: text}
    target = {"tenant_id": tenant, "client_id": app.app_id, "service_principal_id": sp.id}

    assert provider.precheck(target).old_credential_ids == [old_id]
    new = provider.create(target)
    secrets_seen.append(new.secret[CLIENT_SECRET])
    assert entra.key_ids(sp) == [old_id, new.credential_id]
    assert entra.key_ids(app) == []
    provider.verify(target, new.secret)
    provider.delete(target, old_id)
    provider.confirm_revoked(target, old_id, ProviderContext(old_secret=old))
    assert entra.key_ids(sp) == [new.credential_id]


def test_create_honours_lifetime_and_display_name(
    entra, app, provider, target, initial, secrets_seen
):
    target = {**target, "lifetime": "30d", "display_name": "orders (rotated)"}
    new = provider.create(target)
    secrets_seen.append(new.secret[CLIENT_SECRET])
    created = app.passwords[-1]
    assert created.display_name == "orders (rotated)"
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert abs((created.end - expected).total_seconds()) < 60


def test_precheck_ignores_expired_secrets_and_refuses_without_a_current_one(
    entra, app, provider, target, raises
):
    raises(CredentialNotFound, provider.precheck, target, match="no unexpired client secret")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    expired_id, _ = entra.add_password(app, end=past)
    raises(CredentialNotFound, provider.precheck, target, match=f"expired: {expired_id}")
    current_id, _ = entra.add_password(app)
    assert provider.precheck(target).old_credential_ids == [current_id]
    assert provider.list_credential_ids(target) == [expired_id, current_id]


def test_verify_rejects_a_wrong_or_foreign_secret(
    entra, tenant, provider, target, initial, raises, secrets_seen
):
    _, secret = initial
    wrong = {**secret, CLIENT_SECRET: "abc8Q~" + "x" * 34}
    secrets_seen.append(wrong[CLIENT_SECRET])
    raises(VerificationFailed, provider.verify, target, wrong, match="AADSTS7000215")
    other = entra.add_application(tenant, "other")
    foreign = {**secret, CLIENT_ID: other.app_id}
    raises(VerificationFailed, provider.verify, target, foreign, match="another tenant or client id")
    raises(PermanentProviderError, provider.verify, target, {CLIENT_SECRET: "x"}, match="lacks")


def test_verify_rejects_an_expired_secret(
    entra, app, tenant, provider, target, raises, secrets_seen
):
    _, text = entra.add_password(app, end=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    secrets_seen.append(text)
    secret = {TENANT_ID: tenant, CLIENT_ID: app.app_id, CLIENT_SECRET: text}
    raises(VerificationFailed, provider.verify, target, secret, match="AADSTS7000222")


def test_delete_is_idempotent(entra, app, provider, target, initial):
    old_id, _ = initial
    provider.delete(target, old_id)
    provider.delete(target, old_id)
    provider.delete(target, "00000000-0000-4000-8000-000000000000")
    assert entra.key_ids(app) == []
    entra.remove_object(app)
    provider.delete(target, old_id)  # the application itself is gone


def test_confirm_revoked_refuses_while_the_secret_exists_or_works(
    entra, app, provider, target, initial, raises, secrets_seen
):
    old_id, old = initial
    raises(StillValid, provider.confirm_revoked, target, old_id, match="still exists")
    # The id is gone but the value handed over still authenticates (it is another live secret).
    _other_id, other_text = entra.add_password(app)
    secrets_seen.append(other_text)
    provider.delete(target, old_id)
    still_live = {**old, CLIENT_SECRET: other_text}
    raises(
        StillValid,
        provider.confirm_revoked,
        target,
        old_id,
        ProviderContext(old_secret=still_live),
        match="still accepted",
    )
    provider.confirm_revoked(target, old_id)  # absence alone, no old value known
    provider.confirm_revoked(target, old_id, ProviderContext(old_secret=old))


def test_graph_faults_are_classified(entra, provider, target, initial, raises):
    cases = [
        (403, AccessDenied),
        (401, AccessDenied),
        (404, CredentialNotFound),
        (400, PermanentProviderError),
        (429, TransientProviderError),
        (500, TransientProviderError),
        (503, TransientProviderError),
    ]
    for status, expected in cases:
        with entra.failing(status, retry_after=7 if status == 429 else None):
            error = raises(expected, provider.list_credential_ids, target)
            assert type(error) is expected
            assert str(status) in str(error) and target["application_id"] in str(error)
        with entra.failing(status):
            raises(expected, provider.create, target)
            if status not in (400, 404):  # delete treats those as "already gone" after a check
                raises(expected, provider.delete, target, initial[0])
    with entra.failing(429, retry_after=7):
        raises(TransientProviderError, provider.precheck, target, match="retry after 7 s")


def test_an_admin_without_application_permissions_is_denied(
    entra, tenant, target, raises, secrets_seen
):
    reader = entra.add_application(tenant, "reader")
    _, text = entra.add_password(reader)
    secrets_seen.append(text)
    unprivileged = make_provider(entra, (reader.app_id, text))
    raises(AccessDenied, unprivileged.list_credential_ids, target, match="Authorization_Request")


def test_missing_target_is_not_found(entra, admin, tenant, provider, raises):
    gone = {
        "tenant_id": tenant,
        "client_id": "00000000-0000-4000-8000-000000000001",
        "application_id": "00000000-0000-4000-8000-000000000002",
    }
    raises(CredentialNotFound, provider.precheck, gone, match="Request_ResourceNotFound")


def test_admin_identity_failures(entra, admin, target, raises, secrets_seen):
    wrong = "zzz8Q~" + "y" * 34
    secrets_seen.append(wrong)
    bad_admin = make_provider(entra, (admin[0], wrong))
    raises(AccessDenied, bad_admin.list_credential_ids, target, match="AADSTS7000215")
    unconfigured = make_provider(entra, admin, client_id="", client_secret="")
    raises(PermanentProviderError, unconfigured.precheck, target, match="KEYTURN_AZURE_CLIENT_ID")


def test_unreachable_services_are_transient(entra, admin, provider, target, initial, raises):
    port = _closed_port()
    graph_down = make_provider(entra, admin, graph_url=f"http://127.0.0.1:{port}/v1.0")
    raises(TransientProviderError, graph_down.list_credential_ids, target)
    login_down = make_provider(entra, admin, authority=f"https://127.0.0.1:{port}")
    raises(TransientProviderError, login_down.list_credential_ids, target)
    raises(TransientProviderError, login_down.verify, target, initial[1])
    with entra.failing(503, token_endpoint=True):
        raises(TransientProviderError, provider.verify, target, initial[1], match="503")


def test_token_endpoint_refusal_other_than_the_secret_is_permanent(
    entra, provider, target, initial, raises
):
    with entra.failing(403, token_endpoint=True):
        raises(PermanentProviderError, provider.verify, target, initial[1])


def test_invalid_targets_are_permanent(provider, target, raises):
    both = {**target, "service_principal_id": target["application_id"]}
    raises(PermanentProviderError, provider.precheck, both, match="exactly one")
    raises(
        PermanentProviderError, provider.precheck, {**target, "lifetime": "0s"}, match="lifetime"
    )
    raises(PermanentProviderError, provider.precheck, {**target, "application_id": "../x"})
    raises(PermanentProviderError, provider.precheck, {**target, "secret": "x"}, match="secret")


def test_configuration_from_the_environment(entra, admin, target, initial, monkeypatch):
    monkeypatch.setenv("KEYTURN_AZURE_CLIENT_ID", admin[0])
    monkeypatch.setenv("KEYTURN_AZURE_CLIENT_SECRET", admin[1])
    monkeypatch.setenv("KEYTURN_AZURE_AUTHORITY", entra.authority)
    monkeypatch.setenv("KEYTURN_GRAPH_URL", entra.graph_url)
    provider = AzureAppSecretProvider(connection_verify=entra.ca_file, propagation_delay=0)
    assert provider.list_credential_ids(target) == [initial[0]]
    provider.verify(target, initial[1])


def test_injected_admin_credential(entra, admin, tenant, target, initial):
    credential = ClientSecretCredential(
        tenant,
        *admin,
        authority=entra.authority,
        connection_verify=entra.ca_file,
        disable_instance_discovery=True,
    )
    provider = make_provider(entra, admin, credential=credential, client_id="", client_secret="")
    assert provider.list_credential_ids(target) == [initial[0]]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
