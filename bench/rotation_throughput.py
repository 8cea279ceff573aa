"""End-to-end rotation throughput on a real Temporal dev server (SQLite persistence).

Starts ``temporal server start-dev`` through ``keyturn.devstack.servers.TemporalDevServer``
(127.0.0.1, free ports, temp state dir, stopped at the end) and one in-process
worker from ``keyturn.worker.build_workers``: the real workflows (RunbookWorkflow,
TierWorkflow, CredentialRotationWorkflow), the real activities and encrypting data
converter, a real fsync'd JSONL audit log in the temp dir, and the in-memory
provider and store from tests/workflows/memory_provider.py (so provider calls
cost nothing: this measures orchestration, persistence and audit only).

A warm-up run of one credential goes first (the workflow sandbox imports its
modules on first use), then one run rotates N credentials (default 100) in one
tier with ``concurrency`` 50 (default), each through precheck, create, verify_new,
promote, revoke_old (disable, delete) and confirm_revoked.

Reading the figures:

run, start -> result   wall seconds from ``keyturn.operations.runs.start`` to the run's result;
                       ``creds/s`` is N / that
per credential         from the audit log: the ``precheck`` record's timestamp to the
                       ``confirm_revoked`` record's, per credential (the time spent
                       before precheck finished, child start included, is not in it);
                       mean in ``per item ms``, first precheck to last confirm in ``total s``
peak in flight         most credentials between those two records at one moment; it
                       should never exceed the tier's ``concurrency``
history events         events in CredentialRotationWorkflow histories (the first 10;
                       DESIGN promises well under 200), and in the tier and run
                       workflows, whose histories grow with the number of credentials;
                       workflow tasks that timed out or failed mean an overloaded worker
CPU                    seconds the dev server and this process (worker + client) used
                       during the measured run, against cores x wall seconds

``--in-memory`` runs the dev server without its SQLite file, to show what
persistence costs. The audit log is verified at the end as a sanity check.

    .venv/bin/python bench/rotation_throughput.py [--n 100] [--concurrency 50] [--in-memory]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from figures import pct, print_table
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from keyturn.audit import JsonlAuditLog, verify
from keyturn.codec import data_converter, new_key
from keyturn.devstack.servers import TemporalDevServer
from keyturn.operations import runs
from keyturn.providers import registry
from keyturn.runbook import loads, plan, validate
from keyturn.worker import build_workers, running
from keyturn.workflows.runbook import tier_workflow_id
from keyturn.workflows.tier import credential_workflow_id

ROOT = Path(__file__).resolve().parents[1]
TASK_PROBLEMS = (
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
)
HISTORY_SAMPLE = 10  # credential histories fetched (all have the same shape on success)
RECORDS_PER_CREDENTIAL = 7  # precheck, create, verify_new, promote, revoke_old x2, confirm_revoked

HEADER = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: bench-rotation, incident: INC-BENCH-2}}
spec:
  stores:
    vault: {{type: vault_kv, address: "http://127.0.0.1:1", mount: secret}}
  tiers:
    - id: tier1
      concurrency: {concurrency}
      credentials:
"""


def runbook_text(accounts: list[str], concurrency: int) -> str:
    creds = "".join(
        f"        - id: {a}\n          provider: memory.key\n"
        f"          target: {{account: {a}}}\n"
        f"          deliver: [{{store: vault, path: app/{a}}}]\n"
        for a in accounts
    )
    return HEADER.format(concurrency=concurrency) + creds


class Bench:
    """One worker on one task queue; ``rotate`` runs one runbook of N credentials."""

    def __init__(self, client: Client, provider, store, audit: JsonlAuditLog) -> None:
        self.client, self.provider, self.store, self.audit = client, provider, store, audit
        self.task_queue = f"bench-{uuid.uuid4().hex[:8]}"

    async def rotate(self, prefix: str, n: int, concurrency: int) -> tuple[str, list[str], float]:
        accounts = [f"{prefix}-{i:05d}" for i in range(n)]
        for account in accounts:
            key_id, secret = self.provider.seed(account)
            self.store.write(f"app/{account}", secret, {"credential_id": key_id})
        text = runbook_text(accounts, concurrency)
        runbook = validate(loads(text, "bench.yaml"), known_providers=["memory.key"])
        digest = hashlib.sha256(text.encode()).hexdigest()
        run_plan = plan(runbook, run_id=f"bench-rotation-{prefix}-{uuid.uuid4().hex[:6]}",
                        requested_by="bench", source_sha256=digest)
        start = time.perf_counter()
        run_id = await runs.start(self.client, run_plan, self.task_queue, search_attributes=True)
        status = await asyncio.wait_for(runs.wait(self.client, run_id), timeout=600)
        elapsed = time.perf_counter() - start
        if status.state != "succeeded":
            raise SystemExit(f"run {run_id} ended {status.state}: {status}")
        return run_id, accounts, elapsed

    async def history_events(self, workflow_id: str) -> tuple[int, int]:
        """(events, workflow tasks that timed out or failed) in one workflow's history."""
        history = await self.client.get_workflow_handle(workflow_id).fetch_history()
        bad = sum(1 for e in history.events if e.event_type in TASK_PROBLEMS)
        return len(history.events), bad


