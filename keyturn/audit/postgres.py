"""The PostgreSQL audit log: one hash-chained log that every worker, on any machine,
appends to; insert-only, enforced by the database.

Records, chain, idempotency and checkpoints are those of the JSONL file
(``keyturn.audit.jsonl``). A row of ``keyturn_audit_records`` holds a record's exact
bytes (the JSONL line without its newline) plus its ``seq``, ``event_id`` and ``run``
for the indexes; a row of ``keyturn_audit_checkpoints`` holds one signed checkpoint.
The SQL is in ``keyturn.audit.postgres_sql``.

Per-run reads (``records_for_run``) use the ``(run, seq)`` index instead of reading
the whole log. The ``run`` column is copied from the record on insert and is not
covered by the hash chain: a row whose column disagrees with its record is refused
when read, but one whose column was changed to another run is not found by that
run's read. ``verify`` and ``records()`` read every record whatever its column says.

Appends. One transaction per append takes ``pg_advisory_xact_lock`` on a key of the
records table, looks the event id up, reads the head, inserts the record (and every
``checkpoint_every`` records its checkpoint) and commits: concurrent writers make one
chain, no gaps, no forks, with the primary key and the unique event id as backstops.
An advisory lock needs no table privilege (``LOCK TABLE`` in a self-exclusive mode
would need UPDATE or DELETE, which the worker must not have).

Insert-only. Triggers on both tables (BEFORE UPDATE OR DELETE per row, BEFORE
TRUNCATE per statement) raise SQLSTATE 42501. An owner or a superuser can switch
them off, so the tables should belong to a role of their own (``keyturn audit
init``) and the workers' role get only INSERT, SELECT; whatever is rewritten anyway,
``verify`` finds in the chain, and a cut-off tail by a signed checkpoint.

The first append creates missing tables (under an advisory lock, so workers starting
together do not race); a writer checks, when it first writes, that every trigger is
there and enabled, and refuses to append otherwise; readers never create anything. Errors are ``AuditLogError`` naming the
database by its DSN without the password, and what to fix.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from keyturn.audit import postgres_sql as q
from keyturn.audit.checkpoint import (
    Checkpoint,
    check_checkpoint_every,
    checkpoint_due,
    parse_checkpoint,
    resolve_public_key,
    sign_checkpoint,
)
from keyturn.audit.jsonl import AuditLogError, AuditLogMissing
from keyturn.audit.record import (
    GENESIS_PREV,
    AuditEvent,
    AuditFormatError,
    AuditRecord,
    format_ts,
    make_record,
    parse_record,
)
from keyturn.audit.verify import Problem, VerifyResult, verify_lines
from keyturn.secret import redact

SECRET_PARAMS = frozenset({"password", "sslpassword"})
PAGE = 1000  # rows per round trip when streaming
T = TypeVar("T")

CONNECT_HINT = (
    "check the DSN (--dsn or KEYTURN_AUDIT_DSN: host, port, dbname, user, password) "
    "and that the server accepts this role's connections"
)
GRANT_HINT = (
    f"grant the role INSERT, SELECT on {q.RECORDS} and {q.CHECKPOINTS}; to create them, "
    "run `keyturn audit init` once as the role that should own them"
)
# What to fix, by SQLSTATE (exact, else its class); a failure without one is a
# connection that could not be made or was lost.
HINTS = {
    "42501": GRANT_HINT,  # insufficient_privilege
    "42P01": f"the tables are gone: run `keyturn audit init` as their owner ({GRANT_HINT})",
    "25006": "the server is read-only (a standby?): point the DSN at the primary",
    "08": CONNECT_HINT,
    "28": CONNECT_HINT,
    "3D": CONNECT_HINT,
    "53": "the server is out of connections or resources: retry, or raise its limits",
    "57": "the server is shutting down or restarting: retry",
}


def parse_dsn(dsn: str) -> dict[str, Any]:
    """libpq's parameters of ``dsn``; AuditLogError (never quoting ``dsn``) if it is invalid."""
    try:
        return conninfo_to_dict(dsn)
    except psycopg.Error:
        # The parser's message may quote the DSN, password and all.
        raise AuditLogError(
            "the audit DSN (--dsn or KEYTURN_AUDIT_DSN) is not a valid libpq connection "
            "string: use postgresql://user@host:port/dbname or host=... dbname=... user=..."
        ) from None


def describe(params: dict[str, Any]) -> str:
    """Connection parameters as messages may show them: key=value, without the password."""
    first = {k: params[k] for k in ("host", "hostaddr", "port", "dbname", "user") if k in params}
    shown = first | {k: v for k, v in params.items() if k not in SECRET_PARAMS}
    return "postgresql " + (make_conninfo("", **shown) or "(libpq defaults)")


