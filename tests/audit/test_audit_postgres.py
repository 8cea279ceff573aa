"""The PostgreSQL backend on a real server: the same records and bytes as the JSONL file,
idempotent and concurrent appends, insert-only enforced by the database, tampering and
truncation found by verify, and errors that name the database without its password."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fakes.sql_servers import PostgresDatabase
from psycopg import errors, sql

from keyturn.audit import (
    GENESIS_PREV,
    AuditEvent,
    AuditLogError,
    AuditLogMissing,
    JsonlAuditLog,
    event_id,
    generate_signing_key,
    load_public_key,
    load_signing_key,
    open_log,
    verify_log,
)
from keyturn.audit.checkpoint import parse_checkpoint, signature_valid
from keyturn.audit.postgres import PostgresAuditLog
from keyturn.audit.postgres_sql import CHECKPOINTS, RECORDS, RUN_INDEX, RUN_RECORDS
from keyturn.config import Settings

TS = "2026-04-12T03:14:15Z"


@pytest.fixture
def pg_log(audit_database: PostgresDatabase) -> Iterator[PostgresAuditLog]:
    log = PostgresAuditLog(audit_database.dsn)
    yield log
    log.close()


def stored_lines(db: PostgresDatabase, table: str = RECORDS) -> list[bytes]:
    order = "seq" if table == RECORDS else "id"
    with db.superuser() as conn:
        rows = conn.execute(
            sql.SQL("SELECT line FROM {} ORDER BY {}").format(
                sql.Identifier(table), sql.Identifier(order)
            )
        ).fetchall()
    return [bytes(line) for (line,) in rows]


def superuser_rewrites(db: PostgresDatabase, statement: str, *args: object) -> None:
    """What a superuser can do anyway: switch the triggers off for one statement."""
    with db.superuser() as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(statement, args)


def test_records_and_their_bytes_are_those_of_the_jsonl_log(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, audit_path: Path, make_event
) -> None:
    events = [
        make_event(step, ts=TS, tier="t1", details={"ref": "vault:ci/é", "n": [1, 2.5, None]})
        for step in ("precheck", "create", "verify_new", "promote")
    ]
    jsonl = JsonlAuditLog(audit_path)
    expected = [jsonl.append(e) for e in events]
    records = [pg_log.append(e) for e in events]
    assert records == expected
    assert records[0].prev == GENESIS_PREV
    assert all(b.prev == a.hash for a, b in itertools.pairwise(records))
    assert b"".join(line + b"\n" for line in stored_lines(audit_database)) == (
        audit_path.read_bytes()
    )
    assert list(pg_log.records()) == expected


def test_records_for_run_is_that_run_in_seq_order_on_both_backends(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, audit_path: Path, make_event
) -> None:
    assert list(pg_log.records_for_run("run-1")) == []
    assert not pg_log.exists()  # reading created nothing
    jsonl = JsonlAuditLog(audit_path)
    runs = ["run-1", "run-10", "run-1", "run-2", "Run-1", "run-1", "run-10"]
    for i, run in enumerate(runs):
        event = make_event("create", run=run, extra=[i], ts=TS)
        assert pg_log.append(event) == jsonl.append(event)
    expected = {"run-1": [1, 3, 6], "run-10": [2, 7], "run-2": [4], "Run-1": [5], "run": []}
    for run, seqs in expected.items():
        from_pg = list(pg_log.records_for_run(run))
        assert [r.seq for r in from_pg] == seqs and {r.run for r in from_pg} <= {run}
        assert from_pg == list(jsonl.records_for_run(run))
    with audit_database.superuser() as conn:
        columns = conn.execute(f"SELECT seq, run FROM {RECORDS} ORDER BY seq").fetchall()
    assert columns == list(enumerate(runs, start=1))  # the column is the record's run


def _plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_per_run_reads_use_the_run_index(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase
) -> None:
    pg_log.create_schema()
    with audit_database.superuser() as conn:
        (definition,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname = %s",
            (RECORDS, RUN_INDEX),
        ).fetchone()
        assert definition.endswith(f"{RECORDS} USING btree (run, seq)")
        # 20,000 rows of 1,000 runs: reading all of them for one run's 20 costs far more.
        conn.execute(
            f"INSERT INTO {RECORDS} (seq, event_id, run, line) SELECT i, 'e' || i, "
            "'run-' || (i % 1000), 'x'::bytea FROM generate_series(1, 20000) AS i"
        )
        conn.execute(f"ANALYZE {RECORDS}")
        ((explained,),) = conn.execute(f"EXPLAIN (FORMAT JSON) {RUN_RECORDS}", ("run-7",))
    nodes = list(_plan_nodes(explained[0]["Plan"]))
    assert RUN_INDEX in {node.get("Index Name") for node in nodes}, nodes
    assert "Seq Scan" not in {node["Node Type"] for node in nodes}, nodes


def test_a_row_whose_run_column_was_altered_is_refused_and_found_by_verify(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, make_event
) -> None:
    pg_log.append(make_event("create", run="run-1"))
    pg_log.append(make_event("create", run="run-2"))
    superuser_rewrites(audit_database, f"UPDATE {RECORDS} SET run = 'run-2' WHERE seq = 1")
    with pytest.raises(
        AuditLogError, match="seq 1: the row's run column says 'run-2' but its record is of run "
        "'run-1'.*changed outside keyturn"
    ):
        list(pg_log.records_for_run("run-2"))
    # The column is outside the chain: the record is intact, only its run's read misses it,
    # and verify, which checks the column against the record, names the row.
    assert list(pg_log.records_for_run("run-1")) == []
    assert [r.run for r in pg_log.records()] == ["run-1", "run-2"]
    result = verify_log(pg_log)
    assert not result.ok and result.first_problem is not None
    assert result.first_problem.seq == 1 and "run column says 'run-2'" in result.first_problem.reason


def test_append_is_idempotent_by_event_id(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, make_event
) -> None:
    first = pg_log.append(make_event("create"))
    pg_log.append(make_event("verify_new"))
    retried = make_event("create", details={"attempt": 2})  # same id, different content
    assert pg_log.append(retried) == first
    other = PostgresAuditLog(audit_database.dsn)
    assert other.append(retried) == first  # another process agrees
    other.close()
    assert len(stored_lines(audit_database)) == 2


def test_threads_sharing_one_instance_append_a_contiguous_chain(
    pg_log: PostgresAuditLog, make_event
) -> None:
    def work(worker: int) -> None:
        for i in range(25):
            pg_log.append(make_event("create", extra=[worker, i]))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = verify_log(pg_log)
    assert result.ok and result.records == 100


def _event(name: str) -> AuditEvent:
    return AuditEvent(
        run="run-mp", event_id=event_id("run-mp", name, "create", "succeeded"),
        credential=name, step="create", outcome="succeeded", actor="worker",
    )  # fmt: skip


def _append_from_process(dsn: str, key_path: str, worker: int, barrier) -> None:
    log = PostgresAuditLog(dsn, signing_key=load_signing_key(key_path), checkpoint_every=25)
    barrier.wait()  # every process also races to create the tables
    for i in range(50):
        log.append(_event(f"w{worker}-{i}"))
        if i % 5 == 0:  # and to write the same shared ids
            log.append(_event(f"shared-{i // 5}"))
    log.close()


def test_concurrent_processes_append_one_valid_chain(
    audit_database: PostgresDatabase, signing_key_file: Path
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    processes = [
        ctx.Process(
            target=_append_from_process,
            args=(audit_database.dsn, str(signing_key_file), w, barrier),
        )
        for w in range(4)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]

    log = PostgresAuditLog(audit_database.dsn)
    records = list(log.records())
    assert [r.seq for r in records] == list(range(1, 211))  # 4 x 50 + 10 shared, once each
    assert len({r.event_id for r in records}) == 210
    result = log.verify(load_public_key(signing_key_file))
    assert result.ok, result.problems
    assert result.checkpoints == 8  # seq 25, 50, ..., 200


@pytest.mark.parametrize("table", [RECORDS, CHECKPOINTS])
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {} SET line = line || 'x'::bytea", "DELETE FROM {}", "TRUNCATE {}"],
)
def test_the_database_refuses_update_delete_and_truncate(
    audit_database: PostgresDatabase, signing_key_file: Path, make_event, table: str,
    statement: str,
) -> None:
    log = PostgresAuditLog(
        audit_database.dsn, signing_key=load_signing_key(signing_key_file), checkpoint_every=1
    )
    log.append(make_event())
    log.close()
    query = sql.SQL(statement).format(sql.Identifier(table))
    # The tables' owner, even a superuser who does not switch the triggers off.
    for conn in (psycopg.connect(audit_database.dsn), audit_database.superuser()):
        with conn, pytest.raises(errors.InsufficientPrivilege, match="insert-only"):
            conn.execute(query)
    assert len(stored_lines(audit_database, table)) == 1


def _role_with(db: PostgresDatabase, kind: str, privileges: str) -> str:
    """The DSN of a fresh role granted only `privileges` on both tables (by their owner)."""
    role, password = f"kt_{kind}_{db.name}", f"{kind}-pw"
    db.server.create_user(role, password)
    with psycopg.connect(db.dsn, autocommit=True) as owner:
        for table in (RECORDS, CHECKPOINTS):
            owner.execute(sql.SQL("GRANT {} ON {} TO {}").format(
                sql.SQL(privileges), sql.Identifier(table), sql.Identifier(role)))
    return db.dsn_for(role, password)


def test_a_worker_role_with_insert_and_select_only(
    audit_database: PostgresDatabase, signing_key_file: Path, make_event
) -> None:
    PostgresAuditLog(audit_database.dsn).create_schema()  # as the owner (`keyturn audit init`)
    dsn = _role_with(audit_database, "worker", "INSERT, SELECT")
    log = PostgresAuditLog(dsn, signing_key=load_signing_key(signing_key_file), checkpoint_every=2)
    for step in ("create", "verify_new", "promote"):
        log.append(make_event(step))
    assert log.checkpoint() is not None
    assert log.verify(load_public_key(signing_key_file)).ok
    log.close()
    with psycopg.connect(dsn) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(f"DELETE FROM {RECORDS}")
        conn.rollback()
        with pytest.raises(errors.InsufficientPrivilege, match="must be owner"):
            conn.execute(f"ALTER TABLE {RECORDS} DISABLE TRIGGER USER")


def test_an_auditor_role_with_select_only_verifies_but_cannot_append(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, make_event
) -> None:
    pg_log.append(make_event("create"))
    auditor = PostgresAuditLog(_role_with(audit_database, "auditor", "SELECT"))
    assert auditor.verify().ok and [r.seq for r in auditor.records()] == [1]
    with pytest.raises(AuditLogError, match="42501: permission denied.*grant the role INSERT"):
        auditor.append(make_event("verify_new"))


def test_the_tables_can_belong_to_a_role_the_workers_are_not(
    audit_database: PostgresDatabase, make_event
) -> None:
    """docs/audit-log.md's recipe: `keyturn audit init` through `options=-crole=<owner role>`."""
    owner_role = f"kt_owner_{audit_database.name}"
    with audit_database.superuser() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(owner_role)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(
            sql.Identifier(owner_role), sql.Identifier(audit_database.owner)))
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(
            sql.Identifier(owner_role)))
    dsn = audit_database.dsn + f" options='-crole={owner_role}'"
    PostgresAuditLog(dsn).create_schema()
    with audit_database.superuser() as conn:
        owners = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE tablename IN (%s, %s)", (RECORDS, CHECKPOINTS)
        ).fetchall()
    assert owners == [(owner_role,), (owner_role,)]