def peak_in_flight(intervals: list[tuple[datetime, datetime]]) -> int:
    """Most intervals open at one moment (a lower bound on credentials in flight)."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    peak = current = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


def durations(audit: JsonlAuditLog, run_id: str) -> tuple[list[float], int, float, int]:
    """Per-credential precheck -> confirm_revoked seconds, record count, audit span, and
    the peak number of credentials between those two records at once."""
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    count = 0
    for r in audit.records():
        if r.run != run_id:
            continue
        count += 1
        ts = datetime.fromisoformat(r.ts)
        if r.step == "precheck" and r.credential:
            first.setdefault(r.credential, ts)
        elif r.step == "confirm_revoked" and r.outcome == "succeeded" and r.credential:
            last[r.credential] = ts
    if set(first) != set(last):
        raise SystemExit(f"{len(set(first) - set(last))} credential(s) never confirmed revoked")
    span = (max(last.values()) - min(first.values())).total_seconds()
    peak = peak_in_flight([(first[c], last[c]) for c in first])
    return [(last[c] - first[c]).total_seconds() for c in first], count, span, peak


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")




async def bench(
    address: str, server_pid: int, workdir: Path, args: argparse.Namespace
) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "workflows"))
    from memory_provider import MemoryProvider, MemoryStore

    client = await Client.connect(address, data_converter=data_converter(new_key()))
    provider, store = MemoryProvider(), MemoryStore()
    audit = JsonlAuditLog(workdir / "audit.jsonl")
    b = Bench(client, provider, store, audit)
    workers = build_workers(
        client, task_queue=b.task_queue, audit_log=audit, families=[MemoryProvider.family],
        provider_for=lambda name: provider, store_for=lambda store_plan: store,
        max_concurrent_activities=args.activities, rate_limits={MemoryProvider.family: 10_000},
    )
    registry.register(MemoryProvider)
    async with running(workers):
        _, _, warm = await b.rotate("warm", 1, 1)
        cpu_before = process_cpu(server_pid), process_cpu(os.getpid())
        run_id, accounts, elapsed = await b.rotate("c", args.n, args.concurrency)
        cpu_after = process_cpu(server_pid), process_cpu(os.getpid())
        cred_histories = [await b.history_events(credential_workflow_id(run_id, a))
                          for a in accounts[:HISTORY_SAMPLE]]
        tier_events, tier_bad = await b.history_events(tier_workflow_id(run_id, "tier1"))
        run_events, run_bad = await b.history_events(run_id)
    cred_events = [events for events, _ in cred_histories]
    cred_bad = sum(bad for _, bad in cred_histories)

    per_cred, records, span, peak = durations(audit, run_id)
    if records < args.n * RECORDS_PER_CREDENTIAL:
        raise SystemExit(f"only {records} audit records for {args.n} credentials")
    checked = verify(workdir / "audit.jsonl")
    if not checked.ok:
        raise SystemExit(f"audit log does not verify: {checked.problems[:1]}")

    print(f"rotation throughput benchmark: n={args.n}, concurrency={args.concurrency}, "
          f"max_concurrent_activities={args.activities}, cpus={os.cpu_count()}, "
          f"temporal dev server ({'in memory' if args.in_memory else 'SQLite file'}) at {address}")
    server_cpu, worker_cpu = (after - before for after, before in zip(cpu_after, cpu_before,
                                                                       strict=True))
    print(f"warm-up run (1 credential) {warm:.3f} s; audit log {checked.records} records, "
          f"verifies ok")
    print(f"CPU during the run: temporal server {server_cpu:.1f} s, worker process "
          f"{worker_cpu:.1f} s, of {elapsed * (os.cpu_count() or 1):.1f} s available\n")
    print_table(["figure", "count", "total s", "per item ms", "per s", "p50 ms", "p95 ms"], [
        ["run, start -> result", str(args.n), f"{elapsed:.3f}", f"{elapsed / args.n * 1e3:.1f}",
         f"{args.n / elapsed:.1f}", "-", "-"],
        ["per credential, precheck -> confirm_revoked", str(len(per_cred)), f"{span:.3f}",
         f"{sum(per_cred) / len(per_cred) * 1e3:.1f}", "-",
         f"{pct(per_cred, 50) * 1e3:.1f}", f"{pct(per_cred, 95) * 1e3:.1f}"],
        ["audit records written", str(records), f"{elapsed:.3f}", f"{elapsed / records * 1e3:.2f}",
         f"{records / elapsed:.1f}", "-", "-"],
        [f"peak credentials in flight (tier concurrency {args.concurrency})", str(peak),
         "-", "-", "-", "-", "-"],
    ])
    if peak > args.concurrency:
        print(f"\nFINDING: {peak} credentials were between precheck and confirm_revoked at "
              f"once, more than the tier's concurrency of {args.concurrency}.")
    print()
    print_table(["history", "events", "per credential", "task timeouts/failures"], [
        [f"CredentialRotationWorkflow (min..max of {len(cred_events)})",
         f"{min(cred_events)}..{max(cred_events)}", "-", str(cred_bad)],
        [f"TierWorkflow ({args.n} credentials)", str(tier_events),
         f"{tier_events / args.n:.1f}", str(tier_bad)],
        ["RunbookWorkflow (1 tier)", str(run_events), "-", str(run_bad)],
    ])


class InMemoryTemporalDevServer(TemporalDevServer):
    """The same dev server without ``--db-filename``: nothing persisted (for comparison)."""

    def args(self) -> list[str]:
        args = super().args()
        at = args.index("--db-filename")
        return args[:at] + args[at + 2 :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="credentials (default 100)")
    parser.add_argument("--concurrency", type=int, default=50, help="tier concurrency (default 50)")
    parser.add_argument("--activities", type=int, default=16,
                        help="worker max_concurrent_activities (default 16, as build_worker)")
    parser.add_argument("--in-memory", action="store_true",
                        help="dev server without its SQLite file, to see what persistence costs")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="keyturn-bench-rotation-"))
    server_class = InMemoryTemporalDevServer if args.in_memory else TemporalDevServer
    server = server_class(workdir / "temporal")
    try:
        server.start()
        asyncio.run(bench(server.address, server.pid, workdir, args))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
