"""npm registry access tokens: the `npm.token` provider.

Rotates an npm user's own token through the registry's token API (npmjs.org,
Verdaccio and other registries that implement `/-/npm/v1/tokens`). The API is
authenticated as the user: every call presents one of the user's tokens as a
bearer token, and creating a token also needs the account password.

Which token authenticates which step (both come from the stores via the
activity's ProviderContext, as {"token": ...}):

- precheck, create: `ctx.old_secret`, the token being replaced (still live).
- list_credential_ids: the old token, else `ctx.new_secret` if the old one is
  rejected (after revoke only the new one works).
- delete, confirm_revoked: `ctx.new_secret` first, then the old token. delete
  prefers a token other than the one it deletes; the token being deleted is the
  last resort (npm lets a token revoke itself; a read-only token cannot revoke
  anything).

The credential id is the token's `key` from the token list, never the token.
The list abbreviates each token (Verdaccio: first and last five characters;
npmjs: a prefix), which is how precheck finds the key of the current token.

The password comes from the constructor's `password_for(username)` or, by
default, the environment variable KEYTURN_NPM_PASSWORD (one npm user per
worker). Accounts with two-factor authentication for writes also need a
one-time password to create a token: not supported, use an account (or a
registry) without 2FA on token management.

npm has no way to disable a token: `disable`/`enable` are documented no-ops and
revocation is `delete`. A read-only token cannot create or revoke tokens, so it
cannot authorise its own rotation: precheck refuses such a current token.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator

from keyturn.httpstatus import REJECTED
from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    ProviderDefaults,
    SecretShape,
)
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
    for_status,
)
from keyturn.providers.probing import Answer, Probing, accepted, refused
from keyturn.providers.propagation import Propagation
from keyturn.providers.targets import parse_target
from keyturn.secret import Secret, redact

TOKEN = "token"
DEFAULT_REGISTRY = "https://registry.npmjs.org"
REGISTRY_ENV = "KEYTURN_NPM_REGISTRY"
PASSWORD_ENV = "KEYTURN_NPM_PASSWORD"
MAX_LIST_PAGES = 100

# HTTP statuses are classified by keyturn's one table (keyturn.httpstatus);
# connection failures and timeouts are transient.

PasswordLookup = Callable[[str], str | None]
"""callable(username) -> that npm user's password, or None if unknown."""


def password_from_env(username: str) -> str | None:
    """The default password lookup: KEYTURN_NPM_PASSWORD, whatever the user."""
    return os.environ.get(PASSWORD_ENV) or None


class NpmTokenTarget(BaseModel):
    """Which npm user's token to rotate, and what kind of token to make."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=214)
    registry: str | None = Field(default=None, pattern=r"^https?://[^\s/]+")
    """Registry URL; default: the provider's, KEYTURN_NPM_REGISTRY, or registry.npmjs.org."""
    readonly: bool = False
    """Make a read-only token. Note: a read-only token cannot authorise its own next rotation."""
    cidr_whitelist: list[str] = Field(default_factory=list)
    """Client networks the new token may be used from; the worker must be inside them."""

    @field_validator("cidr_whitelist")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad entry
        return value


def abbreviates(listed: str, token: str) -> bool:
    """Is a token list entry's abbreviated `token` field an abbreviation of `token`?

    Verdaccio lists "abcde...vwxyz" (first and last five characters), npmjs a
    prefix, sometimes ended with "…"; npm's own `npm token revoke` matches the same way.
    """
    for ellipsis in ("...", "…"):
        if ellipsis in listed:
            head, _, tail = listed.partition(ellipsis)
            return (
                len(token) >= len(head) + len(tail)
                and token.startswith(head)
                and token.endswith(tail)
            )
    return bool(listed) and token.startswith(listed)


