"""Repository webhook secrets: the `github.webhook_secret` provider.

GitHub signs every delivery of a webhook with the hook's secret
(X-Hub-Signature-256: HMAC-SHA256 of the body). A hook holds ONE secret: the
moment a new one is set, GitHub signs with it and the old one is no longer
used, so this is a single-slot credential, and the API never shows the value
(config.secret reads "********").

Credential ids are fingerprints of the secret (`keyturn.fingerprint` of
{"webhook_secret": value}), never the value; the id of a secret nobody gave us
is "unknown". Which secret the hook signs with is found out by pinging it and
checking the ping delivery's signature against the candidates the activity
holds (ctx.old_secret, ctx.new_secret); each such check sends one `ping` event
to the receiver.

precheck: the hook exists and has a secret; the old id is the fingerprint of
  the store's value (ctx.old_secret), or "unknown" when the store has none.
create: a new random secret from ctx.random, set with
  PATCH /repos/{o}/{r}/hooks/{id}/config {"secret": ...}; secret {"webhook_secret": ...}.
verify: POST .../pings, read the new delivery (GET .../deliveries,
  .../deliveries/{delivery_id}) and check its X-Hub-Signature-256 against the
  HMAC-SHA256 of its payload under the new secret.
disable/enable: no-ops: GitHub cannot hold a secret in reserve, and a receiver
  rejects forgeries by its own copy of the secret, which `deliver` replaces.
delete: if the hook signs with that secret (or with one nobody gave us, when
  the id is not the old secret's), set another one: ctx.old_secret when that
  is a different value (the rollback of a new secret restores the old one),
  else ctx.new_secret, else a fresh random value nobody holds (the rolled-back
  value must not keep working).
confirm_revoked: a fresh ping is not signed with the secret of that id, and
  given ctx.old_secret, its signature does not verify under the old secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, ClassVar
from urllib.parse import quote_plus

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
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.github_common import (
    GitHubProviderBase,
    call,
    github_errors,
)
from keyturn.providers.targets import parse_target
from keyturn.randomness import token_hex
from keyturn.secret import Secret

FIELD = "webhook_secret"
UNKNOWN = "unknown"
REPO_PATTERN = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
RAILS_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}


class WebhookTarget(BaseModel):
    """Which repository webhook's secret to rotate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(pattern=REPO_PATTERN, description="owner/name")
    hook_id: int = Field(gt=0)


def secret_id(secret: Secret | None) -> str | None:
    """The credential id of a webhook secret: its fingerprint."""
    return fingerprint({FIELD: secret[FIELD]}) if secret and secret.get(FIELD) else None


def signed_bodies(payload: Any, content_type: str) -> list[bytes]:
    """The bodies GitHub may have signed for `payload`, as JSON or form.

    The deliveries API gives the payload parsed, not the bytes that were signed;
    GitHub sends compact JSON in key order, raw UTF-8 or, as Rails encodes it,
    with HTML-significant characters and U+2028/2029 escaped. All are tried.
    """
    compact = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    texts = {compact, json.dumps(payload, separators=(",", ":")), compact.translate(RAILS_ESCAPES)}
    if "x-www-form-urlencoded" in content_type:
        return [f"payload={quote_plus(text)}".encode() for text in texts]
    return [text.encode() for text in texts]