class PostgresAuditLog:
    """An append-only, hash-chained audit log in PostgreSQL, shared by many processes.

    ``append`` blocks (one transaction): call it from a sync activity or through
    ``asyncio.to_thread``. One instance is safe to share between threads; it
    keeps one connection for writing, and each read opens its own."""

    def __init__(
        self,
        dsn: str,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        checkpoint_every: int | None = 100,
        connect_timeout: int = 10,
    ) -> None:
        check_checkpoint_every(checkpoint_every)
        self._params = parse_dsn(dsn)
        self.where = describe(self._params)
        self._signing_key = signing_key
        self._checkpoint_every = checkpoint_every
        self._connect_timeout = connect_timeout
        self._mutex = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._schema_ok = False

    def append(self, event: AuditEvent) -> AuditRecord:
        """Chain and commit ``event``, or return the record already holding its id."""
        return self._writing(lambda conn: self._append(conn, event), "append")

    def records(self) -> Iterator[AuditRecord]:
        """Every record in seq order, streamed; nothing when the tables do not exist yet."""
        with self._reading() as conn:
            if not _fetch_value(conn, q.TABLES_EXIST):
                return
            for seq, line in _stream(conn, q.ALL_RECORDS):
                yield self._parse(seq, line)

    def records_for_run(self, run: str) -> Iterator[AuditRecord]:
        """The records of ``run`` in seq order, streamed through the ``(run, seq)`` index;
        nothing when the tables do not exist yet."""
        with self._reading() as conn:
            if not _fetch_value(conn, q.TABLES_EXIST):
                return
            for seq, line in _stream(conn, q.RUN_RECORDS, (run,)):
                record = self._parse(seq, line)
                if record.run != run:
                    raise AuditLogError(
                        f"{self.where} seq {seq}: the row's run column says {run!r} but its "
                        f"record is of run {record.run!r}: {q.RECORDS} was changed outside "
                        "keyturn; run `keyturn audit verify`"
                    )
                yield record

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now. None when no signing key is set or the log is empty."""
        key = self._signing_key
        if key is None:
            return None
        return self._writing(lambda conn: self._checkpoint_head(conn, key), "checkpoint")

    def verify(
        self, public_key: Ed25519PublicKey | str | os.PathLike[str] | None = None
    ) -> VerifyResult:
        """``keyturn.audit.verify`` over the stored lines and checkpoints: the first bad
        record is named exactly as in a file. Without ``public_key``, the key comes from
        KEYTURN_AUDIT_PUBLIC_KEY or KEYTURN_AUDIT_SIGNING_KEY, if set."""
        key = resolve_public_key(public_key)
        with self._reading() as conn:
            if not _fetch_value(conn, q.TABLES_EXIST):
                raise AuditLogMissing(f"no audit log in {self.where}: its tables do not exist")
            # Checkpoints first: every checkpoint read then refers to a record already written.
            checkpoints = b"".join(
                bytes(line) + b"\n" for _, line in _stream(conn, q.ALL_CHECKPOINTS)
            )

            def lines() -> Iterator[tuple[bytes, bool]]:
                return ((bytes(line), True) for _, line in _stream(conn, q.ALL_RECORDS))

            result = verify_lines(lines, checkpoints, key, path=self.where)
            if not result.ok:
                return result
            # The chain covers the records, not the run column the per-run reads use.
            misfiled = tuple(
                Problem(f"the row's run column says {run!r}, not its record's run", seq=seq)
                for seq, run in _stream(conn, q.MISFILED)
            )
            return dataclasses.replace(result, problems=misfiled)

    def exists(self) -> bool:
        """Whether the tables exist (the log has been written to, or initialised)."""
        with self._reading() as conn:
            return bool(_fetch_value(conn, q.TABLES_EXIST))

    def create_schema(self) -> None:
        """Create the tables and their insert-only triggers, or re-create (and so re-enable)
        the triggers of existing ones. Needs CREATE on the schema, or ownership of the
        tables; the role that runs it owns them."""
        self._writing(lambda conn: self._ensure_schema(conn, repair=True), "create the tables")

    def close(self) -> None:
        """Close the writing connection (the next append opens a new one)."""
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _append(self, conn: psycopg.Connection[Any], event: AuditEvent) -> AuditRecord:
        self._ensure_schema(conn)
        with conn.transaction():
            conn.execute(q.APPEND_LOCK)
            if (row := conn.execute(q.BY_EVENT_ID, (event.event_id,)).fetchone()) is not None:
                return self._parse(*row)
            head = conn.execute(q.HEAD).fetchone()
            last = self._parse(*head) if head is not None else None
            seq, prev = (last.seq + 1, last.hash) if last is not None else (1, GENESIS_PREV)
            record = make_record(event, seq=seq, prev=prev, ts=format_ts(datetime.now(UTC)))
            conn.execute(
                q.INSERT_RECORD, (record.seq, record.event_id, record.run, record.line()[:-1])
            )
            key = self._signing_key
            if key is not None and checkpoint_due(self._checkpoint_every, record.seq):
                self._insert_checkpoint(conn, key, record)
        return record

    def _checkpoint_head(
        self, conn: psycopg.Connection[Any], key: Ed25519PrivateKey
    ) -> Checkpoint | None:
        self._ensure_schema(conn)
        with conn.transaction():
            conn.execute(q.APPEND_LOCK)
            head = conn.execute(q.HEAD).fetchone()
            if head is None:
                return None
            last = self._parse(*head)
            latest = conn.execute(q.LATEST_CHECKPOINT).fetchone()
            if latest is not None:
                existing = parse_checkpoint(bytes(latest[0]))
                if (existing.seq, existing.hash) == (last.seq, last.hash):
                    return existing
            return self._insert_checkpoint(conn, key, last)

    def _insert_checkpoint(
        self, conn: psycopg.Connection[Any], key: Ed25519PrivateKey, head: AuditRecord
    ) -> Checkpoint:
        checkpoint = sign_checkpoint(key, seq=head.seq, hash=head.hash)
        conn.execute(q.INSERT_CHECKPOINT, (checkpoint.line()[:-1],))
        return checkpoint

    def _ensure_schema(self, conn: psycopg.Connection[Any], *, repair: bool = False) -> None:
        """Create the tables if missing (with ``repair``, re-run all the DDL), then insist
        that every insert-only trigger is on; checked once per instance."""
        if self._schema_ok and not repair:
            return
        if repair or not _fetch_value(conn, q.TABLES_EXIST):
            with conn.transaction():
                conn.execute(q.SCHEMA_LOCK)  # workers starting together create the tables once
                if repair or not _fetch_value(conn, q.TABLES_EXIST):
                    conn.execute(q.SCHEMA)
        if _fetch_value(conn, q.TRIGGERS_ON) != 2 * len(q.TRIGGERS):
            raise AuditLogError(
                f"{self.where}: the insert-only triggers on {q.RECORDS} and {q.CHECKPOINTS} are "
                "missing or disabled, so nothing is written. Run `keyturn audit init` as the "
                "tables' owner to restore them, then `keyturn audit verify`"
            )
        self._schema_ok = True

    def _parse(self, seq: int, line: bytes) -> AuditRecord:
        try:
            return parse_record(bytes(line))
        except AuditFormatError as exc:
            raise AuditLogError(
                f"{self.where} seq {seq}: {exc}; run `keyturn audit verify`"
            ) from exc

    def _writing(self, work: Callable[[psycopg.Connection[Any]], T], doing: str) -> T:
        """``work`` on the writing connection, under the instance's mutex."""
        with self._mutex:
            try:
                return self._on_connection(work)
            except psycopg.Error as exc:
                raise self._error(exc, doing) from None

    def _on_connection(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                return work(conn)
            except psycopg.OperationalError:
                if not conn.broken:
                    raise
                # Lost while idle (server restarted, link cut): reconnect once. Appends are
                # idempotent, so repeating one that may have committed is safe.
                conn.close()
        self._conn = conn = self._connect(autocommit=True)
        return work(conn)

    @contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        """A read-only connection of its own (streaming must not hold the writer's mutex)."""
        try:
            with self._connect(autocommit=False) as conn:
                conn.read_only = True
                yield conn
        except psycopg.Error as exc:
            raise self._error(exc, "read") from None

    def _connect(self, *, autocommit: bool) -> psycopg.Connection[Any]:
        defaults = {"connect_timeout": self._connect_timeout, "application_name": "keyturn-audit"}
        return psycopg.connect(**{**defaults, **self._params}, autocommit=autocommit)

    def _error(self, exc: psycopg.Error, doing: str) -> AuditLogError:
        """``exc`` as an AuditLogError naming the database (no password) and the fix."""
        text = str(exc).strip()
        detail = text.splitlines()[0] if text else type(exc).__name__
        detail = redact(detail, (self._params.get(name) for name in SECRET_PARAMS))
        state = exc.sqlstate
        if state is None:
            connecting = isinstance(exc, psycopg.OperationalError)
            hint = CONNECT_HINT if connecting else "see the server's log"
        else:
            hint = HINTS.get(state) or HINTS.get(state[:2]) or "see the server's log"
            detail = f"{state}: {detail}"
        return AuditLogError(f"audit log {self.where}: {doing} failed: {detail}; {hint}")


def _fetch_value(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    return row[0] if row is not None else None


def _stream(
    conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] | None = None
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query`` through a server-side cursor, ``PAGE`` at a time."""
    with conn.cursor(name="keyturn_audit_stream") as cursor:
        cursor.itersize = PAGE
        cursor.execute(query, params)
        yield from cursor