def test_the_first_append_of_a_role_without_create_says_what_to_grant(
    audit_database: PostgresDatabase, make_event
) -> None:
    role = "kt_nocreate_" + audit_database.name
    audit_database.server.create_user(role, "nocreate-pw")
    log = PostgresAuditLog(audit_database.dsn_for(role, "nocreate-pw"))
    with pytest.raises(AuditLogError, match="42501.*grant the role INSERT, SELECT.*audit init"):
        log.append(make_event())


def test_superuser_tampering_is_named_by_verify(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, make_event
) -> None:
    for step in ("create", "verify_new", "promote", "revoke_old"):
        pg_log.append(make_event(step, details={"ref": "vault:ci/app"}))
    assert verify_log(pg_log).ok
    superuser_rewrites(
        audit_database,
        f"UPDATE {RECORDS} SET line = convert_to(replace(convert_from(line, 'UTF8'), "
        "'vault:ci', 'vault:cj'), 'UTF8') WHERE seq = 3",
    )
    result = verify_log(pg_log)
    assert not result.ok
    first = result.first_problem
    assert first is not None and first.seq == 3 and "altered" in first.reason
    assert result.path == pg_log.where


def test_a_deleted_record_is_named(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, make_event
) -> None:
    for step in ("create", "verify_new", "promote", "revoke_old"):
        pg_log.append(make_event(step))
    superuser_rewrites(audit_database, f"DELETE FROM {RECORDS} WHERE seq = 2")
    first = verify_log(pg_log).first_problem
    assert first is not None and first.seq == 2 and "deleted" in first.reason


