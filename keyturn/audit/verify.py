"""Check an audit log end to end and name the first record that is not what was written.

Checks, in order, for line n of the log (which must hold seq n): the line ends
with a newline, parses, has exactly the record fields and is in canonical form;
seq is n; prev is the hash of seq n-1 (64 zeros for seq 1); the hash recomputes;
the event_id is new; a ``repair`` record follows the seq it names (each repair is
reported as a warning: a repaired log verifies). The scan stops at the first bad record, because after it
positions are no longer trustworthy. Checkpoints are checked independently:
each line parses, is signed by the given public key with a valid signature, and
its (seq, hash) equals the record at that seq; a log shorter than its latest
checkpoint has been truncated.

A problem names ``seq``, the record the line at fault should hold, which is the
record whose bytes changed; for a deleted or reordered record it is the first
seq out of place. ``verify_lines`` is the pure core; ``verify`` reads files and
``PostgresAuditLog.verify`` (keyturn.audit.postgres) reads the database's rows.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keyturn.audit.chain_scan import scan_chain
from keyturn.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    checkpoints_path,
    key_id,
    parse_checkpoint,
    resolve_public_key,
    signature_valid,
)
from keyturn.audit.jsonl import AuditLogMissing, iter_lines
from keyturn.audit.record import (
    GENESIS_PREV,
    REPAIR_RUN,
    AuditFormatError,
    AuditRecord,
    parse_record,
)


@dataclass(frozen=True)
class Problem:
    reason: str
    seq: int | None = None  # the record at fault
    line: int | None = None  # line number in `source`
    source: str = "log"  # "log" or "checkpoints"


@dataclass(frozen=True)
class VerifyResult:
    path: str
    records: int  # lines in the log
    head_seq: int  # the last record that verified
    head_hash: str
    checkpoints: int
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.seq or 0, default=None)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_problem
        return {
            "path": self.path,
            "ok": self.ok,
            "records": self.records,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "checkpoints": self.checkpoints,
            "first_bad_seq": first.seq if first else None,
            "first_bad_line": first.line if first else None,
            "reason": first.reason if first else None,
            "problems": [vars(p) for p in self.problems],
            "warnings": list(self.warnings),
        }


class _Broken(Exception):
    pass


def _check_record(
    line: bytes, terminated: bool, expected: int, prev: str, seen: dict[str, int]
) -> AuditRecord:
    if not terminated:
        raise _Broken(
            "incomplete last line: no newline (torn write, or bytes cut off); if it is the "
            "last line, `keyturn audit repair` cuts it back and records a repair"
        )
    try:
        record = parse_record(line)
    except AuditFormatError as exc:
        raise _Broken(str(exc)) from exc
    if record.seq != expected:
        raise _Broken(
            f"line {expected} holds seq {record.seq}, expected {expected}: "
            "a record was deleted, inserted or reordered"
        )
    if record.prev != prev:
        linked = "the genesis value" if expected == 1 else f"the hash of seq {expected - 1}"
        raise _Broken(f"prev is not {linked}")
    if not record.hash_ok():
        raise _Broken("hash does not match the record's content: the record was altered")
    if record.event_id in seen:
        raise _Broken(f"event_id {record.event_id} was already used by seq {seen[record.event_id]}")
    return record


def _parse_checkpoints(
    data: bytes, public_key: Ed25519PublicKey | None, problems: list[Problem]
) -> list[tuple[int, Checkpoint]]:
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the empty string after the final newline
    expected_key = key_id(public_key) if public_key else None
    parsed = []
    for number, line in enumerate(lines, start=1):
        try:
            checkpoint = parse_checkpoint(line)
        except CheckpointError as exc:
            problems.append(Problem(f"checkpoint unreadable: {exc}", None, number, "checkpoints"))
            continue
        parsed.append((number, checkpoint))
        where = f"checkpoint for seq {checkpoint.seq}"
        if public_key is None:
            continue
        if checkpoint.key_id != expected_key:
            reason = f"{where} is signed by key {checkpoint.key_id}, not {expected_key}"
        elif not signature_valid(checkpoint, public_key):
            reason = f"{where} has an invalid signature"
        else:
            continue
        problems.append(Problem(reason, checkpoint.seq, number, "checkpoints"))
    return parsed


def describe_repair(record: AuditRecord) -> str:
    """A repair record in words: what was cut, its digest, after which seq, by whom."""
    d = record.details
    return (f"{d.get('cut_bytes')} torn bytes cut after seq {d.get('after_seq')} "
            f"(sha256 {str(d.get('cut_sha256'))[:16]}…) by {record.actor} ({d.get('by')})")


def _repair_note(record: AuditRecord) -> str | None:
    """Why a repair record is malformed, or None: it follows the seq it names, has no
    credential and says what it cut."""
    d = record.details
    if record.run != REPAIR_RUN or record.credential is not None:
        return f"repair record with run {record.run!r} and credential {record.credential!r}"
    if d.get("after_seq") != record.seq - 1:
        return f"repair record says it follows seq {d.get('after_seq')}, not {record.seq - 1}"
    if type(d.get("cut_bytes")) is not int or not isinstance(d.get("cut_sha256"), str):
        return "repair record without cut_bytes and cut_sha256"
    return None


LineSource = Callable[[], Iterable[tuple[bytes, bool]]]


def _check_chain(
    log_lines: Iterable[tuple[bytes, bool]],
    by_seq: dict[int, list[tuple[int, Checkpoint]]],
    problems: list[Problem],
) -> tuple[int, int, str, list[str]]:
    """The full checks, record by record: (lines, head seq, head hash, repairs described),
    problems added."""
    count, head_seq, head_hash, broken = 0, 0, GENESIS_PREV, False
    seen: dict[str, int] = {}
    repairs: list[str] = []
    for count, (line, terminated) in enumerate(log_lines, start=1):
        if broken:
            continue  # keep counting lines for the truncation check
        try:
            record = _check_record(line, terminated, count, head_hash, seen)
        except _Broken as exc:
            problems.append(Problem(str(exc), count, count))
            broken = True
            continue
        seen[record.event_id] = record.seq
        head_seq, head_hash = record.seq, record.hash
        if record.step == "repair":
            if (repair := _repair_note(record)) is None:
                repairs.append(f"seq {record.seq}: {describe_repair(record)}")
            else:
                problems.append(Problem(repair, record.seq, record.seq))
                broken = True
                continue
        for number, checkpoint in by_seq.get(record.seq, ()):
            if checkpoint.hash != record.hash and not broken:
                problems.append(Problem(
                    f"hash differs from the checkpoint signed {checkpoint.ts} (checkpoints line "
                    f"{number}): the log was rewritten at or before seq {record.seq}",
                    record.seq, record.seq,
                ))  # fmt: skip
                broken = True
    return count, head_seq, head_hash, repairs


def verify_lines(
    log_lines: Iterable[tuple[bytes, bool]] | LineSource,
    checkpoint_data: bytes,
    public_key: Ed25519PublicKey | None = None,
    *,
    path: str = "<memory>",
) -> VerifyResult:
    """Verify (line, terminated) pairs of a log against the checkpoints file's bytes.

    ``log_lines`` is best a function returning a fresh iterable of the lines: the fast
    scan (keyturn.audit.chain_scan) reads them once, and only a log it is not sure of is
    read a second time, through the full checks that name the problem."""
    if callable(log_lines):
        source = log_lines
    else:
        kept = log_lines if isinstance(log_lines, Sequence) else list(log_lines)

        def source() -> Iterable[tuple[bytes, bool]]:
            return kept

    problems: list[Problem] = []
    checkpoints = _parse_checkpoints(checkpoint_data, public_key, problems)
    by_seq: dict[int, list[tuple[int, Checkpoint]]] = defaultdict(list)
    for number, checkpoint in checkpoints:
        by_seq[checkpoint.seq].append((number, checkpoint))

    signed = {seq: [c.hash.encode() for _, c in found] for seq, found in by_seq.items()}
    refused = {p.line for p in problems}  # only checkpoints have been read so far
    signed_upto = (
        max((c.seq for number, c in checkpoints if number not in refused), default=0)
        if public_key is not None
        else 0
    )
    first = source()
    try:
        scanned = scan_chain(first, GENESIS_PREV, signed, signed_upto)
    finally:  # a generator over a database cursor must close before the second read
        if isinstance(first, Generator):
            first.close()
    repairs: list[str] = []
    if scanned is not None:
        count, head_hash = scanned
        head_seq = count
    else:
        count, head_seq, head_hash, repairs = _check_chain(source(), by_seq, problems)

    warnings = [f"repaired: {note}" for note in repairs]
    latest = max((c for _, c in checkpoints), key=lambda c: c.seq, default=None)
    if latest is None:
        warnings.append(
            "no signed checkpoints: a cut-off tail cannot be detected "
            "(set KEYTURN_AUDIT_SIGNING_KEY for the writers)"
        )
    elif count < latest.seq:
        problems.append(Problem(
            f"log ends at seq {count} but a checkpoint signed {latest.ts} covers seq "
            f"{latest.seq}: records {count + 1}..{latest.seq} were removed (truncation)",
            count + 1, count + 1,
        ))  # fmt: skip
    elif count > latest.seq and not problems:
        warnings.append(
            f"{count - latest.seq} record(s) after seq {latest.seq} are not yet covered "
            "by a signed checkpoint"
        )
    if checkpoints and public_key is None:
        warnings.append(
            "checkpoint signatures not checked: no public key "
            "(pass --public-key or set KEYTURN_AUDIT_PUBLIC_KEY)"
        )
    return VerifyResult(
        path, count, head_seq, head_hash, len(checkpoints), tuple(problems), tuple(warnings)
    )


def verify(
    path: str | os.PathLike[str],
    public_key: Ed25519PublicKey | str | os.PathLike[str] | None = None,
) -> VerifyResult:
    """Verify the log at ``path`` and its checkpoints. Without ``public_key``, the key
    comes from KEYTURN_AUDIT_PUBLIC_KEY or KEYTURN_AUDIT_SIGNING_KEY, if set."""
    path = Path(path)
    key = resolve_public_key(public_key)
    # Checkpoints first: every checkpoint read then refers to a record already written.
    try:
        checkpoint_data = checkpoints_path(path).read_bytes()
    except FileNotFoundError:
        checkpoint_data = b""
    if not path.exists():
        if not checkpoint_data:
            raise AuditLogMissing(f"no audit log at {path}")
        return verify_lines([], checkpoint_data, key, path=str(path))
    with open(path, "rb") as f:
        end = os.fstat(f.fileno()).st_size

        def lines() -> Iterator[tuple[bytes, bool]]:
            return ((line, terminated) for _, line, terminated in iter_lines(f, 0, end))

        return verify_lines(lines, checkpoint_data, key, path=str(path))
