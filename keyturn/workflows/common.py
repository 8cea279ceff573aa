"""Helpers shared by the workflows: activity calls by name, audit records, gate waiting.

Workflows call activities by name so that this package never imports provider
SDKs; the names are the contract with keyturn.activities.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from keyturn.workflows import gates
    from keyturn.workflows.models import AuditInput, GateState

STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
STEP_TIMEOUT = timedelta(seconds=30)  # one API call or two; a dead worker's step is retried after this


async def call(activity: str, arg: Any, result_type: type | None = None) -> Any:
    """Run one protocol step as an activity with keyturn's timeout and retry policy."""
    return await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        start_to_close_timeout=STEP_TIMEOUT,
        retry_policy=STEP_RETRY,
    )


async def audit(record: AuditInput) -> None:
    await call("audit_record", record)


def reason(err: BaseException) -> str:
    """The innermost readable message of an activity or child failure."""
    while isinstance(err, (ActivityError, ChildWorkflowError)) and err.cause is not None:
        err = err.cause
    if isinstance(err, ApplicationError):
        return err.message
    return str(err) or type(err).__name__


AuditFn = Callable[[str, str, dict[str, Any], str], Awaitable[None]]
"""audit(outcome, key_suffix, details, actor) for one gate."""


async def wait_for_gate(gate: GateState, requested_by: str, record: AuditFn) -> GateState:
    """Open `gate`, record each decision as it arrives, and return once it is decided.

    Update handlers only change state; this coroutine writes the audit records,
    so approvals appear in the log in order, before the gate's outcome.
    """
    gate.status = "open"
    await record("opened", "opened", gates.opened_details(gate, requested_by), "worker")
    deadline = workflow.now() + gate.plan.timeout if gate.plan.timeout else None
    recorded = 0
    while True:
        remaining = max(deadline - workflow.now(), timedelta(0)) if deadline else None
        try:
            await workflow.wait_condition(
                lambda seen=recorded: len(gate.approvals) > seen or gates.decided(gate),
                timeout=remaining,
            )
        except TimeoutError:
            if not gates.decided(gate):
                gate.status = "timed_out"
        for decision in gate.approvals[recorded:]:
            details = {"gate": gate.plan.before, "reason": decision.reason}
            await record("approved", f"approved:{decision.principal}", details, decision.principal)
            recorded += 1
        if gates.decided(gate):
            break
    details: dict[str, Any] = {"gate": gate.plan.before, "approvals": len(gate.approvals)}
    if gate.rejection is not None:
        details["reason"] = gate.rejection.reason
        await record("rejected", "rejected", details, gate.rejection.principal)
    else:
        await record(gate.status, gate.status, details, "worker")
    return gate