def test_truncation_is_detected_by_a_checkpoint(
    audit_database: PostgresDatabase, signing_key_file: Path, make_event
) -> None:
    key = load_signing_key(signing_key_file)
    log = PostgresAuditLog(audit_database.dsn, signing_key=key, checkpoint_every=2)
    for step in ("create", "verify_new", "promote", "revoke_old", "confirm_revoked"):
        log.append(make_event(step))
    superuser_rewrites(audit_database, f"DELETE FROM {RECORDS} WHERE seq >= 4")
    result = log.verify(key.public_key())
    assert not result.ok
    assert result.first_problem is not None and result.first_problem.seq == 4
    assert "records 4..4 were removed (truncation)" in result.first_problem.reason
    # The chain alone cannot tell: without checkpoints the cut-off log looks whole.
    superuser_rewrites(audit_database, f"DELETE FROM {CHECKPOINTS}")
    assert log.verify(key.public_key()).ok
    log.close()


def test_checkpoints_every_n_records_and_on_demand(
    audit_database: PostgresDatabase, signing_key_file: Path, make_event
) -> None:
    key = load_signing_key(signing_key_file)
    log = PostgresAuditLog(audit_database.dsn, signing_key=key, checkpoint_every=3)
    records = [log.append(make_event("create", extra=[i])) for i in range(7)]
    log.append(make_event("create", extra=[6]))  # a retry writes no checkpoint
    stored = [parse_checkpoint(line) for line in stored_lines(audit_database, CHECKPOINTS)]
    assert [(c.seq, c.hash) for c in stored] == [(3, records[2].hash), (6, records[5].hash)]
    assert all(signature_valid(c, key.public_key()) for c in stored)

    explicit = log.checkpoint()
    assert explicit is not None and (explicit.seq, explicit.hash) == (7, records[6].hash)
    assert log.checkpoint() == explicit  # the head is already signed: nothing new written
    assert len(stored_lines(audit_database, CHECKPOINTS)) == 3
    result = log.verify(key.public_key())
    assert result.ok and result.checkpoints == 3 and result.warnings == ()
    log.close()


