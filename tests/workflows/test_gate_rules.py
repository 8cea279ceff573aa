"""The approval gate rules in keyturn.workflows.gates, as pure functions (no Temporal)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyturn.runbook.plan_model import GatePlan
from keyturn.workflows import gates
from keyturn.workflows.models import ApprovalRequest, Decision, GateState

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
APPROVERS = ["alice", "bob", "carol", "dave"]


def gate(status: str = "open", *, approvals: int = 1, distinct: bool = False,
         before: str = "promote", timeout: timedelta | None = None) -> GateState:
    plan = GatePlan(before=before, approvals=approvals, groups=["security", "ops"],
                    approvers=APPROVERS, distinct=distinct, timeout=timeout)
    return GateState(plan=plan, status=status)


# ---- refusal ------------------------------------------------------------------------


def test_no_gate_is_refused():
    assert gates.refusal(None, "alice", "dave") == "no open gate here (gate is not open)"


@pytest.mark.parametrize("status", ["pending", "passed", "rejected", "timed_out"])
def test_gate_that_is_not_open_is_refused_naming_its_status(status):
    assert gates.refusal(gate(status), "alice", "dave") == f"no open gate here (gate is {status})"


def test_closed_gate_is_refused_before_anything_else():
    # even a principal outside the approvers hears only that the gate is closed
    assert "no open gate" in gates.refusal(gate("passed"), "mallory", "mallory")


def test_principal_outside_the_approvers_is_refused_naming_the_groups():
    refused = gates.refusal(gate(), "mallory", "dave")
    assert refused == "'mallory' is not an approver for this gate (allowed groups: security, ops)"


def test_approver_match_is_exact():
    for near_miss in ("Alice", "alice ", "ali", ""):
        assert "is not an approver" in gates.refusal(gate(), near_miss, "dave")


def test_second_approval_by_the_same_principal_is_refused():
    g = gate(approvals=2)
    gates.approve(g, "alice", "first", T0)
    assert gates.refusal(g, "alice", "dave") == "'alice' has already approved this gate"
    assert gates.refusal(g, "bob", "dave") is None


def test_requester_is_refused_when_the_gate_requires_distinct_approvers():
    refused = gates.refusal(gate(distinct=True), "dave", "dave")
    assert refused == "'dave' started this run and this gate requires a distinct approver"
    assert gates.refusal(gate(distinct=True), "alice", "dave") is None


def test_requester_may_approve_when_distinct_is_not_required():
    assert gates.refusal(gate(distinct=False), "dave", "dave") is None


def test_distinct_requester_outside_the_approvers_hears_the_approver_reason():
    assert "is not an approver" in gates.refusal(gate(distinct=True), "mallory", "mallory")


@pytest.mark.parametrize("principal", APPROVERS)
def test_every_listed_approver_may_decide_an_open_gate(principal):
    assert gates.refusal(gate(), principal, "someone-else") is None


# ---- approve / reject / decided ------------------------------------------------------


def test_single_approval_passes_a_gate_that_needs_one():
    g = gate(approvals=1)
    gates.approve(g, "alice", "looks right", T0)
    assert g.status == "passed"
    assert g.approvals == [Decision(principal="alice", reason="looks right", at=T0)]
    assert g.rejection is None
    assert gates.decided(g)


def test_approvals_count_up_to_the_quorum():
    g = gate(approvals=3)
    for n, principal in enumerate(["alice", "bob", "carol"], start=1):
        assert g.status == "open"
        assert not gates.decided(g)
        gates.approve(g, principal, f"ok {n}", T0 + timedelta(minutes=n))
        assert len(g.approvals) == n
    assert g.status == "passed"
    assert [(d.principal, d.reason) for d in g.approvals] == [
        ("alice", "ok 1"), ("bob", "ok 2"), ("carol", "ok 3")]
    assert [d.at for d in g.approvals] == [T0 + timedelta(minutes=n) for n in (1, 2, 3)]


def test_approve_does_not_check_the_rules_itself():
    # the validators call refusal() first; approve() only counts
    g = gate(approvals=2)
    gates.approve(g, "alice", "", T0)
    gates.approve(g, "alice", "", T0)
    assert g.status == "passed"


def test_reject_closes_the_gate_with_its_reason():
    g = gate(approvals=2)
    gates.approve(g, "alice", "fine", T0)
    gates.reject(g, "bob", "wrong key", T0 + timedelta(seconds=1))
    assert g.status == "rejected"
    assert g.rejection == Decision(principal="bob", reason="wrong key", at=T0 + timedelta(seconds=1))
    assert len(g.approvals) == 1
    assert gates.decided(g)
    assert gates.refusal(g, "carol", "dave") == "no open gate here (gate is rejected)"


@pytest.mark.parametrize(("status", "decided"), [
    ("pending", False), ("open", False), ("passed", True), ("rejected", True), ("timed_out", True),
])
def test_decided(status, decided):
    assert gates.decided(gate(status)) is decided


def test_a_passed_gate_refuses_further_approvals():
    g = gate(approvals=1)
    gates.approve(g, "alice", "", T0)
    assert gates.refusal(g, "bob", "dave") == "no open gate here (gate is passed)"


# ---- opened_details ------------------------------------------------------------------


def test_opened_details_carry_what_replay_needs_to_check_approvals():
    g = gate(approvals=2, distinct=True, before="revoke", timeout=timedelta(hours=1))
    details = gates.opened_details(g, "dave")
    assert details == {
        "gate": "revoke",
        "approvers": APPROVERS,
        "groups": ["security", "ops"],
        "approvals": 2,
        "distinct": True,
        "requested_by": "dave",
    }


def test_opened_details_are_plain_copies():
    g = gate()
    details = gates.opened_details(g, "dave")
    details["approvers"].append("mallory")
    details["groups"].clear()
    assert g.plan.approvers == APPROVERS
    assert g.plan.groups == ["security", "ops"]


def test_opened_details_of_a_tier_gate():
    details = gates.opened_details(gate(before="tier"), "erin")
    assert (details["gate"], details["distinct"], details["requested_by"]) == ("tier", False, "erin")


def test_check_passes_an_allowed_approval_and_refuses_with_the_reason():
    request = ApprovalRequest(target="a", principal="alice")
    gates.check(gate(), request, "dave", rejecting=False)
    with pytest.raises(ValueError, match="not an approver"):
        gates.check(gate(), request.model_copy(update={"principal": "mallory"}), "dave",
                    rejecting=False)


def test_check_requires_a_reason_to_reject():
    request = ApprovalRequest(target="a", principal="alice", reason="  ")
    with pytest.raises(ValueError, match="a rejection needs a reason"):
        gates.check(gate(), request, "dave", rejecting=True)
    gates.check(gate(), request.model_copy(update={"reason": "wrong key"}), "dave",
                rejecting=True)


def test_result_reports_where_the_gate_stands():
    g = gate(approvals=2)
    gates.approve(g, "alice", "", T0)
    result = gates.result(ApprovalRequest(target="a", principal="alice"), g)
    assert (result.target, result.gate, result.status, result.approvals, result.needed) == (
        "a", g.plan.before, "open", 1, 2)


# ---- time_out (on_timeout) -----------------------------------------------------------


def timed_gate(on_timeout: str, timeout: timedelta | None = timedelta(hours=1, minutes=30)):
    g = gate(approvals=2, timeout=timeout)
    return g.model_copy(update={"plan": g.plan.model_copy(update={"on_timeout": on_timeout})})


def test_on_timeout_defaults_to_fail():
    assert gate().plan.on_timeout == "fail"


def test_time_out_with_fail_marks_the_gate_timed_out_without_a_rejection():
    g = timed_gate("fail")
    gates.approve(g, "alice", "", T0)
    gates.time_out(g, T0 + timedelta(hours=2))
    assert (g.status, g.rejection, len(g.approvals)) == ("timed_out", None, 1)
    assert gates.decided(g)


def test_time_out_with_reject_is_a_rejection_by_the_timeout_principal():
    g = timed_gate("reject")
    gates.time_out(g, T0 + timedelta(hours=2))
    assert g.status == "rejected"
    assert g.rejection == Decision(principal=gates.TIMEOUT_PRINCIPAL,
                                   reason="no decision within 1h30m",
                                   at=T0 + timedelta(hours=2))
    assert gates.TIMEOUT_PRINCIPAL == "timeout"
    assert gates.refusal(g, "bob", "dave") == "no open gate here (gate is rejected)"
