"""The keyturn worker: hosts the workflows and the protocol activities on one task queue."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from keyturn.activities.recording import StepRecorder
from keyturn.activities.steps import RotationSteps
from keyturn.audit import AuditLog, open_log
from keyturn.client import connect
from keyturn.config import ConfigError, Settings
from keyturn.providers.base import Provider
from keyturn.providers.registry import get_provider
from keyturn.runbook.plan_model import StorePlan
from keyturn.stores.base import Store
from keyturn.stores.registry import open_store
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.runbook import RunbookWorkflow
from keyturn.workflows.tier import TierWorkflow

WORKFLOWS = [RunbookWorkflow, TierWorkflow, CredentialRotationWorkflow]
log = logging.getLogger("keyturn.worker")


def default_store_for() -> Callable[[StorePlan], Store]:
    @functools.cache
    def opened(name: str, type_: str, config_json: str) -> Store:
        return open_store(name, type_, json.loads(config_json))

    return lambda plan: opened(plan.name, plan.type, json.dumps(plan.config, sort_keys=True))


def build_worker(
    client: Client,
    *,
    task_queue: str,
    audit_log: AuditLog,
    provider_for: Callable[[str], Provider] | None = None,
    store_for: Callable[[StorePlan], Store] | None = None,
    max_concurrent_activities: int = 16,
) -> Worker:
    """A worker with the real activities; tests inject providers, stores and the audit log."""
    recorder = StepRecorder(audit_log)
    steps = RotationSteps(
        provider_for=provider_for or functools.cache(get_provider),
        store_for=store_for or default_store_for(),
        recorder=recorder,
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[
            recorder.append,
            steps.precheck,
            steps.create,
            steps.verify_new,
            steps.promote,
            steps.revoke_old,
            steps.confirm_revoked,
            steps.rollback,
        ],
        activity_executor=ThreadPoolExecutor(max_workers=max_concurrent_activities),
        max_concurrent_activities=max_concurrent_activities,
    )


async def serve(settings: Settings) -> None:
    """Run a worker until SIGINT or SIGTERM, then let in-flight activities finish."""
    if not settings.codec_key:
        log.warning("KEYTURN_CODEC_KEY is not set: payloads in Temporal history are NOT encrypted")
    client = await connect(settings)
    worker = build_worker(client, task_queue=settings.task_queue, audit_log=open_log(settings.audit_log))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker polling task queue %r at %s", settings.task_queue, settings.temporal_address)
        await stop.wait()
        log.info("shutting down: finishing in-flight activities")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(Settings.from_env()))
    except ConfigError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