class NpmTokenProvider(Probing, ProviderDefaults):
    """Rotates an npm user's token: create with password, verify with whoami, revoke by key."""

    name: ClassVar[str] = "npm.token"
    target_model: ClassVar[type[BaseModel]] = NpmTokenTarget
    family: ClassVar[str] = "npm"

    def __init__(
        self,
        *,
        registry: str | None = None,
        password_for: PasswordLookup | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        delay: float = 1.0,
    ) -> None:
        """registry: default registry URL (a target's `registry` wins; else KEYTURN_NPM_REGISTRY).

        password_for: the npm password of a username (default: KEYTURN_NPM_PASSWORD).
        attempts, delay: how often verify and confirm_revoked ask whoami before giving up.
        """
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._registry = registry
        self._password_for = password_for or password_from_env
        self._http = session or requests.Session()
        self._timeout = timeout
        self._propagation = Propagation(attempts, delay)

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        return SecretShape(fields=(TOKEN,), reads_current=True)

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        token = self._token_of(t, ctx.old_secret, "precheck", "the current token")
        self._password(t, "precheck")
        where = self._where(t)
        user = self._whoami(t, token, "precheck: whoami", [token])
        if user is None:
            raise AccessDenied(f"precheck: {where} rejects the current token (whoami)")
        if user != t.username:
            raise PermanentProviderError(
                f"precheck: the current token belongs to npm user {user!r}, not {where}"
            )
        entry = self._entry_for(t, self._list(t, [token], "precheck: list tokens"), token)
        if entry is None:
            raise CredentialNotFound(
                f"precheck: the current token of {where} is not in the user's token list "
                "(a login session?), so it cannot be revoked through the token API"
            )
        if entry.get("readonly"):
            raise AccessDenied(
                f"precheck: the current token {entry['key']} of {where} is read-only: the "
                "registry refuses to create or revoke tokens with it, so it cannot authorise "
                "its own rotation"
            )
        return Precheck(old_credential_ids=[str(entry["key"])])

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        t = _target(target)
        tokens = self._tokens(t, "list tokens", ctx.old_secret, ctx.new_secret)
        return [str(e["key"]) for e in self._list(t, tokens, "list tokens")]

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        token = self._token_of(t, ctx.old_secret, "create token", "the current token")
        password = self._password(t, "create token")
        body = {"password": password, "readonly": t.readonly, "cidr_whitelist": t.cidr_whitelist}
        secrets = [token, password]
        response = self._send("POST", t, "/-/npm/v1/tokens", token, "create token", secrets, body)
        self._raise_for(response, t, "create token", secrets)
        answer = _json(response)
        new_token, key = answer.get(TOKEN), answer.get("key")
        if not isinstance(new_token, str) or not new_token or not isinstance(key, str) or not key:
            raise PermanentProviderError(
                f"create token for {self._where(t)}: the answer lacks the token or its key"
            )
        return NewCredential(credential_id=key, secret={TOKEN: new_token})

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        token = self._token_of(t, secret, "verify", "the new token")
        user = self.expect_accepted(t, token, f"{self._where(t)} rejected the new token")
        if user != t.username:
            raise VerificationFailed(
                f"verify: the new token authenticates as npm user {user!r}, not {self._where(t)}"
            )

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op: npm tokens cannot be disabled, only deleted (revoke-first deletes at revoke)."""

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op, as `disable` is."""

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        operation = f"delete token {credential_id}"
        tokens = self._tokens(t, operation, ctx.new_secret, ctx.old_secret)
        entry = next(
            (e for e in self._list(t, tokens, operation) if e["key"] == credential_id), None
        )
        if entry is None:
            return  # already gone: the goal of delete
        listed = str(entry.get(TOKEN) or "")
        # Prefer a token other than the one being deleted (sorted() is stable).
        tokens = sorted(tokens, key=lambda token: abbreviates(listed, token))
        path = f"/-/npm/v1/tokens/token/{credential_id}"
        response, _ = self._first_accepted(
            tokens, lambda token: self._send("DELETE", t, path, token, operation, tokens)
        )
        if response.status_code != 404:
            self._raise_for(response, t, operation, tokens)

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        operation = f"confirm revoked token {credential_id}"
        tokens = self._tokens(t, operation, ctx.new_secret, ctx.old_secret)
        if credential_id in (e["key"] for e in self._list(t, tokens, operation)):
            raise StillValid(
                f"token {credential_id} is still in the token list of {self._where(t)}"
            )
        if ctx.old_secret is None:
            return
        old = self._token_of(t, ctx.old_secret, operation, "the old token")
        self.expect_refused(
            t, old,
            f"token {credential_id} is gone from the token list of {self._where(t)} but the "
            "registry still accepted the old token",
            step=operation,
        )

    # -- registry calls -----------------------------------------------------------

    def _base(self, t: NpmTokenTarget) -> str:
        base = t.registry or self._registry or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            # Never echo it: a URL with user:password@ would put a secret into the message.
            raise PermanentProviderError(
                f"npm.token for user {t.username!r}: the registry URL must be http(s)://host[/path] "
                "without credentials"
            )
        return base.rstrip("/")

    def _where(self, t: NpmTokenTarget) -> str:
        return f"npm user {t.username!r} at {self._base(t)}"

    def _password(self, t: NpmTokenTarget, operation: str) -> str:
        password = self._password_for(t.username)
        if not password:
            raise PermanentProviderError(
                f"{operation} for {self._where(t)}: no password for this user (set "
                f"{PASSWORD_ENV}); npm requires the account password to create a token"
            )
        return password

    def _tokens(self, t: NpmTokenTarget, operation: str, *secrets: Secret | None) -> list[str]:
        """The tokens among `secrets` (in that order, without repeats); at least one."""
        tokens = list(dict.fromkeys(s[TOKEN] for s in secrets if s and s.get(TOKEN)))
        if not tokens:
            raise PermanentProviderError(
                f"{operation} for {self._where(t)} needs one of the user's tokens, and the "
                "store holds none for this credential"
            )
        return tokens

    def _token_of(self, t: NpmTokenTarget, secret: Secret | None, operation: str, what: str) -> str:
        if not secret or not secret.get(TOKEN):
            raise PermanentProviderError(
                f"{operation} for {self._where(t)} needs {what} (a secret with a {TOKEN!r} field)"
            )
        return secret[TOKEN]

    def _send(
        self,
        method: str,
        t: NpmTokenTarget,
        url: str,
        token: str,
        operation: str,
        secrets: Iterable[str],
        body: dict[str, Any] | None = None,
    ) -> requests.Response:
        """One request authenticated with `token`; `url` is absolute or a path on the registry."""
        try:
            return self._http.request(
                method,
                url if "://" in url else self._base(t) + url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                json=body,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            kind = (
                TransientProviderError
                if isinstance(exc, requests.ConnectionError | requests.Timeout)
                else PermanentProviderError
            )
            detail = redact(f"{type(exc).__name__}: {exc}", secrets)
            raise kind(f"{operation} for {self._where(t)} failed: {detail}") from None

    def _raise_for(
        self, response: requests.Response, t: NpmTokenTarget, operation: str, secrets: Iterable[str]
    ) -> None:
        """Raise the classified error for a failed answer; return for a 2xx."""
        if response.ok:
            return
        detail = f"{response.status_code} {response.reason}"
        message = _json(response).get("error") or _json(response).get("message")
        if isinstance(message, str):
            detail += f" ({message})"
        raise for_status(response.status_code)(
            f"{operation} for {self._where(t)} failed: {redact(detail, secrets)}"
        )

    def _first_accepted(
        self, tokens: list[str], send: Callable[[str], requests.Response]
    ) -> tuple[requests.Response, str]:
        """Send with each token in turn until the registry does not reject it (401/403).

        Returns the last answer and the token it was sent with.
        """
        for token in tokens:
            response = send(token)
            if response.status_code not in REJECTED:
                break
        return response, token

    def _list(self, t: NpmTokenTarget, tokens: list[str], operation: str) -> list[dict[str, Any]]:
        """Every token entry of the user (all pages), authenticated with the first accepted token."""
        url = "/-/npm/v1/tokens"
        response, token = self._first_accepted(
            tokens, lambda token: self._send("GET", t, url, token, operation, tokens)
        )
        entries: list[dict[str, Any]] = []
        for _ in range(MAX_LIST_PAGES):
            self._raise_for(response, t, operation, tokens)
            page = _json(response)
            objects = page.get("objects")
            if not isinstance(objects, list) or not all(
                isinstance(e, dict) and isinstance(e.get("key"), str) for e in objects
            ):
                raise PermanentProviderError(
                    f"{operation} for {self._where(t)}: the token list is malformed"
                )
            entries += objects
            following = (page.get("urls") or {}).get("next")
            if not following:
                return entries
            url = self._same_origin(t, response.url, following, operation)
            response = self._send("GET", t, url, token, operation, tokens)
        raise PermanentProviderError(
            f"{operation} for {self._where(t)}: the token list has more than {MAX_LIST_PAGES} pages"
        )

    def _same_origin(self, t: NpmTokenTarget, current: str, following: str, operation: str) -> str:
        """The next page's absolute URL; never send a token to another host."""
        absolute = urljoin(current, following)
        if urlsplit(absolute)[:2] != urlsplit(self._base(t))[:2]:
            raise PermanentProviderError(
                f"{operation} for {self._where(t)}: the token list's next page is on another "
                "host; not following it"
            )
        return absolute

    def _entry_for(
        self, t: NpmTokenTarget, entries: list[dict[str, Any]], token: str
    ) -> dict[str, Any] | None:
        """The list entry whose abbreviation matches `token` (None if none; error if several)."""
        matches = [e for e in entries if abbreviates(str(e.get(TOKEN) or ""), token)]
        if len(matches) > 1:
            keys = ", ".join(str(e["key"]) for e in matches)
            raise PermanentProviderError(
                f"precheck: cannot tell which of the tokens {keys} of {self._where(t)} is the "
                "current one (their listed abbreviations are the same)"
            )
        return matches[0] if matches else None

    def _whoami(
        self, t: NpmTokenTarget, token: str, operation: str, secrets: Iterable[str]
    ) -> str | None:
        """The username `token` authenticates as, or None if the registry rejects it.

        Verdaccio answers an unknown token as anonymous (200 without a username).
        """
        response = self._send("GET", t, "/-/whoami", token, operation, secrets)
        if response.status_code in REJECTED:
            return None
        self._raise_for(response, t, operation, secrets)
        username = _json(response).get("username")
        return username if isinstance(username, str) and username else None

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """Ask whoami about the token `secret`: accepted with the username, or refused."""
        user = self._whoami(target, secret, f"{step}: whoami", [secret])
        return refused() if user is None else accepted(user)


def _target(target: Any) -> NpmTokenTarget:
    return parse_target(NpmTokenTarget, "npm.token", target)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    return answer if isinstance(answer, dict) else {}
