"""The long kill-point drill, run by bench/drills.py (not by `make test`: the file name does
not match test_*.py): KEYTURN_DRILL_POINTS kill points (default 20), each of a random kind
(an activity's start, before an audit record, mid-append, after N records) and occurrence,
from KEYTURN_DRILL_SEED."""

from __future__ import annotations

import os
import random

import pytest
from killing import choose, seed_of
from mixed import make_mixed
from test_kill_points import run_kill_drill

SEED = seed_of()
POINTS = [choose(random.Random(f"{SEED}-{i}")) for i in
          range(int(os.environ.get("KEYTURN_DRILL_POINTS", "20")))]


@pytest.mark.parametrize("point", POINTS)
def test_kill_point(point, stack, harnesses, vault, tmp_path, capsys):
    with capsys.disabled():
        print(f"\n[drill] seed {SEED}: kill at {point}")
    row = run_kill_drill(stack, make_mixed(harnesses, vault, tmp_path), vault, point)
    assert row["ok"], f"seed {SEED}, kill at {point}: {row['problems']}"
