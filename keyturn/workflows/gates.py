"""Approval gate rules, as pure functions over GateState.

The Update validators call `refusal()` to turn away a request before it is
accepted into history: a closed gate, a principal outside the `from` groups, a
second vote by the same principal, or (with `distinct`) the run's requester.
"""

from __future__ import annotations

from datetime import datetime

from keyturn.workflows.models import ApprovalRequest, ApprovalResult, Decision, GateState


def refusal(gate: GateState | None, principal: str, requested_by: str) -> str | None:
    """Why `principal` may not decide on `gate` now, or None if they may."""
    if gate is None or gate.status != "open":
        state = "not open" if gate is None else gate.status
        return f"no open gate here (gate is {state})"
    if principal not in gate.plan.approvers:
        groups = ", ".join(gate.plan.groups)
        return f"{principal!r} is not an approver for this gate (allowed groups: {groups})"
    if any(d.principal == principal for d in gate.approvals):
        return f"{principal!r} has already approved this gate"
    if gate.plan.distinct and principal == requested_by:
        return f"{principal!r} started this run and this gate requires a distinct approver"
    return None


def check(gate: GateState | None, request: ApprovalRequest, requested_by: str,
          *, rejecting: bool) -> None:
    """Raise ValueError (an Update validator's refusal) unless `request` may decide now."""
    refused = refusal(gate, request.principal, requested_by)
    if refused:
        raise ValueError(refused)
    if rejecting and not request.reason.strip():
        raise ValueError("a rejection needs a reason")


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
