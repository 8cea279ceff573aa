"""GitHub personal access tokens: the `github.pat` provider (supplied by an operator).

No API creates a personal access token: an operator makes the replacement in
GitHub's settings and puts it into the store (`keyturn supply`); the run then
calls `create`, which only identifies the supplied value. GitHub cannot list a
user's tokens either, so the tokens this provider knows are the ones the
activity holds: ctx.old_secret (the current token, from the store) and
ctx.new_secret (the supplied one). A secret is {"token": ...}, optionally with
"token_name" (the token's name in GitHub's settings) to tell apart two
fine-grained tokens of the same owner in an organization.

Credential ids are never the token:
  - with target.org: the id of the token's approved grant in
    GET /orgs/{org}/personal-access-tokens, matched by owner, the secret's
    token_name if given, and the token's expiry (the GitHub-Authentication-
    Token-Expiration header of GET /user). GitHub only lets a GitHub App
    (installation or user token with the organization's "Personal access
    tokens" permission) use that endpoint: give such a token as the admin token.
  - otherwise: the fingerprint of {"token": value}.

precheck: the current token authenticates as target.owner (GET /user); one
  GitHub already rejects needs no revoking (no old id is returned).
create: GET /user with the supplied token answers target.owner.
verify: as create, and the token has target.scopes (X-OAuth-Scopes; classic
  tokens only) and, with target.org, an approved grant in the organization.
disable/enable: GitHub cannot suspend a token; both are no-ops.
delete: the token value (when the activity holds the one with that id) goes to
  the credential revocation API (POST /credentials/revoke: GitHub revokes it
  everywhere); with target.org the grant is revoked too
  (POST /orgs/{org}/personal-access-tokens {"action": "revoke"}). Without the
  value and an org grant there is nothing GitHub can be asked to do: a warning
  is logged, and confirm_revoked refuses to call the token dead.
confirm_revoked: with target.org the grant is no longer listed; given the old
  token, GET /user with it answers 401.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests
from github import GithubException
from pydantic import BaseModel, ConfigDict, Field

from keyturn.fingerprint import fingerprint
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
    ProviderError,
    StillValid,
    VerificationFailed,
)
from keyturn.providers.github_common import (
    GitHubProviderBase,
    call,
    github_errors,
    list_all,
    map_github_error,
)
from keyturn.providers.probing import Answer, Probing, accepted, refused
from keyturn.providers.targets import parse_target
from keyturn.secret import Secret

log = logging.getLogger(__name__)

TOKEN = "token"
TOKEN_NAME = "token_name"
EXPIRY_HEADER = "github-authentication-token-expiration"
LOGIN_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$"

# Classic OAuth scopes that include others (GitHub's scope documentation).
IMPLIED_SCOPES: dict[str, set[str]] = {
    "repo": {"repo:status", "repo_deployment", "public_repo", "repo:invite", "security_events"},
    "admin:org": {"write:org", "read:org", "manage_runners:org"},
    "write:org": {"read:org"},
    "admin:public_key": {"write:public_key", "read:public_key"},
    "write:public_key": {"read:public_key"},
    "admin:repo_hook": {"write:repo_hook", "read:repo_hook"},
    "write:repo_hook": {"read:repo_hook"},
    "admin:org_hook": set(),
    "user": {"read:user", "user:email", "user:follow"},
    "write:packages": {"read:packages"},
    "admin:gpg_key": {"write:gpg_key", "read:gpg_key"},
    "write:gpg_key": {"read:gpg_key"},
}


class PatTarget(BaseModel):
    """Whose personal access token to rotate, and what it must still be able to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str = Field(pattern=LOGIN_PATTERN, description="login the token belongs to")
    org: str | None = Field(
        default=None, pattern=LOGIN_PATTERN, description="organization that approved the token"
    )
    scopes: tuple[str, ...] = Field(default=(), description="classic scopes the token must have")


def granted_scopes(header: str) -> set[str]:
    """The scopes in an X-OAuth-Scopes header, with the ones they imply."""
    scopes = {s.strip() for s in header.split(",") if s.strip()}
    return scopes.union(*(IMPLIED_SCOPES.get(s, set()) for s in scopes))


