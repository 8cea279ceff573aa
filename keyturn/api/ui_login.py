"""Logging in to and out of the approvals page, its static assets, and the guards every page
and form passes: a viewer with a role (else the login page), and the CSRF check.

Logging in with an API token opens a server-side session (keyturn.api.sessions) whose
random id is kept in an HttpOnly, SameSite=Strict cookie (`keyturn_session`, path /ui);
logout ends it. Sessions, CSRF tokens and the signed flash cookie: keyturn.api.ui_session.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from keyturn.api.auth import ROLES, SESSION_COOKIE, TokenFileError, hash_token
from keyturn.api.context import get_context
from keyturn.api.ui_render import ASSETS, HERE, message_page, page, redirect
from keyturn.api.ui_session import (
    PREFIX,
    TOKEN_MAX,
    Viewer,
    base,
    csrf_ok,
    same_origin,
    viewer,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def to_login(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":  # a form posted after the session ended: back to the list
        here = base(request)
    response = redirect(request, f"{base(request)}/login?next={quote(here, safe='')}")
    if request.cookies.get(SESSION_COOKIE):  # an ended session: forget it
        response.delete_cookie(SESSION_COOKIE, path=base(request))
    return response


def page_viewer(request: Request) -> tuple[Viewer | None, Response | None]:
    """The viewer of a page that needs one, or the response to send instead."""
    try:
        session = viewer(request)
    except TokenFileError as exc:
        return None, message_page(request, None, 500, "Token file unreadable", str(exc))
    if session is None:
        return None, to_login(request)
    if not any(session.principal.has(role) for role in ROLES):
        return None, message_page(
            request, session, 403, "No role",
            f"{session.principal.name} has no role: ask for operator, approver or auditor.")
    return session, None


def _safe_next(request: Request, target: str) -> str:
    prefix = base(request)
    inside = target == prefix or target.startswith((prefix + "/", prefix + "?"))
    ok = inside and "//" not in target and "\\" not in target
    return target if ok else prefix


# ---- assets, login, logout -----------------------------------------------------------


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        return Response("not found", status_code=404, media_type="text/plain")
    path, media_type = ASSETS[name]
    return Response((HERE / path).read_bytes(), media_type=media_type,
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/login")
async def login_form(request: Request, next: str = "") -> Response:
    return page(request, "login.html", {"next": _safe_next(request, next), "error": None},
                session=None)


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form()] = "",
                next: Annotated[str, Form()] = "") -> Response:
    target = _safe_next(request, next)
    if not same_origin(request):
        return message_page(request, None, 403, "Refused", "cross-site login refused")
    token = token.strip()
    ctx = get_context(request)
    client = request.client.host if request.client else "unknown"
    if (wait := ctx.logins.wait(client)) > 0:
        return message_page(request, None, 429, "Too many failed logins",
                            f"Too many failed logins from {client}; try again in "
                            f"{int(wait) + 1} s.")
    try:
        principal = ctx.tokens.lookup(token) if 0 < len(token) <= TOKEN_MAX else None
    except TokenFileError as exc:
        return message_page(request, None, 500, "Token file unreadable", str(exc))
    if principal is None:
        ctx.logins.failed(client, "unknown, revoked or expired token")
        return page(request, "login.html",
                    {"next": target, "error": "Unknown or revoked token."},
                    session=None, status=401)
    session_id = ctx.sessions.open(principal.name, hash_token(token))
    response = redirect(request, target)
    response.set_cookie(SESSION_COOKIE, session_id, path=base(request), httponly=True,
                        max_age=int(ctx.sessions.max_age), samesite="strict",
                        secure=request.url.scheme == "https")
    return response


def csrf_refusal(request: Request, session: Viewer | None, sent: str) -> Response | None:
    """A 403 page unless the POST is same-origin and carries the session's CSRF token."""
    if session is None or csrf_ok(request, session, sent):
        return None
    return message_page(request, session, 403, "Refused",
                        "The form was stale or did not come from this page (CSRF check "
                        "failed). Reload the page and try again.")


@router.post("/logout")
async def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    session, refused = page_viewer(request)
    if session is None:
        return refused or to_login(request)
    if (denied := csrf_refusal(request, session, csrf_token)) is not None:
        return denied
    get_context(request).sessions.end(session.session_id)
    response = redirect(request, f"{base(request)}/login", ("ok", "Logged out."))
    response.delete_cookie(SESSION_COOKIE, path=base(request))
    return response


