"""Webhook signing secrets of any HTTP API, declared as templated calls: `http.webhook`.

For services without a dedicated provider, the runbook describes the vendor's
API in the target: how to create a secret, list them, prove one works, revoke
(and optionally disable/enable) one. For example:

    target:
      base_url: https://api.vendor.example
      vars: {endpoint: ep_123}
      auth: {header: Authorization, scheme: Bearer, token_env: VENDOR_API_TOKEN}
      secret_field: signing_secret          # the field the store receives
      max_credentials: 3                    # the vendor's limit per endpoint, if any
      create:
        method: POST
        path: /v1/endpoints/{{ endpoint }}/secrets
        body: {secret: "{{ secret }}"}
        id_from: data.id                    # dotted path into the JSON response
      list: {path: /v1/endpoints/{{ endpoint }}/secrets, items_from: data,
             id_from: id, active_from: status, active_value: active}
      verify:
        path: /v1/endpoints/{{ endpoint }}/secrets/{{ credential_id }}/test
        hmac: {message_from: data.payload, signature_from: data.signature, prefix: "v1="}
      revoke: {method: DELETE, path: /v1/endpoints/{{ endpoint }}/secrets/{{ credential_id }}}

Templates are plain text with `{{ name }}` placeholders and nothing else (no
expressions, no code). The names are a closed set, checked when the runbook
loads: `secret` (create, verify), `credential_id` (verify, revoke, disable,
enable), `old_credential_id` (create; the old secret's id from the store) and
the target's `vars` (everywhere). `{{ secret }}` may appear in bodies and
headers only, never in a path or query: URLs end up in logs. Values are
URL-quoted in paths and JSON-encoded in bodies.

The secret is drawn from `ctx.random` (format per `generate`) unless the
service makes it (`create.secret_from`: a response path). The stored secret is
`{<secret_field>: value, <id_field>: credential id}`. The API token is read on
the worker from the environment variable named by `auth.token_env` (never put
it in the target: targets travel through workflow history). `base_url` must be
https, or http on a loopback address.

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

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

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
from keyturn.randomness import password, token_hex, token_urlsafe
from keyturn.secret import Secret

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
HEADER_NAME = r"^[A-Za-z0-9-]+$"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SECRET, CREDENTIAL_ID, OLD_CREDENTIAL_ID = "secret", "credential_id", "old_credential_id"
RESERVED = frozenset({SECRET, CREDENTIAL_ID, OLD_CREDENTIAL_ID})
# Which built-in placeholders each call may use (besides the target's vars).
SCOPES: dict[str, frozenset[str]] = {
    "create": frozenset({SECRET, OLD_CREDENTIAL_ID}),
    "list": frozenset(),
    "verify": frozenset({SECRET, CREDENTIAL_ID}),
    "revoke": frozenset({CREDENTIAL_ID}),
    "disable": frozenset({CREDENTIAL_ID}),
    "enable": frozenset({CREDENTIAL_ID}),
}

def classify(status_or_exc: int | Exception) -> type[ProviderError] | None:
    """The provider error for an HTTP status (keyturn.httpstatus) or a requests exception;
    None for a 2xx. Connection failures and timeouts are transient."""
    if isinstance(status_or_exc, Exception):
        if isinstance(status_or_exc, requests.ConnectionError | requests.Timeout):
            return TransientProviderError
        return PermanentProviderError
    return None if httpstatus.ok(status_or_exc) else for_status(status_or_exc)


def placeholders(text: str) -> list[str]:
    """The names used in template `text`; ValueError for a stray `{{` or `}}`."""
    rest = PLACEHOLDER.sub("", text)
    if "{{" in rest or "}}" in rest:
        raise ValueError(f"malformed placeholder in {text!r}: write {{{{ name }}}}")
    return PLACEHOLDER.findall(text)


def render(text: str, values: Mapping[str, str], quoted: bool = False) -> str:
    """Substitute every placeholder once (substituted text is never scanned again)."""
    return PLACEHOLDER.sub(
        lambda m: quote(values[m.group(1)], safe="") if quoted else values[m.group(1)], text
    )


def render_json(value: JsonValue, values: Mapping[str, str]) -> JsonValue:
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, list):
        return [render_json(v, values) for v in value]
    if isinstance(value, dict):
        return {k: render_json(v, values) for k, v in value.items()}
    return value


def json_strings(value: JsonValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in json_strings(v)]
    return []


def dig(document: Any, path: str) -> Any:
    """The value at dotted `path` ("data.items.0.id"; "" is the document); KeyError if absent."""
    for part in path.split(".") if path else []:
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            raise KeyError(path)
    return document


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Auth(Model):
    """How the admin API token is sent: `<header>: <scheme> <value of $token_env>`."""

    header: str = Field(default="Authorization", pattern=HEADER_NAME)
    scheme: str = Field(default="Bearer", pattern=r"^[A-Za-z0-9-]*$")
    token_env: str = Field(pattern=NAME, description="name of the environment variable")


class Generate(Model):
    """How a secret is drawn from the runbook's random source when the service makes none."""

    format: Literal["urlsafe", "hex", "alphanumeric"] = "urlsafe"
    size: int = Field(default=32, ge=16, le=256, description="bytes (urlsafe, hex) or characters")
    prefix: str = Field(default="", pattern=r"^[A-Za-z0-9_.-]*$")