def parse_time(text: str | None) -> datetime | None:
    """A GitHub timestamp: ISO 8601, or the expiry header's "2026-05-01 12:00:00 UTC"."""
    if not text:
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S %z"):
        try:
            parsed = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromisoformat(text)


def token_fingerprint(secret: Secret) -> str:
    return fingerprint({TOKEN: secret[TOKEN]})


class GitHubPatProvider(Probing, GitHubProviderBase):
    """Identifies, verifies and revokes personal access tokens an operator supplies."""

    name: ClassVar[str] = "github.pat"
    target_model: ClassVar[type[BaseModel]] = PatTarget
    supplied: ClassVar[bool] = True

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        """The supplied token, and optionally its name (to tell apart same-owner grants)."""
        return SecretShape(fields=(TOKEN, TOKEN_NAME), optional=frozenset({TOKEN_NAME}),
                           reads_current=True)

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        old = _token(ctx.old_secret)
        if old is None:
            raise PermanentProviderError(
                f"github.pat of {t.owner!r}: the store holds no current token; GitHub cannot "
                "list tokens, so deliver the current one first or revoke it by hand"
            )
        found = self._token_id(t, old, PermanentProviderError)
        return Precheck(old_credential_ids=[found] if found else [])

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        t = _target(target)
        ids = []
        for secret in _known(ctx):
            try:
                found = self._token_id(t, secret, PermanentProviderError)
            except CredentialNotFound:
                continue  # authenticates, but has no grant in the organization
            if found and found not in ids:
                ids.append(found)
        return ids

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        new = _token(ctx.new_secret)
        if new is None:
            raise PermanentProviderError(
                f"github.pat of {t.owner!r} is supplied: put the new token into the store "
                "with `keyturn supply` first"
            )
        old = _token(ctx.old_secret)
        if old is not None and old[TOKEN] == new[TOKEN]:
            raise VerificationFailed(
                f"the token supplied for {t.owner!r} is the one being replaced"
            )
        found = self._token_id(t, new, VerificationFailed)
        if found is None:
            raise VerificationFailed(f"GitHub rejects the token supplied for {t.owner!r} (401)")
        return NewCredential(found, dict(new))

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        token = _token(secret)
        if token is None:
            raise PermanentProviderError(f"token secret for {t.owner!r} lacks {TOKEN!r}")
        login, headers = self.expect_accepted(t, token, f"GitHub rejected the token of {t.owner!r}")
        if login.lower() != t.owner.lower():
            raise VerificationFailed(f"verify: the token authenticates as {login!r}, not {t.owner!r}")
        missing = sorted(set(t.scopes) - granted_scopes(headers.get("x-oauth-scopes", "")))
        if missing:
            raise VerificationFailed(
                f"verify: the token of {t.owner!r} lacks scope(s) {', '.join(missing)} "
                "(fine-grained tokens have no OAuth scopes: drop target.scopes for them)"
            )
        if t.org:
            try:
                self._grant_id(t, token, headers)
            except CredentialNotFound as exc:
                raise VerificationFailed(f"verify: {exc}") from None

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op: GitHub cannot suspend a personal access token (revocation is `delete`)."""

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op: see `disable`."""

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        values = [s[TOKEN] for s in _known(ctx) if self._is(t, s, credential_id)]
        if values:
            with github_errors(f"RevokeCredentials for token {credential_id} of {t.owner!r}", *values):
                call(self._api.as_token(None), "POST", "/credentials/revoke", {"credentials": values})
        if t.org:
            grant = _grant_number(credential_id)
            if grant in self._grants(t):
                with github_errors(f"RevokePatGrant {grant} in organization {t.org!r}"):
                    call(self._api.admin(), "POST", f"/orgs/{t.org}/personal-access-tokens",
                         {"action": "revoke", "pat_ids": [grant]})
        elif not values:
            # Nothing to send: GitHub revokes a classic/unscoped token only given its value.
            # confirm_revoked cannot prove it dead either, and says so (StillValid).
            log.warning(
                "github.pat: token %s of %r cannot be revoked without its value; revoke it "
                "in the owner's GitHub settings", credential_id, t.owner,
            )

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        if t.org and _grant_number(credential_id) in self._grants(t):
            raise StillValid(
                f"token grant {credential_id} of {t.owner!r} is still approved in "
                f"organization {t.org!r}"
            )
        old = _token(ctx.old_secret)
        if old is None:
            if t.org:
                return
            raise StillValid(
                f"cannot prove token {credential_id} of {t.owner!r} is revoked without its value"
            )
        if not t.org and token_fingerprint(old) != credential_id:
            raise PermanentProviderError(
                f"confirm_revoked: the old token given for {t.owner!r} is not token {credential_id}"
            )
        self.expect_refused(t, old, f"token {credential_id} of {t.owner!r} is still accepted by GitHub")

    # -- GitHub calls -------------------------------------------------------------

    def _whoami(self, t: PatTarget, token: Secret) -> tuple[str | None, dict[str, Any]]:
        """(login, response headers) for GET /user with `token`; (None, {}) on 401."""
        try:
            headers, user = call(self._api.as_token(token[TOKEN]), "GET", "/user")
        except GithubException as exc:
            if exc.status == 401:
                return None, {}
            raise map_github_error(
                exc, f"GetAuthenticatedUser for {t.owner!r}", (token[TOKEN],)
            ) from None
        except (requests.RequestException, OSError) as exc:
            raise map_github_error(
                exc, f"GetAuthenticatedUser for {t.owner!r}", (token[TOKEN],)
            ) from None
        return str(user["login"]), headers

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """GET /user with the token: accepted with (login, headers), or refused (401)."""
        login, headers = self._whoami(target, secret)
        return refused("401") if login is None else accepted((login, headers))

    def _token_id(
        self, t: PatTarget, token: Secret, mismatch: type[ProviderError]
    ) -> str | None:
        """The credential id of a token that authenticates as the owner; None if rejected."""
        login, headers = self._whoami(t, token)
        if login is None:
            return None
        if login.lower() != t.owner.lower():
            raise mismatch(f"the token given for {t.owner!r} authenticates as {login!r}")
        return self._grant_id(t, token, headers) if t.org else token_fingerprint(token)

    def _is(self, t: PatTarget, token: Secret, credential_id: str) -> bool:
        if not t.org:
            return token_fingerprint(token) == credential_id
        try:
            return self._token_id(t, token, PermanentProviderError) == credential_id
        except (CredentialNotFound, PermanentProviderError):
            return False

    def _grants(self, t: PatTarget) -> dict[int, dict[str, Any]]:
        """The owner's approved fine-grained token grants in the organization, by grant id."""
        with github_errors(f"ListPatGrants of {t.owner!r} in organization {t.org!r}"):
            grants = list_all(
                self._api.admin(), f"/orgs/{t.org}/personal-access-tokens", {"owner[]": t.owner}
            )
        return {g["id"]: g for g in grants if g["owner"]["login"].lower() == t.owner.lower()}

    def _grant_id(self, t: PatTarget, token: Secret, headers: dict[str, Any]) -> str:
        """The grant of this token: same owner, token_name (if given) and expiry."""
        expiry = parse_time(headers.get(EXPIRY_HEADER))
        candidates = [
            g for g in self._grants(t).values()
            if not g.get("token_expired")
            and token.get(TOKEN_NAME) in (None, g.get("token_name"))
            and parse_time(g.get("token_expires_at")) == expiry
        ]
        if len(candidates) == 1:
            return str(candidates[0]["id"])
        if not candidates:
            raise CredentialNotFound(
                f"organization {t.org!r} has no approved fine-grained token grant of "
                f"{t.owner!r} matching the token"
            )
        raise PermanentProviderError(
            f"{len(candidates)} fine-grained token grants of {t.owner!r} in organization "
            f"{t.org!r} match the token; supply it with its {TOKEN_NAME!r}"
        )


def _target(target: Any) -> PatTarget:
    return parse_target(PatTarget, GitHubPatProvider.name, target)


def _token(secret: Secret | None) -> Secret | None:
    return secret if secret and secret.get(TOKEN) else None


def _known(ctx: ProviderContext) -> list[Secret]:
    return [s for s in (_token(ctx.old_secret), _token(ctx.new_secret)) if s is not None]


def _grant_number(credential_id: str) -> int:
    if not credential_id.isdigit():
        raise PermanentProviderError(f"{credential_id!r} is not a fine-grained token grant id")
    return int(credential_id)
