"""/v1 routes on runs: start, preflight, list, describe, approve or reject a gate, cancel, supply.

Each route is a thin shell over the operations core (keyturn.operations): it reads the
request, calls the core as the authenticated principal and shapes the answer. The
core's typed errors become error bodies in keyturn.api.errors (OPERATION_ERRORS).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from temporalio.client import Client

from keyturn.api.auth import APPROVER, AUDITOR, OPERATOR, Principal, require
from keyturn.api.context import ApiContext, get_client, get_context
from keyturn.api.errors import responses
from keyturn.api.models import (
    ApproveRequest,
    CancelRequest,
    CancelResult,
    DecisionResult,
    HeldTarget,
    PreflightRequest,
    RejectRequest,
    RunDetail,
    RunList,
    RunSummary,
    StartRunRequest,
    StartRunResponse,
    SupplyRequest,
    SupplyResult,
)
from keyturn.api.posted import check_posted
from keyturn.api.run_views import run_detail
from keyturn.operations import gates, listing, runs, supply
from keyturn.operations.plans import RunbookSource, compile_plan
from keyturn.operations.preflight import PreflightReport, preflight
from keyturn.runbook.plan_model import ExecutionPlan
from keyturn.workflows.models import Outcome

log = logging.getLogger("keyturn.api")
router = APIRouter(prefix="/v1", tags=["runs"])

READERS = (OPERATOR, APPROVER, AUDITOR)
RunId = Annotated[str, Path(min_length=1, max_length=255, description="the run id")]
Target = Annotated[str, Path(min_length=1, max_length=255,
                             description="tier id or credential id with an open gate")]


def make_plan(ctx: ApiContext, body: StartRunRequest | PreflightRequest,
              requested_by: str) -> ExecutionPlan:
    """The run's plan from runbook YAML sent in the request (which may read only the allowed
    variables and name only allowed webhook hosts) or from a named runbook file on the
    server, trusted like one given to the CLI."""
    settings = ctx.settings
    if body.runbook_yaml is not None:
        source = RunbookSource(body.runbook_yaml.encode(), "runbook_yaml",
                               settings.runbook_environ())
        check = partial(check_posted, notify_hosts=settings.notify_hosts)
    else:
        path = settings.runbook_path(body.runbook or "")
        source, check = RunbookSource.read(path, str(settings.runbook_dir / path.name)), None
    return compile_plan(settings.keyturn, source, requested_by=requested_by,
                        on_locked=body.on_locked, known_providers=settings.known_providers,
                        check=check, policy=ctx.policy())


@router.post("/runs", status_code=201, response_model=StartRunResponse,
             responses=responses(401, 403, 404, 409, 422, 503), summary="Start a run")
async def post_run(
    body: Annotated[StartRunRequest, Body()],
    principal: Annotated[Principal, Depends(require(OPERATOR))],
    ctx: Annotated[ApiContext, Depends(get_context)],
) -> StartRunResponse:
    """Start a rotation run from runbook YAML or from a runbook name on the server
    (`<runbook_dir>/<name>.yaml`); the caller is the run's requester."""
    run_plan = await asyncio.to_thread(make_plan, ctx, body, principal.name)  # off the loop
    client = await ctx.client()
    if body.skip_preflight:
        log.warning("%s starts a run of %s with --skip-preflight (break-glass)",
                    principal.name, run_plan.runbook)
    run_plan = await runs.start_checked(client, run_plan, ctx.task_queue,
                                        skip_preflight=body.skip_preflight,
                                        search_attributes=ctx.settings.search_attributes)
    state: Outcome | None = None
    if body.wait:
        state = (await runs.wait(client, run_plan.run_id)).state
    return StartRunResponse(run_id=run_plan.run_id, runbook=run_plan.runbook,
                            incident=run_plan.incident, requested_by=principal.name, state=state)


@router.post("/preflight", response_model=PreflightReport,
             responses=responses(401, 403, 404, 422, 503), summary="Check a runbook")
async def post_preflight(
    body: Annotated[PreflightRequest, Body()],
    principal: Annotated[Principal, Depends(require(OPERATOR))],
    ctx: Annotated[ApiContext, Depends(get_context)],
) -> PreflightReport:
    """Every check a run of this runbook would make before its first change, changing
    nothing; `ready` says whether a run would start."""
    run_plan = await asyncio.to_thread(make_plan, ctx, body, principal.name)  # off the loop
    return await preflight(await ctx.client(), run_plan, ctx.task_queue)


async def list_runs(client: Client, state: str | None = None, incident: str | None = None,
                    limit: int = 50) -> list[RunSummary]:
    """Recent runs, newest first, optionally of one state or incident (needs visibility)."""
    return [RunSummary(**row) for row in await listing.list_runs(client, state, incident, limit)]


@router.get("/runs", response_model=RunList, responses=responses(401, 403, 422, 503),
            summary="List runs")
