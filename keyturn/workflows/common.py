"""Helpers shared by the workflows: activity calls by name, audit records, gate waiting.

Workflows call activities by name so that this package never imports provider
SDKs; the names are the contract with keyturn.activities.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from keyturn.audit.record import format_ts
    from keyturn.durations import format_duration
    from keyturn.workflows import gates
    from keyturn.workflows.models import AuditInput, GateState

STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
STEP_TIMEOUT = timedelta(seconds=30)  # one API call or two; a dead worker's step is retried after this

AUDIT_UNAVAILABLE = "AuditLogUnavailable"
"""The error type of an activity that could not write its audit record (keyturn.activities)."""
AUDIT_WAIT_FIRST = timedelta(seconds=1)
AUDIT_WAIT_MAX = timedelta(minutes=2)
"""While the audit log refuses appends, a step is tried again after 1 s, doubling up to this."""


async def call(
    activity: str,
    arg: Any,
    result_type: type | None = None,
    *,
    family: str = "",
    timeout: timedelta | None = None,
    on_audit_wait: Callable[[str], None] | None = None,
) -> Any:
    """Run one protocol step as an activity with keyturn's timeout and retry policy.

    Steps of a provider `family` run on that family's task queue, which the
    worker rate-limits to the provider's quota; the rest on the workflow's own.

    A step that could not write its audit record (full disk, read-only or torn log,
    database down) is not a failure: nothing goes on unaudited, so the step waits
    (`on_audit_wait` hears why) and runs again, for as long as the log refuses.
    Steps are idempotent, so a step whose change was made but not recorded finds
    it made and records it then.
    """
    delay = AUDIT_WAIT_FIRST
    while True:
        try:
            return await workflow.execute_activity(
                activity,
                arg,
                result_type=result_type,
                task_queue=family_queue(workflow.info().task_queue, family) if family else None,
                start_to_close_timeout=timeout or STEP_TIMEOUT,
                retry_policy=STEP_RETRY,
            )
        except ActivityError as err:
            why = audit_unavailable(err)
            if why is None:
                raise
        workflow.logger.warning("%s waits for the audit log (again in %s): %s",
                                activity, delay, why)
        if on_audit_wait is not None:
            on_audit_wait(why)
        await workflow.sleep(delay)
        delay = min(delay * 2, AUDIT_WAIT_MAX)


def audit_unavailable(err: ActivityError) -> str | None:
    """Why the activity could not write to the audit log, or None for any other failure."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == AUDIT_UNAVAILABLE:
        return cause.message
    return None


def family_queue(task_queue: str, family: str) -> str:
    """The task queue of a provider family's activities: `<task queue>.<family>`."""
    return f"{task_queue}.{family}"


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


def iso(moment: datetime) -> str:
    """A decision time as the audit log writes times: UTC ISO-8601 ending in Z."""
    return format_ts(moment)


def gate_outcome(gate: GateState) -> str:
    """A closed gate in words: "gate rejected by bob: wrong key" or "gate timed out"."""
    if gate.rejection is not None:
        return f"gate rejected by {gate.rejection.principal}: {gate.rejection.reason}"
    return f"gate {gate.status.replace('_', ' ')}"


def _timeout_details(gate: GateState) -> dict[str, Any]:
    if gate.plan.timeout is None:
        return {}
    return {"timeout": format_duration(gate.plan.timeout), "on_timeout": gate.plan.on_timeout}


RECORD_LATE_APPROVALS = "record-late-approvals"
"""Patch: an approval that arrives while the previous one's audit record is being written
is recorded as well (it was lost when it also passed the gate)."""


async def wait_for_gate(
    gate: GateState,
    requested_by: str,
    record: AuditFn,
    on_open: Callable[[], None] | None = None,
) -> GateState:
    """Open `gate`, record each decision as it arrives, and return once it is decided.

    Update handlers only change state; this coroutine writes the audit records,
    so approvals appear in the log in order, before the gate's outcome. Each
    approval and rejection is recorded with its principal as actor and details
    {gate, reason, at} (`at`: when the decision was accepted). `on_open` runs
    once the opened record is written (the gate_opened notification).

    When the plan's `timeout` passes without a decision, `on_timeout` decides
    (gates.time_out): "fail" records the outcome `timed_out`; "reject" records a
    `rejected` by principal "timeout" with the reason "no decision within
    <timeout>". The caller treats any outcome but `passed` as "do not go ahead".
    """
    gate.status = "open"
    opened = {**gates.opened_details(gate, requested_by), **_timeout_details(gate)}
    await record("opened", "opened", opened, "worker")
    if on_open is not None:
        on_open()
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
                gates.time_out(gate, workflow.now())
        seen = len(gate.approvals)
        while recorded < len(gate.approvals):
            # An approval that came in while the one before it was being recorded (and may
            # have passed the gate) is recorded too; histories from before the fix were not.
            if recorded >= seen and not workflow.patched(RECORD_LATE_APPROVALS):
                break
            decision = gate.approvals[recorded]
            details = {"gate": gate.plan.before, "reason": decision.reason, "at": iso(decision.at)}
            await record("approved", f"approved:{decision.principal}", details, decision.principal)
            recorded += 1
        if gates.decided(gate):
            break
    details: dict[str, Any] = {"gate": gate.plan.before, "approvals": len(gate.approvals)}
    if gate.rejection is not None:
        details |= {"reason": gate.rejection.reason, "at": iso(gate.rejection.at)}
        if gate.rejection.principal == gates.TIMEOUT_PRINCIPAL:
            details |= _timeout_details(gate)
        await record("rejected", "rejected", details, gate.rejection.principal)
    else:
        if gate.status == "timed_out":
            details |= {**_timeout_details(gate), "at": iso(workflow.now())}
        await record(gate.status, gate.status, details, "worker")
    return gate
