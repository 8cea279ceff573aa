"""The approvals page at /ui: runs, their progress per tier, open gates with what approving
will do, approve/reject buttons, and a run's audit timeline. Server-rendered HTML
(Jinja2, autoescaped) plus one small script; no build step.

These are the pages; logging in and out, and the viewer and CSRF guards, are
keyturn.api.ui_login. The pages call the operations core as the JSON routes do
(runs_routes.list_runs and decide, run_views.run_detail, audit_routes.run_records);
its refusals become messages on the page.
"""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from keyturn.api import audit_routes, runs_routes
from keyturn.api.auth import APPROVER, AUDITOR
from keyturn.api.context import ApiContext, get_context
from keyturn.api.errors import ApiError, from_operation
from keyturn.api.run_views import run_detail
from keyturn.api.ui_login import csrf_refusal, page_viewer
from keyturn.api.ui_render import message_page, page, redirect
from keyturn.api.ui_session import PREFIX, base
from keyturn.api.ui_views import open_gates, tiers
from keyturn.errors import KeyturnError
from keyturn.operations.gates import GATE_KINDS
from keyturn.operations.listing import INCIDENT_FILTER

REASON_MAX = 2000
LIVE = ("pending", "running", "waiting")
RUN_REFRESH_SECONDS = 10
LIST_REFRESH_SECONDS = 15
RUN_STATES = ("pending", "running", "waiting", "succeeded", "failed", "skipped", "cancelled")
INCIDENT_PATTERN = INCIDENT_FILTER  # as GET /v1/runs

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _refusal(exc: ApiError | KeyturnError) -> ApiError:
    """The API's answer to a refusal, whether the route or the operations core raised it."""
    if isinstance(exc, ApiError):
        return exc
    answer = from_operation(exc)
    if answer is None:  # not a refusal: the app's 500 handler answers
        raise exc
    return answer


# ---- pages -------------------------------------------------------------------------------


@router.get("")
async def runs_page(request: Request, state: str = "", incident: str = "") -> Response:
    session, refused = page_viewer(request)
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
        return message_page(request, session, refusal.status, "Runs unavailable", refusal.message)
    return page(request, "runs.html", {
        "runs": [{"requested_by": None, **run.model_dump()} for run in listed],
        "states": RUN_STATES, "state": state, "incident": incident,
        "refresh": LIST_REFRESH_SECONDS,
    }, session=session, flash=flash)


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: str) -> Response:
    session, refused = page_viewer(request)
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
        return message_page(request, session, refusal.status, heading, refusal.message)
    return page(request, "run.html", {
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
    session, refused = page_viewer(request)
    if session is None:
        return refused
    if (denied := csrf_refusal(request, session, sent_csrf)) is not None:
        return denied
    principal = session.principal
    verb = "approve" if approve else "reject"

    def back(tone: str, text: str) -> Response:
        return redirect(request, f"{base(request)}/runs/{quote(run_id, safe='')}", (tone, text))

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
