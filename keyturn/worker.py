"""The keyturn worker: the workflows on the run's task queue, each provider family's steps on its own.

`keyturn worker` serves every queue by default; `--queue workflows --queue aws`
serves some, so a deployment can give a family its own processes (and the
credentials that family needs) while the server enforces each family's
activities-per-second limit across all of them. `--metrics-port` serves keyturn's
Prometheus metrics (keyturn.metrics), `--temporal-metrics-port` the Temporal SDK's own;
`--log-format json` logs one JSON object a line (keyturn.logfmt).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from keyturn.activities.locks import LockActivities
from keyturn.activities.notify import notify
from keyturn.activities.preflight import PreflightChecks
from keyturn.activities.recording import StepRecorder
from keyturn.activities.steps import RotationSteps
from keyturn.audit import AuditLog, JsonlAuditLog, open_log
from keyturn.config import ConfigError, Settings
from keyturn.logfmt import configure_logging
from keyturn.metrics import serve_worker_metrics
from keyturn.operations.connect import connect
from keyturn.providers.base import Provider
from keyturn.providers.registry import get_provider, provider_class, provider_names
from keyturn.ratelimits import rate_limit
from keyturn.runbook.plan_model import StorePlan
from keyturn.stores.base import Store
from keyturn.stores.registry import open_store
from keyturn.workflows.common import family_queue
from keyturn.workflows.lock import TargetLockWorkflow
from keyturn.workflows.preflight import PreflightWorkflow
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.runbook import RunbookWorkflow
from keyturn.workflows.tier import TierWorkflow

if TYPE_CHECKING:
    from keyturn.audit.postgres import PostgresAuditLog

WORKFLOWS = [RunbookWorkflow, TierWorkflow, CredentialRotationWorkflow, TargetLockWorkflow,
             PreflightWorkflow]
log = logging.getLogger("keyturn.worker")


def default_store_for() -> Callable[[StorePlan], Store]:
    @functools.cache
    def opened(name: str, type_: str, config_json: str) -> Store:
        return open_store(name, type_, json.loads(config_json))

    return lambda plan: opened(plan.name, plan.type, json.dumps(plan.config, sort_keys=True))


WORKFLOWS_QUEUE = "workflows"
"""The name `--queue` uses for the run's own task queue (workflows and audit records)."""


def installed_families() -> list[str]:
    """The families of every installed provider, each once."""
    return sorted({provider_class(name).family for name in provider_names()})


def build_workers(
    client: Client,
    *,
    task_queue: str,
    audit_log: AuditLog,
    families: Iterable[str] | None = None,
    workflows: bool = True,
    rate_limits: Mapping[str, float] | None = None,
    provider_for: Callable[[str], Provider] | None = None,
    store_for: Callable[[StorePlan], Store] | None = None,
    max_concurrent_activities: int = 16,
    shutdown_grace: timedelta = timedelta(0),
) -> list[Worker]:
    """The workers of one process; tests inject providers, stores and the audit log.

    One worker polls `task_queue` for the workflows, their audit records and
    reads of target holds (unless workflows=False); one per provider family polls `<task_queue>.<family>`
    for the protocol steps, limited to the family's activities per second. Once a
    worker is told to stop, its in-flight activities get `shutdown_grace` to finish.
    """
    recorder = StepRecorder(audit_log)
    steps = RotationSteps(
        provider_for=provider_for or functools.cache(get_provider),
        store_for=store_for or default_store_for(),
        recorder=recorder,
    )
    checks = PreflightChecks(provider_for=steps.provider_for, store_for=steps.store_for)
    executor = ThreadPoolExecutor(max_workers=max_concurrent_activities)
    workers = []
    if workflows:
        workers.append(Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=[recorder.append, notify, LockActivities(client).holder],
            activity_executor=executor,
            max_concurrent_activities=max_concurrent_activities,
            graceful_shutdown_timeout=shutdown_grace,
        ))
    for family in installed_families() if families is None else families:
        workers.append(Worker(
            client,
            task_queue=family_queue(task_queue, family),
            activities=[
                steps.precheck,
                steps.create,
                steps.verify_new,
                steps.promote,
                steps.revoke_old,
                steps.confirm_revoked,
                steps.rollback,
                checks.preflight,
            ],
            activity_executor=executor,
            max_concurrent_activities=max_concurrent_activities,
            max_task_queue_activities_per_second=rate_limit(family, rate_limits),
            graceful_shutdown_timeout=shutdown_grace,
        ))
    return workers


