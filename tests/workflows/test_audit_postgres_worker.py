"""A rotation end to end through a worker whose audit log is PostgreSQL: every step,
gate and approval lands in the database, and the log verifies and replays."""

from __future__ import annotations

from pathlib import Path

from fakes.sql_servers import PostgresDatabase
from test_workflow_protocol import HEADER, assert_rotated, cred, open_gate, seed, start
from workflow_env import harness

from keyturn import runs
from keyturn.audit import generate_signing_key, load_signing_key, replay, verify_log
from keyturn.audit.postgres import PostgresAuditLog
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.tier import credential_workflow_id


async def test_a_rotation_audited_in_postgresql_verifies_and_replays(
    tmp_path: Path, audit_database: PostgresDatabase
) -> None:
    key_file = tmp_path / "audit-signing.pem"
    generate_signing_key(key_file)
    key = load_signing_key(key_file)
    log = PostgresAuditLog(audit_database.dsn, signing_key=key, checkpoint_every=5)
    gate = "          gate: {before: promote, approvals: 1, from: security}\n"
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a", extra=gate) + \
        "    - id: tier2\n      after: [tier1]\n      credentials:\n" + cred("b")
    async with harness(tmp_path, audit_log=log) as h:
        old = seed(h, "a", "b")
        plan, handle = await start(h, text)
        await open_gate(h, credential_workflow_id(plan.run_id, "a"),
                        CredentialRotationWorkflow.status)
        await runs.decide(h.client, plan.run_id, "a", "alice", "bridge agreed", approve=True)
        assert (await handle.result()).state == "succeeded"
        for account in "ab":
            assert_rotated(h, account, old[account])

    assert not (tmp_path / "audit.jsonl").exists()  # nothing went to the default file
    records = list(log.records())
    assert {r.run for r in records} == {plan.run_id}
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    approved = [r for r in records if (r.step, r.outcome) == ("gate", "approved")]
    assert [(r.actor, r.details["reason"]) for r in approved] == [("alice", "bridge agreed")]

    result = verify_log(log, key.public_key())
    assert result.ok, result.problems
    assert result.checkpoints == len(records) // 5
    replayed = replay(records, plan.run_id)
    assert replayed.ok, replayed.violations
    assert set(replayed.by_credential) == {None, "a", "b"}
    log.close()
