"""GitHub repository deploy keys: the `github.deploy_key` provider.

A deploy key is an SSH public key attached to one repository, read-only or
read-write. The target names the repository and, optionally, the key's
`title`: the credentials of a target are the repository's deploy keys with that
title. Without `title`, the title is taken from the key whose public key the
store holds (ctx.old_secret), else from the repository's keys when they all
share one title; anything else is ambiguous and refused.

precheck: the target's keys (none: CredentialNotFound). GitHub sets no
  per-repository limit on deploy keys, so there is no quota to make room in.
create: a new Ed25519 key pair (the 32-byte seed drawn from ctx.random),
  added with the old key's title and read_only flag (POST /repos/{o}/{r}/keys);
  secret {"private_key": OpenSSH PEM, "public_key": "ssh-ed25519 ..."}; the
  credential id is the deploy key id.
verify: the private key derives the public key and GitHub lists that key on the
  repository with the expected read_only flag. No git SSH endpoint is reachable
  from here, so this proves the pairing and GitHub's record, not an SSH login.
disable/enable: GitHub cannot disable a deploy key; both are no-ops.
delete: DELETE /repos/{o}/{r}/keys/{id}; already gone is fine.
confirm_revoked: the key id is not listed and, given the old secret, no deploy
  key of the repository carries the old public key.
"""

from __future__ import annotations

from typing import Any, ClassVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    SecretShape,
)
from keyturn.providers.errors import (
    CredentialNotFound,
    PermanentProviderError,
    StillValid,
    VerificationFailed,
)
from keyturn.providers.github_common import (
    GitHubProviderBase,
    call,
    github_errors,
    list_all,
)
from keyturn.providers.probing import Answer, Probing, accepted, refused
from keyturn.providers.targets import parse_target
from keyturn.secret import Secret

PRIVATE_KEY = "private_key"
PUBLIC_KEY = "public_key"
REPO_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


class DeployKeyTarget(BaseModel):
    """Which repository's deploy key to rotate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(pattern=REPO_PATTERN, description="owner/name")
    title: str | None = Field(default=None, min_length=1, description="the key's title")
    read_only: bool | None = Field(default=None, description="default: as the old key")


def key_body(public_key: str) -> str:
    """"ssh-ed25519 AAAA..." without a comment: how GitHub stores and compares keys."""
    return " ".join(public_key.split()[:2])


def new_key_pair(seed: bytes) -> Secret:
    private = Ed25519PrivateKey.from_private_bytes(seed)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return {PRIVATE_KEY: pem.decode(), PUBLIC_KEY: public.decode()}


def public_key_of(secret: Secret, repo: str) -> str:
    """The public key the secret's private key derives; checks it matches `public_key`."""
    missing = sorted({PRIVATE_KEY, PUBLIC_KEY} - secret.keys())
    if missing:
        raise PermanentProviderError(
            f"deploy key secret for repository {repo!r} lacks field(s) {', '.join(missing)}"
        )
    try:
        private = serialization.load_ssh_private_key(secret[PRIVATE_KEY].encode(), password=None)
        derived = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    except (ValueError, TypeError, AttributeError):
        raise VerificationFailed(
            f"verify: the private key for repository {repo!r} is not an unencrypted OpenSSH key"
        ) from None
    if key_body(derived.decode()) != key_body(secret[PUBLIC_KEY]):
        raise VerificationFailed(
            f"verify: the private key for repository {repo!r} does not match its public key"
        )
    return key_body(secret[PUBLIC_KEY])