def signs(value: str, signature: str, bodies: list[bytes]) -> bool:
    """True if `signature` ("sha256=...") is the HMAC-SHA256 of one of `bodies` under `value`."""
    key = value.encode()
    return any(
        hmac.compare_digest("sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(), signature)
        for body in bodies
    )


class GitHubWebhookSecretProvider(GitHubProviderBase):
    """Rotates a repository webhook's secret, proving it by GitHub's own signed pings."""

    name: ClassVar[str] = "github.webhook_secret"
    target_model: ClassVar[type[BaseModel]] = WebhookTarget
    default_attempts: ClassVar[int] = 10  # ping deliveries show up after a delay

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        return SecretShape(fields=(FIELD,))

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        if not self._has_secret(t):
            raise CredentialNotFound(f"{_hook(t)} has no secret; nothing to rotate")
        return Precheck(old_credential_ids=[secret_id(ctx.old_secret) or UNKNOWN])

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        t = _target(target)
        if not self._has_secret(t):
            return []
        return [self._current_id(t, ctx)]

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        secret = {FIELD: token_hex(ctx.random, 32)}
        self._set_secret(t, secret[FIELD], "UpdateWebhookConfig")
        return NewCredential(str(secret_id(secret)), secret, generated_by=ctx.random.name)

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        if not secret.get(FIELD):
            raise PermanentProviderError(f"webhook secret for {_hook(t)} lacks {FIELD!r}")
        signature, bodies = self._ping(t)
        if not signature or not signs(secret[FIELD], signature, bodies):
            raise VerificationFailed(
                f"verify: the ping delivery of {_hook(t)} is not signed with the new secret"
            )

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op: a hook has one secret and no reserve slot (see the module docstring)."""

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """No-op: see `disable`."""

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        if not self._has_secret(t):
            return
        current = self._current_id(t, ctx)
        old_id, new_id = secret_id(ctx.old_secret), secret_id(ctx.new_secret)
        # A secret we do not hold may be the one to delete (a rollback whose staged value
        # was replaced, an attempt that died before staging); it is never the old one.
        if current != credential_id and (current != UNKNOWN or credential_id == old_id):
            return  # the hook does not sign with that secret (any more)
        if ctx.old_secret and old_id != credential_id:
            replacement = ctx.old_secret[FIELD]
        elif ctx.new_secret and current == credential_id and new_id != credential_id:
            replacement = ctx.new_secret[FIELD]
        else:
            replacement = token_hex(ctx.random, 32)  # nobody holds it: the hook's receiver
        self._set_secret(t, replacement, f"DeleteWebhookSecret {credential_id}")

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        signature, bodies = self._ping(t)
        current = self._match(signature, bodies, ctx)
        if current == credential_id:
            raise StillValid(
                f"{_hook(t)} still signs with secret {credential_id}"
                + (" (no other secret known to tell it apart)" if current == UNKNOWN else "")
            )
        if ctx.old_secret and signature and signs(ctx.old_secret[FIELD], signature, bodies):
            raise StillValid(f"{_hook(t)} still signs with the old secret")

    # -- GitHub calls -------------------------------------------------------------

    def _has_secret(self, t: WebhookTarget) -> bool:
        with github_errors(f"GetWebhookConfig for {_hook(t)}"):
            _, config = call(self._api.admin(), "GET", f"{_path(t)}/config")
        return bool(config.get("secret"))

    def _set_secret(self, t: WebhookTarget, value: str, operation: str) -> None:
        with github_errors(f"{operation} for {_hook(t)}", value):
            call(self._api.admin(), "PATCH", f"{_path(t)}/config", {"secret": value})

    def _current_id(self, t: WebhookTarget, ctx: ProviderContext) -> str:
        signature, bodies = self._ping(t)
        return self._match(signature, bodies, ctx) or UNKNOWN

    @staticmethod
    def _match(signature: str | None, bodies: list[bytes], ctx: ProviderContext) -> str | None:
        """The id of the candidate secret that made `signature`; UNKNOWN if none; None if unsigned."""
        if not signature:
            return None
        for candidate in (ctx.new_secret, ctx.old_secret):
            if candidate and candidate.get(FIELD) and signs(candidate[FIELD], signature, bodies):
                return secret_id(candidate)
        return UNKNOWN

    def _ping(self, t: WebhookTarget) -> tuple[str | None, list[bytes]]:
        """Ping the hook; the new delivery's signature (None if unsigned) and candidate bodies."""
        gh = self._api.admin()
        deliveries = f"{_path(t)}/deliveries"
        with github_errors(f"PingWebhook {_hook(t)}"):
            _, before = call(gh, "GET", deliveries, params={"per_page": 1})
            newest = max((d["id"] for d in before), default=0)
            call(gh, "POST", f"{_path(t)}/pings")

            def new_pings() -> list[dict[str, Any]]:
                _, recent = call(gh, "GET", deliveries, params={"per_page": 30})
                return [d for d in recent if d["id"] > newest and d.get("event") == "ping"]

            pings = self._propagation.settle(new_pings, bool)
            if not pings:
                raise TransientProviderError(
                    f"no ping delivery of {_hook(t)} appeared "
                    f"after {self._propagation.attempts} attempts"
                )
            ping_id = max(d["id"] for d in pings)
            _, delivery = call(gh, "GET", f"{deliveries}/{ping_id}")
        request = delivery.get("request") or {}
        headers = {k.lower(): v for k, v in (request.get("headers") or {}).items()}
        bodies = signed_bodies(request.get("payload"), headers.get("content-type", "json"))
        return headers.get("x-hub-signature-256"), bodies


def _target(target: Any) -> WebhookTarget:
    return parse_target(WebhookTarget, GitHubWebhookSecretProvider.name, target)


def _path(t: WebhookTarget) -> str:
    return f"/repos/{t.repo}/hooks/{t.hook_id}"


def _hook(t: WebhookTarget) -> str:
    return f"webhook {t.hook_id} of repository {t.repo!r}"
