"""Client-side operations on runs: start, describe, list, approve, reject, cancel, wait.

The CLI (and later the HTTP API) use these; they talk to Temporal only.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from datetime import UTC

from temporalio.api.common.v1 import Memo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.converter import decode_typed_search_attributes
from temporalio.service import RPCError

from keyturn.config import ConfigError
from keyturn.policy.model import Policy
from keyturn.runbook.plan_model import ExecutionPlan
from keyturn.workflows.models import (
    ApprovalRequest,
    ApprovalResult,
    CancelRequest,
    CredentialStatus,
    RunStatus,
)
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.runbook import (
    INCIDENT_KEY,
    RUNBOOK_KEY,
    STATE_KEY,
    RunbookWorkflow,
    tier_workflow_id,
)
from keyturn.workflows.tier import TierWorkflow, credential_workflow_id

REQUESTED_BY_MEMO = "requested_by"
DETAIL_LIMIT = 200
"""Above this many started credentials, `describe` details only the running and failed ones."""


class RunError(Exception):
    """An operation on a run was refused or the run does not exist; the message says why."""


@dataclass
class RunDetail:
    status: RunStatus
    credentials: dict[str, CredentialStatus] = field(default_factory=dict)


async def start(client: Client, plan: ExecutionPlan, task_queue: str, *, search_attributes: bool = True) -> str:
    """Start the run's RunbookWorkflow; its workflow id is the run id."""
    attrs = None
    if search_attributes:
        pairs = [SearchAttributePair(RUNBOOK_KEY, plan.runbook),
                 SearchAttributePair(STATE_KEY, "running")]
        if plan.incident:
            pairs.append(SearchAttributePair(INCIDENT_KEY, plan.incident))
        attrs = TypedSearchAttributes(pairs)
    try:
        await client.start_workflow(
            RunbookWorkflow.run,
            plan,
            id=plan.run_id,
            task_queue=task_queue,
            search_attributes=attrs,
            memo={REQUESTED_BY_MEMO: plan.requested_by},  # shown when runs are listed
        )
    except RPCError as exc:
        if "search attribute" in exc.message.lower():
            names = " ".join(f"--name {k.name} --type Keyword"
                             for k in (RUNBOOK_KEY, INCIDENT_KEY, STATE_KEY))
            raise RunError(f"{exc.message}; register keyturn's search attributes once per "
                           f"namespace: temporal operator search-attribute create {names}") from exc
        raise
    return plan.run_id


async def describe(client: Client, run_id: str, detail_limit: int = DETAIL_LIMIT) -> RunDetail:
    """The run's tiers and gates, live credential outcomes, and the steps and gates of
    every started credential (of only the running and failed ones in a large run)."""
    try:
        status = await client.get_workflow_handle(run_id).query(RunbookWorkflow.status)
    except RPCError as exc:
        raise RunError(f"no run {run_id!r}: {exc.message}") from exc
    for tier in status.tiers:
        if tier.state in ("running", "cancelled"):  # the run's own record lags or stopped
            handle = client.get_workflow_handle(tier_workflow_id(run_id, tier.tier))
            with contextlib.suppress(RPCError):  # between the tier's start and its first task
                tier.credentials.update(await handle.query(TierWorkflow.outcomes))
    started = {cid: outcome for tier in status.tiers for cid, outcome in tier.credentials.items()
               if outcome not in ("pending", "skipped")}
    if len(started) > detail_limit:
        started = {cid: o for cid, o in started.items() if o in ("running", "failed")}

    async def query(cid: str) -> tuple[str, CredentialStatus | None]:
        handle = client.get_workflow_handle(credential_workflow_id(run_id, cid))
        try:
            return cid, await handle.query(CredentialRotationWorkflow.status)
        except RPCError:
            return cid, None  # not started yet

    found = await asyncio.gather(*(query(cid) for cid in started))
    return RunDetail(status=status, credentials={cid: cs for cid, cs in found if cs is not None})


STATE_FILTER = re.compile(r"^(pending|running|waiting|succeeded|failed|skipped|cancelled)$")
INCIDENT_FILTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


async def list_runs(client: Client, state: str | None = None, incident: str | None = None,
                    limit: int = 50) -> list[dict]:
    """Recent runs, newest first, optionally of one state or incident (needs visibility).

    Each has its runbook, incident, requester, state and start time. One page
    through the raw service call: the SDK's `list_workflows` iterator can crash
    the interpreter at exit (temporalio 1.35). The filters are checked against
    strict patterns, so nothing in the visibility query needs quoting.
    """
    clauses = [f"WorkflowType = '{RunbookWorkflow.__name__}'"]
    if state:
        if not STATE_FILTER.match(state):
            raise RunError(f"unknown run state {state!r}")
        clauses.append(f"{STATE_KEY.name} = '{state}'")
    if incident:
        if not INCIDENT_FILTER.match(incident):
            raise RunError(f"incident {incident!r} is not a valid incident id")
        clauses.append(f"{INCIDENT_KEY.name} = '{incident}'")
    response = await client.workflow_service.list_workflow_executions(
        ListWorkflowExecutionsRequest(
            namespace=client.namespace, query=" AND ".join(clauses), page_size=limit
        )
    )
    found = []
    for execution in response.executions:
        attrs = decode_typed_search_attributes(execution.search_attributes)
        status = WorkflowExecutionStatus(execution.status).name.lower()
        recorded = attrs.get(STATE_KEY)
        if status != "running" and recorded in (None, "running"):  # cancelled, terminated
            recorded = "cancelled" if status == "canceled" else status
        found.append({
            "run_id": execution.execution.workflow_id,
            "runbook": attrs.get(RUNBOOK_KEY),
            "incident": attrs.get(INCIDENT_KEY),
            "requested_by": await _requested_by(client, execution.memo),
            "state": recorded or status,
            "started_at": execution.start_time.ToDatetime(UTC).isoformat()
            if execution.HasField("start_time") else None,
            "workflow_status": status,
        })
    return found[:limit]


