"""Webhook signing secrets of any HTTP API, declared as templated calls: `http.webhook`.

The runbook describes the vendor's API in the target
(keyturn.providers.webhook_target) with `{{ name }}` templates
(keyturn.providers.webhook_templates); this module sends those calls.

The secret is drawn from `ctx.random` (format per `generate`) unless the
service makes it (`create.secret_from`); the store receives `{<secret_field>:
value, <id_field>: credential id}`. The API token is read on the worker from
the variable `auth.token_env` names (targets travel through workflow history).

Proof: `verify` calls the verify request and either checks an HMAC the service
computed with the secret (a test delivery) or, without `hmac`, counts any 2xx
as acceptance (then the call must send `{{ secret }}`). Statuses in
`verify.rejected_statuses` (default 404) mean "not accepted". Without
`disable`/`enable` calls those steps are no-ops and the old secret stays valid
until `revoke`. The list call must return every secret in one response.

Statuses: 2xx ok, 401/403 AccessDenied, 404 CredentialNotFound (fine for
revoke), 408/429/5xx transient, any other permanent. Redirects are not
followed. Error messages name the call and URL, never the response body (a
vendor may echo a secret).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any, ClassVar

import requests
from pydantic import BaseModel

from keyturn import httpstatus
from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    ProviderDefaults,
    SecretShape,
)
from keyturn.providers.errors import (
    CredentialNotFound,
    PermanentProviderError,
    ProviderError,
    QuotaExceeded,
    StillValid,
    TransientProviderError,
    VerificationFailed,
    for_status,
)
from keyturn.providers.probing import Answer, Probing, accepted, refused
from keyturn.providers.propagation import Propagation
from keyturn.providers.targets import parse_target
from keyturn.providers.webhook_target import Call, HttpWebhookTarget, where
from keyturn.providers.webhook_templates import (
    CREDENTIAL_ID,
    OLD_CREDENTIAL_ID,
    SECRET,
    render,
    render_json,
)
from keyturn.secret import Secret


def classify(status_or_exc: int | Exception) -> type[ProviderError] | None:
    """The provider error for an HTTP status (keyturn.httpstatus) or a requests exception;
    None for a 2xx. Connection failures and timeouts are transient."""
    if isinstance(status_or_exc, Exception):
        if isinstance(status_or_exc, requests.ConnectionError | requests.Timeout):
            return TransientProviderError
        return PermanentProviderError
    return None if httpstatus.ok(status_or_exc) else for_status(status_or_exc)


class HttpWebhookProvider(Probing, ProviderDefaults):
    """Rotates a webhook signing secret through a vendor API described in the target."""

    name: ClassVar[str] = "http.webhook"
    target_model: ClassVar[type[BaseModel]] = HttpWebhookTarget
    family: ClassVar[str] = "http"

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        verify_attempts: int = 3,
        verify_delay: float = 2.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._environ = environ
        self._session = session or requests.Session()
        self._timeout = timeout
        self._propagation = Propagation(verify_attempts, verify_delay)

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        """The secret and its id, under the names the target gives them."""
        if target is None:
            defaults = HttpWebhookTarget.model_fields
            names = (defaults["secret_field"].default, defaults["id_field"].default)
        else:
            t = _target(target)
            names = (t.secret_field, t.id_field)
        return SecretShape(fields=names, id_field=names[1])

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        items = self._list(t)
        active = [i for i, on in items if on]
        inactive = [i for i, on in items if not on]
        if not active:
            found = f" (inactive: {', '.join(inactive)})" if inactive else ""
            raise CredentialNotFound(f"{where(t)} has no active secret{found}; nothing to rotate")
        removed: list[str] = []
        if t.max_credentials is not None and len(items) >= t.max_credentials:
            if not inactive:
                raise QuotaExceeded(
                    f"{where(t)} already holds {len(items)} active secrets (at most "
                    f"{t.max_credentials}: {', '.join(active)}); revoke one no longer in use, "
                    "then run again"
                )
            if not ctx.dry_run:
                self.delete(t, inactive[0], ctx)  # an inactive secret signs nothing
            removed.append(inactive[0])
        return Precheck(old_credential_ids=active, removed_inactive=removed)

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        return [i for i, _ in self._list(_target(target))]

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        values = dict(t.vars)
        generated_by = None
        if not t.create.secret_from:
            values[SECRET] = t.generate.draw(ctx.random)
            generated_by = ctx.random.name
        old_id = (ctx.old_secret or {}).get(t.id_field)
        if old_id:
            values[OLD_CREDENTIAL_ID] = old_id
        document = self._json(t, "create", t.create, values)
        credential_id = t.read(document, t.create.id_from, "create", scalar=True)
        if t.create.secret_from:
            try:
                values[SECRET] = t.read(document, t.create.secret_from, "create", scalar=True)
            except PermanentProviderError:
                self.delete(t, credential_id, ctx)
                raise
        return NewCredential(
            credential_id=credential_id,
            secret={t.secret_field: values[SECRET], t.id_field: credential_id},
            generated_by=generated_by,
        )

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        self.expect_accepted(t, secret, f"{where(t)} rejected secret {secret.get(t.id_field)}")

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """Run the `disable` call; without one a no-op (the secret stays valid until revoke)."""
        t = _target(target)
        if t.disable is not None:
            self._request(t, "disable", t.disable, {**t.vars, CREDENTIAL_ID: credential_id})

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        if t.enable is not None:
            self._request(t, "enable", t.enable, {**t.vars, CREDENTIAL_ID: credential_id})

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        try:
            self._request(t, "revoke", t.revoke, {**t.vars, CREDENTIAL_ID: credential_id})
        except CredentialNotFound:
            return  # already gone: the goal of revoke

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        try:
            listed = [i for i, _ in self._list(t)]
        except CredentialNotFound:
            listed = []  # the endpoint itself is gone, and its secrets with it
        if credential_id in listed:
            raise StillValid(f"secret {credential_id} is still listed at {where(t)}")
        if ctx.old_secret is None or not ctx.old_secret.get(t.id_field):
            return  # no old value, or one stored without its id: the listing is the proof
        if ctx.old_secret[t.id_field] != credential_id:
            raise PermanentProviderError(
                f"confirm_revoked: the old secret given for {where(t)} is not secret "
                f"{credential_id}"
            )
        self.expect_refused(
            t, ctx.old_secret,
            f"secret {credential_id} is revoked at {where(t)} but the verify call still accepted it",
        )

    # -- HTTP -----------------------------------------------------------------------

    def _request(
        self,
        t: HttpWebhookTarget,
        step: str,
        call: Call,
        values: Mapping[str, str],
        passthrough: Collection[int] = (),
    ) -> requests.Response:
        """Send `call` rendered with `values`. A status neither 2xx nor in `passthrough`
        becomes a classified error; the message never quotes the request or response."""
        missing = {n for names in call.uses().values() for n in names} - values.keys()
        if missing:
            raise PermanentProviderError(
                f"{step} at {where(t)}: no value for {', '.join(sorted(missing))} "
                "(old_credential_id needs the old secret, with its id, in the store)"
            )
        url = t.base_url.rstrip("/") + render(call.path, values, quoted=True)
        sent = f"{step}: {call.method} {url}"
        headers = {name: render(value, values) for name, value in call.headers.items()}
        headers[t.auth.header] = f"{t.auth.scheme} {self._token(t)}".strip()
        failure: requests.RequestException | None = None
        try:
            response = self._session.request(
                call.method,
                url,
                params={k: render(v, values) for k, v in call.query.items()} or None,
                headers=headers,
                json=None if call.body is None else render_json(call.body, values),
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            failure = exc
        if failure is not None:
            # Raised outside the except block, without the exception: some requests errors
            # quote a header value, and a header may carry the token or the secret.
            raise classify(failure)(f"{sent} failed: {type(failure).__name__}")
        error = classify(response.status_code)
        if error is not None and response.status_code not in passthrough:
            raise error(f"{sent} failed: {response.status_code} {response.reason}")
        return response

    def _json(self, t: HttpWebhookTarget, step: str, call: Call, values: Mapping[str, str]) -> Any:
        response = self._request(t, step, call, values)
        try:
            return response.json()
        except ValueError:
            raise PermanentProviderError(
                f"{step} at {where(t)}: the response ({response.status_code}) is not JSON"
            ) from None

    def _token(self, t: HttpWebhookTarget) -> str:
        environ = os.environ if self._environ is None else self._environ
        token = environ.get(t.auth.token_env)
        if not token:
            raise PermanentProviderError(
                f"{where(t)}: environment variable {t.auth.token_env} (auth.token_env) is not "
                "set on this worker"
            )
        return token

    def _list(self, t: HttpWebhookTarget) -> list[tuple[str, bool]]:
        """(id, active) of every secret the list call returns."""
        return t.listed(self._json(t, "list", t.list, t.vars))

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """Run the verify call with `secret`: accepted, or refused and why."""
        t = target
        missing = sorted({t.secret_field, t.id_field} - {k for k, v in secret.items() if v})
        if missing:
            raise VerificationFailed(f"secret for {where(t)} lacks field(s) {', '.join(missing)}")
        values = {**t.vars, SECRET: secret[t.secret_field], CREDENTIAL_ID: secret[t.id_field]}
        response = self._request(t, "verify", t.verify, values, t.verify.rejected_statuses)
        if classify(response.status_code) is not None:
            return refused(f"the verify call answered {response.status_code} {response.reason}")
        if t.verify.hmac is None:
            return accepted()
        try:
            document = response.json()
        except ValueError:
            raise PermanentProviderError(f"verify at {where(t)}: the response is not JSON") from None
        rejection = t.hmac_rejection(document, secret[t.secret_field])
        return accepted() if rejection is None else refused(rejection)


def _target(target: Any) -> HttpWebhookTarget:
    return parse_target(HttpWebhookTarget, "http.webhook", target)

