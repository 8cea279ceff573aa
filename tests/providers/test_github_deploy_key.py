"""The github.deploy_key provider (and github_common's error table) against the GitHub fake.

The fake speaks GitHub's REST shapes on loopback; the provider drives it
through PyGithub exactly as it would api.github.com. Assertions read the fake's
state (the repository's deploy keys), not the provider's answers.
"""

from __future__ import annotations

import os
import uuid

import pytest
from fakes.github import GitHubFake

from keyturn.providers.base import Provider
from keyturn.providers.base import ProviderContext as Ctx
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    ProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.github_deploy_key import (
    PRIVATE_KEY,
    PUBLIC_KEY,
    GitHubDeployKeyProvider,
    key_body,
    new_key_pair,
)


@pytest.fixture(scope="module")
def fake():
    server = GitHubFake().start()
    yield server
    server.stop()


@pytest.fixture
def admin(fake: GitHubFake) -> str:
    login = f"admin-{uuid.uuid4().hex[:8]}"
    fake.add_user(login)
    return login


@pytest.fixture
def repo(fake: GitHubFake, admin: str) -> str:
    full_name = f"{admin}/app-{uuid.uuid4().hex[:8]}"
    fake.add_repo(full_name, admin)
    return full_name


@pytest.fixture
def provider(fake: GitHubFake, admin: str) -> GitHubDeployKeyProvider:
    token = fake.mint_token(admin, scopes=["repo"])
    return GitHubDeployKeyProvider(base_url=fake.url, token=token, attempts=2, delay=0)


@pytest.fixture
def old(fake: GitHubFake, repo: str) -> tuple[str, dict[str, str]]:
    """The deploy key in use now: (id, secret)."""
    secret = new_key_pair(os.urandom(32))
    key = fake.add_deploy_key(repo, "ci deploy", secret[PUBLIC_KEY], read_only=False)
    return str(key["id"]), secret


def keys(fake: GitHubFake, repo: str) -> dict[str, dict]:
    return {str(k["id"]): k for k in fake.deploy_keys(repo)}


def assert_no_secret(exc: BaseException, *secrets: dict[str, str]) -> None:
    for secret in secrets:
        for value in secret.values():
            assert key_body(value) not in str(exc) and value not in repr(exc)


def test_satisfies_protocol() -> None:
    provider = GitHubDeployKeyProvider(base_url="http://127.0.0.1:9", token="x")
    assert isinstance(provider, Provider)
    assert provider.family == "github"


def test_full_rotation(fake, repo, provider, old) -> None:
    old_id, old_secret = old
    target = {"repo": repo}
    ctx = Ctx(old_secret=old_secret)
    assert provider.precheck(target, ctx).old_credential_ids == [old_id]

    new = provider.create(target, ctx)
    assert new.generated_by == ctx.random.name
    assert new.secret[PRIVATE_KEY].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    stored = keys(fake, repo)[new.credential_id]
    assert stored["key"] == key_body(new.secret[PUBLIC_KEY])
    assert (stored["title"], stored["read_only"]) == ("ci deploy", False)
    assert sorted(provider.list_credential_ids(target, ctx)) == sorted([old_id, new.credential_id])

    provider.verify(target, new.secret)
    provider.disable(target, old_id, ctx)  # no-op: GitHub cannot disable deploy keys
    assert old_id in keys(fake, repo)
    provider.delete(target, old_id, ctx)
    provider.delete(target, old_id, ctx)  # idempotent
    assert list(keys(fake, repo)) == [new.credential_id]
    provider.confirm_revoked(target, old_id, ctx)


def test_target_title_and_read_only(fake, repo, provider, old) -> None:
    other = new_key_pair(os.urandom(32))
    other_id = str(fake.add_deploy_key(repo, "docs", other[PUBLIC_KEY], read_only=True)["id"])
    with pytest.raises(PermanentProviderError, match="set target.title"):
        provider.precheck({"repo": repo})
    # The store's old key names the title; an explicit title works without it.
    assert provider.precheck({"repo": repo}, Ctx(old_secret=other)).old_credential_ids == [other_id]
    target = {"repo": repo, "title": "ci deploy", "read_only": True}
    assert provider.precheck(target).old_credential_ids == [old[0]]
    new = provider.create(target)
    assert keys(fake, repo)[new.credential_id]["read_only"] is True
    assert keys(fake, repo)[new.credential_id]["title"] == "ci deploy"
    assert other_id not in provider.list_credential_ids(target)


def test_precheck_without_a_key(repo, provider) -> None:
    with pytest.raises(CredentialNotFound, match="no deploy key"):
        provider.precheck({"repo": repo})
    with pytest.raises(CredentialNotFound):
        provider.precheck({"repo": repo, "title": "nope"})


