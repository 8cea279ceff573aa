"""Workflow behaviour on the time-skipping server: tiers, depends_on, gates, rollback, revoke-first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from workflow_env import eventually, harness

from keyturn.operations import gates, runs
from keyturn.operations.errors import RunError
from keyturn.operations.runs import cancel as cancel_run
from keyturn.workflows.models import RunContext, RunStatus, TierInput
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.runbook import RunbookWorkflow
from keyturn.workflows.tier import TierWorkflow, credential_workflow_id

HEADER = """
apiVersion: keyturn/v1
kind: Runbook
metadata: {name: wf-test, incident: INC-1}
spec:
  approvers:
    security: [alice, bob, carol, dave]
    ops: [erin]
  stores:
    vault: {type: vault_kv, address: "http://127.0.0.1:1", mount: secret}
  tiers:
"""


def cred(cid: str, extra: str = "", fail_at: str | None = None, flaky_at: str | None = None) -> str:
    target = f"account: {cid}" + (f", fail_at: {fail_at}" if fail_at else "") + \
        (f", flaky_at: {flaky_at}" if flaky_at else "")
    return (f"        - id: {cid}\n          provider: memory.key\n"
            f"          target: {{{target}}}\n"
            f"          deliver: [{{store: vault, path: app/{cid}}}]\n{extra}")


def seed(h, *accounts: str) -> dict[str, str]:
    """Give each account one key, stored at its deliver path; returns account -> old key id."""
    old = {}
    for account in accounts:
        key_id, secret = h.provider.seed(account)
        h.store.write(f"app/{account}", secret, {"credential_id": key_id})
        old[account] = key_id
    return old


async def start(h, text: str, requested_by: str = "dave"):
    plan = h.plan(text, requested_by)
    await runs.start(h.client, plan, h.task_queue, search_attributes=False)
    return plan, h.client.get_workflow_handle(plan.run_id, result_type=RunStatus)


def assert_rotated(h, account: str, old_key: str) -> None:
    keys = h.provider.keys[account]
    assert old_key not in keys
    assert len(keys) == 1
    (new,) = keys.values()
    assert new["active"]
    assert h.store.read(f"app/{account}").secret == new["secret"]
    assert not [p for p in h.store.paths if p.startswith("keyturn/staging/")]


def steps_of(records, credential: str) -> list[tuple[str, str]]:
    return [(r.step, r.outcome) for r in records if r.credential == credential]


async def open_gate(h, workflow_id: str, query):
    async def check():
        try:
            state = await h.client.get_workflow_handle(workflow_id).query(query)
        except RPCError:
            return None
        return state if "open" in repr(state) else None
    return await eventually(check)


async def test_three_tiers_rotate_and_tier3_waits_for_both(tmp_path):
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a") + \
        "    - id: tier2\n      credentials:\n" + cred("b") + \
        "    - id: tier3\n      after: [tier1, tier2]\n      credentials:\n" + cred("c")
    async with harness(tmp_path) as h:
        old = seed(h, "a", "b", "c")
        plan, handle = await start(h, text)
        result = await handle.result()
        assert result.state == "succeeded"
        for account in "abc":
            assert_rotated(h, account, old[account])
        records = h.records(plan.run_id)
        seq = {(r.step, r.tier, r.outcome): r.seq for r in records if r.step == "tier"}
        assert seq[("tier", "tier3", "started")] > seq[("tier", "tier1", "succeeded")]
        assert seq[("tier", "tier3", "started")] > seq[("tier", "tier2", "succeeded")]
        assert steps_of(records, "a") == [
            ("precheck", "succeeded"), ("create", "succeeded"), ("verify_new", "succeeded"),
            ("promote", "succeeded"), ("revoke_old", "succeeded"), ("revoke_old", "succeeded"),
            ("confirm_revoked", "succeeded"),
        ]
        assert len({r.event_id for r in records}) == len(records)


async def test_tiers_without_after_run_in_parallel(tmp_path):
    gate = "          gate: {before: promote, approvals: 1, from: security}\n"
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate) + \
        "    - id: tier2\n      credentials:\n" + cred("b")
    async with harness(tmp_path) as h:
        seed(h, "a", "b")
        plan, handle = await start(h, text)
        # tier2 finishes while tier1 is still held at its gate
        async def tier2_done():
            status = await handle.query(RunbookWorkflow.status)
            return status.tiers[1].state == "succeeded" and status.tiers[0].state == "running"
        await eventually(tier2_done)
        await gates.decide(h.client, plan.run_id, "a", "alice", "ok", approve=True)
        assert (await handle.result()).state == "succeeded"


async def test_depends_on_orders_and_skips(tmp_path):
    text = HEADER + "    - id: tier1\n      concurrency: 1\n      credentials:\n" + \
        cred("a") + cred("b", extra="          depends_on: [a]\n") + \
        "    - id: tier2\n      credentials:\n" + \
        cred("x", fail_at="verify_new") + \
        cred("y", extra="          depends_on: [x]\n")
    async with harness(tmp_path) as h:
        old = seed(h, "a", "b", "x", "y")
        plan, handle = await start(h, text)
        result = await handle.result()
        assert result.state == "failed"
        records = h.records(plan.run_id)
        a_done = max(r.seq for r in records if r.credential == "a")
        b_first = min(r.seq for r in records if r.credential == "b")
        assert b_first > a_done
        tier2 = next(t for t in result.tiers if t.tier == "tier2")
        assert tier2.credentials == {"x": "failed", "y": "skipped"}
        everything = await runs.describe(h.client, plan.run_id)
        assert set(everything.credentials) == {"a", "b", "x"}
        large_run_view = await runs.describe(h.client, plan.run_id, detail_limit=2)
        assert set(large_run_view.credentials) == {"x"}
        assert h.provider.keys["y"] == {old["y"]: h.provider.keys["y"][old["y"]]}


async def test_verify_failure_rolls_back_and_leaves_old_working(tmp_path):
    text = HEADER + "    - id: tier1\n      credentials:\n" + \
        cred("a", fail_at="verify_new")
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        result = await handle.result()
        assert result.state == "failed"
        assert list(h.provider.keys["a"]) == [old["a"]]
        assert h.provider.keys["a"][old["a"]]["active"]
        assert h.store.read("app/a").metadata["credential_id"] == old["a"]
        assert h.store.read(f"keyturn/staging/{plan.run_id}/a") is None
        assert ("rollback", "succeeded") in steps_of(h.records(plan.run_id), "a")
        status = await h.client.get_workflow_handle(
            credential_workflow_id(plan.run_id, "a")).query(CredentialRotationWorkflow.status)
        assert "verify_new" in status.error and "a" in status.error


async def test_revoke_first_disables_before_create(tmp_path):
    text = HEADER + "    - id: tier1\n      credentials:\n" + \
        cred("a", extra="          strategy: revoke-first\n")
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        assert (await handle.result()).state == "succeeded"
        calls = [step for account, step in h.provider.calls if account == "a"]
        assert calls.index("disable") < calls.index("create")
        assert_rotated(h, "a", old["a"])
        pre = next(r for r in h.records(plan.run_id) if r.credential == "a" and r.step == "precheck")
        assert pre.details["strategy"] == "revoke-first"


async def test_revoke_first_failure_reenables_old(tmp_path):
    text = HEADER + "    - id: tier1\n      credentials:\n" + \
        cred("a", extra="          strategy: revoke-first\n", fail_at="verify_new")
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        _, handle = await start(h, text)
        assert (await handle.result()).state == "failed"
        assert list(h.provider.keys["a"]) == [old["a"]]
        assert h.provider.keys["a"][old["a"]]["active"]


async def test_quorum_gate_refusals_and_distinct(tmp_path):
    gate = "          gate: {before: revoke, approvals: 2, from: security, distinct: true}\n"
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text, requested_by="dave")
        wid = credential_workflow_id(plan.run_id, "a")
        await open_gate(h, wid, CredentialRotationWorkflow.status)
        with pytest.raises(RunError, match="not an approver"):
            await gates.decide(h.client, plan.run_id, "a", "erin", "", approve=True)
        with pytest.raises(RunError, match="distinct"):
            await gates.decide(h.client, plan.run_id, "a", "dave", "", approve=True)
        first = await gates.decide(h.client, plan.run_id, "a", "alice", "looks right", approve=True)
        assert (first.status, first.approvals, first.needed) == ("open", 1, 2)
        with pytest.raises(RunError, match="already approved"):
            await gates.decide(h.client, plan.run_id, "a", "alice", "", approve=True)
        second = await gates.decide(h.client, plan.run_id, "a", "bob", "", approve=True)
        assert second.status == "passed"
        assert (await handle.result()).state == "succeeded"
        assert_rotated(h, "a", old["a"])
        gate_records = [(r.outcome, r.actor) for r in h.records(plan.run_id) if r.step == "gate"]
        assert gate_records == [("opened", "worker"), ("approved", "alice"), ("approved", "bob"),
                                ("passed", "worker")]
        with pytest.raises(RunError, match="no open gate"):
            await gates.decide(h.client, plan.run_id, "a", "carol", "", approve=True)


async def test_reject_before_promote_rolls_back(tmp_path):
    gate = "          gate: {before: promote, approvals: 1, from: security}\n"
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        await open_gate(h, credential_workflow_id(plan.run_id, "a"), CredentialRotationWorkflow.status)
        with pytest.raises(RunError, match="reason"):
            await gates.decide(h.client, plan.run_id, "a", "alice", "", approve=False)
        await gates.decide(h.client, plan.run_id, "a", "alice", "wrong key", approve=False)
        assert (await handle.result()).state == "failed"
        assert list(h.provider.keys["a"]) == [old["a"]]
        outcomes = [r.outcome for r in h.records(plan.run_id) if r.step == "gate"]
        assert outcomes == ["opened", "rejected"]


async def test_gate_timeout_fails_and_rolls_back(tmp_path):
    gate = "          gate: {before: promote, approvals: 1, from: security, timeout: 1h}\n"
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        await open_gate(h, credential_workflow_id(plan.run_id, "a"), CredentialRotationWorkflow.status)
        await h.env.sleep(timedelta(hours=2))
        assert (await handle.result()).state == "failed"
        assert list(h.provider.keys["a"]) == [old["a"]]
        outcomes = [r.outcome for r in h.records(plan.run_id) if r.step == "gate"]
        assert outcomes == ["opened", "timed_out"]


async def test_tier_gate_wrong_group_and_approval(tmp_path):
    text = HEADER + "    - id: tier1\n      gate: {approvals: 1, from: ops}\n      credentials:\n" + cred("a")
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        await open_gate(h, plan.run_id, RunbookWorkflow.status)
        with pytest.raises(RunError, match="not an approver"):
            await gates.decide(h.client, plan.run_id, "tier1", "alice", "", approve=True)
        await gates.decide(h.client, plan.run_id, "tier1", "erin", "go", approve=True)
        assert (await handle.result()).state == "succeeded"
        assert_rotated(h, "a", old["a"])


async def test_unknown_target_is_refused(tmp_path):
    text = HEADER + "    - id: tier1\n      gate: {approvals: 1, from: ops}\n      credentials:\n" + cred("a")
    async with harness(tmp_path) as h:
        seed(h, "a")
        plan, _ = await start(h, text)
        await open_gate(h, plan.run_id, RunbookWorkflow.status)
        with pytest.raises(RunError, match="neither a tier nor a credential"):
            await gates.decide(h.client, plan.run_id, "nope", "erin", "", approve=True)
        with pytest.raises((RunError, WorkflowUpdateFailedError)):
            await gates.decide(h.client, plan.run_id, "a", "erin", "", approve=True)
        await cancel_run(h.client, plan.run_id, "erin")


async def test_cancel_before_promote_rolls_back(tmp_path):
    gate = "          gate: {before: promote, approvals: 1, from: security}\n"
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, _ = await start(h, text)
        await open_gate(h, credential_workflow_id(plan.run_id, "a"), CredentialRotationWorkflow.status)
        await cancel_run(h.client, plan.run_id, "erin")
        final = await runs.wait(h.client, plan.run_id)
        assert final.state == "cancelled"
        assert list(h.provider.keys["a"]) == [old["a"]]
        assert h.provider.keys["a"][old["a"]]["active"]
        assert not [p for p in h.store.paths if p.startswith("keyturn/staging/")]
        assert ("rollback", "succeeded") in steps_of(h.records(plan.run_id), "a")
        run_records = [r for r in h.records(plan.run_id) if r.step == "run"]
        assert [(r.outcome, r.actor) for r in run_records] == [
            ("started", plan.requested_by), ("cancelled", "erin")]


async def test_concurrency_one_rotates_strictly_one_at_a_time(tmp_path):
    text = HEADER + "    - id: tier1\n      concurrency: 1\n      credentials:\n" + \
        cred("a") + cred("b") + cred("c")
    async with harness(tmp_path) as h:
        seed(h, "a", "b", "c")
        plan, handle = await start(h, text)
        assert (await handle.result()).state == "succeeded"
        records = [r for r in h.records(plan.run_id) if r.credential]
        spans = sorted((min(r.seq for r in records if r.credential == c),
                        max(r.seq for r in records if r.credential == c)) for c in "abc")
        assert all(spans[i][1] < spans[i + 1][0] for i in range(2)), spans


async def test_long_tier_continues_as_new_and_keeps_outcomes(tmp_path):
    text = HEADER + "    - id: tier1\n      concurrency: 2\n      credentials:\n" + \
        "".join(cred(c) for c in "abcdef") + cred("g", extra="          depends_on: [a]\n")
    async with harness(tmp_path) as h:
        old = seed(h, *"abcdefg")
        plan = h.plan(text)
        tier_input = TierInput(context=RunContext(run_id=plan.run_id, runbook=plan.runbook,
                                                  requested_by="dave", stores=plan.stores),
                               tier=plan.tiers[0], history_budget=25)
        handle = await h.client.start_workflow(TierWorkflow.run, tier_input, id=f"{plan.run_id}.t",
                                               task_queue=h.task_queue)
        result = await handle.result()
        assert result.state == "succeeded"
        assert set(result.credentials.values()) == {"succeeded"}
        for account in "abcdefg":
            assert_rotated(h, account, old[account])
        first_run = h.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        last_event = (await first_run.fetch_history()).events[-1]
        assert last_event.HasField("workflow_execution_continued_as_new_event_attributes")


async def test_transient_error_is_retried_and_audited_once_per_attempt(tmp_path):
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", flaky_at="create")
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        assert (await handle.result()).state == "succeeded"
        assert_rotated(h, "a", old["a"])
        create = [(r.outcome, r.details.get("attempt")) for r in h.records(plan.run_id)
                  if r.credential == "a" and r.step == "create"]
        assert create == [("error", 1), ("succeeded", None)]


async def test_permanent_error_fails_fast_naming_credential_and_step(tmp_path):
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", fail_at="create")
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)
        assert (await handle.result()).state == "failed"
        assert [step for acct, step in h.provider.calls if acct == "a"].count("create") == 1
        failed = [r for r in h.records(plan.run_id) if r.outcome == "failed" and r.credential == "a"]
        assert [(r.step, r.details["error"]) for r in failed] == [("create", "VerificationFailed")]
        status = await h.client.get_workflow_handle(
            credential_workflow_id(plan.run_id, "a")).query(CredentialRotationWorkflow.status)
        assert "credential 'a'" in status.error and "step create" in status.error
        assert list(h.provider.keys["a"]) == [old["a"]]
