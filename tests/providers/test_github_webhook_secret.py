"""The github.webhook_secret provider against the GitHub fake.

The fake signs ping deliveries with the hook's configured secret like GitHub
(X-Hub-Signature-256 over the delivered body) and exposes them through the
deliveries API; tests read the secret the hook really holds from the fake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest
from fakes.github import GitHubFake

from keyturn.fingerprint import fingerprint
from keyturn.providers.base import Provider
from keyturn.providers.base import ProviderContext as Ctx
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.github_webhook_secret import (
    FIELD,
    UNKNOWN,
    GitHubWebhookSecretProvider,
    signed_bodies,
    signs,
)


class CountingRandom:
    """A named random source, to check where generated values come from."""

    name = "test-random"

    def __init__(self) -> None:
        self.calls = 0

    def token_bytes(self, n: int) -> bytes:
        self.calls += 1
        return hashlib.sha256(f"{self.calls}-{uuid.uuid4()}".encode()).digest()[:n]


@pytest.fixture(scope="module")
def fake():
    server = GitHubFake().start()
    yield server
    server.stop()


@pytest.fixture
def setup(fake: GitHubFake):
    """(provider, repo, target, old secret) for a fresh repository and hook."""
    admin = f"admin-{uuid.uuid4().hex[:8]}"
    token = fake.add_user(admin)
    repo = f"{admin}/svc"
    fake.add_repo(repo, admin)
    old = {FIELD: f"old-{uuid.uuid4().hex}"}
    hook = fake.add_hook(repo, "https://hooks.example/receive", secret=old[FIELD])
    provider = GitHubWebhookSecretProvider(base_url=fake.url, token=token, attempts=2, delay=0)
    return provider, repo, {"repo": repo, "hook_id": hook["id"]}, old


def test_satisfies_protocol() -> None:
    assert isinstance(GitHubWebhookSecretProvider(), Provider)
    assert GitHubWebhookSecretProvider.family == "github"


def test_full_rotation(fake, setup) -> None:
    provider, repo, target, old = setup
    hook_id = target["hook_id"]
    ctx = Ctx(old_secret=old, random=CountingRandom())
    old_id = fingerprint(old)
    assert provider.precheck(target, ctx).old_credential_ids == [old_id]
    assert provider.list_credential_ids(target, ctx) == [old_id]

    new = provider.create(target, ctx)
    assert new.generated_by == "test-random" and ctx.random.calls == 1
    assert new.credential_id == fingerprint(new.secret)
    assert fake.hook_secret(repo, hook_id) == new.secret[FIELD]
    assert new.secret[FIELD] not in json.dumps(fake.hook_json(fake.repos[repo.lower()], hook_id))

    ctx = Ctx(old_secret=old, new_secret=new.secret)
    assert provider.list_credential_ids(target, ctx) == [new.credential_id]
    provider.verify(target, new.secret, ctx)
    provider.disable(target, old_id, ctx)
    provider.delete(target, old_id, ctx)  # the hook no longer signs with it: nothing to do
    assert fake.hook_secret(repo, hook_id) == new.secret[FIELD]
    provider.confirm_revoked(target, old_id, ctx)


def test_delete_of_new_restores_old(fake, setup) -> None:
    """Rollback: deleting the new secret puts the old one back (single-slot credential)."""
    provider, repo, target, old = setup
    new = provider.create(target, Ctx(old_secret=old))
    provider.delete(target, new.credential_id, Ctx(old_secret=old, new_secret=new.secret))
    assert fake.hook_secret(repo, target["hook_id"]) == old[FIELD]
    provider.delete(target, new.credential_id, Ctx(old_secret=old))  # idempotent
    assert fake.hook_secret(repo, target["hook_id"]) == old[FIELD]
    with pytest.raises(StillValid, match=f"still signs with secret {fingerprint(old)}"):
        provider.confirm_revoked(target, fingerprint(old), Ctx(old_secret=old))
    # Given only the old value (id unknown), the signature still gives it away.
    with pytest.raises(StillValid, match="still signs with the old secret"):
        provider.confirm_revoked(target, UNKNOWN, Ctx(old_secret=old))


def test_delete_without_old_value_leaves_no_known_secret(fake, setup) -> None:
    provider, repo, target, _ = setup
    new = provider.create(target)
    provider.delete(target, new.credential_id, Ctx(new_secret=new.secret))
    current = fake.hook_secret(repo, target["hook_id"])
    assert current and current != new.secret[FIELD]
    provider.confirm_revoked(target, new.credential_id, Ctx(old_secret=new.secret))


def test_retried_create_finds_the_orphan(fake, setup) -> None:
    """An attempt that set a secret and died: list shows an unknown id; deleting it restores."""
    provider, repo, target, old = setup
    provider.create(target, Ctx(old_secret=old))  # the value is lost with the attempt
    ctx = Ctx(old_secret=old)
    assert provider.list_credential_ids(target, ctx) == [UNKNOWN]
    provider.delete(target, UNKNOWN, ctx)
    assert fake.hook_secret(repo, target["hook_id"]) == old[FIELD]


def test_verify_and_confirm_fail_honestly(fake, setup) -> None:
    provider, _, target, old = setup
    wrong = {FIELD: "not-the-secret"}
    with pytest.raises(VerificationFailed, match="not signed with the new secret") as info:
        provider.verify(target, wrong)
    assert "not-the-secret" not in str(info.value) and old[FIELD] not in str(info.value)
    with pytest.raises(StillValid, match="still signs with secret"):
        provider.confirm_revoked(target, fingerprint(old), Ctx(old_secret=old))
    with pytest.raises(StillValid, match="no other secret known"):
        provider.confirm_revoked(target, UNKNOWN)
    with pytest.raises(PermanentProviderError, match="lacks 'webhook_secret'"):
        provider.verify(target, {})


def test_precheck_without_secret_or_hook(fake, setup) -> None:
    provider, repo, target, _ = setup
    bare = fake.add_hook(repo, "https://hooks.example/bare")
    with pytest.raises(CredentialNotFound, match="has no secret"):
        provider.precheck({"repo": repo, "hook_id": bare["id"]})
    assert provider.list_credential_ids({"repo": repo, "hook_id": bare["id"]}) == []
    with pytest.raises(CredentialNotFound, match="404"):
        provider.precheck({"repo": repo, "hook_id": 999999})
    assert provider.precheck(target).old_credential_ids == [UNKNOWN]


def test_form_content_type_signatures(fake, setup) -> None:
    provider, repo, _, _ = setup
    hook = fake.add_hook(repo, "https://hooks.example/form", secret="s3cret", content_type="form")
    provider.verify({"repo": repo, "hook_id": hook["id"]}, {FIELD: "s3cret"})


def test_signature_helpers() -> None:
    payload = {"zen": "Non-blocking is better than blocking.", "name": "caf\u00e9"}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    signature = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signs("k", signature, signed_bodies(payload, "application/json"))
    assert not signs("other", signature, signed_bodies(payload, "application/json"))
    escaped = b'{"description":"a \\u003cb\\u003e \\u0026 c"}'
    signature = "sha256=" + hmac.new(b"k", escaped, hashlib.sha256).hexdigest()
    assert signs("k", signature, signed_bodies({"description": "a <b> & c"}, "json"))


def test_errors_are_classified(fake, setup) -> None:
    provider, _, target, old = setup
    with fake.failing(403), pytest.raises(AccessDenied, match="UpdateWebhookConfig"):
        provider.create(target)
    with fake.failing(503), pytest.raises(TransientProviderError, match="PingWebhook"):
        provider.verify(target, old)
    outsider = GitHubWebhookSecretProvider(base_url=fake.url, token=fake.add_user(f"mallory-{uuid.uuid4().hex[:6]}"))
    with pytest.raises(CredentialNotFound, match="404"):
        outsider.precheck(target)

