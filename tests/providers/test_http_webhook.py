"""The http.webhook provider against a fake vendor API (fakes.webhook_service) over real HTTP.

The target describes the vendor's API as templated calls (harness_http_webhook's
`webhook_target`); tests check the service's state directly.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from conformance.harness_http_webhook import ID_FIELD, SECRET_FIELD, TOKEN_ENV, webhook_target
from fakes.webhook_service import MAX_SECRETS, WebhookService
from pydantic import ValidationError

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
from keyturn.providers.http_webhook import HttpWebhookProvider, HttpWebhookTarget, render

pytestmark = pytest.mark.integration


class NamedRandom:
    """The OS CSPRNG under a test name, to see that create draws from ctx.random."""

    name = "test-random"

    def __init__(self) -> None:
        self.calls = 0

    def token_bytes(self, n: int) -> bytes:
        self.calls += 1
        return secrets.token_bytes(n)


@pytest.fixture(scope="module")
def service():
    service = WebhookService().start()
    yield service
    service.stop()


@pytest.fixture
def provider(service) -> HttpWebhookProvider:
    return HttpWebhookProvider(
        environ={TOKEN_ENV: service.admin_token}, verify_attempts=2, verify_delay=0
    )


@pytest.fixture
def endpoint(service) -> str:
    return service.add_endpoint()


@pytest.fixture
def target(service, endpoint) -> dict[str, Any]:
    return webhook_target(service, endpoint)


@pytest.fixture
def secrets_seen(service) -> list[str]:
    """Every secret value (and the API tokens); no exception message may contain one."""
    return [service.admin_token, service.read_token]


@pytest.fixture
def seed(service, endpoint, secrets_seen):
    """Put a secret at the endpoint directly; returns it in the provider's secret shape."""

    def add(status: str = "active") -> dict[str, str]:
        made = service.add_secret(endpoint, status=status)
        secrets_seen.append(made.value)
        return {SECRET_FIELD: made.value, ID_FIELD: made.id}

    return add


def statuses(service: WebhookService, endpoint: str) -> dict[str, str]:
    return {sid: s.status for sid, s in service.endpoints[endpoint].items()}


def test_provider_satisfies_the_protocol(provider):
    assert isinstance(provider, Provider)
    assert provider.name == "http.webhook" and provider.family == "http"


def test_full_rotation_leaves_only_the_new_secret(
    provider, service, endpoint, target, seed, secrets_seen, raises
):
    old = seed()
    random = NamedRandom()

    assert provider.precheck(target).old_credential_ids == [old[ID_FIELD]]

    new = provider.create(target, ProviderContext(random=random, old_secret=old))
    secrets_seen.append(new.secret[SECRET_FIELD])
    assert new.generated_by == "test-random" and random.calls
    assert new.secret == {SECRET_FIELD: new.secret[SECRET_FIELD], ID_FIELD: new.credential_id}
    assert new.secret[SECRET_FIELD].startswith("whsec_")
    assert service.accepts(endpoint, new.credential_id, new.secret[SECRET_FIELD])
    assert sorted(provider.list_credential_ids(target)) == sorted(
        [old[ID_FIELD], new.credential_id]
    )

    provider.verify(target, new.secret)

    provider.disable(target, old[ID_FIELD])
    assert statuses(service, endpoint)[old[ID_FIELD]] == "disabled"
    raises(StillValid, provider.confirm_revoked, target, old[ID_FIELD],
           ProviderContext(old_secret=old), match="still listed")
    provider.enable(target, old[ID_FIELD])
    assert service.accepts(endpoint, old[ID_FIELD], old[SECRET_FIELD])
    provider.disable(target, old[ID_FIELD])

    provider.delete(target, old[ID_FIELD])
    provider.delete(target, old[ID_FIELD])  # already gone: fine
    provider.confirm_revoked(target, old[ID_FIELD], ProviderContext(old_secret=old))
    provider.confirm_revoked(target, old[ID_FIELD])

    assert statuses(service, endpoint) == {new.credential_id: "active"}
    for _, path, _ in service.requests:
        assert new.secret[SECRET_FIELD] not in path and old[SECRET_FIELD] not in path


def test_service_generated_secret(provider, service, endpoint, target, seed, secrets_seen):
    seed()
    create = {**target["create"], "body": {"description": "made by the vendor"},
              "secret_from": "data.secret"}
    own = {**target, "create": create}
    new = provider.create(own)
    secrets_seen.append(new.secret[SECRET_FIELD])
    assert new.generated_by is None
    assert service.accepts(endpoint, new.credential_id, new.secret[SECRET_FIELD])
    provider.verify(own, new.secret)


