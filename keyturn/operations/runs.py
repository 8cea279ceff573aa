"""Runs as the faces see them: start (after preflight), describe, list, cancel, wait, a run's plan.

The CLI and the HTTP API both call these; they talk to Temporal only and refuse with
the typed errors of keyturn.operations.errors. Gates are keyturn.operations.gates,
supplied values keyturn.operations.supply. Cancelling tells the run who cancels it and
why (its audit record names them) before the workflow is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from keyturn import locks
from keyturn.locks import LockHolder
from keyturn.operations.errors import (
    UNAVAILABLE,
    CancelForbidden,
    NoWorker,
    PreflightRefused,
    RunConflict,
    RunEnded,
    RunNotFound,
    TemporalUnavailable,
    temporal_error,
)
from keyturn.operations.listing import REQUESTED_BY_MEMO
from keyturn.operations.pickup import START_ONE, served
from keyturn.operations.preflight import preflight
from keyturn.policy.model import Policy
from keyturn.runbook.plan_model import ExecutionPlan
from keyturn.workflows.models import CancelNotice, CredentialStatus, RunStatus
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.runbook import (
    INCIDENT_KEY,
    RUNBOOK_KEY,
    STATE_KEY,
    RunbookWorkflow,
    tier_workflow_id,
)
from keyturn.workflows.tier import TierWorkflow, credential_workflow_id

QUERY_TIMEOUT = timedelta(seconds=10)
"""How long `describe` waits for a worker to answer the run's status query."""
DETAIL_LIMIT = 200
"""Above this many started credentials, `describe` details only the running and failed ones."""


@dataclass
class RunSnapshot:
    """A run as `describe` found it: its status, and the steps of the credentials detailed."""

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
    except WorkflowAlreadyStartedError as exc:
        raise RunConflict(f"run {plan.run_id} already exists") from exc
    except RPCError as exc:
        if "search attribute" in exc.message.lower():
            names = " ".join(f"--name {k.name} --type Keyword"
                             for k in (RUNBOOK_KEY, INCIDENT_KEY, STATE_KEY))
            raise TemporalUnavailable(
                f"{exc.message}; register keyturn's search attributes once per namespace: "
                f"temporal operator search-attribute create {names}") from exc
        raise temporal_error(exc, "cannot start the run") from exc
    return plan.run_id


async def start_checked(client: Client, plan: ExecutionPlan, task_queue: str, *,
                        skip_preflight: bool = False, search_attributes: bool = True,
                        on_preflight: Callable[[ExecutionPlan], None] | None = None,
                        ) -> ExecutionPlan:
    """Run preflight, then start the run; the plan started (its `preflight` says how it
    was checked). PreflightRefused with the report when preflight finds a problem;
    `skip_preflight` (break-glass) starts unchecked and records who skipped."""
    if skip_preflight:
        plan = plan.model_copy(update={"preflight": f"skipped by {plan.requested_by}"})
    else:
        if on_preflight is not None:
            on_preflight(plan)
        report = await preflight(client, plan, task_queue)
        if not report.ready:
            raise PreflightRefused(report)
        plan = plan.model_copy(update={"preflight": "passed"})
    await start(client, plan, task_queue, search_attributes=search_attributes)
    return plan


async def describe(client: Client, run_id: str, detail_limit: int = DETAIL_LIMIT, *,
                   plan: ExecutionPlan | None = None) -> RunSnapshot:
    """The run's tiers and gates, live credential outcomes, and the steps and gates of
    every started credential (of only the running and failed ones in a large run).

    Given the run's `plan`, also the credentials of started tiers whose outcome stopped
    at `pending` (a cancelled tier's), up to `detail_limit` of them."""
    await served(client, run_id)
    try:
        status = await client.get_workflow_handle(run_id).query(RunbookWorkflow.status,
                                                                rpc_timeout=QUERY_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
            raise NoWorker(f"no worker answered for run {run_id} within "
                           f"{QUERY_TIMEOUT.seconds} s (the one listed may have stopped): "
                           f"{START_ONE}") from exc
        raise temporal_error(exc, f"no run {run_id!r}") from exc
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
    detail = RunSnapshot(status=status, credentials={cid: cs for cid, cs in found if cs is not None})
    if plan is not None:
        await _fill_missing(client, plan, detail, detail_limit)
    return detail


async def _fill_missing(client: Client, plan: ExecutionPlan, detail: RunSnapshot,
                        limit: int) -> None:
    """Ask the credentials of started tiers that `describe` left out where they stand."""
    started = {t.tier for t in detail.status.tiers if t.state != "pending"}
    missing = [c.id for t in plan.tiers if t.id in started for c in t.credentials
               if c.id not in detail.credentials][:limit]

    async def query(cid: str) -> None:
        handle = client.get_workflow_handle(credential_workflow_id(plan.run_id, cid))
        with contextlib.suppress(RPCError, WorkflowQueryFailedError):
            detail.credentials[cid] = await handle.query(CredentialRotationWorkflow.status)

    if len(detail.credentials) <= limit:
        await asyncio.gather(*(query(cid) for cid in missing))


async def cancel(client: Client, run_id: str, principal: str, reason: str = "",
                 policy: Policy | None = None) -> None:
    """Cancel the run as `principal`; RunNotFound without such a run, RunEnded once it ended,
    CancelForbidden where the approval `policy` keeps `principal` from cancelling a run
    someone else started."""
    plan = await run_plan(client, run_id)
    if policy is not None and not policy.may_cancel(principal, plan.requested_by):
        raise CancelForbidden(
            f"{principal!r} may not cancel a run {plan.requested_by!r} started: the approval "
            f"policy lets only {', '.join(policy.cancel_others or [])} cancel others' runs")
    handle = client.get_workflow_handle(run_id)
    try:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            ended = status.name.lower() if status else "closed"
            raise RunEnded(f"run {run_id} has already ended ({ended})")
        await _request_cancel(handle, principal, reason)
    except RPCError as exc:
        if exc.status in UNAVAILABLE:
            raise temporal_error(exc, "") from exc
        raise RunEnded(f"run {run_id} has already ended ({exc.message})") from exc


async def _request_cancel(handle: WorkflowHandle, principal: str, reason: str = "") -> None:
    """Signal `cancel_requested` (who, why) to the run's workflow, then cancel it."""
    await handle.signal(RunbookWorkflow.cancel_requested,
                        CancelNotice(principal=principal, reason=reason))
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
    """The ExecutionPlan of `run_id`; RunNotFound if there is no such run (or it is no
    keyturn run)."""
    await served(client, run_id)
    try:
        return await client.get_workflow_handle(run_id).query(RunbookWorkflow.plan)
    except RPCError as exc:
        raise temporal_error(exc, f"no run {run_id!r}") from exc
    except WorkflowQueryFailedError as exc:
        raise RunNotFound(f"{run_id!r} is not a keyturn run") from exc


async def held_targets(client: Client) -> list[LockHolder]:
    """The targets runs hold now (keyturn.locks), each with the run holding it."""
    try:
        return await locks.held_targets(client)
    except RPCError as exc:
        raise temporal_error(exc, "cannot list held targets") from exc
