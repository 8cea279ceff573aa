"""A rotation whose audit log refuses appends waits for it instead of going on unaudited,
shows why in its status, and carries on by itself once the log takes appends again."""

from __future__ import annotations

from test_workflow_protocol import HEADER, assert_rotated, cred, seed, start, steps_of
from workflow_env import eventually, harness

from keyturn.audit import AuditEvent, AuditLogUnavailable, AuditRecord, open_log
from keyturn.operations import runs


class RefusingLog:
    """The JSONL log, refusing every append (as a full disk would) once `refusing` is set."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.refusing = False
        self.refused = 0
        self.refuse_after: str | None = None  # a step whose `succeeded` record starts refusing

    def append(self, event: AuditEvent) -> AuditRecord:
        if self.refusing:
            self.refused += 1
            raise AuditLogUnavailable("cannot append to audit.jsonl: [Errno 28] No space left")
        record = self.inner.append(event)
        if (event.step, event.outcome) == (self.refuse_after, "succeeded"):
            self.refusing = True
        return record

    def records(self):
        return self.inner.records()

    def records_for_run(self, run: str):
        return self.inner.records_for_run(run)


async def test_a_refusing_audit_log_makes_the_rotation_wait_then_carry_on(tmp_path):
    log = RefusingLog(open_log(tmp_path / "audit.jsonl"))
    log.refuse_after = "precheck"
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a")
    async with harness(tmp_path, audit_log=log) as h:
        old = seed(h, "a")
        plan, handle = await start(h, text)

        async def waiting():
            detail = await runs.describe(h.client, plan.run_id)
            status = detail.credentials.get("a")
            last = status.steps[-1] if status and status.steps else None
            return last if last and last.outcome == "waiting" and log.refused >= 2 else None

        last = await eventually(waiting)
        assert last.step == "create"
        assert "audit log unavailable" in last.detail and "No space left" in last.detail
        assert h.provider.keys["a"], "the change may be made; only its record waits"
        log.refusing = False
        result = await handle.result()

        assert result.state == "succeeded"
        assert_rotated(h, "a", old["a"])
        records = h.records(plan.run_id)
        assert steps_of(records, "a") == [
            ("precheck", "succeeded"), ("create", "succeeded"), ("verify_new", "succeeded"),
            ("promote", "succeeded"), ("revoke_old", "succeeded"), ("revoke_old", "succeeded"),
            ("confirm_revoked", "succeeded"),
        ]
        assert len({r.event_id for r in records}) == len(records)
