"""The npm.token provider against a real Verdaccio (tests/node), faults through a FaultProxy.

Verdaccio implements npm's token API: POST/GET /-/npm/v1/tokens, DELETE
/-/npm/v1/tokens/token/KEY, /-/whoami; a deleted token gets 403, a read-only
token 403 on any write. Each test signs up a fresh user (PUT
/-/user/org.couchdb.user:NAME) and makes its first listed token with that
sign-up session, as `npm login` + `npm token create` would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from conformance.harness_npm import NpmRegistryClient
from fakes.fault_proxy import FaultProxy

from keyturn.devstack.servers import free_port
from keyturn.providers.base import Provider, ProviderContext
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.npm_token import (
    PASSWORD_ENV,
    REGISTRY_ENV,
    NpmTokenProvider,
    abbreviates,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(verdaccio) -> NpmRegistryClient:
    return NpmRegistryClient(verdaccio.url)


@pytest.fixture
def passwords() -> dict[str, str]:
    return {}


@pytest.fixture
def provider(verdaccio, passwords) -> NpmTokenProvider:
    return NpmTokenProvider(registry=verdaccio.url, password_for=passwords.get, attempts=2, delay=0)


class User:
    """A fresh npm user with its sign-up session and one listed token (`key`, `token`)."""

    def __init__(self, registry: NpmRegistryClient, passwords: dict[str, str], seen: list[str]):
        self.name, self.password, self.session = registry.add_user()
        passwords[self.name] = self.password
        self.key, self.token = registry.create_token(self.session, self.password)
        seen += [self.password, self.session, self.token]
        self.target = {"username": self.name}
        self.old = {"token": self.token}


@pytest.fixture
def user(registry, passwords, secrets_seen) -> User:
    return User(registry, passwords, secrets_seen)


@pytest.fixture(scope="module")
def proxy(verdaccio) -> Iterator[FaultProxy]:
    proxy = FaultProxy(verdaccio.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxied(proxy, passwords) -> NpmTokenProvider:
    return NpmTokenProvider(registry=proxy.url, password_for=passwords.get, attempts=2, delay=0)


def test_satisfies_protocol(provider):
    assert isinstance(provider, Provider)
    assert (provider.name, provider.family) == ("npm.token", "npm")


def test_full_rotation(provider, registry, user, secrets_seen):
    found = provider.precheck(user.target, ProviderContext(old_secret=user.old))
    assert found.old_credential_ids == [user.key] and found.removed_inactive == []
    assert provider.list_credential_ids(user.target, ProviderContext(old_secret=user.old)) == [
        user.key
    ]

    new = provider.create(user.target, ProviderContext(old_secret=user.old))
    secrets_seen.append(new.secret["token"])
    assert set(new.secret) == {"token"} and new.credential_id != new.secret["token"]
    assert new.generated_by is None  # the registry made it
    assert sorted(registry.token_keys(user.session)) == sorted([user.key, new.credential_id])
    provider.verify(user.target, new.secret)

    ctx = ProviderContext(old_secret=user.old, new_secret=new.secret)
    provider.disable(user.target, user.key, ctx)  # npm cannot disable: a no-op
    assert registry.whoami(user.token) == user.name
    provider.delete(user.target, user.key, ctx)
    assert registry.token_keys(user.session) == [new.credential_id]
    assert registry.whoami(user.token) is None
    assert registry.whoami(new.secret["token"]) == user.name

    provider.confirm_revoked(user.target, user.key, ctx)
    # After revoke only the new token works: listing falls back to it.
    assert provider.list_credential_ids(user.target, ctx) == [new.credential_id]


def test_create_readonly_with_cidrs_and_target_registry(verdaccio, registry, user, passwords):
    elsewhere = NpmTokenProvider(registry="http://127.0.0.1:9", password_for=passwords.get)
    target = {
        **user.target,
        "registry": verdaccio.url,
        "readonly": True,
        "cidr_whitelist": ["127.0.0.0/8", "::1/128"],
    }
    new = elsewhere.create(target, ProviderContext(old_secret=user.old))
    listed = {e["key"]: e for e in registry.tokens(user.session)}
    assert listed[new.credential_id]["readonly"] is True
    assert listed[new.credential_id]["cidr"] == ["127.0.0.0/8", "::1/128"]
    elsewhere.verify(target, new.secret)  # a read-only token may read


def test_registry_and_password_from_environment(verdaccio, user, monkeypatch):
    monkeypatch.setenv(REGISTRY_ENV, verdaccio.url)
    monkeypatch.setenv(PASSWORD_ENV, user.password)
    provider = NpmTokenProvider()
    assert provider.precheck(user.target, ProviderContext(old_secret=user.old)).old_credential_ids
    provider.create(user.target, ProviderContext(old_secret=user.old))


def test_precheck_refusals(provider, registry, user, passwords, raises, secrets_seen):
    raises(PermanentProviderError, provider.precheck, user.target, match="needs the current token")
    readonly_key, readonly = registry.create_token(user.session, user.password, readonly=True)
    secrets_seen.append(readonly)
    raises(
        AccessDenied,
        provider.precheck,
        user.target,
        ProviderContext(old_secret={"token": readonly}),
        match=f"{readonly_key} .*read-only",
    )
    # The sign-up session works but is not a listed token: the token API cannot revoke it.
    raises(
        CredentialNotFound,
        provider.precheck,
        user.target,
        ProviderContext(old_secret={"token": user.session}),
        match="not in the user's token list",
    )
    other = User(registry, passwords, secrets_seen)
    raises(
        PermanentProviderError,
        provider.precheck,
        user.target,
        ProviderContext(old_secret=other.old),
        match=f"belongs to npm user '{other.name}'",
    )
    registry.delete_token(user.session, user.key)
    raises(
        AccessDenied,
        provider.precheck,
        user.target,
        ProviderContext(old_secret=user.old),
        match="rejects the current token",
    )
    del passwords[user.name]
    raises(
        PermanentProviderError,
        provider.precheck,
        user.target,
        ProviderContext(old_secret=user.old),
        match=f"set {PASSWORD_ENV}",
    )


def test_create_with_wrong_password_is_access_denied(
    provider, user, passwords, raises, secrets_seen
):
    passwords[user.name] = "not-the-password-123"
    secrets_seen.append(passwords[user.name])
    error = raises(AccessDenied, provider.create, user.target, ProviderContext(old_secret=user.old))
    assert "create token for npm user" in str(error) and "401" in str(error)


def test_verify_rejects_revoked_foreign_and_garbage_tokens(
    provider, registry, user, passwords, raises, secrets_seen
):
    key, revoked = registry.create_token(user.session, user.password)
    registry.delete_token(user.session, key)
    other = User(registry, passwords, secrets_seen)
    secrets_seen.append(revoked)
    raises(
        VerificationFailed,
        provider.verify,
        user.target,
        {"token": revoked},
        match="rejected the new token on all 2 attempts",
    )
    raises(VerificationFailed, provider.verify, user.target, {"token": "x" * 40})
    raises(
        VerificationFailed,
        provider.verify,
        user.target,
        other.old,
        match=f"authenticates as npm user '{other.name}'",
    )
    raises(PermanentProviderError, provider.verify, user.target, {"value": "x"})


def test_delete_is_idempotent_and_prefers_the_other_token(provider, registry, user, secrets_seen):
    new = provider.create(user.target, ProviderContext(old_secret=user.old))
    secrets_seen.append(new.secret["token"])
    ctx = ProviderContext(old_secret=user.old, new_secret=new.secret)
    # Rollback: the new token is deleted with the old one, which keeps working.
    provider.delete(user.target, new.credential_id, ctx)
    provider.delete(user.target, new.credential_id, ctx)
    provider.delete(user.target, "0123456789abcdef0123456789abcdef", ctx)
    assert registry.token_keys(user.session) == [user.key]
    assert registry.whoami(user.token) == user.name


def test_delete_with_read_only_new_token_falls_back_to_self_revocation(
    provider, registry, user, secrets_seen
):
    target = {**user.target, "readonly": True}
    new = provider.create(target, ProviderContext(old_secret=user.old))
    secrets_seen.append(new.secret["token"])
    ctx = ProviderContext(old_secret=user.old, new_secret=new.secret)
    # The read-only new token may not delete anything: the old one revokes itself.
    provider.delete(target, user.key, ctx)
    assert registry.token_keys(user.session) == [new.credential_id]
    provider.confirm_revoked(target, user.key, ctx)


def test_confirm_revoked_both_ways(provider, registry, user, raises, secrets_seen):
    new = provider.create(user.target, ProviderContext(old_secret=user.old))
    secrets_seen.append(new.secret["token"])
    ctx = ProviderContext(old_secret=user.old, new_secret=new.secret)
    raises(
        StillValid,
        provider.confirm_revoked,
        user.target,
        user.key,
        ctx,
        match=f"token {user.key} is still in the token list",
    )
    registry.delete_token(user.session, user.key)
    provider.confirm_revoked(user.target, user.key, ctx)
    provider.confirm_revoked(user.target, user.key, ProviderContext(new_secret=new.secret))
    # Gone from the list but the "old" value still authenticates (here: the sign-up session).
    still = ProviderContext(old_secret={"token": user.session}, new_secret=new.secret)
    raises(
        StillValid,
        provider.confirm_revoked,
        user.target,
        user.key,
        still,
        match="still accepted the old token on all 2 attempts",
    )
    raises(
        PermanentProviderError,
        provider.confirm_revoked,
        user.target,
        user.key,
        match="needs one of the user's tokens",
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AccessDenied),
        (403, AccessDenied),
        (404, CredentialNotFound),
        (400, PermanentProviderError),
        (429, TransientProviderError),
        (500, TransientProviderError),
        (503, TransientProviderError),
    ],
)
def test_error_classification(proxied, proxy, user, raises, status, expected):
    ctx = ProviderContext(old_secret=user.old)
    with proxy.failing(status, b'{"error": "injected"}'):
        error = raises(expected, proxied.list_credential_ids, user.target, ctx)
        assert f"list tokens for npm user '{user.name}' at {proxy.url} failed: {status}" in str(
            error
        )
        raises(expected, proxied.create, user.target, ctx)
        raises(expected, proxied.delete, user.target, user.key, ctx)
        raises(expected, proxied.confirm_revoked, user.target, user.key, ctx)
        if status not in (401, 403):  # a rejection is verify's answer: see the next test
            raises(expected, proxied.verify, user.target, user.old)
    assert type(error) is expected


def test_rejection_on_verify_and_confirm_is_the_answer_not_an_error(proxied, proxy, user, raises):
    ctx = ProviderContext(old_secret=user.old)
    with proxy.failing(403, b'{"error": "unauthorized access"}'):
        raises(VerificationFailed, proxied.verify, user.target, user.old)
        raises(AccessDenied, proxied.confirm_revoked, user.target, user.key, ctx)  # cannot list


def test_connection_failure_is_transient(passwords, user, raises):
    provider = NpmTokenProvider(
        registry=f"http://127.0.0.1:{free_port()}", password_for=passwords.get, timeout=2
    )
    ctx = ProviderContext(old_secret=user.old)
    raises(TransientProviderError, provider.precheck, user.target, ctx, match="ConnectionError")
    raises(TransientProviderError, provider.create, user.target, ctx)


def test_invalid_targets_and_registry_urls(provider, user, raises):
    ctx = ProviderContext(old_secret=user.old)
    raises(PermanentProviderError, provider.precheck, {}, ctx, match="username")
    raises(PermanentProviderError, provider.precheck, {**user.target, "password": "x"}, ctx)
    raises(
        PermanentProviderError,
        provider.precheck,
        {**user.target, "cidr_whitelist": ["10.0.0.0/33"]},
        ctx,
        match="cidr_whitelist",
    )
    with_credentials = NpmTokenProvider(registry="https://ci:hunter2-secret@registry.example")
    error = raises(PermanentProviderError, with_credentials.precheck, user.target, ctx)
    assert "hunter2" not in str(error)


@pytest.mark.parametrize(
    ("listed", "token", "expected"),
    [
        ("abcde...vwxyz", "abcdeFGHIJvwxyz", True),
        ("abcde...vwxyz", "abcdeFGHIJvwxyZ", False),
        ("npm_1f…", "npm_1fAbC", True),
        ("npm_1f", "npm_1fAbC", True),
        ("npm_2f", "npm_1fAbC", False),
        ("", "anything", False),
    ],
)
def test_abbreviates(listed, token, expected):
    assert abbreviates(listed, token) is expected


class PagedTokens(BaseHTTPRequestHandler):
    """npmjs-style paging: urls.next names the following page (or another host)."""

    pages: ClassVar[dict[str, dict[str, Any]]] = {
        "/-/npm/v1/tokens": {
            "objects": [{"key": "k1", "token": "aa"}],
            "urls": {"next": "/-/npm/v1/tokens?page=2"},
        },
        "/-/npm/v1/tokens?page=2": {"objects": [{"key": "k2", "token": "bb"}], "urls": {}},
        "/evil/-/npm/v1/tokens": {"objects": [], "urls": {"next": "http://192.0.2.1/steal"}},
    }

    def do_GET(self) -> None:
        body = json.dumps(self.pages[self.path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_token_list_follows_pages_on_the_same_host_only(raises):
    server = ThreadingHTTPServer(("127.0.0.1", 0), PagedTokens)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        provider = NpmTokenProvider(registry=url)
        ctx = ProviderContext(old_secret={"token": "t"})
        assert provider.list_credential_ids({"username": "u"}, ctx) == ["k1", "k2"]
        raises(
            PermanentProviderError,
            provider.list_credential_ids,
            {"username": "u", "registry": f"{url}/evil"},
            ctx,
            match="another host",
        )
    finally:
        server.shutdown()
        server.server_close()
