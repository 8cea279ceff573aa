"""Audit log benchmark: durable appends, idempotent re-appends, verify, per-run reads.

Measures either backend on a real store:

- the JSONL file (default): ``keyturn.audit.JsonlAuditLog`` in the default temp
  dir or ``--dir`` (fsync cost depends entirely on that disk);
- PostgreSQL, ``--dsn DSN``: ``keyturn.audit.postgres.PostgresAuditLog`` on that
  server, in schemas the benchmark creates (the DSN's role needs CREATE on the
  database) and drops at the end;
- PostgreSQL, ``--postgres``: the same on a throwaway local server started as the
  tests start theirs (``tests/fakes/sql_servers.PostgresServer``: needs the
  server binaries, Debian package ``postgresql``), but with ``fsync``,
  ``full_page_writes`` and ``synchronous_commit`` on, so that a commit is as
  durable as the file's fsync.

append, 1 process
    N records appended one at a time by one process. Each append is one locked
    step: the file lock, new tail, one line and an fsync; or one transaction
    (advisory lock, event id lookup, head, insert, commit). A signing key is set,
    so every 100th append also signs and writes a checkpoint (as production
    writers do with KEYTURN_AUDIT_SIGNING_KEY).
append, P processes
    The same N records split over P processes (default 4) appending to one log
    at once: lock contention. Wall time runs from the moment all writers are
    ready to the last append; per-item latency includes waiting for the lock.
    Each writer starts a new run every 70 records (10 credentials).
re-append (warm)
    Every event appended again through the instance that wrote them: the
    idempotent path (event id already known, the stored record is read back).
re-append (cold)
    The same through a fresh instance. A file's first call reads the whole file
    to learn the event ids (the total includes that one-time scan); a database's
    opens a connection and checks the tables and triggers.
verify
    ``verify_log`` over each log, checking chain and checkpoint signatures.
read + replay
    Parse every record (``records()``), then ``keyturn.audit.replay`` one run.
records_for_run
    One run of 70 records out of the multi-process log's N: the file reads and
    parses every record; the database reads the run's rows by its ``(run, seq)``
    index.

Reading the table: ``per item ms`` is total seconds / count; ``per s`` is
count / total seconds; p50/p95 are per-call latencies (single calls only).
Records look like real rotations: 7 records per credential, references and
``sha256:`` fingerprints in details.

    .venv/bin/python bench/audit_log.py [--n 2000] [--procs 4] [--dir PATH]
    .venv/bin/python bench/audit_log.py --postgres [--n 2000] [--procs 4]
    .venv/bin/python bench/audit_log.py --dsn postgresql://user@host/db [--n 2000]
    .venv/bin/python bench/audit_log.py --verify-n 1000000   (bench/audit_verify.py)
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import audit_verify
import psycopg
from figures import pct, print_table
from psycopg import sql
from psycopg.conninfo import make_conninfo

from keyturn.audit import (
    AuditEvent,
    JsonlAuditLog,
    event_id,
    generate_signing_key,
    load_public_key,
    load_signing_key,
    replay,
    verify_log,
)
from keyturn.audit.postgres import PostgresAuditLog, describe, parse_dsn
from keyturn.audit.postgres_sql import RECORDS

ROOT = Path(__file__).resolve().parent.parent
PER_RUN = 70  # records per run in the multi-process log: 10 credentials

STEPS = (
    ("precheck", "", {"strategy": "rotate", "old_credential_ids": ["AKIAOLD"]}),
    ("create", "", {"credential_id": "AKIANEW", "staging": "vault:keyturn/staging"}),
    ("verify_new", "", {"credential_id": "AKIANEW"}),
    ("promote", "", {"targets": ["vault:ci/aws"], "version": 2}),
    ("revoke_old", "disable", {"phase": "disable", "credential_id": "AKIAOLD"}),
    ("revoke_old", "delete", {"phase": "delete", "credential_id": "AKIAOLD"}),
    ("confirm_revoked", "", {"credential_id": "AKIAOLD"}),
)


def make_events(run: str, count: int, per_run: int | None = None) -> list[AuditEvent]:
    """``count`` records, 7 per credential, in protocol order: all of ``run``, or with
    ``per_run`` a new run (``<run>-0000``, ``<run>-0001``, ...) every ``per_run``."""
    events = []
    for i in range(count):
        run_i = run if per_run is None else f"{run}-{i // per_run:04d}"
        cred, (step, phase, details) = f"cred-{i // len(STEPS):05d}", STEPS[i % len(STEPS)]
        fingerprint = "sha256:" + hashlib.sha256(f"{run_i}{cred}".encode()).hexdigest()[:16]
        events.append(AuditEvent(
            run=run_i,
            event_id=event_id(run_i, cred, step, phase, "succeeded"),
            tier="tier1",
            credential=cred,
            provider="aws.iam_access_key",
            step=step,
            outcome="succeeded",
            actor="worker",
            details={**details, "fingerprint": fingerprint},
        ))
    return events


def open_at(location: str, key_path: str, postgres: bool) -> JsonlAuditLog | PostgresAuditLog:
    """The log at ``location`` (a file, or a DSN when ``postgres``), signing every 100th
    record as production writers do."""
    key = load_signing_key(key_path)
    if postgres:
        return PostgresAuditLog(location, signing_key=key, checkpoint_every=100)
    return JsonlAuditLog(location, signing_key=key, checkpoint_every=100)


def append_all(log: JsonlAuditLog | PostgresAuditLog, events: list[AuditEvent]) -> list[float]:
    """Append each event; the latency of every call in seconds."""
    latencies = []
    for event in events:
        start = time.perf_counter()
        log.append(event)
        latencies.append(time.perf_counter() - start)
    return latencies


def writer(
    location: str, key_path: str, postgres: bool, run: str, count: int, barrier, results
) -> None:
    """One of the concurrent processes: build events, wait for the others, append."""
    log = open_at(location, key_path, postgres)
    events = make_events(run, count, PER_RUN)
    barrier.wait()
    start = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes on Linux
    latencies = append_all(log, events)
    results.put((start, time.monotonic(), latencies))


def concurrent_appends(
    location: str, key_path: Path, postgres: bool, total: int, procs: int
) -> tuple[float, list]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    shares = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
    workers = [
        ctx.Process(
            target=writer,
            args=(location, str(key_path), postgres, f"bench-p{i}", n, barrier, results),
        )
        for i, n in enumerate(shares)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join()
        if w.exitcode != 0:
            raise SystemExit(f"writer process exited with {w.exitcode}")
    wall = max(end for _, end, _ in outcomes) - min(start for start, _, _ in outcomes)
    return wall, [lat for _, _, lats in outcomes for lat in lats]


def row(name: str, count: int, total: float, latencies: list[float] | None = None) -> list[str]:
    p50 = f"{pct(latencies, 50) * 1e3:.3f}" if latencies else "-"
    p95 = f"{pct(latencies, 95) * 1e3:.3f}" if latencies else "-"
    return [name, str(count), f"{total:.3f}", f"{total / count * 1e3:.3f}",
            f"{count / total:,.0f}", p50, p95]


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """The DSN of a fresh database on a local server started for this run, stopped after."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakes.sql_servers import PostgresServer

    class DurablePostgres(PostgresServer):
        """The tests' server, but committing durably (the tests turn fsync off)."""

        def command(self) -> list[str]:
            command = super().command()
            for setting in ("fsync", "full_page_writes", "synchronous_commit"):
                command[command.index(f"{setting}=off")] = f"{setting}=on"
            return command

    with DurablePostgres() as server:
        yield server.create_database().dsn