def test_a_checkpoint_by_another_key_is_named(
    audit_database: PostgresDatabase, signing_key_file: Path, tmp_path: Path, make_event
) -> None:
    log = PostgresAuditLog(
        audit_database.dsn, signing_key=load_signing_key(signing_key_file), checkpoint_every=1
    )
    log.append(make_event())
    log.close()
    other = tmp_path / "other.pem"
    generate_signing_key(other)
    first = log.verify(load_public_key(other)).first_problem
    assert first is not None and first.source == "checkpoints" and "signed by key" in first.reason


def test_no_signing_key_or_no_records_means_no_checkpoint(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, signing_key_file: Path,
    make_event,
) -> None:
    signed = PostgresAuditLog(audit_database.dsn, signing_key=load_signing_key(signing_key_file))
    assert signed.checkpoint() is None  # the tables are created, but the log is empty
    pg_log.append(make_event())
    assert pg_log.checkpoint() is None
    assert stored_lines(audit_database, CHECKPOINTS) == []
    signed.close()


def test_an_empty_database_has_no_records_and_nothing_to_verify(pg_log: PostgresAuditLog) -> None:
    assert list(pg_log.records()) == []
    assert not pg_log.exists()
    with pytest.raises(AuditLogMissing, match="no audit log in postgresql .*tables do not exist"):
        verify_log(pg_log)
    assert not pg_log.exists()  # reading created nothing


