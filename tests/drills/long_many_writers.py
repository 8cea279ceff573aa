"""Many writers, run by bench/drills.py (not by `make test`): four worker processes on one
task queue share one audit log (the JSONL file, or PostgreSQL), rotating eight IAM keys,
and one of them is SIGKILLed at a random point (half-way through an audit append on the
JSONL file). The other three finish the run; the chain has no gap, fork or duplicate,
each key rotated exactly once, verify and replay pass."""

from __future__ import annotations

import random
import time

import pytest
from killing import audit_records, report, seed_of
from mixed import check_audit, check_rotated, make_mixed

from keyturn.audit.postgres import PostgresAuditLog
from keyturn.drill import KILL_AT_ENV

CREDENTIALS = {f"iam-{i}": "aws.iam_access_key" for i in range(1, 9)}
WORKERS = 4


@pytest.mark.parametrize("backend", ["jsonl", "postgres"])
def test_four_workers_one_log(backend, stack, harnesses, vault, tmp_path, request, capsys):
    began = time.monotonic()
    seed = seed_of()
    rng = random.Random(f"{seed}-{backend}")
    # The victim does about a quarter of the work: an early append on the file; on
    # PostgreSQL (no torn lines) it is killed from outside once the log holds N records.
    point = (f"audit.mid_append#{rng.randint(1, 2)}" if backend == "jsonl"
             else f"after_records#{rng.randint(5, 40)}")
    with capsys.disabled():
        print(f"\n[drill] seed {seed}: {WORKERS} workers on {backend}, one killed at {point}")
    pg = None
    if backend == "postgres":
        database = request.getfixturevalue("audit_database")
        stack.env["KEYTURN_AUDIT_DSN"] = database.dsn
        pg = PostgresAuditLog(database.dsn)
    mixed = make_mixed(harnesses, vault, tmp_path, credentials=CREDENTIALS, gated=None)

    def records(run_id=None):
        if pg is None:
            return audit_records(stack, run_id)
        if not pg.exists():
            return []
        found = pg.records() if run_id is None else pg.records_for_run(run_id)
        return [r.model_dump() for r in found]

    if backend == "jsonl":
        stack.env[KILL_AT_ENV] = point
    victim = stack.start_worker()
    stack.env.pop(KILL_AT_ENV, None)
    for _ in range(WORKERS - 1):
        stack.start_worker()
    run_id = stack.cli_json("run", str(mixed.path), "--as", "dave")["run_id"]
    threshold = int(point.partition("#")[2])

    def done() -> bool:
        seen = records(run_id)
        if backend == "postgres" and len(seen) >= threshold:
            stack.kill_worker(victim)
        return any(r["step"] == "run" and r["outcome"] == "succeeded" for r in seen)

    stack.wait_for(done, timeout=400, what="the run")
    status = stack.cli_json("status", run_id)
    wrong = check_rotated(mixed, status, vault) + check_audit(records(run_id), CREDENTIALS)
    if victim.poll() is None:
        wrong.append(f"the worker was never killed at {point}")
    every = records()
    if [r["seq"] for r in every] != list(range(1, len(every) + 1)):
        wrong.append("the chain's seq numbers have a gap or a repeat")
    where = ("--dsn", database.dsn) if pg is not None else ()
    for command in (("audit", "verify", *where), ("audit", "replay", run_id, *where)):
        if stack.cli(*command).returncode:
            wrong.append(f"keyturn {' '.join(command[:2])} failed")
    if pg is not None:
        pg.close()
    report({"drill": "many writers", "injected": f"{WORKERS} workers, {backend}, {point}",
            "checked": "one chain, rotated once", "ok": not wrong,
            "seconds": round(time.monotonic() - began, 1), "problems": wrong})
    assert not wrong, f"seed {seed}: {wrong}"