async def _requested_by(client: Client, memo: Memo) -> str | None:
    """The requester `start` put in the run's memo (encrypted like every payload)."""
    payload = memo.fields.get(REQUESTED_BY_MEMO)
    if payload is None:
        return None
    try:
        (decoded,) = await client.data_converter.decode([payload], [str])
    except (ConfigError, KeyError, ValueError):
        # written under another codec key (or with one this client lacks): listed without it
        return None
    return decoded


GATE_KINDS = ("tier", "credential")


def gate_kind(plan: ExecutionPlan, target: str, kind: str | None = None) -> str:
    """Whether `target` names a tier's gate or a credential's; `kind` (tier | credential),
    when given, must agree. A run from before ids were unique across tiers and credentials
    may have both: then `kind` is required, so nobody approves a gate they did not mean."""
    found = [k for k, there in (("tier", plan.tier(target)), ("credential", plan.credential(target)))
             if there is not None]
    if kind is not None:
        if kind not in found:
            raise RunError(f"run {plan.run_id} has no {kind} {target!r}")
        return kind
    if not found:
        raise RunError(f"{target!r} is neither a tier nor a credential of run {plan.run_id}")
    if len(found) > 1:
        raise RunError(f"{target!r} is both a tier and a credential of run {plan.run_id}: "
                       "say which gate (kind tier or credential)")
    return found[0]


async def decide(client: Client, run_id: str, target: str, principal: str, reason: str,
                 *, approve: bool, kind: str | None = None) -> ApprovalResult:
    """Approve or reject the open gate of `target` (a tier id or a credential id; `kind`
    says which when given)."""
    plan = await run_plan(client, run_id)
    request = ApprovalRequest(target=target, principal=principal, reason=reason)
    if gate_kind(plan, target, kind) == "tier":
        handle = client.get_workflow_handle(run_id)
        update = RunbookWorkflow.approve if approve else RunbookWorkflow.reject
    else:
        handle = client.get_workflow_handle(credential_workflow_id(run_id, target))
        update = CredentialRotationWorkflow.approve if approve else CredentialRotationWorkflow.reject
    try:
        return await handle.execute_update(update, request)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        raise RunError(f"{'approval' if approve else 'rejection'} refused: {message}") from exc
    except RPCError as exc:
        raise RunError(f"{target!r} has no open gate in run {run_id} ({exc.message})") from exc


async def cancel(client: Client, run_id: str, principal: str, reason: str = "",
                 policy: Policy | None = None) -> None:
    """Cancel the run as `principal`: tell the run who cancels it and why (its audit
    record of the cancellation names them), then request the cancellation. RunError
    if the approval `policy` does not let `principal` cancel a run someone else started."""
    plan = await run_plan(client, run_id)
    refusal = cancel_refusal(policy, principal, plan.requested_by)
    if refusal:
        raise RunError(refusal)
    await cancel_as(client.get_workflow_handle(run_id), principal, reason)


def cancel_refusal(policy: Policy | None, principal: str, requested_by: str) -> str | None:
    """Why the policy keeps `principal` from cancelling a run of `requested_by`, or None."""
    if policy is None or policy.may_cancel(principal, requested_by):
        return None
    return (f"{principal!r} may not cancel a run {requested_by!r} started: the approval "
            f"policy lets only {', '.join(policy.cancel_others or [])} cancel others' runs")


async def cancel_as(handle: WorkflowHandle, principal: str, reason: str = "") -> None:
    """Signal `cancel_requested` (who, why) to the run's workflow, then cancel it."""
    await handle.signal(RunbookWorkflow.cancel_requested,
                        CancelRequest(principal=principal, reason=reason))
    await handle.cancel()


async def wait(client: Client, run_id: str) -> RunStatus:
    """Block until the run ends and return its final status."""
    handle = client.get_workflow_handle(run_id, result_type=RunStatus)
    try:
        return await handle.result()
    except Exception:
        desc = await handle.describe()
        if desc.status == WorkflowExecutionStatus.CANCELED:
            status = await handle.query(RunbookWorkflow.status)
            return status.model_copy(update={"state": "cancelled"})
        raise


async def run_plan(client: Client, run_id: str) -> ExecutionPlan:
    """The ExecutionPlan of `run_id`; RunError if there is no such run."""
    try:
        return await client.get_workflow_handle(run_id).query(RunbookWorkflow.plan)
    except RPCError as exc:
        raise RunError(f"no run {run_id!r}: {exc.message}") from exc