def test_an_unreadable_row_is_named_and_blocks_appends(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, make_event
) -> None:
    pg_log.append(make_event("create"))
    superuser_rewrites(audit_database, f"UPDATE {RECORDS} SET line = 'not json'::bytea")
    with pytest.raises(AuditLogError, match=r"seq 1: not valid JSON.*keyturn audit verify"):
        list(pg_log.records())
    with pytest.raises(AuditLogError, match="seq 1: not valid JSON"):
        pg_log.append(make_event("verify_new"))
    first = verify_log(pg_log).first_problem
    assert first is not None and first.seq == 1


def test_appends_stop_while_a_trigger_is_disabled_until_init(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, make_event
) -> None:
    pg_log.append(make_event("create"))
    with audit_database.superuser() as conn:
        conn.execute(f"ALTER TABLE {CHECKPOINTS} DISABLE TRIGGER keyturn_audit_no_truncate")
    fresh = PostgresAuditLog(audit_database.dsn)
    with pytest.raises(AuditLogError, match="triggers .* are missing or disabled.*audit init"):
        fresh.append(make_event("verify_new"))
    fresh.create_schema()  # what `keyturn audit init` does: the triggers are back on
    assert fresh.append(make_event("verify_new")).seq == 2
    fresh.close()


def test_a_lost_connection_is_replaced(
    pg_log: PostgresAuditLog, audit_database: PostgresDatabase, make_event
) -> None:
    pg_log.append(make_event("create"))
    with audit_database.superuser() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'keyturn-audit' AND datname = %s",
            (audit_database.name,),
        )
    assert pg_log.append(make_event("verify_new")).seq == 2


def test_errors_name_the_database_without_its_password(
    audit_database: PostgresDatabase, make_event
) -> None:
    password = "s3cret-" + audit_database.password
    wrong = audit_database.dsn_for(audit_database.owner, password)
    with pytest.raises(AuditLogError) as refused:
        PostgresAuditLog(wrong).append(make_event())
    message = str(refused.value)
    assert "password authentication failed" in message and "check the DSN" in message
    assert f"dbname={audit_database.name}" in message and f"user={audit_database.owner}" in message
    assert password not in message and "password=" not in message

    uri = f"postgresql://someone:{password}@127.0.0.1:1/audit"
    for dsn in (uri, f"host=127.0.0.1 port=1 password='{password}"):  # the second won't parse
        with pytest.raises(AuditLogError) as failed:
            PostgresAuditLog(dsn).append(make_event())
        assert password not in str(failed.value) and failed.value.__cause__ is None


def test_open_log_and_settings_select_postgres(
    audit_database: PostgresDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_AUDIT_DSN", audit_database.dsn)
    chosen = open_log()
    assert isinstance(chosen, PostgresAuditLog) and chosen.where.startswith("postgresql ")
    assert isinstance(open_log(tmp_path / "a.jsonl"), JsonlAuditLog)  # an explicit file wins
    assert isinstance(open_log(tmp_path / "a.jsonl", dsn=audit_database.dsn), PostgresAuditLog)

    settings = Settings.from_env()
    assert settings.audit_dsn == audit_database.dsn
    assert audit_database.password not in repr(settings)
    monkeypatch.setenv("KEYTURN_AUDIT_DSN", "")
    assert Settings.from_env().audit_dsn is None and isinstance(open_log(), JsonlAuditLog)


def test_checkpoint_every_must_be_positive(audit_database: PostgresDatabase) -> None:
    with pytest.raises(ValueError, match="checkpoint_every"):
        PostgresAuditLog(audit_database.dsn, checkpoint_every=0)
