"""The append-only, hash-chained audit log: record format, backends, checkpoints,
verification, replay and export. Activities append through ``open_log()``; the
PostgreSQL backend is ``keyturn.audit.postgres.PostgresAuditLog`` (imported on its own,
so psycopg loads only where a DSN is configured)."""

from keyturn.audit.backend import AuditLog, default_log_path, open_log, verify_log
from keyturn.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    generate_signing_key,
    load_public_key,
    load_signing_key,
)
from keyturn.audit.export import export_run
from keyturn.audit.jsonl import (
    AuditLogError,
    AuditLogMissing,
    AuditLogUnavailable,
    JsonlAuditLog,
)
from keyturn.audit.record import (
    GENESIS_PREV,
    OUTCOMES,
    REPAIR_RUN,
    STEPS,
    AuditError,
    AuditEvent,
    AuditFormatError,
    AuditRecord,
    canonical_json,
    event_id,
    record_hash,
)
from keyturn.audit.replay import INVARIANTS, Replay, Violation, replay
from keyturn.audit.verify import Problem, VerifyResult, verify

__all__ = [
    "GENESIS_PREV",
    "INVARIANTS",
    "OUTCOMES",
    "REPAIR_RUN",
    "STEPS",
    "AuditError",
    "AuditEvent",
    "AuditFormatError",
    "AuditLog",
    "AuditLogError",
    "AuditLogMissing",
    "AuditLogUnavailable",
    "AuditRecord",
    "Checkpoint",
    "CheckpointError",
    "JsonlAuditLog",
    "Problem",
    "Replay",
    "VerifyResult",
    "Violation",
    "canonical_json",
    "default_log_path",
    "event_id",
    "export_run",
    "generate_signing_key",
    "load_public_key",
    "load_signing_key",
    "open_log",
    "record_hash",
    "replay",
    "verify",
    "verify_log",
]
