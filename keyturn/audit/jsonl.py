"""The local JSONL audit log: locked, fsync'd, idempotent appends from many processes.

Every append holds an exclusive lock (``<log>.lock``) while it reads the new
tail, decides seq and prev, writes one line and fsyncs it, so any number of
workers on one machine can share a file. Appends are idempotent by
``event_id``: a retried activity gets the record it already wrote.

To keep appends cheap on long logs, each ``JsonlAuditLog`` remembers the
event ids and the tail it has read, up to a byte offset. The log only grows, so
under the lock it reads just the bytes written since (by any process). The
memory is dropped and the file re-read whenever the file is not the one it
read (other inode, shorter than the offset, or a different last line there).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from filelock import FileLock, Timeout

from keyturn.audit.checkpoint import (
    Checkpoint,
    append_checkpoint,
    check_checkpoint_every,
    checkpoint_due,
    checkpoints_path,
    read_checkpoints,
    sign_checkpoint,
)
from keyturn.audit.record import (
    GENESIS_PREV,
    REPAIR_RUN,
    AuditError,
    AuditEvent,
    AuditFormatError,
    AuditRecord,
    event_id,
    format_ts,
    make_record,
    parse_record,
)
from keyturn.drill import KILL_AT_ENV, kill_point

_log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class AuditLogError(AuditError):
    """The log (its file or its database) cannot be appended to or read."""


class AuditLogMissing(AuditLogError):
    """Nothing has been written where the log was looked for: no file, no tables."""


class AuditLogUnavailable(AuditLogError):
    """The log cannot take an append now (full disk, read-only, torn or unreadable tail,
    database down); nothing was written. Rotations wait and try again."""


def iter_lines(
    f: BinaryIO, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (offset, line without newline, terminated) for the bytes [start, end)."""
    f.seek(start)
    remaining = end - start if end is not None else None
    offset, pending = start, b""
    while chunk := f.read(_CHUNK if remaining is None else min(_CHUNK, remaining)):
        if remaining is not None:
            remaining -= len(chunk)
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            yield offset, line, True
            offset += len(line) + 1
    if pending:
        yield offset, pending, False


@dataclass
class _Index:
    """What this process has read of the file: bytes [0, offset)."""

    ident: tuple[int, int]
    offset: int = 0
    lines: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_PREV
    last_line: bytes = b""
    ids: dict[str, tuple[int, int]] = field(default_factory=dict)  # event_id -> (offset, length)

    def add(self, offset: int, line: bytes, seq: int, hash_: str, event_id: str) -> None:
        self.ids.setdefault(event_id, (offset, len(line)))
        self.offset, self.lines = offset + len(line) + 1, self.lines + 1
        self.last_seq, self.last_hash, self.last_line = seq, hash_, line + b"\n"


def _tail_fields(line: bytes) -> tuple[int, str, str]:
    data = json.loads(line)
    seq, hash_, event_id = data["seq"], data["hash"], data["event_id"]
    if type(seq) is not int or not isinstance(hash_, str) or not isinstance(event_id, str):
        raise TypeError("seq, hash or event_id has the wrong type")
    return seq, hash_, event_id


