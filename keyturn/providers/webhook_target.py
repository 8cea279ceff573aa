"""The `http.webhook` target: a vendor's API described as templated calls, checked on load.

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

The model checks everything it can before a run: every placeholder is known
and allowed in its call (keyturn.providers.webhook_templates), the secret
never goes into a URL, create sends or receives the secret, verify proves
something about it, and `base_url` is https (or http on a loopback address),
since the API token goes with every request. The target also reads the
vendor's answers as it declares them: a dotted path (`read`), the list
(`listed`), the HMAC of a test delivery (`hmac_rejection`); and draws a new
secret in the declared format (`Generate.draw`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from keyturn.providers.errors import PermanentProviderError
from keyturn.providers.webhook_templates import (
    RESERVED,
    SCOPES,
    SECRET,
    dig,
    json_strings,
    placeholders,
)
from keyturn.randomness import RandomSource, password, token_hex, token_urlsafe

NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
HEADER_NAME = r"^[A-Za-z0-9-]+$"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


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

    def draw(self, random: RandomSource) -> str:
        """A new secret in this format from `random`."""
        if self.format == "hex":
            value = token_hex(random, self.size)
        elif self.format == "alphanumeric":
            value = password(random, self.size)
        else:
            value = token_urlsafe(random, self.size)
        return self.prefix + value


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

    def read(self, document: Any, path: str, step: str, scalar: bool = False) -> Any:
        """The value at dotted `path` of a `step` response; a string if `scalar`."""
        try:
            value = dig(document, path)
        except KeyError:
            raise PermanentProviderError(
                f"{step} at {where(self)}: the response has nothing at {path!r}"
            ) from None
        if scalar:
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise PermanentProviderError(
                    f"{step} at {where(self)}: {path!r} in the response is not a string or number"
                )
            return str(value)
        return value

    def listed(self, document: Any) -> list[tuple[str, bool]]:
        """(id, active) of every secret in the list call's response."""
        items = self.read(document, self.list.items_from, "list")
        if not isinstance(items, list):
            raise PermanentProviderError(
                f"list at {where(self)}: {self.list.items_from or 'the response'} is not an array"
            )
        found = []
        for item in items:
            credential_id = self.read(item, self.list.id_from, "list", scalar=True)
            active = (
                self.list.active_from is None
                or self.read(item, self.list.active_from, "list") == self.list.active_value
            )
            found.append((credential_id, active))
        return found

    def hmac_rejection(self, document: Any, secret: str) -> str | None:
        """Why the verify response's HMAC does not prove `secret`, or None if it does."""
        spec = self.verify.hmac
        assert spec is not None
        message = self.read(document, spec.message_from, "verify", scalar=True)
        signature = self.read(document, spec.signature_from, "verify", scalar=True)
        if not signature.startswith(spec.prefix):
            return f"the signature lacks the prefix {spec.prefix!r}"
        algorithm = getattr(hashlib, spec.algorithm)
        digest = hmac.new(secret.encode(), message.encode(), algorithm).digest()
        expected = digest.hex() if spec.encoding == "hex" else base64.b64encode(digest).decode()
        if not hmac.compare_digest(expected, signature[len(spec.prefix):]):
            return "the HMAC of the test delivery does not match"
        return None

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


def where(t: HttpWebhookTarget) -> str:
    """The target as messages name it: its base URL and vars, never the token."""
    shown = ", ".join(f"{k}={v}" for k, v in sorted(t.vars.items()))
    return f"{t.base_url}" + (f" ({shown})" if shown else "")

