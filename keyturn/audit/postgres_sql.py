"""The SQL of the PostgreSQL audit log (``keyturn.audit.postgres``) in one place: the
tables, the triggers that make them insert-only, the advisory locks and the queries.

Names are unqualified: they resolve through the connection's search_path, and the
tables are created in its first schema (``current_schema()``).
"""

from __future__ import annotations

RECORDS = "keyturn_audit_records"
CHECKPOINTS = "keyturn_audit_checkpoints"
RUN_INDEX = "keyturn_audit_records_run_seq"  # one run's records in seq order, no scan
TRIGGERS = ("keyturn_audit_no_change", "keyturn_audit_no_truncate")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {RECORDS} (
    seq bigint PRIMARY KEY CHECK (seq >= 1),
    event_id text NOT NULL UNIQUE,
    run text NOT NULL,
    line bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS {RUN_INDEX} ON {RECORDS} (run, seq);
CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line bytea NOT NULL
);
CREATE OR REPLACE FUNCTION keyturn_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the keyturn audit log is insert-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
""" + "".join(
    f"""
CREATE OR REPLACE TRIGGER {TRIGGERS[0]} BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION keyturn_audit_refuse();
CREATE OR REPLACE TRIGGER {TRIGGERS[1]} BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION keyturn_audit_refuse();
"""
    for table in (RECORDS, CHECKPOINTS)
)

TABLES_EXIST = (
    f"SELECT to_regclass('{RECORDS}') IS NOT NULL AND to_regclass('{CHECKPOINTS}') IS NOT NULL"
)
TRIGGERS_ON = f"""
SELECT count(*) FROM pg_trigger
WHERE tgrelid IN (to_regclass('{RECORDS}'), to_regclass('{CHECKPOINTS}'))
  AND tgname IN ('{TRIGGERS[0]}', '{TRIGGERS[1]}') AND tgenabled <> 'D'
"""
# Advisory lock keys: one per schema for creating the tables, one per records table
# (its oid) for appending.
SCHEMA_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('keyturn_audit:' || current_schema(), 0))"
)
APPEND_LOCK = (
    "SELECT pg_advisory_xact_lock("
    f"hashtextextended('keyturn_audit:' || '{RECORDS}'::regclass::oid, 0))"
)
BY_EVENT_ID = f"SELECT seq, line FROM {RECORDS} WHERE event_id = %s"
HEAD = f"SELECT seq, line FROM {RECORDS} ORDER BY seq DESC LIMIT 1"
INSERT_RECORD = f"INSERT INTO {RECORDS} (seq, event_id, run, line) VALUES (%s, %s, %s, %s)"
LATEST_CHECKPOINT = f"SELECT line FROM {CHECKPOINTS} ORDER BY id DESC LIMIT 1"
INSERT_CHECKPOINT = f"INSERT INTO {CHECKPOINTS} (line) VALUES (%s)"
ALL_RECORDS = f"SELECT seq, line FROM {RECORDS} ORDER BY seq"
RUN_RECORDS = f"SELECT seq, line FROM {RECORDS} WHERE run = %s ORDER BY seq"
# Rows whose indexed run column disagrees with their (verified, so parseable) record.
MISFILED = (
    f"SELECT seq, run FROM {RECORDS} "
    "WHERE run IS DISTINCT FROM convert_from(line, 'UTF8')::jsonb ->> 'run' ORDER BY seq"
)
ALL_CHECKPOINTS = f"SELECT id, line FROM {CHECKPOINTS} ORDER BY id"
