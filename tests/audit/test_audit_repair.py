"""The JSONL log under damage: a torn last line is cut back with a `repair` record (by the
next writer, or `keyturn audit repair`); a write that fails (full disk, file-size limit,
read-only filesystem) leaves no partial line and raises AuditLogUnavailable."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keyturn.audit import (
    REPAIR_RUN,
    AuditLogUnavailable,
    JsonlAuditLog,
    replay,
    verify,
)
from keyturn.cli import app

TORN = b'{"actor":"worker","credential":"cred-a","details":{},"event_id":"0f'


def _tear(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(TORN)


def test_the_next_writer_cuts_a_torn_tail_and_records_what_it_cut(audit_path, make_event):
    log = JsonlAuditLog(audit_path)
    first = log.append(make_event("create"))
    size = audit_path.stat().st_size
    _tear(audit_path)
    assert not verify(audit_path).ok
    assert "keyturn audit repair" in verify(audit_path).first_problem.reason

    later = JsonlAuditLog(audit_path).append(make_event("verify_new"))

    records = list(log.records())
    assert [r.seq for r in records] == [1, 2, 3] and later.seq == 3
    repair = records[1]
    assert (repair.run, repair.step, repair.outcome, repair.credential) == (
        REPAIR_RUN, "repair", "succeeded", None)
    assert repair.prev == first.hash and later.prev == repair.hash
    assert repair.details["cut_bytes"] == len(TORN)
    assert repair.details["cut_sha256"] == hashlib.sha256(TORN).hexdigest()
    assert (repair.details["at_offset"], repair.details["after_seq"]) == (size, 1)
    assert repair.details["by"] == "writer" and f"pid {os.getpid()}" in repair.actor
    result = verify(audit_path)
    assert result.ok, result.problems
    assert any("repaired: seq 2" in w for w in result.warnings)


def test_replay_notes_a_repair_made_during_the_run(audit_path, make_event):
    log = JsonlAuditLog(audit_path)
    log.append(make_event("precheck"))
    _tear(audit_path)
    log.append(make_event("create"))
    log.append(make_event("verify_new"))
    result = replay(log.records(), "run-1")
    assert result.ok
    assert [r.step for r in result.records] == ["precheck", "create", "verify_new"]
    assert any("repaired during this run" in w for w in result.warnings)


def test_audit_repair_command(audit_path, make_event, monkeypatch):
    monkeypatch.setenv("KEYTURN_PRINCIPAL", "oncall-alice")
    JsonlAuditLog(audit_path).append(make_event("create"))
    runner = CliRunner()
    nothing = runner.invoke(app, ["audit", "repair", "--log", str(audit_path)])
    assert nothing.exit_code == 0 and "nothing to repair" in nothing.output
    _tear(audit_path)
    broken = runner.invoke(app, ["audit", "verify", "--log", str(audit_path)])
    assert broken.exit_code == 1 and "keyturn audit repair" in broken.output

    repaired = runner.invoke(app, ["audit", "repair", "--log", str(audit_path)])

    assert repaired.exit_code == 0, repaired.output
    assert hashlib.sha256(TORN).hexdigest() in repaired.output
    last = json.loads(audit_path.read_bytes().splitlines()[-1])
    assert (last["step"], last["actor"], last["details"]["by"]) == (
        "repair", "oncall-alice", "keyturn audit repair")
    ok = runner.invoke(app, ["audit", "verify", "--log", str(audit_path)])
    assert ok.exit_code == 0 and "repaired" in ok.output


def test_a_write_that_fails_midway_is_cut_back(audit_path, make_event, monkeypatch):
    log = JsonlAuditLog(audit_path)
    log.append(make_event("create"))
    before = audit_path.read_bytes()
    real_write = os.write

    def full_disk(fd, data):  # half the line goes out, then the disk is full
        if len(data) > 1:
            real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(AuditLogUnavailable, match="No space left"):
        log.append(make_event("verify_new"))
    monkeypatch.setattr(os, "write", real_write)
    assert audit_path.read_bytes() == before
    assert log.append(make_event("verify_new")).seq == 2
    assert verify(audit_path).ok


def test_a_read_only_log_refuses_without_writing(audit_path, make_event, monkeypatch):
    log = JsonlAuditLog(audit_path)
    log.append(make_event("create"))
    before = audit_path.read_bytes()

    def read_only(fd, data):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "write", read_only)
    with pytest.raises(AuditLogUnavailable, match="Read-only"):
        log.append(make_event("verify_new"))
    assert audit_path.read_bytes() == before


SIZE_LIMITED = """
import resource, sys
from keyturn.audit import AuditEvent, AuditLogUnavailable, JsonlAuditLog, event_id
path = sys.argv[1]
size = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, resource.RLIM_INFINITY))
event = AuditEvent(run="run-1", event_id=event_id("run-1", "c", "create"), step="create",
                   outcome="succeeded", actor="worker", details={"pad": "x" * 400})
try:
    JsonlAuditLog(path).append(event)
except AuditLogUnavailable as exc:
    print("refused:", exc)
"""


def test_a_file_size_limit_leaves_no_partial_line(audit_path, make_event):
    JsonlAuditLog(audit_path).append(make_event("precheck"))
    before = audit_path.read_bytes()
    out = subprocess.run([sys.executable, "-c", SIZE_LIMITED, str(audit_path), str(len(before))],
                         check=False, capture_output=True, text=True, timeout=60)
    assert "refused:" in out.stdout and "File too large" in out.stdout, out.stdout + out.stderr
    assert audit_path.read_bytes() == before
    assert verify(audit_path).ok


def test_a_repair_at_a_checkpoint_seq_is_checkpointed(audit_path, make_event, tmp_path):
    from keyturn.audit import generate_signing_key, load_signing_key

    key_file = tmp_path / "signing.pem"
    generate_signing_key(key_file)
    key = load_signing_key(key_file)
    log = JsonlAuditLog(audit_path, signing_key=key, checkpoint_every=2)
    log.append(make_event("create"))
    _tear(audit_path)
    log.append(make_event("verify_new"))  # seq 2 is the repair, seq 3 this event
    result = verify(audit_path, key.public_key())
    assert result.ok, result.problems
    assert result.checkpoints == 1 and result.records == 3
