"""/v1 routes on runs: start, list, describe, approve or reject a gate, cancel, supply.

Each route is a thin shell over a plain async function of the same name (start_run,
list_runs, run_detail, decide, cancel_run, supply_value) that the UI pages call too.
The principal acting is always the authenticated one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, NoReturn

from fastapi import APIRouter, Body, Depends, Path, Query
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from keyturn import locks, runs
from keyturn.api.auth import APPROVER, AUDITOR, OPERATOR, Principal, require
from keyturn.api.context import ApiContext, get_client, get_context
from keyturn.api.errors import (
    ApiError,
    conflict,
    forbidden,
    gate_refused,
    invalid_request,
    not_found,
    responses,
    temporal_unavailable,
)
from keyturn.api.models import (
    ApproveRequest,
    CancelRequest,
    CancelResult,
    DecisionResult,
    HeldTarget,
    OpenGate,
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
from keyturn.operations.preflight import PreflightRefused, PreflightReport, preflight
from keyturn.policy.model import Policy
from keyturn.runbook import RunbookError, loads, new_run_id, plan, validate
from keyturn.runbook.loader import decode
from keyturn.runbook.plan_model import CredentialPlan, ExecutionPlan, GatePlan, TierPlan
from keyturn.workflows import gates
from keyturn.workflows.models import ApprovalRequest, CredentialStatus, GateState, Outcome
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.runbook import RunbookWorkflow
from keyturn.workflows.tier import credential_workflow_id

log = logging.getLogger("keyturn.api")
router = APIRouter(prefix="/v1", tags=["runs"])

READERS = (OPERATOR, APPROVER, AUDITOR)
RunId = Annotated[str, Path(min_length=1, max_length=255, description="the run id")]
Target = Annotated[str, Path(min_length=1, max_length=255,
                             description="tier id or credential id with an open gate")]
_UNAVAILABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


# ---- errors from Temporal ---------------------------------------------------------


def _rpc(exc: RPCError, what: str) -> NoReturn:
    if exc.status in _UNAVAILABLE:
        raise temporal_unavailable(f"Temporal did not answer: {exc.message}") from None
    if exc.status == RPCStatusCode.UNIMPLEMENTED:
        raise temporal_unavailable(f"{what}: this Temporal server cannot ({exc.message})") from None
    if exc.status == RPCStatusCode.NOT_FOUND:
        raise not_found(f"{what}: {exc.message}") from None
    raise conflict(f"{what}: {exc.message}") from None


async def load_plan_of(client: Client, run_id: str) -> ExecutionPlan:
    """The run's ExecutionPlan; 404 when there is no such run (or it is no keyturn run)."""
    try:
        return await client.get_workflow_handle(run_id).query(RunbookWorkflow.plan)
    except RPCError as exc:
        _rpc(exc, f"no run {run_id!r}")
    except WorkflowQueryFailedError:
        raise not_found(f"{run_id!r} is not a keyturn run") from None


# ---- start ------------------------------------------------------------------------


def _read_runbook(
    ctx: ApiContext, body: StartRunRequest | PreflightRequest
) -> tuple[str, str, Mapping[str, str] | None]:
    """(YAML text, file name for error positions, the environment `${VAR}` may read).

    YAML sent in the request may read only the allowed variables; a named runbook
    is a file on the server, trusted like one given to the CLI.
    """
    if body.runbook_yaml is not None:
        return body.runbook_yaml, "runbook_yaml", ctx.settings.runbook_environ()
    path = ctx.settings.runbook_path(body.runbook or "")
    shown = str(ctx.settings.runbook_dir / path.name)
    return decode(path.read_bytes(), shown), shown, None


def make_plan(ctx: ApiContext, body: StartRunRequest | PreflightRequest,
              requested_by: str) -> ExecutionPlan:
    """Load, validate and plan the runbook; 422 invalid_runbook names file, line and column."""
    text, filename, environ = _read_runbook(ctx, body)
    policy = ctx.policy()
    try:
        runbook = validate(loads(text, filename, environ), ctx.settings.known_providers, policy)
        if body.runbook_yaml is not None:
            check_posted(runbook, ctx.settings.notify_hosts)
        return plan(runbook, run_id=new_run_id(runbook.metadata.name, datetime.now(UTC)),
                    requested_by=requested_by,
                    source_sha256=hashlib.sha256(text.encode()).hexdigest(),
                    on_locked=body.on_locked, policy=policy)
    except RunbookError as exc:
        raise ApiError(422, "invalid_runbook", str(exc), file=exc.file, line=exc.line,
                       column=exc.column) from None


