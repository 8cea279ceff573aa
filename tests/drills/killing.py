"""Kill points for the drills: where a worker is SIGKILLed, chosen at random from a seed, and
the driver that runs the mixed runbook through one kill and a replacement worker.

A kill point is either a named point of keyturn.drill (the worker kills itself there: inside
an activity, between a change at the provider and its audit record, half-way through an
audit append) or `after_records#N`: the test kills the worker once the audit log holds N of
the run's records. Drills wait on conditions (audit records, process exit), never on sleeps.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass

from mixed import CREDENTIALS, GATED, Mixed

from keyturn.drill import KILL_AT_ENV

STEPS = ("precheck", "create", "verify_new", "promote", "revoke_old", "confirm_revoked")
N = len(CREDENTIALS)
KINDS = ("started", "before_audit", "mid_append", "after_records")


def seed_of() -> int:
    """KEYTURN_DRILL_SEED, else a fresh one (printed by the drills, to replay a failure)."""
    return int(os.environ.get("KEYTURN_DRILL_SEED") or random.SystemRandom().randrange(10**6))


def choose(rng: random.Random, kind: str | None = None) -> str:
    """A kill point of `kind` (random if None) at a random occurrence that a run reaches."""
    kind = kind or rng.choice(KINDS)
    if kind == "mid_append":
        return f"audit.mid_append#{rng.randint(2, 6 * N)}"
    if kind == "after_records":
        return f"after_records#{rng.randint(3, 7 * N)}"
    step = rng.choice(STEPS)
    hits = 2 * N if step == "revoke_old" else N  # disable and delete
    return f"{step}.{kind}#{rng.randint(1, hits)}"


@dataclass
class DrillOutcome:
    point: str
    killed: bool
    run_id: str
    status: dict
    seconds: float


def audit_records(stack, run_id: str | None = None) -> list[dict]:
    """The log's whole records (a torn last line, which a drill may cause, is left out)."""
    if not stack.audit_log.exists():
        return []
    *whole, _torn = stack.audit_log.read_bytes().split(b"\n")
    records = [json.loads(line) for line in whole]
    return [r for r in records if run_id is None or r["run"] == run_id]


def _approve_open_gate(stack, run_id: str, approved: set[str]) -> None:
    if GATED in approved:
        return
    opened = any(r["credential"] == GATED and r["step"] == "gate" and r["outcome"] == "opened"
                 for r in audit_records(stack, run_id))
    if opened and stack.cli("approve", run_id, GATED, "--as", "alice").returncode == 0:
        approved.add(GATED)


def finished(stack, run_id: str) -> bool:
    return any(r["step"] == "run" and r["outcome"] in ("succeeded", "failed", "cancelled")
               for r in audit_records(stack, run_id))


def drive(stack, mixed: Mixed, point: str, timeout: float = 240.0) -> DrillOutcome:
    """Run the mixed runbook, SIGKILL the first worker at `point`, finish with a second."""
    began = time.monotonic()
    stack.env.update(mixed.worker_env)
    named = not point.startswith("after_records")
    if named:
        stack.env[KILL_AT_ENV] = point
    first = stack.start_worker()
    stack.env.pop(KILL_AT_ENV, None)  # the CLI and the replacement worker run without it
    run_id = stack.cli_json("run", str(mixed.path), "--as", "dave")["run_id"]
    approved: set[str] = set()
    threshold = 0 if named else int(point.partition("#")[2])

    def first_gone() -> bool:
        _approve_open_gate(stack, run_id, approved)
        if not named and len(audit_records(stack, run_id)) >= threshold:
            stack.kill_worker(first)
        return first.poll() is not None or finished(stack, run_id)

    stack.wait_for(first_gone, timeout=timeout, what=f"the worker to reach {point}")
    killed = first.poll() is not None
    if not killed:
        stack.kill_worker(first)
    stack.start_worker()

    def done() -> bool:
        _approve_open_gate(stack, run_id, approved)
        return finished(stack, run_id)

    stack.wait_for(done, timeout=timeout, what=f"the run to finish after a kill at {point}")
    status = json.loads(stack.cli("status", run_id, "--output", "json", check=True).stdout)
    return DrillOutcome(point, killed, run_id, status, time.monotonic() - began)


def report(row: dict) -> None:
    """Append a result row for bench/drills.py when KEYTURN_DRILL_REPORT names a file."""
    target = os.environ.get("KEYTURN_DRILL_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
