"""A fake third-party vendor API with webhook signing secrets, for the http.webhook provider.

It models the common shape of such APIs (Stripe, Svix, GitHub-style): bearer
tokens, webhook endpoints that each hold several signing secrets (so a new one
can be added before the old one is removed), and a "test delivery" that signs a
payload with one secret so the caller can check the HMAC.

    POST   /v1/endpoints                                 -> 201 {"data": {"id"}}
    GET    /v1/endpoints/{ep}/secrets                    -> 200 {"data": [{"id", "status", ...}]}
    POST   /v1/endpoints/{ep}/secrets      {"secret"?}   -> 201 {"data": {"id", "status", "secret"?}}
    PATCH  /v1/endpoints/{ep}/secrets/{id} {"status"}    -> 200 {"data": {...}}
    DELETE /v1/endpoints/{ep}/secrets/{id}               -> 204
    POST   /v1/endpoints/{ep}/secrets/{id}/test          -> 200 {"data": {"payload", "signature"}}
    POST   /v1/endpoints/{ep}/secrets/{id}/check {"secret"} -> 204 if it is that active secret,
                                                           422 otherwise

A secret is never returned except when the service generated it (POST without
"secret"). An endpoint holds at most MAX_SECRETS secrets (409 beyond); a
disabled secret signs nothing (409 on test). The admin token may do anything,
the read-only token only GET (403 otherwise); no or another token gets 401.
`failing(status)` answers every request with that status; the Python methods
(`add_endpoint`, `add_secret`, `accepts`, ...) inspect and seed state directly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fakes.http_server import LoopbackHttpServer, LoopbackRequestHandler

MAX_SECRETS = 3
MIN_SECRET_LENGTH = 24
SIGNATURE_PREFIX = "v1="


@dataclass
class WebhookSecret:
    id: str
    value: str
    status: str = "active"
    created_at: int = field(default_factory=lambda: int(time.time()))

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "created_at": self.created_at}


def sign(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


ROUTES = [
    (re.compile(r"^/v1/endpoints$"), "endpoints"),
    (re.compile(r"^/v1/endpoints/(?P<ep>[\w-]+)/secrets$"), "secrets"),
    (re.compile(r"^/v1/endpoints/(?P<ep>[\w-]+)/secrets/(?P<sid>[\w-]+)$"), "secret"),
    (re.compile(r"^/v1/endpoints/(?P<ep>[\w-]+)/secrets/(?P<sid>[\w-]+)/test$"), "test"),
    (re.compile(r"^/v1/endpoints/(?P<ep>[\w-]+)/secrets/(?P<sid>[\w-]+)/check$"), "check"),
]


class WebhookService(LoopbackHttpServer):
    """The vendor API on 127.0.0.1 (free port); `.url`, `.admin_token`, `.read_token`."""

    def __init__(self) -> None:
        self.admin_token = "adm_" + secrets.token_urlsafe(16)
        self.read_token = "ro_" + secrets.token_urlsafe(16)
        self.endpoints: dict[str, dict[str, WebhookSecret]] = {}
        self.requests: list[tuple[str, str, bytes]] = []  # (method, path?query, body) of each
        self._fault: int | None = None
        self._lock = threading.Lock()
        super().__init__()

    def _handle(self, request: LoopbackRequestHandler) -> None:
        raw = request.read_body()
        self.requests.append((request.command, request.path, raw))
        with self._lock:
            status, body = self._dispatch(
                request.command, request.path, request.headers.get("Authorization", ""), raw
            )
        data = b"" if body is None else json.dumps(body).encode()
        headers = [("Content-Type", "application/json")] if data else []
        request.respond(status, headers, data)

    @contextmanager
    def failing(self, status: int) -> Iterator[None]:
        """Answer every request with `status` while inside."""
        self._fault = status
        try:
            yield
        finally:
            self._fault = None

    # -- direct access for tests ----------------------------------------------------

    def add_endpoint(self) -> str:
        endpoint = "ep_" + secrets.token_hex(6)
        with self._lock:
            self.endpoints[endpoint] = {}
        return endpoint

    def add_secret(
        self, endpoint: str, value: str | None = None, status: str = "active"
    ) -> WebhookSecret:
        with self._lock:
            return self._add(endpoint, value or secrets.token_urlsafe(32), status)

    def accepts(self, endpoint: str, secret_id: str, value: str) -> bool:
        """Would a delivery signed now by `secret_id` verify with `value`?"""
        found = self.endpoints.get(endpoint, {}).get(secret_id)
        return (
            found is not None
            and found.status == "active"
            and hmac.compare_digest(found.value, value)
        )

    # -- the API ----------------------------------------------------------------------

    def _add(self, endpoint: str, value: str, status: str) -> WebhookSecret:
        secret = WebhookSecret(id="whs_" + secrets.token_hex(8), value=value, status=status)
        self.endpoints[endpoint][secret.id] = secret
        return secret

    def _dispatch(
        self, method: str, path: str, authorization: str, raw: bytes
    ) -> tuple[int, Any]:
        if self._fault is not None:
            return self._fault, {"error": "injected fault"}
        token = authorization.removeprefix("Bearer ")
        if not authorization.startswith("Bearer ") or token not in (
            self.admin_token,
            self.read_token,
        ):
            return 401, {"error": "unauthorized"}
        if token == self.read_token and method != "GET":
            return 403, {"error": "forbidden: read-only token"}
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, {"error": "body is not JSON"}
        route = path.split("?", 1)[0]
        for pattern, name in ROUTES:
            if match := pattern.match(route):
                return getattr(self, f"_{name}")(method, body, **match.groupdict())
        return 404, {"error": "no such route"}

    def _endpoints(self, method: str, body: Any) -> tuple[int, Any]:
        if method != "POST":
            return 405, {"error": "method not allowed"}
        endpoint = "ep_" + secrets.token_hex(6)
        self.endpoints[endpoint] = {}
        return 201, {"data": {"id": endpoint}}

    def _secrets(self, method: str, body: Any, ep: str) -> tuple[int, Any]:
        if ep not in self.endpoints:
            return 404, {"error": "no such endpoint"}
        held = self.endpoints[ep]
        if method == "GET":
            return 200, {"data": [s.public() for s in held.values()], "has_more": False}
        if method != "POST":
            return 405, {"error": "method not allowed"}
        if len(held) >= MAX_SECRETS:
            return 409, {"error": f"an endpoint holds at most {MAX_SECRETS} secrets"}
        value = body.get("secret") if isinstance(body, dict) else None
        if value is None:
            secret = self._add(ep, "whsec_" + secrets.token_urlsafe(32), "active")
            return 201, {"data": {**secret.public(), "secret": secret.value}}
        if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
            return 400, {"error": f"secret must be a string of {MIN_SECRET_LENGTH}+ characters"}
        return 201, {"data": self._add(ep, value, "active").public()}

    def _secret(self, method: str, body: Any, ep: str, sid: str) -> tuple[int, Any]:
        found = self.endpoints.get(ep, {}).get(sid)
        if found is None:
            return 404, {"error": "no such secret"}
        if method == "DELETE":
            del self.endpoints[ep][sid]
            return 204, None
        if method == "PATCH":
            status = body.get("status") if isinstance(body, dict) else None
            if status not in ("active", "disabled"):
                return 400, {"error": "status must be active or disabled"}
            found.status = status
            return 200, {"data": found.public()}
        if method == "GET":
            return 200, {"data": found.public()}
        return 405, {"error": "method not allowed"}

    def _test(self, method: str, body: Any, ep: str, sid: str) -> tuple[int, Any]:
        found = self.endpoints.get(ep, {}).get(sid)
        if found is None:
            return 404, {"error": "no such secret"}
        if method != "POST":
            return 405, {"error": "method not allowed"}
        if found.status != "active":
            return 409, {"error": "secret is disabled"}
        payload = json.dumps(
            {"type": "ping", "id": "evt_" + secrets.token_hex(8), "created": int(time.time())}
        )
        return 200, {"data": {"payload": payload, "signature": sign(found.value, payload)}}

    def _check(self, method: str, body: Any, ep: str, sid: str) -> tuple[int, Any]:
        if method != "POST":
            return 405, {"error": "method not allowed"}
        value = body.get("secret") if isinstance(body, dict) else None
        if isinstance(value, str) and self.accepts(ep, sid, value):
            return 204, None
        return 422, {"error": "not an active secret of this endpoint"}
