"""Is anyone working on this run? Said at once, from the server, without a worker.

A workflow query needs a worker to answer it: without one, `status` used to
hang for the RPC timeout and then call a live run missing. The server knows
better: which workers poll the run's task queue, and how long the run's next
workflow task has waited to be picked up. `unserved` asks it both (two cheap
calls that no worker takes part in) and says what to do.
"""

from __future__ import annotations

import asyncio
import difflib
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import PendingWorkflowTaskState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from keyturn.errors import KeyturnError
from keyturn.operations.errors import NoWorker, RunNotFound, temporal_error
from keyturn.operations.listing import list_runs

STALLED_AFTER = timedelta(seconds=15)
"""A workflow task scheduled this long ago and not picked up: its worker is gone (a worker
that stopped a moment ago is still listed as polling for a minute or two)."""

POLLER_GRACE_SECONDS = 5.0
"""How long a queue may show no poller before keyturn says no worker serves it."""

START_ONE = ("start one with `keyturn worker` (or `python worker.py`) with the same "
             "KEYTURN_TASK_QUEUE; the run goes on from where it stopped")


async def unserved(client: Client, run_id: str, *, now: datetime | None = None) -> str | None:
    """Why no worker can work on `run_id` or answer for it now, or None. RunNotFound when
    there is no such run. (An ended run's details are read from its history by a worker.)"""
    try:
        described = await client.get_workflow_handle(run_id).describe()
    except RPCError as exc:
        raise temporal_error(exc, f"no run {run_id!r}") from exc
    queue = described.raw_description.execution_config.task_queue.name
    if not await polled_soon(client, queue):
        state = ("is running" if described.status == WorkflowExecutionStatus.RUNNING else
                 f"has ended ({described.status.name.lower() if described.status else 'closed'})")
        return (f"run {run_id} {state}, but no worker polls its task queue {queue}, and only a "
                f"worker can run it or answer for it: {START_ONE}")
    if described.status != WorkflowExecutionStatus.RUNNING:
        return None
    pending = described.raw_description.pending_workflow_task
    if pending.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED:
        waited = (now or datetime.now(UTC)) - pending.scheduled_time.ToDatetime(UTC)
        if waited > STALLED_AFTER:
            return (f"run {run_id} has waited {int(waited.total_seconds())} s for a worker on "
                    f"task queue {queue} (the one listed there may have stopped): {START_ONE}")
    return None


async def polled_soon(client: Client, queue: str, grace: float = POLLER_GRACE_SECONDS) -> bool:
    """Whether a worker polls `queue` now or within `grace` seconds (a worker started a
    moment ago is not listed until its first poll reaches the server)."""
    deadline = asyncio.get_running_loop().time() + grace
    while not await polled(client, queue):
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.25)
    return True


async def polled(client: Client, queue: str,
                 kind: int = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW) -> bool:
    """Whether a worker polls `queue` for `kind` tasks, workflow by default (True if the
    server cannot tell)."""
    try:
        answer = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind))
    except RPCError as exc:
        if exc.status == RPCStatusCode.UNIMPLEMENTED:
            return True
        raise temporal_error(exc, f"cannot describe task queue {queue}") from exc
    return bool(answer.pollers)


async def served(client: Client, run_id: str) -> None:
    """Return if a worker can answer for `run_id`: NoWorker (a query would wait for a worker
    that is not there), or RunNotFound naming the closest recent run id."""
    try:
        reason = await unserved(client, run_id)
    except RunNotFound:
        raise await no_such_run(client, run_id) from None
    if reason:
        raise NoWorker(reason)


async def no_such_run(client: Client, run_id: str) -> RunNotFound:
    try:
        known = [r["run_id"] for r in await list_runs(client, limit=100)]
    except (KeyturnError, RPCError):  # no visibility: no suggestion
        known = []
    close = difflib.get_close_matches(run_id, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return RunNotFound(f"no run {run_id!r}{hint} (`keyturn status` lists recent runs)")
