"""Reliability drills, long variants: runs the drills of tests/drills with more injections
than `make test` does and prints one table row per drill: what was injected, what was
checked, pass/fail and the time it took.

    .venv/bin/python bench/drills.py [--points 20] [--credentials 10] [--seed S] [--only F..]

--points   kill points of the mixed runbook (tests/drills/long_kill_points.py): each a
           worker SIGKILLed at a random moment, then a second worker finishing the run
--credentials  credentials of the faulty-providers drill (tests/drills/long_faulty_providers.py):
           30 % of requests to moto, OpenBao and Verdaccio fail at random, one IAM user's
           CreateAccessKey is denied (403)
--seed     the seed of the random choices (printed; the same seed replays the same points)
--only     drill files to run instead (e.g. tests/drills/long_kill_points.py)

tests/drills/long_many_writers.py: four workers on one JSONL log, and on PostgreSQL, one
of them SIGKILLed. The servers-going-away drill (tests/drills/test_outages.py) and the audit damage drill
(tests/drills/test_audit_damage.py) run as in `make test` and are reported here too.

The drills start the same local servers as the tests (Temporal dev server, OpenBao, moto,
Verdaccio, PostgreSQL) through pytest, on free loopback ports, and stop them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONG = ["tests/drills/long_kill_points.py", "tests/drills/long_faulty_providers.py",
        "tests/drills/test_outages.py", "tests/drills/test_audit_damage.py",
        "tests/drills/test_audit_backend_outage.py", "tests/drills/long_many_writers.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--credentials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(10**6))
    parser.add_argument("--only", nargs="*", help="drill files to run (default: all long ones)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rows.jsonl"
        env = {**os.environ, "KEYTURN_DRILL_REPORT": str(report),
               "KEYTURN_DRILL_SEED": str(args.seed), "KEYTURN_DRILL_POINTS": str(args.points),
               "KEYTURN_DRILL_CREDENTIALS": str(args.credentials)}
        print(f"seed {args.seed}", flush=True)
        began = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=600",
             *(args.only or LONG)],
            cwd=ROOT, env=env, check=False)
        wall = time.monotonic() - began
        rows = [json.loads(line) for line in report.read_text().splitlines()] \
            if report.exists() else []
    print(f"\n{'drill':<18} {'injected':<34} {'checked':<28} {'result':<6} {'s':>6}")
    for row in rows:
        print(f"{row['drill']:<18} {row['injected']:<34} {row['checked']:<28} "
              f"{'pass' if row['ok'] else 'FAIL':<6} {row['seconds']:>6}")
        for problem in row.get("problems", [])[:5]:
            print(f"    {problem}")
    passed = sum(r["ok"] for r in rows)
    print(f"\n{passed}/{len(rows)} drills passed in {wall:.0f} s (seed {args.seed}); "
          f"pytest exit {result.returncode}")
    return 0 if rows and passed == len(rows) and result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
