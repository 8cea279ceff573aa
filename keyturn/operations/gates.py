"""Deciding a run's gates: approve or reject the open gate of a tier or a credential.

The workflow's Update validator (keyturn.workflows.gates) judges who may decide; this
module finds the gate `target` names, refuses a gate whose workflow has ended, sends
the Update, and turns the validator's refusal into GateRefused with its reason.
"""

from __future__ import annotations

import difflib

from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from keyturn.operations.errors import (
    UNAVAILABLE,
    AmbiguousTarget,
    GateRefused,
    RunConflict,
    RunNotFound,
    temporal_error,
)
from keyturn.operations.runs import run_plan
from keyturn.runbook.plan_model import ExecutionPlan
from keyturn.workflows import gates
from keyturn.workflows.models import ApprovalRequest, ApprovalResult
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.runbook import RunbookWorkflow
from keyturn.workflows.tier import credential_workflow_id

GATE_KINDS = ("tier", "credential")
DECIDING = ("running", "waiting")
"""The workflow states that take a decision: a cancelled or ended workflow may still show
its last gate as open while it rolls back."""


def gate_kind(plan: ExecutionPlan, target: str, kind: str | None = None) -> str:
    """Whether `target` names a tier's gate or a credential's; `kind` (tier | credential),
    when given, must agree. A run from before ids were unique across tiers and credentials
    may have both: then `kind` is required, so nobody approves a gate they did not mean."""
    found = [k for k, there in (("tier", plan.tier(target)), ("credential", plan.credential(target)))
             if there is not None]
    if kind is not None:
        if kind not in found:
            raise RunNotFound(f"run {plan.run_id} has no {kind} {target!r}")
        return kind
    if not found:
        ids = [t.id for t in plan.tiers] + [c.id for t in plan.tiers for c in t.credentials]
        close = difflib.get_close_matches(target, ids, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise RunNotFound(f"{target!r} is neither a tier nor a credential of run "
                          f"{plan.run_id}{hint}")
    if len(found) > 1:
        raise AmbiguousTarget(f"{target!r} is both a tier and a credential of run "
                              f"{plan.run_id}: say which gate (kind tier or credential)")
    return found[0]


async def decide(client: Client, run_id: str, target: str, principal: str, reason: str,
                 *, approve: bool, kind: str | None = None) -> ApprovalResult:
    """Approve or reject the open gate of `target` (a tier id or a credential id; `kind`
    says which when given) as `principal`; GateRefused says why a gate turned it away."""
    plan = await run_plan(client, run_id)
    request = ApprovalRequest(target=target, principal=principal, reason=reason)
    if gate_kind(plan, target, kind) == "tier":
        handle = client.get_workflow_handle(run_id)
        update = RunbookWorkflow.approve if approve else RunbookWorkflow.reject
        status_query = RunbookWorkflow.status
    else:
        handle = client.get_workflow_handle(credential_workflow_id(run_id, target))
        update = CredentialRotationWorkflow.approve if approve else CredentialRotationWorkflow.reject
        status_query = CredentialRotationWorkflow.status
    closed = GateRefused(gates.GATE_CLOSED, f"{target!r} has no open gate in run {run_id}")
    try:
        if (await handle.query(status_query)).state not in DECIDING:
            raise closed
        return await handle.execute_update(update, request)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        if isinstance(cause, ApplicationError) and cause.type in gates.REFUSALS:
            raise GateRefused(cause.type, message) from exc
        raise RunConflict(message) from exc
    except RPCError as exc:
        if exc.status in UNAVAILABLE:
            raise temporal_error(exc, "") from exc
        raise closed from exc  # the credential has not started, or the run has ended
    except WorkflowQueryFailedError as exc:
        raise closed from exc
