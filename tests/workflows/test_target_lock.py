"""One rotation per target at a time, across runs (keyturn.workflows.lock), on the
time-skipping server: refuse, wait, and the hold's release however a rotation ends."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError
from workflow_env import eventually, harness

from keyturn.locks import held_targets, holder_of, lock_workflow_id
from keyturn.operations import gates, runs
from keyturn.operations.runs import cancel as cancel_run
from keyturn.workflows.models import RunStatus
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.tier import credential_workflow_id

HEADER = """
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: {name}}}
spec:
  approvers: {{security: [alice, bob]}}
  defaults: {{on_locked: {on_locked}}}
  stores:
    vault: {{type: vault_kv, address: "http://127.0.0.1:1", mount: secret}}
  tiers:
    - id: tier1
      credentials:
        - id: {cid}
          provider: memory.key
          target: {{account: {account}{extra_target}}}
          deliver: [{{store: vault, path: app/{account}}}]
"""
GATE = "          gate: {before: promote, approvals: 1, from: security}\n"


def runbook(name: str, cid: str, *, account: str = "shared", on_locked: str = "refuse",
            gate: bool = False, fail_at: str | None = None) -> str:
    extra = f", fail_at: {fail_at}" if fail_at else ""
    return HEADER.format(name=name, cid=cid, account=account, on_locked=on_locked,
                         extra_target=extra) + (GATE if gate else "")


def seed(h, account: str = "shared") -> str:
    key_id, secret = h.provider.seed(account)
    h.store.write(f"app/{account}", secret, {"credential_id": key_id})
    return key_id


async def start(h, text: str):
    plan = h.plan(text)
    await runs.start(h.client, plan, h.task_queue, search_attributes=False)
    return plan, h.client.get_workflow_handle(plan.run_id, result_type=RunStatus)


async def cred_status(h, run_id: str, cid: str):
    try:
        return await h.client.get_workflow_handle(credential_workflow_id(run_id, cid)).query(
            CredentialRotationWorkflow.status)
    except RPCError:
        return None


async def at_step(h, run_id: str, cid: str, step: str, outcome: str):
    """Wait until the credential's latest step is (step, outcome); its status then."""
    async def reached():
        status = await cred_status(h, run_id, cid)
        if status and status.steps and (status.steps[-1].step, status.steps[-1].outcome) == (
                step, outcome):
            return status
        return None
    return await eventually(reached)


async def hold_at_gate(h, name: str = "holder", **kwargs):
    """A run of the shared target waiting at its promote gate: it holds the target."""
    plan, handle = await start(h, runbook(name, "first", gate=True, **kwargs))
    await at_step(h, plan.run_id, "first", "gate", "waiting")
    return plan, handle


async def signalled(h, workflow_id: str, signal: str) -> None:
    """Wait until `workflow_id` has received `signal` (its history says so)."""
    async def received():
        history = await h.client.get_workflow_handle(workflow_id).fetch_history()
        return any(e.workflow_execution_signaled_event_attributes.signal_name == signal
                   for e in history.events if e.HasField("workflow_execution_signaled_event_attributes"))
    await eventually(received)


def lock_of(plan) -> str:
    return plan.tiers[0].credentials[0].lock_key


def prechecks(h, account: str = "shared") -> int:
    return h.provider.calls.count((account, "precheck"))


def assert_one_key_the_stores(h, account: str = "shared") -> None:
    (only,) = h.provider.keys[account].values()
    assert only["active"]
    assert h.store.read(f"app/{account}").secret == only["secret"]


async def test_a_second_run_is_refused_naming_the_first_and_changes_nothing(tmp_path):
    async with harness(tmp_path) as h:
        seed(h)
        first, first_handle = await hold_at_gate(h)
        held = await holder_of(h.client, lock_of(first))
        assert (held.run_id, held.credential, held.provider, held.target) == (
            first.run_id, "first", "memory.key", "account=shared")
        assert held.since is not None

        second, handle = await start(h, runbook("second", "again"))
        result = await handle.result()
        assert result.state == "failed"
        status = await cred_status(h, second.run_id, "again")
        assert status.step == "lock" and status.state == "failed"
        assert f"held by run {first.run_id} (credential first)" in status.error
        assert "nothing was changed" in status.error
        assert prechecks(h) == 1  # the first run's: the second never reached precheck
        assert not [p for p in h.store.paths if second.run_id in p]
        (record,) = [r for r in h.records(second.run_id) if r.credential == "again"]
        assert (record.step, record.outcome) == ("lock", "failed")
        assert record.details["holder_run"] == first.run_id
        assert record.details["holder_credential"] == "first"
        assert record.details["on_locked"] == "refuse"

        await gates.decide(h.client, first.run_id, "first", "alice", "ok", approve=True)
        assert (await first_handle.result()).state == "succeeded"
        assert await holder_of(h.client, lock_of(first)) is None  # released before the end
        assert_one_key_the_stores(h)


