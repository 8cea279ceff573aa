"""Tamper detection: every changed byte, deleted, reordered or forged record, truncation."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from keyturn.audit import (
    AuditLogError,
    JsonlAuditLog,
    VerifyResult,
    load_public_key,
    load_signing_key,
    verify,
)
from keyturn.audit.jsonl import iter_lines
from keyturn.audit.record import make_record
from keyturn.audit.verify import verify_lines


@pytest.fixture
def signed_log(audit_path: Path, signing_key_file: Path, make_event) -> JsonlAuditLog:
    """Four records (one with non-ASCII details), checkpoints at seq 2 and 4."""
    log = JsonlAuditLog(
        audit_path, signing_key=load_signing_key(signing_key_file), checkpoint_every=2
    )
    log.append(
        make_event(
            "precheck", tier="tier1", provider="aws.iam_access_key", details={"strategy": "rotate"}
        )
    )
    log.append(make_event("create", details={"fingerprint": "sha256:1a2b", "note": "clé ✓ 𝄞"}))
    log.append(make_event("verify_new", details={}))
    log.append(make_event("gate", "approved", actor="alice", details={"gate": "revoke"}))
    return log


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_an_intact_log_verifies(signed_log: JsonlAuditLog, signing_key_file: Path) -> None:
    result = verify(signed_log.path, load_public_key(f"{signing_key_file}.pub"))
    assert result.ok and result.problems == () and result.warnings == ()
    assert (result.records, result.head_seq, result.checkpoints) == (4, 4, 2)
    assert result.to_dict()["first_bad_seq"] is None


def test_an_empty_log_verifies_with_a_warning(audit_path: Path) -> None:
    audit_path.parent.mkdir(parents=True)
    audit_path.write_bytes(b"")
    result = verify(audit_path)
    assert result.ok and result.records == 0
    assert "no signed checkpoints" in result.warnings[0]


def test_a_missing_log_without_checkpoints_is_an_error(audit_path: Path) -> None:
    with pytest.raises(AuditLogError, match="no audit log at"):
        verify(audit_path)


REPLACEMENTS = {  # xor 0x01 runs through real files in the test below
    "xor 0x20": lambda b: b ^ 0x20,
    "xor 0x80": lambda b: b ^ 0x80,
    "newline": lambda b: 0x0A,
    "space": lambda b: 0x20,
}


def _verify_bytes(log: bytes, checkpoints: bytes, key) -> VerifyResult:
    """The pure core on in-memory bytes, split exactly as ``verify`` splits files."""
    lines = ((line, terminated) for _, line, terminated in iter_lines(io.BytesIO(log)))
    return verify_lines(lines, checkpoints, key)


def test_changing_any_single_byte_of_the_log_file_names_its_record(
    signed_log: JsonlAuditLog, signing_key_file: Path
) -> None:
    path, key = signed_log.path, load_public_key(signing_key_file)
    original = path.read_bytes()
    owner = [seq for seq, line in enumerate(_lines(path), start=1) for _ in line]  # byte -> seq
    fd = os.open(path, os.O_RDWR)
    try:
        for position, byte in enumerate(original):
            os.pwrite(fd, bytes([byte ^ 0x01]), position)  # in place: no truncate, no flush
            first = verify(path, key).first_problem
            os.pwrite(fd, bytes([byte]), position)
            assert first is not None, f"byte {position} not detected"
            assert (first.seq, first.line) == (owner[position], owner[position]), (position, first)
    finally:
        os.close(fd)
    assert verify(path, key).ok


@pytest.mark.parametrize("name", REPLACEMENTS)
def test_changing_any_single_byte_names_its_record(
    signed_log: JsonlAuditLog, signing_key_file: Path, name: str
) -> None:
    original, key = signed_log.path.read_bytes(), load_public_key(signing_key_file)
    checkpoints = signed_log.checkpoints_path.read_bytes()
    assert _verify_bytes(original, checkpoints, key).ok
    owner = [seq for seq, line in enumerate(_lines(signed_log.path), start=1) for _ in line]
    assert len(owner) == len(original)
    replace = REPLACEMENTS[name]
    tested = 0
    for position, byte in enumerate(original):
        changed = replace(byte)
        if changed == byte:
            continue
        tampered = original[:position] + bytes([changed]) + original[position + 1 :]
        first = _verify_bytes(tampered, checkpoints, key).first_problem
        assert first is not None, f"byte {position} ({name}) not detected"
        assert (first.seq, first.line) == (owner[position], owner[position]), (position, first)
        tested += 1
    assert tested > len(original) * 0.9


def test_changing_any_single_byte_of_the_checkpoints_is_detected(
    signed_log: JsonlAuditLog, signing_key_file: Path
) -> None:
    log, key = signed_log.path.read_bytes(), load_public_key(signing_key_file)
    original = signed_log.checkpoints_path.read_bytes()
    for position, byte in enumerate(original):
        for changed in {byte ^ 0x01, byte ^ 0x20, 0x0A} - {byte}:
            tampered = original[:position] + bytes([changed]) + original[position + 1 :]
            result = _verify_bytes(log, tampered, key)
            assert not result.ok, f"checkpoint byte {position} -> {changed:#x} not detected"
            assert result.first_problem.source == "checkpoints"


def test_a_deleted_record_is_named(signed_log: JsonlAuditLog) -> None:
    lines = _lines(signed_log.path)
    signed_log.path.write_bytes(b"".join(lines[:1] + lines[2:]))
    first = verify(signed_log.path).first_problem
    assert (first.seq, first.line) == (2, 2)
    assert "holds seq 3, expected 2" in first.reason and "deleted" in first.reason


def test_reordered_records_are_named(signed_log: JsonlAuditLog) -> None:
    lines = _lines(signed_log.path)
    signed_log.path.write_bytes(b"".join([lines[0], lines[2], lines[1], lines[3]]))
    first = verify(signed_log.path).first_problem
    assert first.seq == 2 and "reordered" in first.reason


def test_a_duplicated_record_is_named(signed_log: JsonlAuditLog) -> None:
    lines = _lines(signed_log.path)
    signed_log.path.write_bytes(b"".join(lines[:3] + [lines[2]] + lines[3:]))
    assert verify(signed_log.path).first_problem.seq == 4


def test_truncation_after_a_checkpoint_is_detected(
    signed_log: JsonlAuditLog, signing_key_file: Path
) -> None:
    lines = _lines(signed_log.path)
    signed_log.path.write_bytes(b"".join(lines[:3]))  # the checkpoint covers seq 4
    result = verify(signed_log.path, load_public_key(signing_key_file))
    first = result.first_problem
    assert not result.ok and first.seq == 4
    assert "log ends at seq 3" in first.reason and "truncation" in first.reason


def test_deleting_the_whole_log_is_truncation_when_checkpoints_exist(
    signed_log: JsonlAuditLog,
) -> None:
    signed_log.path.unlink()
    first = verify(signed_log.path).first_problem
    assert first.seq == 1 and "truncation" in first.reason


def test_truncation_past_the_last_checkpoint_is_only_visible_as_a_warning(
    signed_log: JsonlAuditLog, make_event
) -> None:
    signed_log.append(make_event("promote"))  # seq 5, not yet checkpointed
    result = verify(signed_log.path)
    assert result.ok and any("1 record(s) after seq 4" in w for w in result.warnings)


def test_a_cut_off_last_line_is_named(signed_log: JsonlAuditLog) -> None:
    signed_log.path.write_bytes(signed_log.path.read_bytes()[:-10])
    first = verify(signed_log.path).first_problem
    assert first.seq == 4 and "incomplete last line" in first.reason


def test_a_rewritten_chain_is_caught_by_the_checkpoint(
    signed_log: JsonlAuditLog, make_event
) -> None:
    records = list(signed_log.records())
    forged = [records[0]]  # rewrite from seq 2 on, recomputing every hash
    for record in records[1:]:
        event = make_event(
            record.step, record.outcome, actor=record.actor, details={"forged": True}
        )
        forged.append(make_record(event, seq=record.seq, prev=forged[-1].hash, ts=record.ts))
    signed_log.path.write_bytes(b"".join(r.line() for r in forged))
    first = verify(signed_log.path).first_problem
    assert first.seq == 2 and "checkpoint" in first.reason and "rewritten" in first.reason


def test_a_forged_chain_without_checkpoints_only_warns(audit_path: Path, chain, make_event) -> None:
    audit_path.parent.mkdir(parents=True)
    audit_path.write_bytes(b"".join(r.line() for r in chain([make_event("create")])))
    result = verify(audit_path)
    assert result.ok and "cut-off tail cannot be detected" in result.warnings[0]


def test_a_repeated_event_id_is_named(audit_path: Path, chain, make_event) -> None:
    audit_path.parent.mkdir(parents=True)
    events = [make_event("create"), make_event("verify_new"), make_event("create")]
    audit_path.write_bytes(b"".join(r.line() for r in chain(events)))
    first = verify(audit_path).first_problem
    assert first.seq == 3 and "already used by seq 1" in first.reason


def test_a_chain_that_does_not_start_at_genesis_is_named(
    audit_path: Path, chain, make_event
) -> None:
    records = chain([make_event("create"), make_event("verify_new")])
    audit_path.parent.mkdir(parents=True)
    rebased = make_record(make_event("verify_new"), seq=1, prev=records[0].hash, ts=records[1].ts)
    audit_path.write_bytes(rebased.line())
    first = verify(audit_path).first_problem
    assert first.seq == 1 and "genesis" in first.reason


def test_a_bad_checkpoint_signature_is_named(
    signed_log: JsonlAuditLog, signing_key_file: Path
) -> None:
    path = signed_log.checkpoints_path
    first_line, second_line = path.read_bytes().splitlines(keepends=True)
    at = second_line.index(b'"signature":"') + len(b'"signature":"')
    flipped = b"0" if second_line[at : at + 1] != b"0" else b"1"
    path.write_bytes(first_line + second_line[:at] + flipped + second_line[at + 1 :])
    result = verify(signed_log.path, load_public_key(signing_key_file))
    first = result.first_problem
    assert (first.seq, first.line, first.source) == (4, 2, "checkpoints")
    assert "invalid signature" in first.reason


def test_checkpoints_by_another_key_are_named(signed_log: JsonlAuditLog, tmp_path: Path) -> None:
    from keyturn.audit import generate_signing_key

    generate_signing_key(tmp_path / "other.pem")
    result = verify(signed_log.path, tmp_path / "other.pem.pub")
    assert [p.seq for p in result.problems] == [2, 4]
    assert "not " in result.first_problem.reason and "signed by key" in result.first_problem.reason


def test_without_a_public_key_signatures_are_skipped_with_a_warning(
    signed_log: JsonlAuditLog,
) -> None:
    result = verify(signed_log.path)
    assert result.ok and any("signatures not checked" in w for w in result.warnings)


def test_the_public_key_comes_from_the_environment(
    signed_log: JsonlAuditLog, signing_key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_AUDIT_PUBLIC_KEY", f"{signing_key_file}.pub")
    assert verify(signed_log.path).warnings == ()
    monkeypatch.delenv("KEYTURN_AUDIT_PUBLIC_KEY")
    monkeypatch.setenv("KEYTURN_AUDIT_SIGNING_KEY", str(signing_key_file))
    assert verify(signed_log.path).warnings == ()


def test_result_to_dict_names_the_first_problem(signed_log: JsonlAuditLog) -> None:
    lines = _lines(signed_log.path)
    signed_log.path.write_bytes(
        b"".join(lines[:2] + [lines[2].replace(b"verify_new", b"verify_NEW")] + lines[3:])
    )
    data = verify(signed_log.path).to_dict()
    assert data["ok"] is False
    assert (data["first_bad_seq"], data["first_bad_line"]) == (3, 3)
    assert "altered" in data["reason"]
    assert data["head"]["seq"] == 2
