"""The github.pat provider (operator-supplied tokens) against the GitHub fake.

The fake holds users' tokens, answers GET /user for them (with X-OAuth-Scopes
and the token-expiration header), keeps organizations' fine-grained token
grants and implements the credential revocation API; tests mint tokens the way
an operator would create them in GitHub's settings.
"""

from __future__ import annotations

import uuid

import pytest
from fakes.github import GitHubFake

from keyturn.fingerprint import fingerprint
from keyturn.providers.base import Provider
from keyturn.providers.base import ProviderContext as Ctx
from keyturn.providers.errors import (
    AccessDenied,
    PermanentProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.github_pat import GitHubPatProvider, granted_scopes, parse_time


@pytest.fixture(scope="module")
def fake():
    server = GitHubFake().start()
    yield server
    server.stop()


@pytest.fixture
def world(fake: GitHubFake, secrets_seen):
    """A user with a working classic token, an org admin, and a provider acting as the admin."""
    owner = f"dev-{uuid.uuid4().hex[:8]}"
    admin = f"sec-{uuid.uuid4().hex[:8]}"
    org = f"org-{uuid.uuid4().hex[:8]}"
    fake.add_user(owner)
    admin_token = fake.add_user(admin)
    fake.add_org(org, admin)

    def mint(**kwargs) -> dict[str, str]:
        value = fake.mint_token(owner, **kwargs)
        secrets_seen.append(value)
        return {"token": value}

    provider = GitHubPatProvider(base_url=fake.url, token=admin_token, attempts=2, delay=0)
    return provider, owner, org, mint


def revoked(fake: GitHubFake, secret: dict[str, str]) -> bool:
    return fake.token_info(secret["token"]).revoked


def test_satisfies_protocol() -> None:
    assert isinstance(GitHubPatProvider(), Provider)
    assert GitHubPatProvider.supplied is True and GitHubPatProvider.family == "github"


def test_classic_token_rotation(fake, world) -> None:
    provider, owner, _, mint = world
    target = {"owner": owner, "scopes": ["public_repo", "read:org"]}
    old = mint(scopes=["repo", "admin:org"])
    old_id = fingerprint({"token": old["token"]})
    assert provider.precheck(target, Ctx(old_secret=old)).old_credential_ids == [old_id]

    new = mint(scopes=["repo", "read:org"])
    ctx = Ctx(old_secret=old, new_secret=new)
    created = provider.create(target, ctx)
    assert created.credential_id == fingerprint({"token": new["token"]})
    assert created.secret == new and created.generated_by is None
    assert sorted(provider.list_credential_ids(target, ctx)) == sorted([old_id, created.credential_id])
    provider.verify(target, new, ctx)

    provider.disable(target, old_id, ctx)  # no-op: GitHub cannot suspend tokens
    assert not revoked(fake, old)
    provider.delete(target, old_id, ctx)
    assert revoked(fake, old) and not revoked(fake, new)
    assert fake.revoked_credentials[-1] == old["token"]
    provider.delete(target, old_id, ctx)  # idempotent
    provider.confirm_revoked(target, old_id, ctx)
    assert provider.list_credential_ids(target, ctx) == [created.credential_id]
    # an already-dead current token needs no revoking
    assert provider.precheck(target, Ctx(old_secret=old)).old_credential_ids == []


def test_supplied_token_must_be_the_owners(fake, world, raises) -> None:
    provider, owner, _, mint = world
    target = {"owner": owner}
    old = mint()
    raises(PermanentProviderError, provider.create, target, Ctx(old_secret=old),
           match="keyturn supply")
    raises(VerificationFailed, provider.create, target, Ctx(old_secret=old, new_secret=old),
           match="is the one being replaced")
    stranger = fake.add_user(f"other-{uuid.uuid4().hex[:6]}")
    raises(VerificationFailed, provider.create, target, Ctx(new_secret={"token": stranger}),
           match="authenticates as 'other-")
    raises(PermanentProviderError, provider.precheck, target, Ctx(old_secret={"token": stranger}),
           match="authenticates as")
    raises(VerificationFailed, provider.create, target, Ctx(new_secret={"token": "ghp_bogus"}),
           match="rejects the token")
    raises(PermanentProviderError, provider.precheck, target, match="store holds no current token")


def test_verify_checks_scopes_and_liveness(fake, world, raises) -> None:
    provider, owner, _, mint = world
    narrow = mint(scopes=["public_repo"])
    raises(VerificationFailed, provider.verify, {"owner": owner, "scopes": ["repo"]}, narrow,
           match="lacks scope\\(s\\) repo")
    fine = mint(fine_grained=True)
    raises(VerificationFailed, provider.verify, {"owner": owner, "scopes": ["repo"]}, fine,
           match="fine-grained tokens have no OAuth scopes")
    provider.verify({"owner": owner}, fine)
    raises(VerificationFailed, provider.verify, {"owner": owner}, {"token": "ghp_dead"},
           match="rejected the token .* on all 2 attempts")


def test_confirm_revoked_needs_proof(fake, world, raises) -> None:
    provider, owner, _, mint = world
    target = {"owner": owner}
    old = mint()
    old_id = fingerprint({"token": old["token"]})
    raises(StillValid, provider.confirm_revoked, target, old_id, Ctx(old_secret=old),
           match="still accepted")
    raises(StillValid, provider.confirm_revoked, target, old_id, match="without its value")
    raises(PermanentProviderError, provider.confirm_revoked, target, "sha256:0000",
           Ctx(old_secret=old), match="is not token")
    provider.delete(target, old_id)  # no value, no org grant: nothing to ask GitHub
    assert not revoked(fake, old)


def test_org_fine_grained_rotation(fake, world) -> None:
    provider, owner, org, mint = world
    target = {"owner": owner, "org": org}
    old = mint(fine_grained=True, org=org, name="ci", expires_at="2026-05-01T00:00:00Z")
    old_grant = next(g for g in fake.pat_grants[org.lower()].values()
                     if g["token_id"] == fake.token_info(old["token"]).id)
    assert provider.precheck(target, Ctx(old_secret=old)).old_credential_ids == [
        str(old_grant["id"])
    ]
    new = mint(fine_grained=True, org=org, name="ci-2", expires_at="2026-08-01T00:00:00Z")
    ctx = Ctx(old_secret=old, new_secret=new)
    created = provider.create(target, ctx)
    assert created.credential_id != str(old_grant["id"]) and created.credential_id.isdigit()
    provider.verify(target, new, ctx)

    provider.delete(target, str(old_grant["id"]), ctx)
    assert old_grant["id"] not in fake.pat_grants[org.lower()]
    assert int(created.credential_id) in fake.pat_grants[org.lower()]
    assert revoked(fake, old) and not revoked(fake, new)
    provider.delete(target, str(old_grant["id"]), ctx)  # idempotent
    provider.confirm_revoked(target, str(old_grant["id"]), ctx)
    provider.confirm_revoked(target, str(old_grant["id"]))  # grant gone is the proof


def test_org_grant_revoked_even_without_the_value(fake, world, raises) -> None:
    provider, owner, org, mint = world
    target = {"owner": owner, "org": org}
    old = mint(fine_grained=True, org=org)
    grant = provider.precheck(target, Ctx(old_secret=old)).old_credential_ids[0]
    raises(StillValid, provider.confirm_revoked, target, grant, match="still approved")
    provider.delete(target, grant)
    assert int(grant) not in fake.pat_grants[org.lower()]
    assert not revoked(fake, old)  # only the org access is gone: the value was not at hand
    raises(StillValid, provider.confirm_revoked, target, grant, Ctx(old_secret=old),
           match="still accepted")


def test_org_ambiguity_and_missing_grant(fake, world, raises) -> None:
    provider, owner, org, mint = world
    target = {"owner": owner, "org": org}
    first = mint(fine_grained=True, org=org, name="a")
    mint(fine_grained=True, org=org, name="b")
    raises(PermanentProviderError, provider.precheck, target, Ctx(old_secret=first),
           match="2 fine-grained token grants .* supply it with its 'token_name'")
    named = {**first, "token_name": "a"}
    assert len(provider.precheck(target, Ctx(old_secret=named)).old_credential_ids) == 1
    ungranted = mint(fine_grained=True, expires_at="2026-06-30T00:00:00Z")
    raises(VerificationFailed, provider.verify, target, ungranted,
           match="no approved fine-grained token grant")
    assert provider.list_credential_ids(target, Ctx(old_secret=ungranted)) == []


def test_errors_are_classified(fake, world, raises) -> None:
    provider, owner, org, mint = world
    old = mint()
    target = {"owner": owner}
    with fake.failing(503):
        raises(TransientProviderError, provider.precheck, target, Ctx(old_secret=old),
               match="GetAuthenticatedUser for .* 503")
    with fake.failing(403):
        raises(AccessDenied, provider.precheck, target, Ctx(old_secret=old), match="403")
    with fake.failing(429, headers={"Retry-After": "3"}):
        raises(TransientProviderError, provider.delete, target,
               fingerprint({"token": old["token"]}), Ctx(old_secret=old),
               match="RevokeCredentials .* 429")
    not_owner = GitHubPatProvider(base_url=fake.url, token=mint()["token"], attempts=1)
    fine = mint(fine_grained=True, org=org)
    raises(AccessDenied, not_owner.precheck, {"owner": owner, "org": org}, Ctx(old_secret=fine),
           match="ListPatGrants .* 403")
    dead = GitHubPatProvider(base_url="http://127.0.0.1:9", attempts=1)
    raises(TransientProviderError, dead.verify, target, old, match="ConnectionError")


def test_helpers() -> None:
    assert {"repo", "public_repo", "read:org"} <= granted_scopes("repo, write:org")
    assert parse_time("2026-05-01 12:00:00 UTC") == parse_time("2026-05-01T12:00:00Z")
    assert parse_time(None) is None