async def run_preflight(ctx: ApiContext, client: Client, run_plan: ExecutionPlan) -> PreflightReport:
    """The plan's preflight report; a missing worker is 503 no_worker."""
    try:
        return await preflight(client, run_plan, ctx.task_queue)
    except runs.RunError as exc:
        raise ApiError(503, "no_worker", str(exc)) from None
    except RPCError as exc:
        _rpc(exc, "cannot run preflight")


async def start_run(ctx: ApiContext, principal: Principal, body: StartRunRequest) -> StartRunResponse:
    run_plan = make_plan(ctx, body, principal.name)
    client = await ctx.client()
    if body.skip_preflight:
        log.warning("%s starts a run of %s with --skip-preflight (break-glass)",
                    principal.name, run_plan.runbook)
        run_plan = run_plan.model_copy(update={"preflight": f"skipped by {principal.name}"})
    else:
        report = await run_preflight(ctx, client, run_plan)
        if not report.ready:
            raise ApiError(409, "preflight_failed", str(PreflightRefused(report)),
                           report=report.model_dump(mode="json"))
        run_plan = run_plan.model_copy(update={"preflight": "passed"})
    try:
        await runs.start(client, run_plan, ctx.task_queue,
                         search_attributes=ctx.settings.search_attributes)
    except WorkflowAlreadyStartedError:
        raise conflict(f"run {run_plan.run_id} already exists") from None
    except runs.RunError as exc:
        raise temporal_unavailable(str(exc)) from None
    except RPCError as exc:
        _rpc(exc, "cannot start the run")
    state: Outcome | None = None
    if body.wait:
        state = (await runs.wait(client, run_plan.run_id)).state
    return StartRunResponse(run_id=run_plan.run_id, runbook=run_plan.runbook,
                            incident=run_plan.incident, requested_by=principal.name, state=state)


@router.post("/runs", status_code=201, response_model=StartRunResponse,
             responses=responses(401, 403, 404, 409, 422, 503), summary="Start a run")
async def post_run(
    body: Annotated[StartRunRequest, Body()],
    principal: Annotated[Principal, Depends(require(OPERATOR))],
    ctx: Annotated[ApiContext, Depends(get_context)],
) -> StartRunResponse:
    """Start a rotation run from runbook YAML or from a runbook name on the server
    (`<runbook_dir>/<name>.yaml`); the caller is the run's requester."""
    return await start_run(ctx, principal, body)


@router.post("/preflight", response_model=PreflightReport,
             responses=responses(401, 403, 404, 422, 503), summary="Check a runbook")
async def post_preflight(
    body: Annotated[PreflightRequest, Body()],
    principal: Annotated[Principal, Depends(require(OPERATOR))],
    ctx: Annotated[ApiContext, Depends(get_context)],
) -> PreflightReport:
    """Every check a run of this runbook would make before its first change, changing
    nothing; `ready` says whether a run would start."""
    run_plan = make_plan(ctx, body, principal.name)
    return await run_preflight(ctx, await ctx.client(), run_plan)


# ---- list and describe -------------------------------------------------------------


async def list_runs(client: Client, state: str | None = None, incident: str | None = None,
                    limit: int = 50) -> list[RunSummary]:
    """Recent runs, newest first, optionally of one state or incident (needs visibility)."""
    try:
        found = await runs.list_runs(client, state, incident, limit)
    except runs.RunError as exc:
        raise invalid_request(str(exc)) from None
    except RPCError as exc:
        _rpc(exc, "cannot list runs")
    return [RunSummary(**row) for row in found]


@router.get("/runs", response_model=RunList, responses=responses(401, 403, 422, 503),
            summary="List runs")