@contextlib.asynccontextmanager
async def running(workers: list[Worker]) -> AsyncIterator[list[Worker]]:
    """Run every worker until the block ends, then stop them: in-flight activities get the
    `shutdown_grace` the workers were built with to finish."""
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield workers


def select_queues(queues: Iterable[str]) -> tuple[bool, list[str]]:
    """`--queue` values -> (serve workflows?, families); none given means everything."""
    chosen = list(dict.fromkeys(queues))
    if not chosen:
        return True, installed_families()
    known = installed_families()
    unknown = [q for q in chosen if q != WORKFLOWS_QUEUE and q not in known]
    if unknown:
        raise ConfigError(
            f"unknown queue(s) {', '.join(unknown)}: choose from {WORKFLOWS_QUEUE}, "
            + ", ".join(known)
        )
    return WORKFLOWS_QUEUE in chosen, [q for q in chosen if q != WORKFLOWS_QUEUE]


def audit_log_where(audit_log: JsonlAuditLog | PostgresAuditLog) -> str:
    """How the worker's log names its audit log: the file's absolute path, or the
    PostgreSQL connection parameters without the password."""
    if isinstance(audit_log, JsonlAuditLog):
        return f"file {audit_log.path.absolute()}"
    return audit_log.where


@dataclass(frozen=True)
class MetricsPorts:
    """Where the worker serves Prometheus metrics: keyturn's (`port`) and the Temporal
    SDK's (`temporal_port`) on `address`; None serves nothing."""

    port: int | None = None
    temporal_port: int | None = None
    address: str = "127.0.0.1"

    def start(self) -> None:
        """Start the metric servers; the SDK's must be set before any client connects."""
        if self.port is not None:
            try:
                serve_worker_metrics(self.port, self.address)
            except OSError as exc:
                raise ConfigError(f"--metrics-port {self.port}: {exc}") from None
            log.info("keyturn metrics on http://%s:%d/metrics", self.address, self.port)
        if self.temporal_port is not None:
            bind = f"{self.address}:{self.temporal_port}"
            sdk = PrometheusConfig(bind_address=bind, counters_total_suffix=True,
                                   unit_suffix=True, durations_as_seconds=True)
            Runtime.set_default(Runtime(telemetry=TelemetryConfig(metrics=sdk)),
                                error_if_already_set=True)
            log.info("Temporal SDK metrics on http://%s/metrics", bind)


async def serve(settings: Settings, queues: Iterable[str] = (),
                metrics: MetricsPorts = MetricsPorts()) -> None:
    """Run the workers until SIGINT or SIGTERM, then let in-flight activities finish."""
    metrics.start()
    if not settings.codec_key:
        log.warning("KEYTURN_CODEC_KEY is not set: payloads in Temporal history are NOT encrypted")
    workflows, families = select_queues(queues)
    client = await connect(settings)
    log.info("connected to Temporal at %s, namespace %r, %s", settings.temporal_address,
             settings.namespace, settings.temporal_auth.describe())
    audit_log = open_log(settings.audit_log, dsn=settings.audit_dsn)
    log.info("writing audit records to %s", audit_log_where(audit_log))
    workers = build_workers(
        client,
        task_queue=settings.task_queue,
        audit_log=audit_log,
        families=families,
        workflows=workflows,
        rate_limits=settings.rate_limits,
        shutdown_grace=settings.shutdown_grace,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(workers):
        for worker in workers:
            limit = worker.config().get("max_task_queue_activities_per_second")
            log.info("polling task queue %r%s at %s", worker.task_queue,
                     f" ({limit:g} activities/s)" if limit else "", settings.temporal_address)
        await stop.wait()
        log.info("shutting down: in-flight activities get up to %s to finish "
                 "(KEYTURN_WORKER_SHUTDOWN_GRACE)", settings.shutdown_grace)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def main(queues: Iterable[str] = (), metrics: MetricsPorts = MetricsPorts(),
         log_format: str = "text") -> None:
    configure_logging(log_format, LOG_FORMAT)
    try:
        asyncio.run(serve(Settings.from_env(), queues, metrics))
    except ConfigError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
