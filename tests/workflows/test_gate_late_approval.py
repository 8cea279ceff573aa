"""An approval that arrives while the previous one's audit record is being written, and
passes the gate, is recorded too (it used to be lost: the gate's record loop saw the gate
decided and stopped). Made deterministic by holding alice's record until bob approved."""

from __future__ import annotations

import asyncio
import threading

from test_workflow_protocol import HEADER, assert_rotated, cred, open_gate, seed, start
from workflow_env import harness

from keyturn.audit import AuditEvent, AuditRecord, open_log
from keyturn.operations import gates
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.tier import credential_workflow_id


class HeldAuditLog:
    """The JSONL log, with alice's approval record held until `release` is set."""

    def __init__(self, path) -> None:
        self.log = open_log(path)
        self.holding = threading.Event()
        self.release = threading.Event()

    def append(self, event: AuditEvent) -> AuditRecord:
        if event.outcome == "approved" and event.actor == "alice":
            self.holding.set()
            assert self.release.wait(timeout=60), "bob never approved"
        return self.log.append(event)

    def records(self):
        return self.log.records()

    def records_for_run(self, run: str):
        return self.log.records_for_run(run)


async def test_an_approval_arriving_while_the_last_is_recorded_is_recorded(tmp_path):
    gate = "          gate: {before: revoke, approvals: 2, from: security}\n"
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
    held = HeldAuditLog(tmp_path / "audit.jsonl")
    async with harness(tmp_path, audit_log=held) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text, requested_by="dave")
        await open_gate(h, credential_workflow_id(plan.run_id, "a"),
                        CredentialRotationWorkflow.status)
        first = await gates.decide(h.client, plan.run_id, "a", "alice", "ok", approve=True)
        assert first.status == "open"
        assert await asyncio.to_thread(held.holding.wait, 60)  # alice's record is held
        second = await gates.decide(h.client, plan.run_id, "a", "bob", "ok", approve=True)
        assert second.status == "passed"
        held.release.set()
        assert (await handle.result()).state == "succeeded"
        assert_rotated(h, "a", old["a"])
        decisions = [(r.outcome, r.actor) for r in h.records(plan.run_id) if r.step == "gate"]
        assert decisions == [("opened", "worker"), ("approved", "alice"), ("approved", "bob"),
                             ("passed", "worker")]
