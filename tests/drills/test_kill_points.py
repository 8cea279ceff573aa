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
from concurrent.futures import ThreadPoolExecutor

from killing import audit_records, choose, drive, report, seed_of
from mixed import check_audit, check_rotated, make_mixed
from stack_support import make_stack

from keyturn.codec import new_key

FAST_KINDS = ("before_audit", "mid_append")  # make test; bench/drills.py draws from all


def run_kill_drill(stack, mixed, vault, point: str) -> dict:
    outcome = drive(stack, mixed, point)
    records = audit_records(stack, outcome.run_id)
    wrong = check_rotated(mixed, outcome.status, vault) + check_audit(records)
    verified = stack.cli("audit", "verify")
    replayed = stack.cli("audit", "replay", outcome.run_id)
    if verified.returncode:
        wrong.append(f"audit verify: {verified.stdout}")
    if replayed.returncode:
        wrong.append(f"audit replay: {replayed.stdout[-2000:]}")
    if not outcome.killed:
        wrong.append(f"the worker was never killed at {point}")
    repairs = sum(1 for r in audit_records(stack) if r["step"] == "repair")
    row = {"drill": "kill point", "injected": point, "checked": "rotated once, audit",
           "ok": not wrong, "seconds": round(outcome.seconds, 1), "repairs": repairs,
           "problems": wrong}
    report(row)
    return row


def test_workers_killed_at_random_points_finish_cleanly(
        stack, harnesses, vault, tmp_path, temporal_dev_server, openbao, moto, capsys):
    """One drill per kind in FAST_KINDS, side by side (each on its own task queue, worker
    and audit log), so the killed steps' 30 s activity timeouts overlap."""
    seed = seed_of()
    points = [choose(random.Random(f"{seed}-{kind}"), kind) for kind in FAST_KINDS]
    with capsys.disabled():
        print(f"\n[drill] seed {seed}: kill at {', '.join(points)}")
    stacks = [stack]
    for i in range(1, len(points)):
        (tmp_path / f"drill-{i}").mkdir()
        stacks.append(make_stack(tmp_path / f"drill-{i}", temporal_dev_server, openbao, moto,
                                 new_key()))
    mixes = [make_mixed(harnesses, vault, s.tmp) for s in stacks]  # subjects made one by one
    try:
        with ThreadPoolExecutor(len(points)) as pool:
            rows = list(pool.map(run_kill_drill, stacks, mixes, [vault] * len(points), points))
    finally:
        for extra in stacks[1:]:
            extra.stop()
    for point, row in zip(points, rows, strict=True):
        assert row["ok"], f"seed {seed}, kill at {point}: {row['problems']}"
        if point.startswith("audit.mid_append"):
            assert row["repairs"] >= 1, "a torn append must be repaired by the next writer"