class GitHubDeployKeyProvider(Probing, GitHubProviderBase):
    """Rotates a repository's deploy key: add a new key, prove it is listed, delete the old."""

    name: ClassVar[str] = "github.deploy_key"
    target_model: ClassVar[type[BaseModel]] = DeployKeyTarget

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        return SecretShape(fields=(PRIVATE_KEY, PUBLIC_KEY))

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        keys = self._own_keys(t, ctx)
        if not keys:
            raise CredentialNotFound(
                f"repository {t.repo!r} has no deploy key{_titled(t.title)}; nothing to rotate"
            )
        return Precheck(old_credential_ids=[str(k["id"]) for k in keys])

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        t = _target(target)
        return [str(k["id"]) for k in self._own_keys(t, ctx)]

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        old = self._own_keys(t, ctx)
        title = t.title or (old[0]["title"] if old else None)
        if title is None:
            raise PermanentProviderError(
                f"repository {t.repo!r} has no deploy key to take a title from; set target.title"
            )
        read_only = t.read_only if t.read_only is not None else self._old_read_only(t, old)
        secret = new_key_pair(ctx.random.token_bytes(32))
        body = {"title": title, "key": secret[PUBLIC_KEY], "read_only": read_only}
        with github_errors(f"CreateDeployKey for repository {t.repo!r}"):
            _, key = call(self._api.admin(), "POST", f"/repos/{t.repo}/keys", body)
        return NewCredential(str(key["id"]), secret, generated_by=ctx.random.name)

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        public = public_key_of(secret, t.repo)
        keys = self.expect_accepted(t, public, f"repository {t.repo!r} does not list the new deploy key")
        match = [k for k in keys if key_body(k["key"]) == public]
        expected = t.read_only
        if expected is None:
            others = [k for k in self._titled(keys, match[0]["title"]) if k["id"] != match[0]["id"]]
            expected = others[0]["read_only"] if others else None
        if expected is not None and match[0]["read_only"] != expected:
            raise VerificationFailed(
                f"verify: deploy key {match[0]['id']} of repository {t.repo!r} has "
                f"read_only={match[0]['read_only']}, expected {expected}"
            )

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op: GitHub has no way to disable a deploy key (revocation is `delete`)."""

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op: see `disable`."""

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        key_id = _key_id(credential_id, t.repo)
        if all(k["id"] != key_id for k in self._keys(t)):
            return  # already gone: the goal of delete
        with github_errors(f"DeleteDeployKey {key_id} for repository {t.repo!r}"):
            call(self._api.admin(), "DELETE", f"/repos/{t.repo}/keys/{key_id}")

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        key_id = _key_id(credential_id, t.repo)
        keys = self._keys(t)
        if any(k["id"] == key_id for k in keys):
            raise StillValid(f"deploy key {key_id} is still on repository {t.repo!r}")
        if ctx.old_secret is None:
            return
        old_public = key_body(ctx.old_secret.get(PUBLIC_KEY, ""))
        carriers = [str(k["id"]) for k in keys if key_body(k["key"]) == old_public]
        if carriers:
            raise StillValid(
                f"the old public key of deploy key {key_id} is still on repository {t.repo!r} "
                f"as deploy key(s) {', '.join(carriers)}"
            )

    # -- GitHub calls -------------------------------------------------------------

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """Is the public key `secret` among the repository's deploy keys? Accepted with the list."""
        keys = self._keys(target)
        return accepted(keys) if any(key_body(k["key"]) == secret for k in keys) else refused()

    def _keys(self, t: DeployKeyTarget) -> list[dict[str, Any]]:
        """The repository's deploy keys as GitHub lists them (GET /repos/{o}/{r}/keys)."""
        with github_errors(f"ListDeployKeys for repository {t.repo!r}"):
            return list_all(self._api.admin(), f"/repos/{t.repo}/keys")

    def _own_keys(self, t: DeployKeyTarget, ctx: ProviderContext) -> list[dict[str, Any]]:
        """The target's keys: those with its title (explicit, from the old key, or the only one)."""
        keys = self._keys(t)
        if t.title is not None:
            return self._titled(keys, t.title)
        if ctx.old_secret and ctx.old_secret.get(PUBLIC_KEY):
            old_public = key_body(ctx.old_secret[PUBLIC_KEY])
            holders = [k for k in keys if key_body(k["key"]) == old_public]
            if holders:
                return self._titled(keys, holders[0]["title"])
        titles = {k["title"] for k in keys}
        if len(titles) > 1:
            raise PermanentProviderError(
                f"repository {t.repo!r} has deploy keys with {len(titles)} different titles; "
                "set target.title to say which one to rotate"
            )
        return keys

    @staticmethod
    def _titled(keys: list[dict[str, Any]], title: str) -> list[dict[str, Any]]:
        return [k for k in keys if k["title"] == title]

    @staticmethod
    def _old_read_only(t: DeployKeyTarget, old: list[dict[str, Any]]) -> bool:
        flags = {k["read_only"] for k in old}
        if len(flags) > 1:
            raise PermanentProviderError(
                f"deploy keys{_titled(t.title)} of repository {t.repo!r} differ in read_only; "
                "set target.read_only"
            )
        return flags.pop() if flags else True


def _target(target: Any) -> DeployKeyTarget:
    return parse_target(DeployKeyTarget, GitHubDeployKeyProvider.name, target)


def _titled(title: str | None) -> str:
    return f" titled {title!r}" if title else ""


def _key_id(credential_id: str, repo: str) -> int:
    if not credential_id.isdigit():
        raise PermanentProviderError(
            f"{credential_id!r} is not a deploy key id of repository {repo!r}"
        )
    return int(credential_id)