class Call(Model):
    """One templated HTTP request."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/")
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    body: JsonValue = None

    def uses(self) -> dict[str, list[str]]:
        """Placeholder names per part of the request: path, query, headers, body."""
        return {
            "path": placeholders(self.path),
            "query": [n for v in self.query.values() for n in placeholders(v)],
            "headers": [n for v in self.headers.values() for n in placeholders(v)],
            "body": [n for s in json_strings(self.body) for n in placeholders(s)],
        }


class CreateCall(Call):
    id_from: str = Field(description="dotted path of the new credential's id in the response")
    secret_from: str | None = Field(
        default=None, description="dotted path of the secret, when the service generates it"
    )


class ListCall(Call):
    method: Literal["GET", "POST"] = "GET"
    items_from: str = Field(default="", description="dotted path of the array of credentials")
    id_from: str = "id"
    active_from: str | None = Field(
        default=None, description="dotted path in an item; active when it equals active_value"
    )
    active_value: str | bool | int = "active"


class Hmac(Model):
    """The verify response carries a message the service signed with the secret (UTF-8 key)."""

    message_from: str
    signature_from: str
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""


class VerifyCall(Call):
    hmac: Hmac | None = None
    rejected_statuses: list[int] = Field(default=[404], description="statuses meaning 'rejected'")


class HttpWebhookTarget(Model):
    """A webhook secret at a vendor API, with the vendor's API described as templated calls."""

    base_url: str
    vars: dict[str, str] = {}
    auth: Auth
    secret_field: str = Field(default="secret", min_length=1)
    id_field: str = Field(default="secret_id", min_length=1)
    generate: Generate = Generate()
    max_credentials: int | None = Field(default=None, ge=1)
    create: CreateCall
    list: ListCall
    verify: VerifyCall
    revoke: Call
    disable: Call | None = None
    enable: Call | None = None

    @model_validator(mode="after")
    def _check(self) -> HttpWebhookTarget:
        url = urlsplit(self.base_url)
        if not url.hostname or url.query or url.fragment:
            raise ValueError(f"base_url {self.base_url!r} must be scheme://host[:port][/path]")
        if url.scheme != "https" and not (url.scheme == "http" and url.hostname in LOOPBACK):
            raise ValueError(
                f"base_url {self.base_url!r} must use https (plain http only on a loopback "
                "address): the API token goes with every request"
            )
        for name, value in self.vars.items():
            if not re.match(NAME, name) or name in RESERVED:
                raise ValueError(f"vars: {name!r} is reserved or not an identifier")
            if "{{" in value or "}}" in value:
                raise ValueError(f"vars.{name}: a value may not contain a placeholder")
        if self.secret_field == self.id_field:
            raise ValueError("secret_field and id_field must differ")
        if (self.disable is None) != (self.enable is None):
            raise ValueError("give both `disable` and `enable`, or neither")
        for step in SCOPES:
            call = getattr(self, step)
            if call is not None:
                self._check_call(step, call)
        create_uses = [n for names in self.create.uses().values() for n in names]
        if self.create.secret_from and SECRET in create_uses:
            raise ValueError("create: uses {{ secret }} and secret_from; choose one")
        if not self.create.secret_from and SECRET not in create_uses:
            raise ValueError(
                "create: the generated secret never reaches the service: send {{ secret }} in "
                "the body or a header, or set secret_from if the service generates it"
            )
        verify_uses = [n for names in self.verify.uses().values() for n in names]
        if self.verify.hmac is None and SECRET not in verify_uses:
            raise ValueError(
                "verify: proves nothing about the secret: add `hmac`, or send {{ secret }}"
            )
        return self

    def _check_call(self, step: str, call: Call) -> None:
        allowed = SCOPES[step] | self.vars.keys()
        try:
            uses = call.uses()
        except ValueError as exc:
            raise ValueError(f"{step}: {exc}") from None
        for part, names in uses.items():
            for name in names:
                if name not in allowed:
                    raise ValueError(
                        f"{step}.{part}: unknown placeholder {{{{ {name} }}}}; "
                        f"usable here: {', '.join(sorted(allowed)) or 'none'}"
                    )
                if name == SECRET and part in ("path", "query"):
                    raise ValueError(
                        f"{step}.{part}: {{{{ secret }}}} may not appear in a URL (URLs end "
                        "up in logs); send it in the body or a header"
                    )
        if any(h.lower() == self.auth.header.lower() for h in call.headers):
            raise ValueError(f"{step}.headers: may not set the auth header {self.auth.header!r}")


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
            raise CredentialNotFound(f"{_where(t)} has no active secret{found}; nothing to rotate")
        removed: list[str] = []
        if t.max_credentials is not None and len(items) >= t.max_credentials:
            if not inactive:
                raise QuotaExceeded(
                    f"{_where(t)} already holds {len(items)} active secrets (at most "
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
            values[SECRET] = _generate(t.generate, ctx)
            generated_by = ctx.random.name
        old_id = (ctx.old_secret or {}).get(t.id_field)
        if old_id:
            values[OLD_CREDENTIAL_ID] = old_id
        document = self._json(t, "create", t.create, values)
        credential_id = _dig(document, t.create.id_from, t, "create", scalar=True)
        if t.create.secret_from:
            try:
                values[SECRET] = _dig(document, t.create.secret_from, t, "create", scalar=True)
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
        self.expect_accepted(t, secret, f"{_where(t)} rejected secret {secret.get(t.id_field)}")

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
            raise StillValid(f"secret {credential_id} is still listed at {_where(t)}")
        if ctx.old_secret is None or not ctx.old_secret.get(t.id_field):
            return  # no old value, or one stored without its id: the listing is the proof
        if ctx.old_secret[t.id_field] != credential_id:
            raise PermanentProviderError(
                f"confirm_revoked: the old secret given for {_where(t)} is not secret "
                f"{credential_id}"
            )
        self.expect_refused(
            t, ctx.old_secret,
            f"secret {credential_id} is revoked at {_where(t)} but the verify call still accepted it",
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
                f"{step} at {_where(t)}: no value for {', '.join(sorted(missing))} "
                "(old_credential_id needs the old secret, with its id, in the store)"
            )
        url = t.base_url.rstrip("/") + render(call.path, values, quoted=True)
        where = f"{step}: {call.method} {url}"
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
            raise classify(failure)(f"{where} failed: {type(failure).__name__}")
        error = classify(response.status_code)
        if error is not None and response.status_code not in passthrough:
            raise error(f"{where} failed: {response.status_code} {response.reason}")
        return response

    def _json(self, t: HttpWebhookTarget, step: str, call: Call, values: Mapping[str, str]) -> Any:
        response = self._request(t, step, call, values)
        try:
            return response.json()
        except ValueError:
            raise PermanentProviderError(
                f"{step} at {_where(t)}: the response ({response.status_code}) is not JSON"
            ) from None

    def _token(self, t: HttpWebhookTarget) -> str:
        environ = os.environ if self._environ is None else self._environ
        token = environ.get(t.auth.token_env)
        if not token:
            raise PermanentProviderError(
                f"{_where(t)}: environment variable {t.auth.token_env} (auth.token_env) is not "
                "set on this worker"
            )
        return token

    def _list(self, t: HttpWebhookTarget) -> list[tuple[str, bool]]:
        """(id, active) of every secret the list call returns."""
        items = _dig(self._json(t, "list", t.list, t.vars), t.list.items_from, t, "list")
        if not isinstance(items, list):
            raise PermanentProviderError(
                f"list at {_where(t)}: {t.list.items_from or 'the response'} is not an array"
            )
        found = []
        for item in items:
            credential_id = _dig(item, t.list.id_from, t, "list", scalar=True)
            active = (
                t.list.active_from is None
                or _dig(item, t.list.active_from, t, "list") == t.list.active_value
            )
            found.append((credential_id, active))
        return found

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """Run the verify call with `secret`: accepted, or refused and why."""
        t = target
        missing = sorted({t.secret_field, t.id_field} - {k for k, v in secret.items() if v})
        if missing:
            raise VerificationFailed(f"secret for {_where(t)} lacks field(s) {', '.join(missing)}")
        values = {**t.vars, SECRET: secret[t.secret_field], CREDENTIAL_ID: secret[t.id_field]}
        response = self._request(t, "verify", t.verify, values, t.verify.rejected_statuses)
        if classify(response.status_code) is not None:
            return refused(f"the verify call answered {response.status_code} {response.reason}")
        if t.verify.hmac is None:
            return accepted()
        rejection = _hmac_rejection(t, response, secret[t.secret_field])
        return accepted() if rejection is None else refused(rejection)


def _hmac_rejection(t: HttpWebhookTarget, response: requests.Response, secret: str) -> str | None:
    spec = t.verify.hmac
    assert spec is not None
    try:
        document = response.json()
    except ValueError:
        raise PermanentProviderError(f"verify at {_where(t)}: the response is not JSON") from None
    message = _dig(document, spec.message_from, t, "verify", scalar=True)
    signature = _dig(document, spec.signature_from, t, "verify", scalar=True)
    if not signature.startswith(spec.prefix):
        return f"the signature lacks the prefix {spec.prefix!r}"
    digest = hmac.new(secret.encode(), message.encode(), getattr(hashlib, spec.algorithm)).digest()
    expected = digest.hex() if spec.encoding == "hex" else base64.b64encode(digest).decode()
    if not hmac.compare_digest(expected, signature[len(spec.prefix):]):
        return "the HMAC of the test delivery does not match"
    return None


def _generate(spec: Generate, ctx: ProviderContext) -> str:
    if spec.format == "hex":
        value = token_hex(ctx.random, spec.size)
    elif spec.format == "alphanumeric":
        value = password(ctx.random, spec.size)
    else:
        value = token_urlsafe(ctx.random, spec.size)
    return spec.prefix + value


def _dig(document: Any, path: str, t: HttpWebhookTarget, step: str, scalar: bool = False) -> Any:
    try:
        value = dig(document, path)
    except KeyError:
        raise PermanentProviderError(
            f"{step} at {_where(t)}: the response has nothing at {path!r}"
        ) from None
    if scalar:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PermanentProviderError(
                f"{step} at {_where(t)}: {path!r} in the response is not a string or number"
            )
        return str(value)
    return value


def _where(t: HttpWebhookTarget) -> str:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(t.vars.items()))
    return f"{t.base_url}" + (f" ({shown})" if shown else "")


def _target(target: Any) -> HttpWebhookTarget:
    return parse_target(HttpWebhookTarget, "http.webhook", target)

