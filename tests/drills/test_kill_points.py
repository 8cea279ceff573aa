"""Kill points: the mixed runbook run while its worker is SIGKILLed at a random moment (an
activity's start, between a change at the provider and its audit record, half-way through
an audit append, or once the log holds N records); a second worker finishes the run.

Afterwards every credential succeeded, each target holds exactly one credential (the new
one), its store path holds it and it works, the old one does not, no audit event is
missing or written twice, and `audit verify` and `audit replay` pass. The seed is printed;
KEYTURN_DRILL_SEED replays it. bench/drills.py runs 20 kill points.
"""

from __future__ import annotations

import random

import pytest
from killing import choose, drive, report, seed_of
from mixed import check_audit, check_rotated, make_mixed

FAST_KINDS = ("before_audit", "mid_append")  # make test; bench/drills.py draws from all


def run_kill_drill(stack, harnesses, vault, tmp_path, point: str) -> dict:
    mixed = make_mixed(harnesses, vault, tmp_path)
    outcome = drive(stack, mixed, point)
    records = stack.audit_records(outcome.run_id)
    wrong = check_rotated(mixed, outcome.status, vault) + check_audit(records)
    verified = stack.cli("audit", "verify")
    replayed = stack.cli("audit", "replay", outcome.run_id)
    if verified.returncode:
        wrong.append(f"audit verify: {verified.stdout}")
    if replayed.returncode:
        wrong.append(f"audit replay: {replayed.stdout[-2000:]}")
    if not outcome.killed:
        wrong.append(f"the worker was never killed at {point}")
    repairs = sum(1 for r in stack.audit_records() if r["step"] == "repair")
    row = {"drill": "kill point", "injected": point, "checked": "rotated once, audit",
           "ok": not wrong, "seconds": round(outcome.seconds, 1), "repairs": repairs,
           "problems": wrong}
    report(row)
    return row


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_worker_killed_at_a_random_point_finishes_cleanly(
        kind, stack, harnesses, vault, tmp_path, capsys):
    seed = seed_of()
    point = choose(random.Random(f"{seed}-{kind}"), kind)
    with capsys.disabled():
        print(f"\n[drill] seed {seed}: kill at {point}")
    row = run_kill_drill(stack, harnesses, vault, tmp_path, point)
    assert row["ok"], f"seed {seed}, kill at {point}: {row['problems']}"
    if kind == "mid_append":
        assert row["repairs"] >= 1, "a torn append must be repaired by the next writer"