async def test_a_waiting_run_names_the_holder_and_goes_on_once_it_ends(tmp_path):
    async with harness(tmp_path) as h:
        seed(h)
        first, first_handle = await hold_at_gate(h)
        second, handle = await start(h, runbook("second", "again", on_locked="wait"))
        status = await at_step(h, second.run_id, "again", "lock", "waiting")
        assert f"held by run {first.run_id} (credential first)" in status.steps[-1].detail
        assert status.state == "running" and prechecks(h) == 1

        await signalled(h, lock_workflow_id(lock_of(first)), "wake_when_released")

        await gates.decide(h.client, first.run_id, "first", "alice", "ok", approve=True)
        assert (await first_handle.result()).state == "succeeded"
        assert (await handle.result()).state == "succeeded"
        await signalled(h, credential_workflow_id(second.run_id, "again"), "target_released")

        assert prechecks(h) == 2
        assert_one_key_the_stores(h)
        assert await holder_of(h.client, lock_of(second)) is None
        lock_records = [(r.outcome, r.details.get("holder_run"))
                        for r in h.records(second.run_id) if r.step == "lock"]
        assert lock_records == [("waiting", first.run_id), ("succeeded", None)]


async def test_a_cancelled_waiter_leaves_the_holder_alone(tmp_path):
    async with harness(tmp_path) as h:
        seed(h)
        first, _ = await hold_at_gate(h)
        second, _ = await start(h, runbook("second", "again", on_locked="wait"))
        await at_step(h, second.run_id, "again", "lock", "waiting")
        await cancel_run(h.client, second.run_id, "dave")
        assert (await runs.wait(h.client, second.run_id)).state == "cancelled"
        assert (await holder_of(h.client, lock_of(first))).run_id == first.run_id
        assert prechecks(h) == 1


async def test_a_failed_rotation_lets_go(tmp_path):
    async with harness(tmp_path) as h:
        seed(h)
        plan, handle = await start(h, runbook("fails", "first", fail_at="verify_new"))
        assert (await handle.result()).state == "failed"
        assert await holder_of(h.client, lock_of(plan)) is None


async def test_a_cancelled_rotation_lets_go_after_its_rollback(tmp_path):
    async with harness(tmp_path) as h:
        seed(h)
        plan, _ = await hold_at_gate(h)
        assert await holder_of(h.client, lock_of(plan)) is not None
        await cancel_run(h.client, plan.run_id, "dave")
        assert (await runs.wait(h.client, plan.run_id)).state == "cancelled"
        assert await holder_of(h.client, lock_of(plan)) is None
        assert_one_key_the_stores(h)  # rolled back: the old key, as the store holds it


# The time-skipping server has neither visibility nor parent close policies: the dev server.


async def test_holds_are_listed_and_a_terminated_run_does_not_keep_its_target(
        tmp_path, temporal_dev_server):
    account = f"shared-{uuid.uuid4().hex[:8]}"  # lock ids are namespace-wide on a shared server
    async with harness(tmp_path, dev_server_address=temporal_dev_server.address) as h:
        seed(h, account)
        plan, handle = await hold_at_gate(h, account=account)

        async def listed():
            return [held for held in await held_targets(h.client) if held.run_id == plan.run_id]
        (held,) = await eventually(listed)
        assert (held.credential, held.provider, held.target, held.lock_key) == (
            "first", "memory.key", f"account={account}", lock_of(plan))

        await handle.terminate(reason="test: the run is killed")
        with pytest.raises(WorkflowFailureError):
            await handle.result()

        async def released():
            return await holder_of(h.client, lock_of(plan)) is None
        await eventually(released)
        lock = await h.client.get_workflow_handle(lock_workflow_id(lock_of(plan))).describe()
        assert lock.status == WorkflowExecutionStatus.TERMINATED  # by the parent close policy

        async def unlisted():
            return not await listed()
        await eventually(unlisted)  # visibility follows shortly


async def test_other_targets_are_not_held_up(tmp_path):
    async with harness(tmp_path) as h:
        seed(h)
        seed(h, "other")
        await hold_at_gate(h)
        _, handle = await start(h, runbook("other", "else", account="other"))
        assert (await handle.result()).state == "succeeded"
