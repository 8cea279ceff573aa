"""Doctor's audit checks: the log writable and its chain intact, the checkpoint key readable.

"Writable" is asked without writing: the file (or the directory it would be
created in) must allow keyturn to write; in PostgreSQL the role must hold
INSERT on the records table. "Intact" is `keyturn audit verify` over the whole
log (records, chain and checkpoints up to the head), run with doctor's
per-check timeout, so a very long log may need `--timeout` raised.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from keyturn.audit import AuditLogMissing, CheckpointError, load_signing_key, open_log
from keyturn.audit.backend import verify_log
from keyturn.audit.checkpoint import SIGNING_KEY_ENV
from keyturn.audit.record import AuditError
from keyturn.doctor.base import Context, Finding, failed, ok, skipped

VERIFY = "run `keyturn audit verify` for every problem; a log whose chain is broken must be " \
         "investigated, not repaired: keep it and start a new one (KEYTURN_AUDIT_LOG)"


def _writable_file(path: Path) -> str | None:
    """Why keyturn could not append to `path`, or None."""
    if path.is_dir():
        return f"{path} is a directory"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{path} is not writable"
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} cannot be created: {parent} is not a directory"
    return None if os.access(parent, os.W_OK) else f"{path} cannot be created in {parent}"


def _insert_allowed(dsn: str) -> bool:
    import psycopg

    from keyturn.audit.postgres_sql import RECORDS

    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT has_table_privilege(%s, 'INSERT')", (RECORDS,)).fetchone()
    return bool(row and row[0])


def _check_log(ctx: Context) -> Finding:
    s = ctx.settings
    log = open_log(s.audit_log, dsn=s.audit_dsn, signing=False)
    where = log.where
    if s.audit_dsn is None and (reason := _writable_file(s.audit_log)):
        return failed("audit log", reason, f"let the worker's user write {s.audit_log} "
                      "(chown/chmod) or set KEYTURN_AUDIT_LOG to a writable path")
    try:
        if not log.exists():
            return ok("audit log", f"{where}: empty, created on the first record")
        if s.audit_dsn is not None and not _insert_allowed(s.audit_dsn):
            return failed("audit log", f"{where}: this role may not INSERT records",
                          "GRANT INSERT ON keyturn_audit_records, keyturn_audit_checkpoints "
                          "to the role in KEYTURN_AUDIT_DSN")
        result = verify_log(log)
    except AuditLogMissing:
        return ok("audit log", f"{where}: empty, created on the first record")
    except AuditError as exc:
        return failed("audit log", f"{where}: {exc}", VERIFY)
    if not result.ok:
        first = result.first_problem
        at = f" at seq {first.seq}" if first and first.seq else ""
        return failed("audit log", f"{where}: chain broken{at}: "
                      f"{first.reason if first else '?'}", VERIFY)
    return ok("audit log", f"{where}: {result.records} record(s), chain intact to seq "
              f"{result.head_seq}, {result.checkpoints} checkpoint(s)")


async def audit_log(ctx: Context) -> Finding:
    return await asyncio.to_thread(_check_log, ctx)


async def signing_key(ctx: Context) -> Finding:
    path = ctx.environ.get(SIGNING_KEY_ENV)
    if not path:
        return skipped("signing key", f"{SIGNING_KEY_ENV} is not set: checkpoints are not "
                       "signed")
    try:
        load_signing_key(path)
    except (CheckpointError, OSError) as exc:
        return failed("signing key", f"{SIGNING_KEY_ENV}={path}: {exc}",
                      f"point {SIGNING_KEY_ENV} at a key the worker can read; or create one with "
                      f"`keyturn audit keygen {path}`")
    mode = Path(path).stat().st_mode & 0o777
    if mode & 0o077:
        return failed("signing key", f"{path} is readable by others (mode {mode:o})",
                      f"run `chmod 600 {path}`")
    return ok("signing key", f"{path} readable, mode {mode:o}")