async def get_runs(
    principal: Annotated[Principal, Depends(require(*READERS))],
    client: Annotated[Client, Depends(get_client)],
    state: Annotated[str | None, Query(
        pattern=runs.STATE_FILTER.pattern,
        description="only runs in this state")] = None,
    incident: Annotated[str | None, Query(pattern=runs.INCIDENT_FILTER.pattern,
                                          description="only runs of this incident")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RunList:
    try:
        held = await locks.held_targets(client)
    except RPCError as exc:
        _rpc(exc, "cannot list held targets")
    return RunList(runs=await list_runs(client, state, incident, limit),
                   locks=[HeldTarget(**h.to_json()) for h in held])


def _after(needed: int, approvals: int) -> str:
    """When approving takes effect: now, or once the rest of the quorum approves too."""
    others = needed - approvals - 1
    if others <= 0:
        return ""
    if others == 1:
        return " once 1 more approval after yours arrives"
    return f" once {others} more approvals after yours arrive"


def effect(gate: GatePlan, tier: TierPlan, cred: CredentialPlan | None, approvals: int) -> str:
    """What approving this gate will do, in one sentence an approver can check."""
    later = _after(gate.approvals, approvals)
    if cred is None:
        ids = ", ".join(c.id for c in tier.credentials)
        return (f"Tier {tier.id}{f' ({tier.name})' if tier.name else ''} starts{later}: "
                f"{len(tier.credentials)} credential(s) rotate: {ids}.")
    where = ", ".join(f"{d.store}:{d.path}" for d in cred.deliver) or "its stores"
    if gate.before == "create" and cred.strategy == "revoke-first":
        return (f"The old {cred.id} credential ({cred.provider}) is disabled at once "
                f"(revoke-first), then its replacement is created{later}.")
    if gate.before == "create":
        return f"{cred.id} ({cred.provider}) creates its replacement credential{later}."
    if gate.before == "promote":
        return f"The verified new {cred.id} credential becomes current in {where}{later}."
    if gate.before == "revoke":
        grace = f" after a grace period of {cred.grace_period}" if cred.grace_period else ""
        return (f"The old {cred.id} credential ({cred.provider}) is disabled and deleted"
                f"{grace}{later}; anything still using it stops working.")
    return f"The {gate.before} gate of {cred.id} passes{later}."


def _open_gate(target: str, kind: str, tier: TierPlan, cred: CredentialPlan | None,
               gate: GateState) -> OpenGate:
    approved = [d.principal for d in gate.approvals]
    return OpenGate(
        target=target, kind=kind, tier=tier.id, before=gate.plan.before,
        approvals=len(approved), needed=gate.plan.approvals, approvers=gate.plan.approvers,
        groups=gate.plan.groups, distinct=gate.plan.distinct, timeout=gate.plan.timeout,
        approved_by=approved, effect=effect(gate.plan, tier, cred, len(approved)),
    )


async def _fill_missing(client: Client, run_id: str, the_plan: ExecutionPlan,
                        detail: runs.RunDetail) -> None:
    """Ask the credentials of started tiers that `describe` left out (a cancelled tier's
    outcomes stop at `pending`) where they stand, up to runs.DETAIL_LIMIT of them."""
    started = {t.tier for t in detail.status.tiers if t.state != "pending"}
    missing = [c.id for t in the_plan.tiers if t.id in started for c in t.credentials
               if c.id not in detail.credentials][: runs.DETAIL_LIMIT]

    async def query(cid: str) -> None:
        handle = client.get_workflow_handle(credential_workflow_id(run_id, cid))
        with contextlib.suppress(RPCError, WorkflowQueryFailedError):
            detail.credentials[cid] = await handle.query(CredentialRotationWorkflow.status)

    if len(detail.credentials) <= runs.DETAIL_LIMIT:
        await asyncio.gather(*(query(cid) for cid in missing))


async def run_detail(client: Client, run_id: str) -> RunDetail:
    """The run with its tiers, every credential (steps once started) and its open gates."""
    the_plan = await load_plan_of(client, run_id)
    try:
        detail = await runs.describe(client, run_id)
    except runs.RunError as exc:
        cause = exc.__cause__
        if isinstance(cause, RPCError):
            _rpc(cause, f"no run {run_id!r}")
        raise not_found(str(exc)) from None
    status = detail.status
    await _fill_missing(client, run_id, the_plan, detail)
    outcomes = {cid: o for tier in status.tiers for cid, o in tier.credentials.items()}
    credentials: list[CredentialStatus] = []
    open_gates: list[OpenGate] = []
    for tier in the_plan.tiers:
        tier_status = next((t for t in status.tiers if t.tier == tier.id), None)
        if tier_status and tier_status.gate and tier_status.gate.status == "open":
            open_gates.append(_open_gate(tier.id, "tier", tier, None, tier_status.gate))
        for cred in tier.credentials:
            cs = detail.credentials.get(cred.id) or CredentialStatus(
                credential=cred.id, tier=tier.id, provider=cred.provider,
                state=outcomes.get(cred.id, "pending"))
            credentials.append(cs)
            gate = next((g for g in cs.gates if g.status == "open"), None)
            if gate is not None:
                open_gates.append(_open_gate(cred.id, "credential", tier, cred, gate))
    return RunDetail(
        run_id=status.run_id, runbook=status.runbook, incident=status.incident,
        requested_by=status.requested_by, state=status.state, started_at=status.started_at,
        ended_at=status.ended_at, tiers=status.tiers, credentials=credentials,
        open_gates=open_gates,
    )


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


# ---- gates --------------------------------------------------------------------------


async def decide(client: Client, run_id: str, target: str, principal: Principal, reason: str,
                 *, approve: bool, kind: str | None = None) -> DecisionResult:
    """Approve or reject the open gate of `target` as `principal` (the authenticated one);
    `kind` (tier | credential), when given, must be what `target` is."""
    the_plan = await load_plan_of(client, run_id)
    request = ApprovalRequest(target=target, principal=principal.name, reason=reason)
    try:
        which = runs.gate_kind(the_plan, target, kind)
    except runs.RunError as exc:
        both = the_plan.tier(target) is not None and the_plan.credential(target) is not None
        raise (conflict(str(exc)) if both and kind is None else not_found(str(exc))) from None
    if which == "tier":
        handle = client.get_workflow_handle(run_id)
        update = RunbookWorkflow.approve if approve else RunbookWorkflow.reject
        status_query = RunbookWorkflow.status
    else:
        handle = client.get_workflow_handle(credential_workflow_id(run_id, target))
        update = CredentialRotationWorkflow.approve if approve else CredentialRotationWorkflow.reject
        status_query = CredentialRotationWorkflow.status
    closed = gate_refused(gates.GATE_CLOSED, f"{target!r} has no open gate in run {run_id}")
    try:
        # A cancelled or ended workflow may still show its last gate as open while it
        # rolls back; it takes no more decisions.
        if (await handle.query(status_query)).state not in ("running", "waiting"):
            raise closed
        result = await handle.execute_update(update, request)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        if isinstance(cause, ApplicationError) and cause.type in gates.REFUSALS:
            raise gate_refused(cause.type, message) from None
        raise conflict(message) from None
    except RPCError as exc:
        if exc.status in _UNAVAILABLE:
            _rpc(exc, "")
        raise closed from None  # the credential has not started, or the run has ended
    except WorkflowQueryFailedError:
        raise closed from None
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


# ---- cancel and supply -------------------------------------------------------------------


async def cancel_run(client: Client, run_id: str, principal: Principal,
                     reason: str = "", policy: Policy | None = None) -> CancelResult:
    """Cancel as `principal`, who (with the reason) is named in the audit log; 403 where
    the approval `policy` keeps them from cancelling someone else's run."""
    the_plan = await load_plan_of(client, run_id)
    refusal = runs.cancel_refusal(policy, principal.name, the_plan.requested_by)
    if refusal:
        raise forbidden(refusal)
    handle = client.get_workflow_handle(run_id)
    try:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            ended = status.name.lower() if status else "closed"
            raise conflict(f"run {run_id} has already ended ({ended})")
        await runs.cancel_as(handle, principal.name, reason)
    except RPCError as exc:
        if exc.status in _UNAVAILABLE:
            _rpc(exc, "")
        raise conflict(f"run {run_id} has already ended ({exc.message})") from None
    return CancelResult(run_id=run_id)


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
    the caller and the reason. The approval policy may keep operators from cancelling
    runs others started (403)."""
    return await cancel_run(client, run_id, principal, body.reason if body else "",
                            ctx.policy())


async def supply_value(ctx: ApiContext, client: Client, run_id: str, credential_id: str,
                       principal: Principal, body: SupplyRequest) -> SupplyResult:
    """Write the value straight to the credential's staging store; the run gets only its
    fingerprint. The value appears in no response, log or error."""
    from keyturn.stores.errors import StoreError
    from keyturn.supply import supplied_field, supply

    the_plan = await load_plan_of(client, run_id)
    cred = the_plan.credential(credential_id)
    if cred is None:
        raise not_found(f"run {run_id} has no credential {credential_id!r}")
    if not cred.supplied:
        raise conflict(f"credential {credential_id} ({cred.provider}) is created by its "
                       "provider; only supplied credentials (e.g. github.pat) take a value")
    name = body.field or supplied_field(cred.provider)
    try:
        notice = await supply(client, run_id, credential_id,
                              {name: body.value.get_secret_value()}, principal.name,
                              store_for=ctx.store_for)
    except runs.RunError as exc:
        raise conflict(str(exc)) from None
    except StoreError as exc:
        raise ApiError(502, "store_error", f"the store refused the value: {exc}") from None
    except RPCError as exc:
        _rpc(exc, "supply failed")
    return SupplyResult(credential=notice.credential, fingerprint=notice.fingerprint,
                        staging_version=notice.staging_version)


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
    """For a credential waiting at its `supply` step (e.g. a GitHub PAT made by hand)."""
    return await supply_value(ctx, await ctx.client(), run_id, credential_id, principal, body)


__all__ = ["cancel_run", "decide", "list_runs", "load_plan_of",
           "make_plan", "router", "run_detail", "start_run", "supply_value"]
