"""The JSONL backend: chained, idempotent, durable appends from threads and processes."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from keyturn.audit import (
    GENESIS_PREV,
    AuditEvent,
    AuditLogError,
    JsonlAuditLog,
    event_id,
    load_public_key,
    load_signing_key,
    open_log,
    verify,
)
from keyturn.audit.checkpoint import read_checkpoints, signature_valid


def test_append_chains_records(audit_path: Path, make_event) -> None:
    log = JsonlAuditLog(audit_path)
    records = [log.append(make_event("create", extra=[i])) for i in range(5)]
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev == GENESIS_PREV
    assert all(b.prev == a.hash for a, b in itertools.pairwise(records))
    assert all(r.hash_ok() and r.ts.endswith("Z") for r in records)
    assert audit_path.read_bytes() == b"".join(r.line() for r in records)
    assert list(log.records()) == records


def test_append_keeps_a_given_timestamp(audit_path: Path, make_event) -> None:
    record = JsonlAuditLog(audit_path).append(make_event(ts="2026-04-12T03:14:15Z"))
    assert record.ts == "2026-04-12T03:14:15Z"


def test_append_is_idempotent_by_event_id(audit_path: Path, make_event) -> None:
    log = JsonlAuditLog(audit_path)
    first = log.append(make_event("create"))
    log.append(make_event("verify_new"))
    before = audit_path.read_bytes()
    retried = make_event("create", details={"attempt": 2})  # same id, different content
    assert log.append(retried) == first
    assert JsonlAuditLog(audit_path).append(retried) == first  # a fresh process agrees
    assert audit_path.read_bytes() == before


def test_a_second_instance_sees_appends_made_by_the_first(audit_path: Path, make_event) -> None:
    one, two = JsonlAuditLog(audit_path), JsonlAuditLog(audit_path)
    one.append(make_event("create"))
    assert two.append(make_event("verify_new")).seq == 2
    a = one.append(make_event("promote"))
    assert a.seq == 3 and two.append(make_event("verify_new")).seq == 2
    assert one.append(make_event("verify_new")).seq == 2
    assert verify(audit_path).ok


def test_index_is_rebuilt_when_the_file_is_replaced(audit_path: Path, make_event) -> None:
    log = JsonlAuditLog(audit_path)
    records = [log.append(make_event("create", extra=[i])) for i in range(3)]
    replacement = audit_path.with_suffix(".new")
    replacement.write_bytes(records[0].line() + records[1].line())
    os.replace(replacement, audit_path)  # new inode holding only two records
    again = log.append(make_event("create", extra=[2]))
    assert (again.seq, again.prev) == (3, records[1].hash)
    assert verify(audit_path).ok


def test_index_is_rebuilt_when_the_file_is_rewritten_in_place(audit_path: Path, make_event) -> None:
    log = JsonlAuditLog(audit_path)
    records = [log.append(make_event("create", extra=[i])) for i in range(3)]
    with open(audit_path, "r+b") as f:  # same inode, cut back to two records
        f.truncate(len(records[0].line()) + len(records[1].line()))
    other = JsonlAuditLog(audit_path).append(make_event("create", extra=["x", "longer" * 20]))
    assert other.seq == 3
    forgotten = log.append(make_event("create", extra=[2]))  # its old record is gone
    assert (forgotten.seq, forgotten.prev) == (4, other.hash)
    assert verify(audit_path).ok


def test_readers_name_a_torn_last_line_and_the_repair_command(
        audit_path: Path, make_event) -> None:
    log = JsonlAuditLog(audit_path)
    log.append(make_event("create"))
    with open(audit_path, "ab") as f:
        f.write(b'{"seq":2,"ts"')
    with pytest.raises(AuditLogError, match="line 2: incomplete last line.*keyturn audit repair"):
        list(log.records())


def test_append_refuses_an_unreadable_line(audit_path: Path, make_event) -> None:
    audit_path.parent.mkdir(parents=True)
    audit_path.write_bytes(b"not json\n")
    with pytest.raises(AuditLogError, match="line 1: unreadable record"):
        JsonlAuditLog(audit_path).append(make_event())


def test_records_of_a_missing_log_is_empty(audit_path: Path) -> None:
    assert list(JsonlAuditLog(audit_path).records()) == []


def test_records_for_run_is_that_run_in_seq_order(audit_path: Path, make_event) -> None:
    log = JsonlAuditLog(audit_path)
    assert list(log.records_for_run("run-1")) == []  # no file yet
    for i, run in enumerate(["run-1", "run-10", "run-1", "run-2", "run-1", "run-10"]):
        log.append(make_event("create", run=run, extra=[i]))
    assert [r.seq for r in log.records_for_run("run-1")] == [1, 3, 5]
    assert [r.seq for r in log.records_for_run("run-10")] == [2, 6]
    assert list(log.records_for_run("run")) == []


def test_records_refuses_a_tampered_line(audit_path: Path, make_event) -> None:
    log = JsonlAuditLog(audit_path)
    log.append(make_event())
    audit_path.write_bytes(audit_path.read_bytes().replace(b'"seq":1', b'"seq": 1'))
    with pytest.raises(AuditLogError, match="line 1: .*canonical form.*keyturn audit verify"):
        list(log.records())


def test_threads_sharing_one_log_append_a_contiguous_chain(audit_path: Path, make_event) -> None:
    log = JsonlAuditLog(audit_path)

    def work(worker: int) -> None:
        for i in range(25):
            log.append(make_event("create", extra=[worker, i]))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify(audit_path)
    assert result.ok and result.records == 100


def _append_from_process(path: str, key_path: str, worker: int, barrier) -> None:
    log = JsonlAuditLog(path, signing_key=load_signing_key(key_path), checkpoint_every=25)
    barrier.wait()
    for i in range(50):
        log.append(_event(f"w{worker}-{i}"))
        if i % 5 == 0:  # every process also races to write the same shared ids
            log.append(_event(f"shared-{i // 5}"))


def _event(name: str) -> AuditEvent:
    return AuditEvent(
        run="run-mp", event_id=event_id("run-mp", name, "create", "succeeded"),
        credential=name, step="create", outcome="succeeded", actor="worker",
    )  # fmt: skip


def test_concurrent_processes_append_one_valid_chain(
    audit_path: Path, signing_key_file: Path
) -> None:
    audit_path.parent.mkdir(parents=True)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    processes = [
        ctx.Process(
            target=_append_from_process, args=(str(audit_path), str(signing_key_file), w, barrier)
        )
        for w in range(4)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]

    records = list(JsonlAuditLog(audit_path).records())
    assert [r.seq for r in records] == list(range(1, 211))  # 4 x 50 + 10 shared, once each
    assert len({r.event_id for r in records}) == 210
    result = verify(audit_path, load_public_key(signing_key_file))
    assert result.ok, result.problems
    assert result.checkpoints == 8  # seq 25, 50, ..., 200
    assert result.warnings == (
        "10 record(s) after seq 200 are not yet covered by a signed checkpoint",
    )


def test_checkpoints_every_n_records_and_on_demand(
    audit_path: Path, signing_key_file: Path, make_event
) -> None:
    key = load_signing_key(signing_key_file)
    log = JsonlAuditLog(audit_path, signing_key=key, checkpoint_every=3)
    records = [log.append(make_event("create", extra=[i])) for i in range(7)]
    log.append(make_event("create", extra=[6]))  # a retry writes no checkpoint
    stored = read_checkpoints(log.checkpoints_path)
    assert [(c.seq, c.hash) for c in stored] == [(3, records[2].hash), (6, records[5].hash)]
    assert all(signature_valid(c, key.public_key()) for c in stored)

    explicit = log.checkpoint()
    assert explicit is not None and (explicit.seq, explicit.hash) == (7, records[6].hash)
    assert log.checkpoint() == explicit  # the head is already signed: nothing new written
    assert len(read_checkpoints(log.checkpoints_path)) == 3


def test_no_signing_key_means_no_checkpoints(audit_path: Path, make_event) -> None:
    log = JsonlAuditLog(audit_path, checkpoint_every=1)
    log.append(make_event())
    assert log.checkpoint() is None
    assert not log.checkpoints_path.exists()


def test_checkpoint_of_an_empty_log_is_none(audit_path: Path, signing_key_file: Path) -> None:
    assert (
        JsonlAuditLog(audit_path, signing_key=load_signing_key(signing_key_file)).checkpoint()
        is None
    )


def test_checkpoint_every_must_be_positive(audit_path: Path) -> None:
    with pytest.raises(ValueError, match="checkpoint_every"):
        JsonlAuditLog(audit_path, checkpoint_every=0)


def test_open_log_reads_the_environment(
    tmp_path: Path, signing_key_file: Path, make_event, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env" / "audit.jsonl"
    monkeypatch.setenv("KEYTURN_AUDIT_LOG", str(path))
    monkeypatch.setenv("KEYTURN_AUDIT_SIGNING_KEY", str(signing_key_file))
    log = open_log(checkpoint_every=2)
    assert log.path == path
    log.append(make_event("create"))
    log.append(make_event("verify_new"))
    assert [c.seq for c in read_checkpoints(log.checkpoints_path)] == [2]


def test_open_log_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_log().path == Path(".keyturn/audit.jsonl")
