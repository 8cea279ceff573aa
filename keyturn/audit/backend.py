"""The audit log interface every backend implements, and the factory that picks one.

Today the only backend is the local JSONL file; a PostgreSQL backend (insert-only)
will implement the same ``AuditLog`` protocol.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from keyturn.audit.checkpoint import signing_key_from_env
from keyturn.audit.jsonl import JsonlAuditLog
from keyturn.audit.record import AuditEvent, AuditRecord

AUDIT_LOG_ENV = "KEYTURN_AUDIT_LOG"
DEFAULT_AUDIT_LOG = Path(".keyturn/audit.jsonl")


class AuditLog(Protocol):
    def append(self, event: AuditEvent) -> AuditRecord:
        """Chain and store ``event``; idempotent by ``event.event_id``."""
        ...

    def records(self) -> Iterator[AuditRecord]:
        """Every record in seq order."""
        ...


def default_log_path() -> Path:
    """KEYTURN_AUDIT_LOG, else .keyturn/audit.jsonl (relative to the working directory)."""
    return Path(os.environ.get(AUDIT_LOG_ENV) or DEFAULT_AUDIT_LOG)


def open_log(
    path: str | os.PathLike[str] | None = None, *, checkpoint_every: int | None = 100
) -> JsonlAuditLog:
    """The log at ``path`` (default: ``default_log_path()``), signing checkpoints with
    the key named by KEYTURN_AUDIT_SIGNING_KEY when it is set."""
    return JsonlAuditLog(
        path if path is not None else default_log_path(),
        signing_key=signing_key_from_env(),
        checkpoint_every=checkpoint_every,
    )
