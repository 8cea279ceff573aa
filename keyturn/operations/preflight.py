"""Preflight: find out everything that could stop a run, before its first change.

`preflight(client, plan, task_queue)` asks the workers to check each credential
(PreflightWorkflow: stores reachable and writable, the deliver paths' shape, a
stale store, the provider's dry-run precheck) and checks here that no other
run holds a credential's target (keyturn.locks) and that every gate's
approvers can pass it without the requester where the gate says `distinct`. `keyturn preflight`, `keyturn run` and `POST
/v1/runs` all use it, so they refuse with the same report.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from pydantic import BaseModel
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from keyturn.locks import holder_of
from keyturn.operations.errors import NoWorker, RunConflict, temporal_error
from keyturn.operations.pickup import START_ONE, polled, unserved
from keyturn.runbook.plan_model import ExecutionPlan, GatePlan
from keyturn.workflows.common import family_queue
from keyturn.workflows.models import CredentialCheck, Problem
from keyturn.workflows.preflight import PreflightWorkflow, preflight_workflow_id

PREFLIGHT_TIMEOUT = timedelta(minutes=5)
MID_ROTATION_CHECKS = frozenset({"store shape", "provider precheck"})
"""Checks of a target's current state, which another run holding it may be changing."""
WORKER_GRACE_SECONDS = 10.0
STALL_CHECK_SECONDS = 5.0
"""How often a waiting preflight asks the server whether a worker has picked it up."""
"""How long preflight waits for a worker to poll the queues a run needs."""


class GateCheck(BaseModel):
    """Whether a gate can pass: who may approve it in this run, and how many must."""

    gate: str  # "tier tier3" or "credential orders-db before revoke"
    approvals: int
    eligible: list[str]
    ready: bool
    message: str = ""


class PreflightReport(BaseModel):
    run_id: str
    runbook: str
    requested_by: str
    ready: bool
    credentials: list[CredentialCheck]
    gates: list[GateCheck]


def gate_checks(plan: ExecutionPlan) -> list[GateCheck]:
    """Every gate of the plan, with the principals who may pass it for this requester."""
    found = []
    for tier in plan.tiers:
        if tier.gate is not None:
            found.append(_gate(f"tier {tier.id}", tier.gate, plan.requested_by))
        for cred in tier.credentials:
            for gate in cred.gates:
                found.append(_gate(f"credential {cred.id} before {gate.before}", gate,
                                   plan.requested_by))
    return found


def _gate(where: str, gate: GatePlan, requester: str) -> GateCheck:
    eligible = [p for p in gate.approvers if not (gate.distinct and p == requester)]
    ready = len(eligible) >= gate.approvals
    message = "" if ready else (
        f"needs {gate.approvals} approval(s) but only {len(eligible)} principal(s) of "
        f"{', '.join(gate.groups)} may approve" + (f" (not {requester}, who requests the run)"
                                                   if gate.distinct else ""))
    return GateCheck(gate=where, approvals=gate.approvals, eligible=eligible, ready=ready,
                     message=message)


async def missing_workers(client: Client, plan: ExecutionPlan, task_queue: str) -> list[str]:
    """The task queues the run needs that no worker polls now (empty if the server cannot tell)."""
    queues = [(task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)] + [
        (family_queue(task_queue, family), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        for family in sorted({c.family for t in plan.tiers for c in t.credentials if c.family})
    ]
    return [name for name, kind in queues if not await polled(client, name, kind)]


async def _with_hold(client: Client, plan: ExecutionPlan,
                     check: CredentialCheck) -> CredentialCheck:
    """The check, with the run that holds the credential's target now, if one does: a
    problem when the credential would be refused, a note when it would wait."""
    cred = plan.credential(check.credential)
    holder = await holder_of(client, cred.lock_key) if cred else None
    if holder is None:
        return check
    held = (f"run {holder.run_id} (credential {holder.credential}) is rotating this "
            f"{holder.provider} target ({holder.target})")
    if cred.on_locked == "wait":
        # The holder is changing this target now, so what its provider and store show is
        # mid-rotation; the run checks them again in precheck, once it holds the target.
        moot = [p for p in check.problems if p.check in MID_ROTATION_CHECKS]
        kept = [p for p in check.problems if p not in moot]
        notes = [*check.notes, f"would wait: {held}",
                 *(f"checked while held, so checked again at precheck: {p.check}: {p.message}"
                   for p in moot)]
        return check.model_copy(update={"ready": not kept, "problems": kept, "notes": notes})
    problem = Problem(check="lock", message=f"{held}; wait for it to end, or run with "
                      "--on-locked wait")
    return check.model_copy(update={"ready": False, "problems": [*check.problems, problem]})


async def wait_for_workers(client: Client, plan: ExecutionPlan, task_queue: str,
                           grace: float = WORKER_GRACE_SECONDS) -> None:
    """Return once a worker polls every queue the run needs; NoWorker after `grace` seconds
    (a worker started a moment ago gets that long to connect)."""
    deadline = asyncio.get_running_loop().time() + grace
    while missing := await missing_workers(client, plan, task_queue):
        if asyncio.get_running_loop().time() >= deadline:
            raise NoWorker(f"no worker polls task queue(s) {', '.join(missing)}: start one "
                           "with `keyturn worker` (or `python worker.py`) with the same "
                           "KEYTURN_TASK_QUEUE, then run again")
        await asyncio.sleep(0.25)


async def _checks(client: Client, handle: WorkflowHandle) -> list[CredentialCheck]:
    """The preflight workflow's result; NoWorker as soon as the server shows that no worker
    picks it up (a worker that stopped a moment ago is still listed as polling), instead of
    waiting out PREFLIGHT_TIMEOUT."""
    result = asyncio.ensure_future(handle.result())
    while not (await asyncio.wait([result], timeout=STALL_CHECK_SECONDS))[0]:
        if reason := await unserved(client, handle.id):
            result.cancel()
            with contextlib.suppress(RPCError):
                await handle.terminate("no worker picked up the preflight")
            raise NoWorker(reason.replace(f"run {handle.id}", "preflight"))
    try:
        return result.result()
    except WorkflowFailureError as exc:
        if isinstance(exc.cause, TimeoutError):
            raise NoWorker(f"preflight did not finish within {PREFLIGHT_TIMEOUT}: {START_ONE}") \
                from exc
        raise RunConflict(f"preflight failed: {exc.cause or exc}") from exc


async def preflight(client: Client, plan: ExecutionPlan, task_queue: str) -> PreflightReport:
    """Run every check; raises NoWorker when no worker serves a queue the checks need."""
    try:
        await wait_for_workers(client, plan, task_queue)
        handle = await client.start_workflow(
            PreflightWorkflow.run, plan, id=preflight_workflow_id(plan.run_id),
            task_queue=task_queue, execution_timeout=PREFLIGHT_TIMEOUT,
            result_type=list[CredentialCheck])
        checks = await _checks(client, handle)
        checks = await asyncio.gather(*(_with_hold(client, plan, check) for check in checks))
    except RPCError as exc:
        raise temporal_error(exc, "cannot run preflight") from exc
    gates = gate_checks(plan)
    return PreflightReport(
        run_id=plan.run_id, runbook=plan.runbook, requested_by=plan.requested_by,
        ready=all(c.ready for c in checks) and all(g.ready for g in gates),
        credentials=checks, gates=gates)
