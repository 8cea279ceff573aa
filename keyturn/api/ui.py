"""The approvals page at /ui: runs, their progress per tier, open gates with what approving
will do, approve/reject buttons, and a run's audit timeline. Server-rendered HTML
(Jinja2, autoescaped) plus one small script; no build step.

Logging in with an API token opens a server-side session (keyturn.api.sessions) whose
random id is kept in an HttpOnly, SameSite=Strict cookie (`keyturn_session`, path /ui);
logout ends it. Sessions, CSRF tokens and the signed flash cookie: keyturn.api.ui_session.
The pages call the operations core as the JSON routes do (keyturn.operations via
runs_routes.list_runs and decide, run_views.run_detail, audit_routes.run_records);
their refusals become flash messages.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from keyturn.api import audit_routes, runs_routes
from keyturn.api.auth import (
    APPROVER,
    AUDITOR,
    ROLES,
    SESSION_COOKIE,
    TokenFileError,
    hash_token,
)
from keyturn.api.context import ApiContext, get_context
from keyturn.api.errors import ApiError, from_operation
from keyturn.api.run_views import run_detail
from keyturn.api.ui_session import (
    FLASH_COOKIE,
    PREFIX,
    TOKEN_MAX,
    Viewer,
    base,
    csrf_ok,
    csrf_token,
    read_flash,
    same_origin,
    set_flash,
    viewer,
)
from keyturn.api.ui_views import open_gates, tiers
from keyturn.errors import KeyturnError
from keyturn.operations.gates import GATE_KINDS
from keyturn.operations.runs import INCIDENT_FILTER

HERE = Path(__file__).parent
templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
))


def _when(value: datetime | str | None, precise: bool = False) -> str:
    """A UTC time as `2026-11-22 08:11:06` (with milliseconds if `precise`)."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S") + (f".{value.microsecond // 1000:03d}" if precise else "")


templates.env.filters["when"] = _when
ASSETS = {
    "ui.js": ("static/ui.js", "text/javascript; charset=utf-8"),
    "ui.css": ("static/ui.css", "text/css; charset=utf-8"),
}

REASON_MAX = 2000
LIVE = ("pending", "running", "waiting")
RUN_REFRESH_SECONDS = 10
LIST_REFRESH_SECONDS = 15
RUN_STATES = ("pending", "running", "waiting", "succeeded", "failed", "skipped", "cancelled")
INCIDENT_PATTERN = INCIDENT_FILTER  # as GET /v1/runs
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Origin "null"
    "Cache-Control": "no-store",
}

router = APIRouter(prefix=PREFIX, include_in_schema=False)


# ---- responses ---------------------------------------------------------------------------


def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _redirect(request: Request, to: str, flash: tuple[str, str] | None = None) -> Response:
    response = RedirectResponse(to, status_code=303)
    if flash:
        set_flash(request, response, *flash)
    return _secure(response)


def _page(request: Request, name: str, context: dict[str, Any], *,
          session: Viewer | None, status: int = 200,
          flash: dict[str, str] | None = None) -> Response:
    flash = flash or read_flash(request)
    full = {
        "ui": base(request),
        "principal": session.principal if session else None,
        "csrf": csrf_token(session.key) if session else "",
        "flash": flash,
        "refresh": None,
        **context,
    }
    response = templates.TemplateResponse(request, name, full, status_code=status)
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path=base(request))
    return _secure(response)


def _refusal(exc: ApiError | KeyturnError) -> ApiError:
    """The API's answer to a refusal, whether the route or the operations core raised it."""
    if isinstance(exc, ApiError):
        return exc
    answer = from_operation(exc)
    if answer is None:  # not a refusal: the app's 500 handler answers
        raise exc
    return answer


def _message(request: Request, session: Viewer | None, status: int,
             heading: str, message: str) -> Response:
    return _page(request, "message.html", {"heading": heading, "message": message},
                 session=session, status=status)


def _to_login(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":  # a form posted after the session ended: back to the list
        here = base(request)
    response = _redirect(request, f"{base(request)}/login?next={quote(here, safe='')}")
    if request.cookies.get(SESSION_COOKIE):  # an ended session: forget it
        response.delete_cookie(SESSION_COOKIE, path=base(request))
    return response


def _viewer(request: Request) -> tuple[Viewer | None, Response | None]:
    """The viewer of a page that needs one, or the response to send instead."""
    try:
        session = viewer(request)
    except TokenFileError as exc:
        return None, _message(request, None, 500, "Token file unreadable", str(exc))
    if session is None:
        return None, _to_login(request)
    if not any(session.principal.has(role) for role in ROLES):
        return None, _message(request, session, 403, "No role",
                              f"{session.principal.name} has no role: ask for operator, approver "
                              "or auditor.")
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
    return _page(request, "login.html", {"next": _safe_next(request, next), "error": None},
                 session=None)


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form()] = "",
                next: Annotated[str, Form()] = "") -> Response:
    target = _safe_next(request, next)
    if not same_origin(request):
        return _message(request, None, 403, "Refused", "cross-site login refused")
    token = token.strip()
    ctx = get_context(request)
    client = request.client.host if request.client else "unknown"
    if (wait := ctx.logins.wait(client)) > 0:
        return _message(request, None, 429, "Too many failed logins",
                        f"Too many failed logins from {client}; try again in {int(wait) + 1} s.")
    try:
        principal = ctx.tokens.lookup(token) if 0 < len(token) <= TOKEN_MAX else None
    except TokenFileError as exc:
        return _message(request, None, 500, "Token file unreadable", str(exc))
    if principal is None:
        ctx.logins.failed(client, "unknown, revoked or expired token")
        return _page(request, "login.html",
                     {"next": target, "error": "Unknown or revoked token."},
                     session=None, status=401)
    session_id = ctx.sessions.open(principal.name, hash_token(token))
    response = _redirect(request, target)
    response.set_cookie(SESSION_COOKIE, session_id, path=base(request), httponly=True,
                        max_age=int(ctx.sessions.max_age), samesite="strict",
                        secure=request.url.scheme == "https")
    return response


