"""Any byte edit to a stored log is detected and named: a changed, inserted or deleted byte
anywhere in a chained JSONL log makes `verify` fail at a record at or before the edit."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyturn.audit import AuditEvent, event_id, open_log
from keyturn.audit.verify import verify


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "audit.jsonl"
    log = open_log(path)
    for n, (step, outcome) in enumerate([("run", "started"), ("create", "succeeded"),
                                         ("gate", "opened"), ("gate", "approved"),
                                         ("promote", "succeeded"), ("run", "succeeded")]):
        log.append(AuditEvent(run="run-1", event_id=event_id("run-1", n, step, outcome),
                              step=step, outcome=outcome, credential="cred-a",
                              actor="alice" if outcome == "approved" else "worker",
                              details={"reason": "checked [/] :ab: \u00e9", "n": n}))
    return path.read_bytes()


EDITS = st.tuples(st.sampled_from(["replace", "insert", "delete"]), st.integers(0, 10**6),
                  st.integers(0, 255))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edit=EDITS)
def test_a_byte_edit_is_detected_and_named(pristine: bytes, tmp_path: Path, edit) -> None:
    kind, at, byte = edit
    at %= len(pristine)
    data = bytearray(pristine)
    if kind == "replace":
        if data[at] == byte:
            return  # not an edit
        data[at] = byte
    elif kind == "insert":
        data.insert(at, byte)
    else:
        del data[at]
    path = tmp_path / f"edited-{kind}-{at}-{byte}.jsonl"
    path.write_bytes(bytes(data))
    result = verify(path)
    assert not result.ok, (kind, at, byte)
    edited_line = pristine[:at].count(b"\n") + 1
    problem = result.problems[0]
    assert problem.line is not None and problem.line <= edited_line + 1, (problem, edited_line)
