"""A rotation end to end through a worker whose audit log is PostgreSQL: every step,
gate and approval lands in the database, and the log verifies and replays. The worker
says at start which audit log it writes, never with the database's password."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fakes.sql_servers import PostgresDatabase
from test_workflow_protocol import HEADER, assert_rotated, cred, open_gate, seed, start
from workflow_env import harness

from keyturn import worker
from keyturn.audit import generate_signing_key, load_signing_key, replay, verify_log
from keyturn.audit.postgres import PostgresAuditLog
from keyturn.config import Settings
from keyturn.operations import gates
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
        await gates.decide(h.client, plan.run_id, "a", "alice", "bridge agreed", approve=True)
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


class _Built(Exception):
    """Stands in for the workers: serve() stops where it would start them."""


@pytest.mark.parametrize(
    ("dsn", "named"),
    [
        (None, "file {cwd}/.keyturn/audit.jsonl"),
        ("postgresql://kt:hunter2-pw@db.internal:5433/audit",
         "postgresql host=db.internal port=5433 dbname=audit user=kt"),
    ],
)
async def test_the_worker_logs_which_audit_log_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    dsn: str | None, named: str,
) -> None:
    async def connect(settings: Settings) -> None:
        return None

    def build_workers(client: None, **options: object) -> None:
        raise _Built

    monkeypatch.setattr(worker, "connect", connect)
    monkeypatch.setattr(worker, "build_workers", build_workers)
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        temporal_address="127.0.0.1:7233", namespace="default", task_queue="keyturn",
        audit_log=Path(".keyturn/audit.jsonl"), codec_key="k", principal="p", audit_dsn=dsn,
    )
    with caplog.at_level(logging.INFO, logger="keyturn.worker"), pytest.raises(_Built):
        await worker.serve(settings)
    said = [r.getMessage() for r in caplog.records if r.name == "keyturn.worker"]
    assert said[0].startswith("connected to Temporal at 127.0.0.1:7233")
    assert said[1] == "writing audit records to " + named.format(cwd=Path.cwd())
    assert "hunter2" not in caplog.text