def test_old_credential_id_is_sent_when_the_store_has_the_old_secret(
    provider, service, target, seed, raises
):
    old = seed()
    create = {**target["create"],
              "body": {"secret": "{{ secret }}", "replaces": "{{ old_credential_id }}"}}
    rolling = {**target, "create": create}
    raises(PermanentProviderError, provider.create, rolling, match="old_credential_id")
    provider.create(rolling, ProviderContext(old_secret=old))
    method, _, body = service.requests[-1]
    assert method == "POST" and json.loads(body)["replaces"] == old[ID_FIELD]


def test_precheck_removes_an_inactive_secret_to_make_room(provider, service, endpoint, target,
                                                         seed):
    old = seed()
    spare = [seed(status="disabled") for _ in range(MAX_SECRETS - 1)]
    check = provider.precheck(target)
    assert check.old_credential_ids == [old[ID_FIELD]]
    assert check.removed_inactive == [spare[0][ID_FIELD]]
    assert spare[0][ID_FIELD] not in statuses(service, endpoint)


def test_precheck_refuses_when_every_secret_is_active(provider, service, endpoint, target, seed,
                                                     raises):
    held = [seed()[ID_FIELD] for _ in range(MAX_SECRETS)]
    err = raises(QuotaExceeded, provider.precheck, target, match="revoke one no longer in use")
    assert all(i in str(err) for i in held) and not err.retryable
    assert len(statuses(service, endpoint)) == MAX_SECRETS


def test_precheck_without_an_active_secret_has_nothing_to_rotate(provider, target, seed, raises):
    raises(CredentialNotFound, provider.precheck, target, match="no active secret")
    spare = seed(status="disabled")
    raises(CredentialNotFound, provider.precheck, target, match=spare[ID_FIELD])


def test_verify_rejects_a_wrong_value(provider, target, seed, secrets_seen, raises):
    real = seed()
    bogus = {**real, SECRET_FIELD: "whsec_" + secrets.token_urlsafe(32)}
    secrets_seen.append(bogus[SECRET_FIELD])
    raises(VerificationFailed, provider.verify, target, bogus, match="HMAC")


def test_verify_rejects_unknown_and_disabled_secrets(provider, target, seed, raises):
    real = seed()
    raises(VerificationFailed, provider.verify, target, {**real, ID_FIELD: "whs_unknown"},
           match="404")
    disabled = seed(status="disabled")
    raises(VerificationFailed, provider.verify, target, disabled, match="409")
    raises(VerificationFailed, provider.verify, target, {ID_FIELD: real[ID_FIELD]},
           match=SECRET_FIELD)


def test_verify_by_status_sends_the_secret_in_the_body(provider, target, seed, secrets_seen,
                                                       raises):
    real = seed()
    check = {"method": "POST",
             "path": "/v1/endpoints/{{ endpoint }}/secrets/{{ credential_id }}/check",
             "body": {"secret": "{{ secret }}"}, "rejected_statuses": [404, 422]}
    by_status = {**target, "verify": check}
    provider.verify(by_status, real)
    bogus = {**real, SECRET_FIELD: "wrong-" + secrets.token_urlsafe(24)}
    secrets_seen.append(bogus[SECRET_FIELD])
    raises(VerificationFailed, provider.verify, by_status, bogus, match="422")


def test_confirm_revoked_refuses_a_secret_of_another_id(provider, target, seed, raises):
    old, other = seed(), seed()
    provider.delete(target, old[ID_FIELD])
    err = raises(PermanentProviderError, provider.confirm_revoked, target, old[ID_FIELD],
                 ProviderContext(old_secret=other))
    assert not isinstance(err, StillValid)


def test_confirm_revoked_fails_while_the_service_still_signs_with_the_old_secret(
    provider, service, endpoint, target, seed, raises
):
    old = seed()
    # A vendor whose listing hides the secret (say, revocation pending) that still signs with it.
    hidden = {**target, "vars": {"endpoint": endpoint, "listed": service.add_endpoint()},
              "list": {**target["list"], "path": "/v1/endpoints/{{ listed }}/secrets"}}
    raises(StillValid, provider.confirm_revoked, hidden, old[ID_FIELD],
           ProviderContext(old_secret=old), match="still accepted it on all 2 attempts")


def test_confirm_revoked_of_an_old_value_stored_without_its_id_checks_the_listing(
    provider, target, seed, raises
):
    old = seed()
    value_only = ProviderContext(old_secret={SECRET_FIELD: old[SECRET_FIELD]})
    raises(StillValid, provider.confirm_revoked, target, old[ID_FIELD], value_only)
    provider.delete(target, old[ID_FIELD])
    provider.confirm_revoked(target, old[ID_FIELD], value_only)