class JsonlAuditLog:
    """An append-only, hash-chained audit log in one JSONL file.

    ``append`` blocks (lock, fsync): call it from a sync activity or through
    ``asyncio.to_thread``. One instance is safe to share between threads."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_every: int | None = 100,
        lock_timeout: float = 60.0,
    ) -> None:
        check_checkpoint_every(checkpoint_every)
        self.path = Path(path)
        self.checkpoints_path = checkpoints_path(self.path)
        self._signing_key = signing_key
        self._checkpoint_every = checkpoint_every
        self._lock = FileLock(f"{self.path}.lock", thread_local=False)
        self._lock_timeout = lock_timeout
        self._mutex = threading.Lock()
        self._index: _Index | None = None
        self._repairer: tuple[str, str] | None = None
        self._last_repair: AuditRecord | None = None

    @property
    def where(self) -> str:
        """How messages name this log: its file."""
        return str(self.path)

    def exists(self) -> bool:
        """Whether the log has been written to at all."""
        return self.path.exists()

    def append(self, event: AuditEvent) -> AuditRecord:
        """Chain and durably write ``event``, or return the record already holding its id.

        A torn last line (a writer killed mid-append) is cut back first, with a
        ``repair`` record. A write that fails (full disk, read-only file) is cut back
        too and raises ``AuditLogUnavailable``: the chain is never extended past a
        partial line, and nothing is acknowledged that is not on disk."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditLogUnavailable(f"cannot create {self.path.parent}: {exc}") from exc
        with self._locked():
            created = not self.path.exists()
            try:
                f = open(self.path, "ab+")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise AuditLogUnavailable(f"cannot open {self.path} to append: {exc}") from exc
            with f:
                index = self._sync(f, repair=True)
                if (known := index.ids.get(event.event_id)) is not None:
                    return self._read_at(f, *known)
                now = format_ts(datetime.now(UTC))
                record = make_record(event, seq=index.last_seq + 1, prev=index.last_hash, ts=now)
                line = record.line()
                self._write_line(f, index.offset, line, torn_drill=True)
            if created:
                _fsync_dir(self.path.parent)
            index.add(index.offset, line[:-1], record.seq, record.hash, record.event_id)
            key = self._signing_key
            if key is not None and checkpoint_due(self._checkpoint_every, record.seq):
                self._write_checkpoint(key, record.seq, record.hash)
        return record

    def repair(self, actor: str, by: str = "keyturn audit repair") -> AuditRecord | None:
        """Cut back a torn last line with a ``repair`` record; None if there was none.

        Only an unterminated last line is repaired: a writer holding the lock never
        leaves one, so it is an append that was never acknowledged. Any other damage
        (an altered or unreadable complete line) is refused: `keyturn audit verify`
        names it."""
        with self._locked():
            if not self.path.exists():
                return None
            try:
                f = open(self.path, "ab+")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise AuditLogUnavailable(f"cannot open {self.path} to repair: {exc}") from exc
            with f:
                self._repairer, self._last_repair = (actor, by), None
                try:
                    self._sync(f, repair=True)
                    return self._last_repair
                finally:
                    self._repairer = self._last_repair = None

    def _write_line(self, f: BinaryIO, offset: int, line: bytes, *, torn_drill: bool) -> None:
        """Write one whole line at the end (``offset``) and fsync it, or cut back to
        ``offset`` and raise: a failed write never leaves a partial line behind."""
        fd = f.fileno()
        try:
            if torn_drill and os.environ.get(KILL_AT_ENV, "").startswith("audit.mid_append"):
                half = len(line) // 2
                _write_all(fd, line[:half])
                os.fsync(fd)
                kill_point("audit.mid_append")
                _write_all(fd, line[half:])
            else:
                _write_all(fd, line)
            os.fsync(fd)
        except OSError as exc:
            self._cut(fd, offset, f"cannot append to {self.path} ({exc}), and the partial line")
            raise AuditLogUnavailable(f"cannot append to {self.path}: {exc}") from exc

    def _cut(self, fd: int, offset: int, what: str) -> None:
        """Cut the file back to ``offset``, or raise naming ``what`` could not be cut."""
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        except OSError as exc:
            raise AuditLogUnavailable(
                f"{what} could not be cut back ({exc}): run `keyturn audit repair --log "
                f"{self.path}` as a user who can write it"
            ) from exc

    def records(self) -> Iterator[AuditRecord]:
        """Every record in file order, up to the size the file had when reading began."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            end = os.fstat(f.fileno()).st_size
            for number, (_, line, terminated) in enumerate(iter_lines(f, 0, end), start=1):
                if not terminated:
                    raise AuditLogError(
                        f"{self.path} line {number}: incomplete last line (torn write?); "
                        f"`keyturn audit repair --log {self.path}` cuts it back"
                    )
                try:
                    yield parse_record(line)
                except AuditFormatError as exc:
                    raise AuditLogError(
                        f"{self.path} line {number}: {exc}; run `keyturn audit verify`"
                    ) from exc

    def records_for_run(self, run: str) -> Iterator[AuditRecord]:
        """The records of ``run`` in file order: a file has no index, so this reads (and
        parses) every record and keeps that run's."""
        return (record for record in self.records() if record.run == run)

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now. None when no signing key is set or the log is empty."""
        key = self._signing_key
        if key is None or not self.path.exists():
            return None
        with self._locked(), open(self.path, "rb") as f:
            index = self._sync(f)
            if index.last_seq == 0:
                return None
            head = (index.last_seq, index.last_hash)
            existing = read_checkpoints(self.checkpoints_path)
            if existing and (existing[-1].seq, existing[-1].hash) == head:
                return existing[-1]
            return self._write_checkpoint(key, index.last_seq, index.last_hash)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            try:
                self._lock.acquire(timeout=self._lock_timeout, poll_interval=0.005)
            except Timeout as exc:
                raise AuditLogError(
                    f"could not lock {self._lock.lock_file} within {self._lock_timeout:g} s; "
                    "is another keyturn process stuck?"
                ) from exc
            try:
                yield
            finally:
                self._lock.release()

    def _sync(self, f: BinaryIO, *, repair: bool = False) -> _Index:
        """Bring the index up to the end of the file; the caller holds the lock. With
        ``repair`` (appends; ``f`` open for appending), a torn last line is cut back."""
        st = os.fstat(f.fileno())
        index = self._index
        if index is None or index.ident != (st.st_dev, st.st_ino) or st.st_size < index.offset:
            index = _Index(ident=(st.st_dev, st.st_ino))
        elif index.last_line:
            f.seek(index.offset - len(index.last_line))
            if f.read(len(index.last_line)) != index.last_line:
                index = _Index(ident=(st.st_dev, st.st_ino))
        self._index = index
        for offset, line, terminated in iter_lines(f, index.offset, st.st_size):
            number = index.lines + 1
            if not terminated:
                if repair:
                    self._repair_torn(f, index, offset, line)
                    break
                raise AuditLogError(
                    f"{self.path} line {number}: incomplete last line (torn write?); "
                    f"run `keyturn audit repair --log {self.path}`"
                )
            try:
                seq, hash_, event_id = _tail_fields(line)
            except (ValueError, KeyError, TypeError) as exc:
                raise AuditLogUnavailable(
                    f"{self.path} line {number}: unreadable record ({exc}); refusing to append "
                    "after it: run `keyturn audit verify`"
                ) from exc
            index.add(offset, line, seq, hash_, event_id)
        return index

    def _repair_torn(self, f: BinaryIO, index: _Index, offset: int, torn: bytes) -> None:
        """Cut the unterminated last line at ``offset`` and append a ``repair`` record
        saying what was cut (length, SHA-256 of the bytes), after which seq, and who."""
        actor, by = self._repairer or (_whoami(), "writer")
        details = {
            "reason": "incomplete last line (a writer was stopped mid-append); never "
                      "acknowledged, so cut back",
            "cut_bytes": len(torn),
            "cut_sha256": hashlib.sha256(torn).hexdigest(),
            "at_offset": offset,
            "after_seq": index.last_seq,
            "by": by,
        }
        event = AuditEvent(
            run=REPAIR_RUN,
            event_id=event_id(REPAIR_RUN, None, "repair", offset, details["cut_sha256"],
                              index.last_hash),
            step="repair", outcome="succeeded", actor=actor, details=details,
        )
        record = make_record(event, seq=index.last_seq + 1, prev=index.last_hash,
                             ts=format_ts(datetime.now(UTC)))
        fd = f.fileno()
        self._cut(fd, offset, f"{self.path} line {index.lines + 1}: incomplete last line "
                              "(torn write) that")
        _log.warning("audit log %s: cut %d torn bytes at offset %d (sha256 %s) after seq %d",
                     self.path, len(torn), offset, details["cut_sha256"], index.last_seq)
        self._write_line(f, offset, record.line(), torn_drill=False)
        index.add(offset, record.line()[:-1], record.seq, record.hash, record.event_id)
        self._last_repair = record
        key = self._signing_key
        if key is not None and checkpoint_due(self._checkpoint_every, record.seq):
            self._write_checkpoint(key, record.seq, record.hash)  # a repair is a record too

    def _read_at(self, f: BinaryIO, offset: int, length: int) -> AuditRecord:
        f.seek(offset)
        try:
            return parse_record(f.read(length))
        except AuditFormatError as exc:
            raise AuditLogError(f"{self.path} at byte {offset}: {exc}") from exc

    def _write_checkpoint(self, key: Ed25519PrivateKey, seq: int, hash_: str) -> Checkpoint:
        checkpoint = sign_checkpoint(key, seq=seq, hash=hash_)
        append_checkpoint(self.checkpoints_path, checkpoint)
        return checkpoint


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _whoami() -> str:
    """Who a writer's automatic repair names: user@host, process id."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
