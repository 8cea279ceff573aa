"""The audit log interface every backend implements, and the factory that picks one.

Two backends: the local JSONL file (``JsonlAuditLog``, the default) and PostgreSQL
(``keyturn.audit.postgres.PostgresAuditLog``), the one all workers share when a
deployment has more than one machine. KEYTURN_AUDIT_DSN selects PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from keyturn.audit.checkpoint import signing_key_from_env
from keyturn.audit.jsonl import JsonlAuditLog
from keyturn.audit.record import AuditEvent, AuditRecord
from keyturn.audit.verify import VerifyResult, verify

if TYPE_CHECKING:
    from keyturn.audit.postgres import PostgresAuditLog

AUDIT_LOG_ENV = "KEYTURN_AUDIT_LOG"
AUDIT_DSN_ENV = "KEYTURN_AUDIT_DSN"
DEFAULT_AUDIT_LOG = Path(".keyturn/audit.jsonl")


class AuditLog(Protocol):
    def append(self, event: AuditEvent) -> AuditRecord:
        """Chain and store ``event``; idempotent by ``event.event_id``."""
        ...

    def records(self) -> Iterator[AuditRecord]:
        """Every record in seq order."""
        ...

    def records_for_run(self, run: str) -> Iterator[AuditRecord]:
        """The records of one run in seq order (what replay, export and the API read)."""
        ...


def default_log_path() -> Path:
    """KEYTURN_AUDIT_LOG, else .keyturn/audit.jsonl (relative to the working directory)."""
    return Path(os.environ.get(AUDIT_LOG_ENV) or DEFAULT_AUDIT_LOG)


def open_log(
    path: str | os.PathLike[str] | None = None,
    *,
    dsn: str | None = None,
    checkpoint_every: int | None = 100,
    signing: bool = True,
) -> JsonlAuditLog | PostgresAuditLog:
    """The PostgreSQL log at ``dsn``, else the file at ``path``; given neither, the
    database named by KEYTURN_AUDIT_DSN when it is set, else ``default_log_path()``.
    Checkpoints are signed with the key named by KEYTURN_AUDIT_SIGNING_KEY, if set and
    ``signing``; readers pass ``signing=False`` and never load the private key."""
    key = signing_key_from_env() if signing else None
    if dsn is None and path is None:
        dsn = os.environ.get(AUDIT_DSN_ENV) or None
    if dsn is not None:
        # psycopg is imported only by processes configured for PostgreSQL.
        from keyturn.audit.postgres import PostgresAuditLog

        return PostgresAuditLog(dsn, signing_key=key, checkpoint_every=checkpoint_every)
    return JsonlAuditLog(
        path if path is not None else default_log_path(),
        signing_key=key,
        checkpoint_every=checkpoint_every,
    )


def verify_log(
    log: JsonlAuditLog | PostgresAuditLog,
    public_key: Ed25519PublicKey | str | os.PathLike[str] | None = None,
) -> VerifyResult:
    """Check either backend's records, chain and checkpoints (see ``keyturn.audit.verify``)."""
    if isinstance(log, JsonlAuditLog):
        return verify(log.path, public_key)
    return log.verify(public_key)