def test_confirm_revoked_accepts_a_deleted_endpoint(provider, service, endpoint, target, seed):
    old = seed()
    del service.endpoints[endpoint]
    provider.confirm_revoked(target, old[ID_FIELD], ProviderContext(old_secret=old))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (403, AccessDenied),
        (401, AccessDenied),
        (404, CredentialNotFound),
        (503, TransientProviderError),
        (500, TransientProviderError),
        (429, TransientProviderError),
        (400, PermanentProviderError),
    ],
)
def test_errors_are_classified(provider, service, target, seed, status, expected, raises):
    old = seed()
    with service.failing(status):
        calls = [(provider.precheck, (target,)), (provider.create, (target,)),
                 (provider.disable, (target, old[ID_FIELD]))]
        if status != 404:  # 404 means "already gone" to delete and "rejected" to verify
            calls += [(provider.verify, (target, old)), (provider.delete, (target, old[ID_FIELD]))]
        for call, args in calls:
            err = raises(expected, call, *args, match=f"failed: {status} ")
            assert err.retryable == (expected is TransientProviderError)
            assert service.url in str(err)


def test_vendor_refusals_are_permanent(provider, service, endpoint, target, seed, raises):
    for _ in range(MAX_SECRETS):
        seed()
    raises(PermanentProviderError, provider.create, target, match="409 Conflict")
    short = {**target, "generate": {"size": 16}}  # 22 characters: the vendor wants 24+
    del service.endpoints[endpoint]
    service.endpoints[endpoint] = {}
    raises(PermanentProviderError, provider.create, short, match="400 Bad Request")


def test_read_only_token_is_access_denied(service, target, seed, raises):
    seed()
    provider = HttpWebhookProvider(environ={TOKEN_ENV: service.read_token}, verify_attempts=1)
    assert len(provider.list_credential_ids(target)) == 1
    err = raises(AccessDenied, provider.create, target, match="create: POST")
    assert "403" in str(err) and not err.retryable


def test_missing_token_variable_is_permanent(target, raises):
    provider = HttpWebhookProvider(environ={})
    raises(PermanentProviderError, provider.precheck, target, match=TOKEN_ENV)


def test_token_is_read_from_the_environment(service, target, seed, monkeypatch):
    old = seed()
    monkeypatch.setenv(TOKEN_ENV, service.admin_token)
    assert HttpWebhookProvider().list_credential_ids(target) == [old[ID_FIELD]]


def test_unreachable_service_is_transient(target, raises):
    provider = HttpWebhookProvider(environ={TOKEN_ENV: "t"}, timeout=2)
    err = raises(TransientProviderError, provider.precheck,
                 {**target, "base_url": "http://127.0.0.1:9"}, match="ConnectionError")
    assert err.retryable


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"revoke": {"method": "DELETE", "path": "/x/{{ nope }}"}},
         "revoke.path: unknown placeholder {{ nope }}; usable here: credential_id, endpoint"),
        ({"revoke": {"method": "DELETE", "path": "/x/{{ credential_id }"}},
         "revoke: malformed placeholder"),
        ({"revoke": {"method": "DELETE", "path": "/x/{{ secret }}"}},
         "revoke.path: unknown placeholder {{ secret }}"),
        ({"verify": {"path": "/check", "query": {"s": "{{ secret }}"}}},
         "verify.query: {{ secret }} may not appear in a URL"),
        ({"list": {"path": "/s", "headers": {"X": "{{ credential_id }}"}}},
         "list.headers: unknown placeholder {{ credential_id }}; usable here: endpoint"),
        ({"base_url": "http://vendor.example"}, "must use https"),
        ({"vars": {"secret": "x"}}, "'secret' is reserved"),
        ({"vars": {"endpoint": "{{ secret }}"}}, "may not contain a placeholder"),
        ({"create": {"path": "/s", "id_from": "id"}}, "the generated secret never reaches"),
        ({"verify": {"path": "/v/{{ credential_id }}"}}, "verify: proves nothing"),
        ({"enable": None}, "give both `disable` and `enable`"),
        ({"revoke": {"path": "/x", "headers": {"authorization": "x"}}}, "auth header"),
        ({"auth": {"token_env": "VENDOR TOKEN"}}, "auth.token_env"),
        ({"token": "abc"}, "token"),
    ],
)
def test_malformed_targets_fail_at_load_with_a_clear_message(
    service, endpoint, provider, change, message, raises
):
    bad = {**webhook_target(service, endpoint), **change}
    with pytest.raises(ValidationError) as info:
        HttpWebhookTarget.model_validate(bad)
    assert message in str(info.value)
    raises(PermanentProviderError, provider.precheck, bad, match="invalid http.webhook target")


def test_render_quotes_path_values_and_never_rescans():
    assert render("/e/{{ x }}", {"x": "a/b c?"}, quoted=True) == "/e/a%2Fb%20c%3F"
    assert render("{{x}}-{{ y }}", {"x": "{{ y }}", "y": "1"}) == "{{ y }}-1"
