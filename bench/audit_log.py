"""Audit log benchmark: fsync'd appends, idempotent re-appends, verify and replay.

Measures ``keyturn.audit.JsonlAuditLog`` on a real file (the default temp dir, or
``--dir``; fsync cost depends entirely on that disk):

append, 1 process
    N records appended one at a time by one process. Each append takes the file
    lock, reads the new tail, writes one line and fsyncs it. A signing key is
    set, so every 100th append also signs and writes a checkpoint (as production
    writers do with KEYTURN_AUDIT_SIGNING_KEY).
append, P processes
    The same N records split over P processes (default 4) appending to one file
    at once: lock contention. Wall time runs from the moment all writers are
    ready to the last append; per-item latency includes waiting for the lock.
re-append (warm)
    Every event appended again through the instance that wrote them: the
    idempotent path (event id already known, the stored record is read back).
re-append (cold)
    The same through a fresh instance, whose first call reads the whole file to
    learn the event ids; the total includes that one-time scan.
verify
    ``keyturn.audit.verify`` over each log, checking chain and checkpoint signatures.
read + replay
    Parse every record (``records()``), then ``keyturn.audit.replay`` one run.

Reading the table: ``per item ms`` is total seconds / count; ``per s`` is
count / total seconds; p50/p95 are per-call latencies (single calls only).
Records look like real rotations: 7 records per credential, references and
``sha256:`` fingerprints in details.

    .venv/bin/python bench/audit_log.py [--n 2000] [--procs 4] [--dir PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path

from figures import pct, print_table

from keyturn.audit import (
    AuditEvent,
    JsonlAuditLog,
    event_id,
    generate_signing_key,
    load_public_key,
    load_signing_key,
    replay,
    verify,
)

STEPS = (
    ("precheck", "", {"strategy": "rotate", "old_credential_ids": ["AKIAOLD"]}),
    ("create", "", {"credential_id": "AKIANEW", "staging": "vault:keyturn/staging"}),
    ("verify_new", "", {"credential_id": "AKIANEW"}),
    ("promote", "", {"targets": ["vault:ci/aws"], "version": 2}),
    ("revoke_old", "disable", {"phase": "disable", "credential_id": "AKIAOLD"}),
    ("revoke_old", "delete", {"phase": "delete", "credential_id": "AKIAOLD"}),
    ("confirm_revoked", "", {"credential_id": "AKIAOLD"}),
)


def make_events(run: str, count: int) -> list[AuditEvent]:
    """``count`` records of one run, 7 per credential, in protocol order."""
    events = []
    for i in range(count):
        cred, (step, phase, details) = f"cred-{i // len(STEPS):05d}", STEPS[i % len(STEPS)]
        fingerprint = "sha256:" + hashlib.sha256(f"{run}{cred}".encode()).hexdigest()[:16]
        events.append(AuditEvent(
            run=run,
            event_id=event_id(run, cred, step, phase, "succeeded"),
            tier="tier1",
            credential=cred,
            provider="aws.iam_access_key",
            step=step,
            outcome="succeeded",
            actor="worker",
            details={**details, "fingerprint": fingerprint},
        ))
    return events


def append_all(log: JsonlAuditLog, events: list[AuditEvent]) -> list[float]:
    """Append each event; the latency of every call in seconds."""
    latencies = []
    for event in events:
        start = time.perf_counter()
        log.append(event)
        latencies.append(time.perf_counter() - start)
    return latencies


def writer(path: str, key_path: str, run: str, count: int, barrier, results) -> None:
    """One of the concurrent processes: build events, wait for the others, append."""
    log = JsonlAuditLog(path, signing_key=load_signing_key(key_path), checkpoint_every=100)
    events = make_events(run, count)
    barrier.wait()
    start = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes on Linux
    latencies = append_all(log, events)
    results.put((start, time.monotonic(), latencies))


def concurrent_appends(path: Path, key_path: Path, total: int, procs: int) -> tuple[float, list]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    shares = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
    workers = [
        ctx.Process(
            target=writer, args=(str(path), str(key_path), f"bench-p{i}", n, barrier, results)
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



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="records per log (default 2000)")
    parser.add_argument("--procs", type=int, default=4, help="concurrent writers (default 4)")
    parser.add_argument("--dir", help="parent directory for the logs (default: system temp)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="keyturn-bench-audit-", dir=args.dir))
    try:
        key_path = workdir / "signing.pem"
        generate_signing_key(key_path)
        public_key = load_public_key(f"{key_path}.pub")
        single, multi = workdir / "single.jsonl", workdir / "multi.jsonl"
        rows = []

        log = JsonlAuditLog(single, signing_key=load_signing_key(key_path), checkpoint_every=100)
        events = make_events("bench-single", args.n)
        start = time.perf_counter()
        latencies = append_all(log, events)
        elapsed = time.perf_counter() - start
        rows.append(row("append, 1 process (fsync)", args.n, elapsed, latencies))

        wall, latencies = concurrent_appends(multi, key_path, args.n, args.procs)
        rows.append(row(f"append, {args.procs} processes (fsync)", args.n, wall, latencies))

        start = time.perf_counter()
        latencies = append_all(log, events)
        rows.append(row("re-append, same instance (warm)", args.n, time.perf_counter() - start,
                        latencies))
        fresh = JsonlAuditLog(single, signing_key=load_signing_key(key_path), checkpoint_every=100)
        start = time.perf_counter()
        latencies = append_all(fresh, events)
        rows.append(row("re-append, new instance (cold)", args.n, time.perf_counter() - start,
                        latencies))

        for name, path in (("verify, 1-process log", single), ("verify, multi-process log", multi)):
            start = time.perf_counter()
            result = verify(path, public_key)
            elapsed = time.perf_counter() - start
            if not result.ok or result.records != args.n:
                raise SystemExit(f"{path}: verify failed: {result.problems[:1]}")
            rows.append(row(name, result.records, elapsed))

        start = time.perf_counter()
        records = list(log.records())
        parsed = time.perf_counter() - start
        rows.append(row("read records()", len(records), parsed))
        start = time.perf_counter()
        timeline = replay(records, "bench-single")
        replayed = time.perf_counter() - start
        if not timeline.ok or len(timeline.records) != args.n:
            raise SystemExit(f"replay found violations: {timeline.violations[:1]}")
        rows.append(row("replay one run (after read)", len(timeline.records), replayed))

        size = single.stat().st_size
        marks = log.checkpoints_path
        checkpoints = marks.read_bytes().count(b"\n") if marks.exists() else 0
        print(f"audit log benchmark: n={args.n}, procs={args.procs}, cpus={os.cpu_count()}, "
              f"dir={workdir.parent}")
        print(f"log size {size:,} bytes ({size / args.n:.0f} bytes/record), "
              f"{checkpoints} signed checkpoints\n")
        print_table(["case", "count", "total s", "per item ms", "per s", "p50 ms", "p95 ms"], rows)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