@contextmanager
def postgres_schemas(dsn: str, names: tuple[str, ...]) -> Iterator[list[str]]:
    """A DSN per name whose search_path is a fresh schema of its own, so each log gets
    tables of its own in the database; the schemas are dropped at the end."""
    params = parse_dsn(dsn)  # refuses a malformed DSN without quoting its password
    token = secrets.token_hex(4)
    schemas = [f"keyturn_bench_{name}_{token}" for name in names]
    options = params.get("options", "")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield [make_conninfo(dsn, options=f"{options} -csearch_path={schema}".strip())
                   for schema in schemas]
        finally:
            for schema in schemas:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def table_bytes(dsn: str) -> int:
    """The records table's size on disk, its indexes included."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (RECORDS,)).fetchone()
    assert found is not None  # a function call always returns its row
    return found[0]


def measure(single: str, multi: str, postgres: bool, key_path: Path, args) -> list[list[str]]:
    """Every case of the module docstring on the logs at ``single`` and ``multi``."""
    public_key = load_public_key(f"{key_path}.pub")
    rows = []

    log = open_at(single, str(key_path), postgres)
    events = make_events("bench-single", args.n)
    start = time.perf_counter()
    latencies = append_all(log, events)
    elapsed = time.perf_counter() - start
    durable = "commit" if postgres else "fsync"
    rows.append(row(f"append, 1 process ({durable})", args.n, elapsed, latencies))

    wall, latencies = concurrent_appends(multi, key_path, postgres, args.n, args.procs)
    rows.append(row(f"append, {args.procs} processes ({durable})", args.n, wall, latencies))

    start = time.perf_counter()
    latencies = append_all(log, events)
    rows.append(row("re-append, same instance (warm)", args.n, time.perf_counter() - start,
                    latencies))
    fresh = open_at(single, str(key_path), postgres)
    start = time.perf_counter()
    latencies = append_all(fresh, events)
    rows.append(row("re-append, new instance (cold)", args.n, time.perf_counter() - start,
                    latencies))

    for name, where in (("verify, 1-process log", single), ("verify, multi-process log", multi)):
        start = time.perf_counter()
        result = verify_log(open_at(where, str(key_path), postgres), public_key)
        elapsed = time.perf_counter() - start
        if not result.ok or result.records != args.n:
            raise SystemExit(f"{result.path}: verify failed: {result.problems[:1]}")
        rows.append(row(f"{name} ({result.checkpoints} checkpoints)", result.records, elapsed))

    start = time.perf_counter()
    records = list(log.records())
    rows.append(row("read records()", len(records), time.perf_counter() - start))
    start = time.perf_counter()
    timeline = replay(records, "bench-single")
    replayed = time.perf_counter() - start
    if not timeline.ok or len(timeline.records) != args.n:
        raise SystemExit(f"replay found violations: {timeline.violations[:1]}")
    rows.append(row("replay one run (after read)", len(timeline.records), replayed))

    shared = open_at(multi, str(key_path), postgres)
    run = "bench-p0-0000"
    start = time.perf_counter()
    selected = list(shared.records_for_run(run))
    elapsed = time.perf_counter() - start
    if not selected or selected != [r for r in shared.records() if r.run == run]:
        raise SystemExit(f"records_for_run({run!r}) is not that run's records")
    rows.append(row(f"records_for_run, 1 run of {args.n} records", len(selected), elapsed))
    for opened in (log, fresh, shared):
        if isinstance(opened, PostgresAuditLog):
            opened.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="records per log (default 2000)")
    parser.add_argument("--procs", type=int, default=4, help="concurrent writers (default 4)")
    parser.add_argument("--dir", help="parent directory for the files (default: system temp)")
    backend = parser.add_mutually_exclusive_group()
    backend.add_argument("--dsn", help="measure PostgreSQL in this database (libpq URI or "
                         "key=value; prefer ~/.pgpass to a password here)")
    backend.add_argument("--postgres", action="store_true",
                         help="measure PostgreSQL on a throwaway local server")
    parser.add_argument("--verify-n", type=int, metavar="N",
                        help="only time verify of a quickly written N-record log (and N/10) "
                        "against SHA-256 over its lines: bench/audit_verify.py")
    args = parser.parse_args()
    if args.verify_n:
        audit_verify.run(args.verify_n, args.dir)
        return

    workdir = Path(tempfile.mkdtemp(prefix="keyturn-bench-audit-", dir=args.dir))
    try:
        key_path = workdir / "signing.pem"
        generate_signing_key(key_path)
        if args.dsn is None and not args.postgres:
            single, multi = workdir / "single.jsonl", workdir / "multi.jsonl"
            rows = measure(str(single), str(multi), False, key_path, args)
            where, size = f"dir={workdir.parent}", single.stat().st_size
            stored = "log size"
        else:
            server = throwaway_postgres() if args.postgres else nullcontext(args.dsn)
            with server as dsn, postgres_schemas(dsn, ("single", "multi")) as (single, multi):
                rows = measure(single, multi, True, key_path, args)
                where, size = describe(parse_dsn(dsn)), table_bytes(single)
            stored = f"{RECORDS} size with its indexes"
        print(f"audit log benchmark: n={args.n}, procs={args.procs}, cpus={os.cpu_count()}, "
              f"{where}")
        print(f"{stored} {size:,} bytes ({size / args.n:.0f} bytes/record), 1-process log\n")
        print_table(["case", "count", "total s", "per item ms", "per s", "p50 ms", "p95 ms"], rows)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
