"""Cancelling a run: the run is told who cancels it and why, then its workflow is cancelled.

Credentials not yet promoted roll back; the run's audit record of the cancellation
names the principal and the reason. A run that has already ended is RunEnded.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from keyturn.operations.errors import UNAVAILABLE, RunEnded, temporal_error
from keyturn.operations.runs import run_plan
from keyturn.workflows.models import CancelNotice
from keyturn.workflows.runbook import RunbookWorkflow


async def cancel(client: Client, run_id: str, principal: str, reason: str = "") -> None:
    """Cancel the run as `principal`; RunNotFound without such a run, RunEnded once it ended."""
    await run_plan(client, run_id)
    handle = client.get_workflow_handle(run_id)
    try:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            ended = status.name.lower() if status else "closed"
            raise RunEnded(f"run {run_id} has already ended ({ended})")
        await cancel_as(handle, principal, reason)
    except RPCError as exc:
        if exc.status in UNAVAILABLE:
            raise temporal_error(exc, "") from exc
        raise RunEnded(f"run {run_id} has already ended ({exc.message})") from exc


async def cancel_as(handle: WorkflowHandle, principal: str, reason: str = "") -> None:
    """Signal `cancel_requested` (who, why) to the run's workflow, then cancel it."""
    await handle.signal(RunbookWorkflow.cancel_requested,
                        CancelNotice(principal=principal, reason=reason))
    await handle.cancel()
