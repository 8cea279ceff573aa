"""Approval gate rules, as pure functions over GateState.

The Update validators call `check()` to turn away a request before it is
accepted into history: a closed gate, a principal outside the `from` groups, a
second vote by the same principal, or (with `distinct`) the run's requester.
A refusal is a `GateValidatorRefusal`, an ApplicationError whose `type` is one of
REFUSALS, so clients (the API) can tell the reasons apart without parsing text.
"""

from __future__ import annotations

from datetime import datetime

from temporalio.exceptions import ApplicationError

from keyturn.durations import format_duration
from keyturn.workflows.models import ApprovalRequest, ApprovalResult, Decision, GateState

GATE_CLOSED = "gate_closed"
NOT_AN_APPROVER = "not_an_approver"
ALREADY_APPROVED = "already_approved"
SELF_APPROVAL = "self_approval"
REASON_REQUIRED = "reason_required"
REFUSALS = (GATE_CLOSED, NOT_AN_APPROVER, ALREADY_APPROVED, SELF_APPROVAL, REASON_REQUIRED)
"""The machine-readable refusal types, as `GateValidatorRefusal.type` (and the API's error codes)."""


class GateValidatorRefusal(ApplicationError, ValueError):
    """An Update validator's refusal: `type` is one of REFUSALS, the message says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message, type=kind, non_retryable=True)


def refused(gate: GateState | None, principal: str, requested_by: str) -> tuple[str, str] | None:
    """(refusal type, why) if `principal` may not decide on `gate` now, else None."""
    if gate is None or gate.status != "open":
        state = "not open" if gate is None else gate.status
        return GATE_CLOSED, f"no open gate here (gate is {state})"
    if principal not in gate.plan.approvers:
        groups = ", ".join(gate.plan.groups)
        return (NOT_AN_APPROVER,
                f"{principal!r} is not an approver for this gate (allowed groups: {groups})")
    if any(d.principal == principal for d in gate.approvals):
        return ALREADY_APPROVED, f"{principal!r} has already approved this gate"
    if gate.plan.distinct and principal == requested_by:
        return (SELF_APPROVAL,
                f"{principal!r} started this run and this gate requires a distinct approver")
    return None


def refusal(gate: GateState | None, principal: str, requested_by: str) -> str | None:
    """Why `principal` may not decide on `gate` now, or None if they may."""
    found = refused(gate, principal, requested_by)
    return found[1] if found else None


def check(gate: GateState | None, request: ApprovalRequest, requested_by: str,
          *, rejecting: bool) -> None:
    """Raise GateValidatorRefusal (an Update validator's refusal) unless `request` may decide now."""
    found = refused(gate, request.principal, requested_by)
    if found:
        raise GateValidatorRefusal(*found)
    if rejecting and not request.reason.strip():
        raise GateValidatorRefusal(REASON_REQUIRED, "a rejection needs a reason")


def result(request: ApprovalRequest, gate: GateState) -> ApprovalResult:
    """What an approve or reject Update returns: where the gate stands now."""
    return ApprovalResult(target=request.target, gate=gate.plan.before, status=gate.status,
                          approvals=len(gate.approvals), needed=gate.plan.approvals)


def approve(gate: GateState, principal: str, reason: str, at: datetime) -> None:
    """Count one approval; the gate passes once it has the approvals it needs."""
    gate.approvals.append(Decision(principal=principal, reason=reason, at=at))
    if len(gate.approvals) >= gate.plan.approvals:
        gate.status = "passed"


def reject(gate: GateState, principal: str, reason: str, at: datetime) -> None:
    """One rejection closes the gate."""
    gate.rejection = Decision(principal=principal, reason=reason, at=at)
    gate.status = "rejected"


def decided(gate: GateState) -> bool:
    return gate.status in ("passed", "rejected", "timed_out")


def opened_details(gate: GateState, requested_by: str) -> dict:
    """What the audit record of an opened gate carries, for replay to check approvals."""
    return {
        "gate": gate.plan.before,
        "approvers": list(gate.plan.approvers),
        "groups": list(gate.plan.groups),
        "approvals": gate.plan.approvals,
        "distinct": gate.plan.distinct,
        "requested_by": requested_by,
    }


TIMEOUT_PRINCIPAL = "timeout"
"""The principal a gate's timeout rejects it as, under `on_timeout: reject`."""


def time_out(gate: GateState, at: datetime) -> None:
    """The gate's timeout passed without a decision; apply the plan's `on_timeout`.

    fail: the gate is `timed_out` (audited as timed_out: nobody decided).
    reject: the gate is rejected by principal "timeout" with the reason "no
    decision within <timeout>" (audited as a rejection, like a person's).
    Either way the guarded tier or credential does not go ahead.
    """
    if gate.plan.on_timeout == "reject":
        within = format_duration(gate.plan.timeout) if gate.plan.timeout else "the timeout"
        reject(gate, TIMEOUT_PRINCIPAL, f"no decision within {within}", at)
    else:
        gate.status = "timed_out"


def summary(gate: GateState | None) -> str:
    """Where a gate stands in one line, e.g. "open 1/2 distinct (alice)", for people to read."""
    if gate is None:
        return ""
    who = ", ".join(d.principal for d in gate.approvals)
    text = f"{gate.status} {len(gate.approvals)}/{gate.plan.approvals}"
    if gate.plan.distinct:
        text += " distinct"
    if who:
        text += f" ({who})"
    if gate.rejection:
        text += f" rejected by {gate.rejection.principal}"
    return text