def _csrf_refusal(request: Request, session: Viewer | None, sent: str) -> Response | None:
    """A 403 page unless the POST is same-origin and carries the session's CSRF token."""
    if session is None or csrf_ok(request, session, sent):
        return None
    return _message(request, session, 403, "Refused",
                    "The form was stale or did not come from this page (CSRF check failed). "
                    "Reload the page and try again.")


@router.post("/logout")
async def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    session, refused = _viewer(request)
    if session is None:
        return refused or _to_login(request)
    if (denied := _csrf_refusal(request, session, csrf_token)) is not None:
        return denied
    get_context(request).sessions.end(session.session_id)
    response = _redirect(request, f"{base(request)}/login", ("ok", "Logged out."))
    response.delete_cookie(SESSION_COOKIE, path=base(request))
    return response


# ---- pages -------------------------------------------------------------------------------


@router.get("")
async def runs_page(request: Request, state: str = "", incident: str = "") -> Response:
    session, refused = _viewer(request)
    if session is None:
        return refused
    ctx: ApiContext = get_context(request)
    flash = None
    state = state if state in RUN_STATES else ""
    if incident and not INCIDENT_PATTERN.match(incident):
        flash = {"kind": "error", "text": "An incident id is letters, digits and ._:/- only."}
        incident = ""
    try:
        listed = await runs_routes.list_runs(await ctx.client(), state or None, incident or None)
    except (ApiError, KeyturnError) as exc:
        refusal = _refusal(exc)
        return _message(request, session, refusal.status, "Runs unavailable", refusal.message)
    return _page(request, "runs.html", {
        "runs": [{"requested_by": None, **run.model_dump()} for run in listed],
        "states": RUN_STATES, "state": state, "incident": incident,
        "refresh": LIST_REFRESH_SECONDS,
    }, session=session, flash=flash)


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str) -> Response:
    session, refused = _viewer(request)
    if session is None:
        return refused
    principal = session.principal
    ctx: ApiContext = get_context(request)
    try:
        detail = await run_detail(await ctx.client(), run_id)
        audit = None
        if principal.has(AUDITOR):
            records = (await audit_routes.run_records(ctx, run_id)).records
            audit = [{**r.model_dump(), "details_text": json.dumps(r.details, sort_keys=True)}
                     for r in records]
    except (ApiError, KeyturnError) as exc:
        refusal = _refusal(exc)
        heading = "No such run" if refusal.status == 404 else "Run unavailable"
        return _message(request, session, refusal.status, heading, refusal.message)
    return _page(request, "run.html", {
        "run": detail,
        "open_gates": open_gates(detail, principal),
        "can_decide": principal.has(APPROVER),
        "tiers": tiers(detail),
        "audit": audit,
        "reason_max": REASON_MAX,
        "refresh": RUN_REFRESH_SECONDS if detail.state in LIVE else None,
    }, session=session)


async def _decide(request: Request, run_id: str, target: str, sent_csrf: str, reason: str,
                  kind: str, *, approve: bool) -> Response:
    session, refused = _viewer(request)
    if session is None:
        return refused
    if (denied := _csrf_refusal(request, session, sent_csrf)) is not None:
        return denied
    principal = session.principal
    verb = "approve" if approve else "reject"

    def back(tone: str, text: str) -> Response:
        return _redirect(request, f"{base(request)}/runs/{quote(run_id, safe='')}", (tone, text))

    if not principal.has(APPROVER):
        return back("error", f"{principal.name} cannot {verb} gates: that needs the approver role.")
    if kind not in ("", *GATE_KINDS):
        return back("error", "A gate is a tier's or a credential's.")
    reason = reason.strip()
    if len(reason) > REASON_MAX:
        return back("error", f"The reason is longer than {REASON_MAX} characters.")
    ctx: ApiContext = get_context(request)
    try:
        result = await runs_routes.decide(await ctx.client(), run_id, target, principal, reason,
                                          approve=approve, kind=kind or None)
    except (ApiError, KeyturnError) as exc:
        return back("error", f"Could not {verb} {target}: {_refusal(exc).message}")
    done = "Approved" if approve else "Rejected"
    return back("ok", f"{done} {target} as {principal.name}: gate {result.status}, "
                      f"{result.approvals}/{result.needed} approvals.")


@router.post("/runs/{run_id}/gates/{target}/approve")
async def approve_gate(request: Request, run_id: str, target: str,
                       csrf_token: Annotated[str, Form()] = "",
                       reason: Annotated[str, Form()] = "",
                       kind: Annotated[str, Form()] = "") -> Response:
    return await _decide(request, run_id, target, csrf_token, reason, kind, approve=True)


@router.post("/runs/{run_id}/gates/{target}/reject")
async def reject_gate(request: Request, run_id: str, target: str,
                      csrf_token: Annotated[str, Form()] = "",
                      reason: Annotated[str, Form()] = "",
                      kind: Annotated[str, Form()] = "") -> Response:
    return await _decide(request, run_id, target, csrf_token, reason, kind, approve=False)