def test_verify_rejects(fake, repo, provider, old) -> None:
    target = {"repo": repo}
    unlisted = new_key_pair(os.urandom(32))
    with pytest.raises(VerificationFailed, match="does not list") as info:
        provider.verify(target, unlisted)
    assert_no_secret(info.value, unlisted)
    mismatched = {PRIVATE_KEY: unlisted[PRIVATE_KEY], PUBLIC_KEY: old[1][PUBLIC_KEY]}
    with pytest.raises(VerificationFailed, match="does not match"):
        provider.verify(target, mismatched)
    with pytest.raises(VerificationFailed, match="not an unencrypted OpenSSH key"):
        provider.verify(target, {PRIVATE_KEY: "garbage", PUBLIC_KEY: old[1][PUBLIC_KEY]})
    writable = provider.create({"repo": repo, "read_only": False})
    with pytest.raises(VerificationFailed, match="read_only=False, expected True"):
        provider.verify({"repo": repo, "read_only": True}, writable.secret)


def test_confirm_revoked_detects_survivors(fake, repo, provider, old) -> None:
    old_id, old_secret = old
    with pytest.raises(StillValid, match=f"deploy key {old_id} is still"):
        provider.confirm_revoked({"repo": repo}, old_id)
    provider.delete({"repo": repo}, old_id)
    provider.confirm_revoked({"repo": repo}, old_id)
    # The same public key added again under another id still grants access.
    again = str(fake.add_deploy_key(repo, "copy", old_secret[PUBLIC_KEY])["id"])
    with pytest.raises(StillValid, match=f"deploy key\\(s\\) {again}") as info:
        provider.confirm_revoked({"repo": repo}, old_id, Ctx(old_secret=old_secret))
    assert_no_secret(info.value, old_secret)


@pytest.mark.parametrize(
    ("status", "headers", "message", "expected"),
    [
        (403, {}, "Must have admin rights to Repository.", AccessDenied),
        (401, {}, "Bad credentials", AccessDenied),
        (404, {}, "Not Found", CredentialNotFound),
        (422, {}, "Validation Failed", PermanentProviderError),
        (503, {}, "Service Unavailable", TransientProviderError),
        (500, {}, "Server Error", TransientProviderError),
        (429, {"Retry-After": "1"}, "API rate limit exceeded", TransientProviderError),
        (403, {"X-RateLimit-Remaining": "0"}, "API rate limit exceeded", TransientProviderError),
        (403, {"Retry-After": "60"}, "You have exceeded a secondary rate limit.",
         TransientProviderError),
    ],
)
def test_error_classification(fake, repo, provider, old, status, headers, message, expected):
    with fake.failing(status, message, headers), pytest.raises(ProviderError) as info:
        provider.create({"repo": repo})
    assert type(info.value) is expected
    assert "CreateDeployKey" in str(info.value) or "ListDeployKeys" in str(info.value)
    assert repo in str(info.value) and str(status) in str(info.value)


def test_real_permission_and_missing_repo(fake, repo, provider, old) -> None:
    outsider = f"dev-{uuid.uuid4().hex[:8]}"
    token = fake.add_user(outsider)
    fake.add_collaborator(repo, outsider, "push")
    writer = GitHubDeployKeyProvider(base_url=fake.url, token=token, attempts=1)
    with pytest.raises(AccessDenied, match="403 Must have admin rights"):
        writer.precheck({"repo": repo})
    with pytest.raises(CredentialNotFound, match="404"):
        provider.precheck({"repo": f"{repo}-gone"})
    with pytest.raises(AccessDenied, match="no GitHub admin token"):
        GitHubDeployKeyProvider(base_url=fake.url, token="").precheck({"repo": repo})


def test_connection_failure_is_transient(repo) -> None:
    dead = GitHubDeployKeyProvider(base_url="http://127.0.0.1:9", token="ghp_x", attempts=1)
    with pytest.raises(TransientProviderError, match="ListDeployKeys"):
        dead.precheck({"repo": repo})


def test_invalid_target(provider) -> None:
    with pytest.raises(PermanentProviderError, match="invalid github.deploy_key target: repo"):
        provider.precheck({"repo": "no-slash"})
    with pytest.raises(PermanentProviderError, match="token: Extra inputs") as info:
        provider.precheck({"repo": "a/b", "token": "ghp_secret"})
    assert "ghp_secret" not in str(info.value)


def test_env_configuration(fake, repo, admin, old, monkeypatch) -> None:
    monkeypatch.setenv("KEYTURN_GITHUB_API_URL", fake.url)
    monkeypatch.setenv("KEYTURN_GITHUB_TOKEN", fake.mint_token(admin))
    assert GitHubDeployKeyProvider().precheck({"repo": repo}).old_credential_ids == [old[0]]
