"""Quorum, separation of duties and gate timeouts end to end, as the audit log records them.

Each approval and rejection is an audit record whose actor is the principal and whose
details carry the gate, the reason and the decision time; a gate timeout either fails
the gate (timed_out) or rejects it as principal "timeout" (on_timeout: reject).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from test_workflow_protocol import assert_rotated, cred, open_gate, seed
from workflow_env import harness

from keyturn.audit.replay import replay
from keyturn.operations import gates, runs
from keyturn.operations.errors import RunError
from keyturn.workflows.models import RunStatus
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.runbook import RunbookWorkflow
from keyturn.workflows.tier import credential_workflow_id

HEADER = """
apiVersion: keyturn/v1
kind: Runbook
metadata: {name: gate-test, incident: INC-9}
spec:
  approvers:
    security: [alice, dave]
    platform: [erin, frank]
  stores:
    vault: {type: vault_kv, address: "http://127.0.0.1:1", mount: secret}
  tiers:
"""


def at(record) -> datetime:
    stamp = record.details["at"]
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp)


def gate_records(h, run_id: str) -> list:
    return [r for r in h.records(run_id) if r.step == "gate"]


async def start(h, text: str, requested_by: str = "dave"):
    plan = h.plan(text, requested_by)
    await runs.start(h.client, plan, h.task_queue, search_attributes=False)
    return plan, h.client.get_workflow_handle(plan.run_id, result_type=RunStatus)


async def test_two_of_two_groups_distinct_gate_is_audited_decision_by_decision(tmp_path):
    gate = ("          gate: {before: promote, approvals: 2, from: [security, platform], "
            "distinct: true}\n")
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text, requested_by="dave")
        await open_gate(h, credential_workflow_id(plan.run_id, "a"),
                        CredentialRotationWorkflow.status)
        with pytest.raises(RunError, match="requires a distinct approver"):
            await gates.decide(h.client, plan.run_id, "a", "dave", "my own run", approve=True)
        with pytest.raises(RunError, match="not an approver"):
            await gates.decide(h.client, plan.run_id, "a", "mallory", "", approve=True)
        first = await gates.decide(h.client, plan.run_id, "a", "alice", "fingerprint checked",
                                  approve=True)
        assert (first.status, first.approvals, first.needed) == ("open", 1, 2)
        await h.env.sleep(timedelta(minutes=5))
        second = await gates.decide(h.client, plan.run_id, "a", "erin", "change ticket CHG-1",
                                   approve=True)
        assert second.status == "passed"
        assert (await handle.result()).state == "succeeded"
        assert_rotated(h, "a", old["a"])

        opened, alice, erin, passed = gate_records(h, plan.run_id)
        assert (opened.outcome, opened.actor, opened.credential) == ("opened", "worker", "a")
        assert opened.details == {
            "gate": "promote", "approvers": ["alice", "dave", "erin", "frank"],
            "groups": ["security", "platform"], "approvals": 2, "distinct": True,
            "requested_by": "dave",
        }
        assert (alice.outcome, alice.actor) == ("approved", "alice")
        assert (erin.outcome, erin.actor) == ("approved", "erin")
        assert {k: v for k, v in alice.details.items() if k != "at"} == {
            "gate": "promote", "reason": "fingerprint checked"}
        assert {k: v for k, v in erin.details.items() if k != "at"} == {
            "gate": "promote", "reason": "change ticket CHG-1"}
        assert at(erin) - at(alice) >= timedelta(minutes=5)  # decision times, not write times
        assert (passed.outcome, passed.actor, passed.details) == (
            "passed", "worker", {"gate": "promote", "approvals": 2})
        # the refused attempts never reached history, so nothing records them
        assert {r.actor for r in gate_records(h, plan.run_id)} == {"worker", "alice", "erin"}
        assert replay(h.records(), plan.run_id).ok


async def test_a_rejection_is_audited_with_its_principal_reason_and_time(tmp_path):
    gate = "          gate: {before: promote, approvals: 2, from: [security, platform]}\n"
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        await open_gate(h, credential_workflow_id(plan.run_id, "a"),
                        CredentialRotationWorkflow.status)
        await gates.decide(h.client, plan.run_id, "a", "alice", "fine by me", approve=True)
        await gates.decide(h.client, plan.run_id, "a", "frank", "wrong account", approve=False)
        status = await handle.result()
        assert status.state == "failed"
        assert list(h.provider.keys["a"]) == [old["a"]]  # rolled back before promote
        _, approved, rejected = gate_records(h, plan.run_id)
        assert (approved.actor, approved.details["reason"]) == ("alice", "fine by me")
        assert (rejected.outcome, rejected.actor) == ("rejected", "frank")
        assert {k: v for k, v in rejected.details.items() if k != "at"} == {
            "gate": "promote", "approvals": 1, "reason": "wrong account"}
        assert at(rejected) >= at(approved)
        steps = [r.step for r in h.records(plan.run_id) if r.credential == "a"]
        assert "rollback" in steps and "promote" not in steps


async def test_gate_timeout_fail_is_audited_as_timed_out(tmp_path):
    gate = ("          gate: {before: promote, approvals: 1, from: security, timeout: 1h, "
            "on_timeout: fail}\n")
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        await open_gate(h, credential_workflow_id(plan.run_id, "a"),
                        CredentialRotationWorkflow.status)
        await h.env.sleep(timedelta(hours=2))
        assert (await handle.result()).state == "failed"
        assert list(h.provider.keys["a"]) == [old["a"]]
        opened, timed_out = gate_records(h, plan.run_id)
        assert (opened.details["timeout"], opened.details["on_timeout"]) == ("1h", "fail")
        assert (timed_out.outcome, timed_out.actor) == ("timed_out", "worker")
        assert {k: v for k, v in timed_out.details.items() if k != "at"} == {
            "gate": "promote", "approvals": 0, "timeout": "1h", "on_timeout": "fail"}
        cstatus = await h.client.get_workflow_handle(
            credential_workflow_id(plan.run_id, "a")).query(CredentialRotationWorkflow.status)
        assert cstatus.gates[0].status == "timed_out"
        assert cstatus.error.endswith("gate: before promote: gate timed out")


async def test_gate_timeout_reject_is_a_rejection_by_timeout_and_rolls_back(tmp_path):
    gate = ("          gate: {before: promote, approvals: 2, from: security, timeout: 90m, "
            "on_timeout: reject}\n")
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text, requested_by="erin")
        await open_gate(h, credential_workflow_id(plan.run_id, "a"),
                        CredentialRotationWorkflow.status)
        await gates.decide(h.client, plan.run_id, "a", "alice", "one is not enough", approve=True)
        await h.env.sleep(timedelta(hours=2))
        assert (await handle.result()).state == "failed"
        assert list(h.provider.keys["a"]) == [old["a"]]
        assert h.provider.keys["a"][old["a"]]["active"]
        outcomes = [(r.outcome, r.actor) for r in gate_records(h, plan.run_id)]
        assert outcomes == [("opened", "worker"), ("approved", "alice"), ("rejected", "timeout")]
        rejected = gate_records(h, plan.run_id)[-1]
        assert {k: v for k, v in rejected.details.items() if k != "at"} == {
            "gate": "promote", "approvals": 1, "reason": "no decision within 1h30m",
            "timeout": "1h30m", "on_timeout": "reject"}
        cstatus = await h.client.get_workflow_handle(
            credential_workflow_id(plan.run_id, "a")).query(CredentialRotationWorkflow.status)
        gate_state = cstatus.gates[0]
        assert (gate_state.status, gate_state.rejection.principal) == ("rejected", "timeout")
        assert cstatus.error.endswith("rejected by timeout: no decision within 1h30m")
        assert [s.step for s in cstatus.steps][-2:] == ["rollback", "rollback"]
        assert replay(h.records(), plan.run_id).ok


async def test_tier_gate_timeout_reject_skips_the_tier(tmp_path):
    text = (HEADER + "    - id: tier1\n"
            "      gate: {approvals: 1, from: platform, timeout: 30m, on_timeout: reject}\n"
            "      credentials:\n" + cred("a"))
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        await open_gate(h, plan.run_id, RunbookWorkflow.status)
        await h.env.sleep(timedelta(hours=1))
        status = await handle.result()
        assert (status.state, status.tiers[0].state) == ("failed", "failed")
        assert status.tiers[0].gate.rejection.principal == "timeout"
        assert status.tiers[0].credentials == {"a": "skipped"}
        assert list(h.provider.keys["a"]) == [old["a"]]  # never started
        (rejected,) = [r for r in gate_records(h, plan.run_id) if r.outcome == "rejected"]
        assert (rejected.actor, rejected.tier, rejected.details["reason"]) == (
            "timeout", "tier1", "no decision within 30m")
        with pytest.raises(RunError, match="no open gate"):
            await gates.decide(h.client, plan.run_id, "tier1", "erin", "late", approve=True)