async def get_runs(
    principal: Annotated[Principal, Depends(require(*READERS))],
    client: Annotated[Client, Depends(get_client)],
    state: Annotated[str | None, Query(
        pattern=listing.STATE_FILTER.pattern,
        description="only runs in this state")] = None,
    incident: Annotated[str | None, Query(pattern=listing.INCIDENT_FILTER.pattern,
                                          description="only runs of this incident")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RunList:
    held = await runs.held_targets(client)
    return RunList(runs=await list_runs(client, state, incident, limit),
                   locks=[HeldTarget(**h.to_json()) for h in held])


@router.get("/runs/{run_id}", response_model=RunDetail,
            responses=responses(401, 403, 404, 503), summary="One run")
async def get_run(
    run_id: RunId,
    principal: Annotated[Principal, Depends(require(*READERS))],
    client: Annotated[Client, Depends(get_client)],
) -> RunDetail:
    """The run's tiers, credentials (state, step, steps, old and new ids, fingerprints) and
    open gates, each with what approving it will do."""
    return await run_detail(client, run_id)


async def decide(client: Client, run_id: str, target: str, principal: Principal, reason: str,
                 *, approve: bool, kind: str | None = None) -> DecisionResult:
    """Approve or reject the open gate of `target` as `principal` (the authenticated one);
    `kind` (tier | credential), when given, must be what `target` is."""
    result = await gates.decide(client, run_id, target, principal.name, reason,
                                approve=approve, kind=kind)
    return DecisionResult(**result.model_dump(), principal=principal.name)


@router.post("/runs/{run_id}/gates/{target}/approve", response_model=DecisionResult,
             responses=responses(401, 403, 404, 409, 422, 503), summary="Approve a gate")
async def approve_gate(
    run_id: RunId,
    target: Target,
    principal: Annotated[Principal, Depends(require(APPROVER))],
    client: Annotated[Client, Depends(get_client)],
    body: Annotated[ApproveRequest | None, Body()] = None,
) -> DecisionResult:
    """Approve as the authenticated principal, who must be in the gate's groups (403
    not_an_approver), not its requester when the gate is distinct (403 self_approval),
    and not have approved already (409 already_approved); a decided gate is 409 gate_closed."""
    reason = body.reason if body else ""
    return await decide(client, run_id, target, principal, reason, approve=True,
                        kind=body.kind if body else None)


@router.post("/runs/{run_id}/gates/{target}/reject", response_model=DecisionResult,
             responses=responses(401, 403, 404, 409, 422, 503), summary="Reject a gate")
async def reject_gate(
    run_id: RunId,
    target: Target,
    body: Annotated[RejectRequest, Body()],
    principal: Annotated[Principal, Depends(require(APPROVER))],
    client: Annotated[Client, Depends(get_client)],
) -> DecisionResult:
    """Reject with a reason (422 gate_refused reason_required without one). Before promote
    the credential rolls back; at a revoke gate the old credential is kept; a rejected tier
    gate keeps the tier from starting."""
    return await decide(client, run_id, target, principal, body.reason, approve=False,
                        kind=body.kind)


@router.post("/runs/{run_id}/cancel", status_code=202, response_model=CancelResult,
             responses=responses(401, 403, 404, 409, 503), summary="Cancel a run")
async def post_cancel(
    run_id: RunId,
    principal: Annotated[Principal, Depends(require(OPERATOR))],
    ctx: Annotated[ApiContext, Depends(get_context)],
    client: Annotated[Client, Depends(get_client)],
    body: Annotated[CancelRequest | None, Body()] = None,
) -> CancelResult:
    """Request cancellation; credentials not yet promoted roll back. The audit log names
    the caller and the reason."""
    await runs.cancel(client, run_id, principal.name, body.reason if body else "", ctx.policy())
    return CancelResult(run_id=run_id)


@router.post("/runs/{run_id}/credentials/{credential_id}/supply", status_code=202,
             response_model=SupplyResult, responses=responses(401, 403, 404, 409, 422, 502, 503),
             summary="Supply a replacement value")
async def post_supply(
    run_id: RunId,
    credential_id: Annotated[str, Path(min_length=1, max_length=255)],
    body: Annotated[SupplyRequest, Body()],
    principal: Annotated[Principal, Depends(require(OPERATOR))],
    ctx: Annotated[ApiContext, Depends(get_context)],
) -> SupplyResult:
    """For a credential waiting at its `supply` step (e.g. a GitHub PAT made by hand). The
    value goes straight to the credential's staging store; the run gets only its
    fingerprint. The value appears in no response, log or error."""
    client = await ctx.client()
    cred = supply.supplied_credential(await runs.run_plan(client, run_id), credential_id)
    name = body.field or supply.supplied_field(cred.provider)
    notice = await supply.supply(client, run_id, credential_id,
                                 {name: body.value.get_secret_value()}, principal.name,
                                 store_for=ctx.store_for)
    return SupplyResult(credential=notice.credential, fingerprint=notice.fingerprint,
                        staging_version=notice.staging_version)


__all__ = ["RunId", "decide", "list_runs", "make_plan", "router"]
