"""A stopping worker lets the activity in flight finish within its shutdown grace, and the
step is recorded as done in the workflow's history (not retried by the next worker)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta

import pytest
from memory_provider import MemoryProvider, MemoryStore
from record_histories import HEADER, cred, tier
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment
from workflow_env import TEST_SERVER, eventually

from keyturn.audit import open_log
from keyturn.codec import data_converter, new_key
from keyturn.operations import runs
from keyturn.providers import registry
from keyturn.providers.errors import TransientProviderError
from keyturn.runbook import loads, plan, validate
from keyturn.worker import build_workers
from keyturn.workflows.tier import credential_workflow_id


class SlowVerify(MemoryProvider):
    """verify_new blocks until released, or until the stopping worker cancels it: an
    activity in flight when the worker stops."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.stopping = threading.Event(), threading.Event()
        self.released = threading.Event()

    def verify(self, target, secret, ctx=None):
        self.entered.set()
        while not self.released.wait(0.05):
            if activity.is_worker_shutdown():
                self.stopping.set()
            if activity.is_cancelled():
                raise TransientProviderError("verify_new cut off by the worker's shutdown")
        return super().verify(target, secret)


async def completed_steps(env, run_id: str) -> list[str]:
    history = await env.client.get_workflow_handle(
        credential_workflow_id(run_id, "a")).fetch_history()
    scheduled = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}
    return [scheduled[e.activity_task_completed_event_attributes.scheduled_event_id]
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]


@pytest.mark.parametrize(("grace", "finished"), [(timedelta(seconds=20), True),
                                                 (timedelta(0), False)])
async def test_the_activity_in_flight_finishes_within_the_shutdown_grace(grace, finished,
                                                                         tmp_path):
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=data_converter(new_key()))
    provider, store = SlowVerify(), MemoryStore()
    registry.register(MemoryProvider)
    try:
        key_id, secret = provider.seed("a")
        store.write("app/a", secret, {"credential_id": key_id})
        text = HEADER + tier("tier1", cred("a"))
        run_plan = plan(validate(loads(text, "t.yaml"), known_providers=["memory.key"]),
                        run_id=f"stop-{uuid.uuid4().hex[:6]}", requested_by="dave",
                        source_sha256="0")
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        workers = build_workers(env.client, task_queue=queue,
                                audit_log=open_log(tmp_path / "audit.jsonl"),
                                families=["memory"], rate_limits={"memory": 1000},
                                provider_for=lambda name: provider, store_for=lambda p: store,
                                shutdown_grace=grace)
        running = [asyncio.create_task(w.run()) for w in workers]
        await runs.start(env.client, run_plan, queue, search_attributes=False)
        await asyncio.to_thread(provider.entered.wait, 30)

        stopping = asyncio.gather(*(w.shutdown() for w in workers))
        if finished:  # released once the worker is stopping: within the grace
            assert await asyncio.to_thread(provider.stopping.wait, 30)
            provider.released.set()
        await stopping  # without a grace, the stop cancels verify_new, which is never released
        await asyncio.gather(*running, return_exceptions=True)

        steps = await eventually(lambda: completed_steps(env, run_plan.run_id))
        assert ("verify_new" in steps) is finished, steps
    finally:
        registry.unregister(MemoryProvider.name)
        await env.shutdown()
