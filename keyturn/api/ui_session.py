"""Who is looking at the approvals page, and the guards of its forms.

- Identity: a bearer header (scripts, tests) or the `keyturn_session` cookie, whose
  value is a server-side session id (keyturn.api.sessions), never the token. The
  session's principal is looked up again in the token file on every request, so a
  revoked, replaced or expired token ends its sessions at once.
- CSRF: every form carries HMAC(session key, label) in a hidden field, and a POST whose
  Origin names another site is refused.
- Flash messages travel in a short-lived cookie signed with the app's key, so no other
  site or script can plant text on the page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from keyturn.api.auth import SESSION_COOKIE, Principal, bearer_token
from keyturn.api.context import get_context

PREFIX = "/ui"
FLASH_COOKIE = "keyturn_flash"
FLASH_MAX_AGE = 60
TOKEN_MAX = 512
CSRF_LABEL = b"keyturn-ui-csrf-v1"
FLASH_LABEL = b"keyturn-ui-flash-v1"


@dataclass(frozen=True)
class Viewer:
    """The principal of a page request and the secret its CSRF tokens derive from (the
    session id, or the bearer token of a request without a session)."""

    principal: Principal
    key: str
    session_id: str | None = None


def base(request: Request) -> str:
    """The page's path prefix under any root path, e.g. `/ui`."""
    return request.scope.get("root_path", "").rstrip("/") + PREFIX


def csrf_token(key: str) -> str:
    """The CSRF token of a session: only someone who holds the session key can make it."""
    return hmac.new(key.encode(), CSRF_LABEL, hashlib.sha256).hexdigest()


def viewer(request: Request) -> Viewer | None:
    """The viewer of the bearer header or the session cookie; None if not logged in.

    Raises TokenFileError when the token file cannot be read."""
    ctx = get_context(request)
    token = bearer_token(request.headers.get("authorization"))
    if token:
        principal = ctx.tokens.lookup(token) if len(token) <= TOKEN_MAX else None
        return Viewer(principal, token) if principal else None
    session_id = request.cookies.get(SESSION_COOKIE)
    session = ctx.sessions.get(session_id)
    if session is None:
        return None
    principal = ctx.tokens.lookup_hash(session.token_sha256)
    if principal is None or principal.name != session.principal:
        ctx.sessions.end(session_id)  # its token was revoked, replaced or expired
        return None
    return Viewer(principal, session_id, session_id)


def same_origin(request: Request) -> bool:
    """False for a browser POST from another site (its Origin names another host)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser, or one that omits it: the CSRF token still decides
    allowed = {request.headers.get("host", "")}
    ui_url = get_context(request).settings.ui_url
    if ui_url:
        allowed.add(urlsplit(ui_url).netloc)
    return urlsplit(origin).netloc in allowed


def csrf_ok(request: Request, found: Viewer, sent: str) -> bool:
    return same_origin(request) and hmac.compare_digest(sent.encode(),
                                                        csrf_token(found.key).encode())


def _flash_mac(request: Request, raw: bytes) -> str:
    key = get_context(request).secret
    return hmac.new(key, FLASH_LABEL + raw, hashlib.sha256).hexdigest()


def set_flash(request: Request, response: Response, kind: str, text: str) -> None:
    raw = base64.urlsafe_b64encode(json.dumps({"kind": kind, "text": text[:1500]}).encode())
    response.set_cookie(FLASH_COOKIE, f"{raw.decode()}.{_flash_mac(request, raw)}",
                        max_age=FLASH_MAX_AGE, path=base(request), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def read_flash(request: Request) -> dict[str, str] | None:
    """The flash message this app set, or None (absent, forged or malformed)."""
    value = request.cookies.get(FLASH_COOKIE) or ""
    raw, _, mac = value.partition(".")
    if not mac or not hmac.compare_digest(mac.encode(), _flash_mac(request, raw.encode()).encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
        kind, text = data["kind"], data["text"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if kind not in ("ok", "error") or not isinstance(text, str):
        return None
    return {"kind": kind, "text": text}
