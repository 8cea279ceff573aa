"""Webhook notifications from the workflows, started and never awaited on the protocol path.

A workflow makes one `Notifier` from its RunContext and calls `send()` when
something happens (a gate opens, a credential fails, a tier or the run ends).
`send()` starts one `notify` activity per subscribed target, in a task of its
own, and returns at once: a slow or dead webhook never holds up a rotation.
The activity retries on its own policy; a delivery that finally fails is
written to the audit log (step "notify", outcome "failed") and then forgotten.
`drain()` waits for the deliveries still under way, and is called right
before the workflow returns, so that the last notification (run_ended) goes
out; it never raises.

With no targets (every plan made before notifications existed) nothing is
scheduled, so the workflows' command sequence, and replay, are unchanged.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from keyturn.workflows.common import audit, reason
    from keyturn.workflows.models import AuditInput, Notification, NotifyInput, RunContext

NOTIFY_ACTIVITY = "notify"
NOTIFY_RETRY = RetryPolicy(  # attempts after about 0s, 2s, 6s, 14s, 30s, 60s
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
)
NOTIFY_ATTEMPT_TIMEOUT = timedelta(seconds=20)  # the activity's own HTTP timeout is shorter
NOTIFY_DEADLINE = timedelta(minutes=3)  # every attempt and backoff of one delivery


class Notifier:
    """The webhook deliveries of one workflow execution."""

    def __init__(self, context: RunContext) -> None:
        self._context = context
        self._tasks: list[asyncio.Task[None]] = []

    def notification(self, event: str, **fields: Any) -> Notification:
        """A Notification about this run; `fields` fill in the rest."""
        ctx = self._context
        return Notification(event=event, run_id=ctx.run_id, runbook=ctx.runbook,
                            incident=ctx.incident, requested_by=ctx.requested_by, **fields)

    def send(self, notification: Notification) -> None:
        """Start delivering `notification` to every target subscribed to its event."""
        for index, target in enumerate(self._context.notify):
            if notification.event in target.events:
                inp = NotifyInput(notification=notification, target=target, index=index)
                self._tasks.append(asyncio.create_task(self._deliver(inp)))

    async def drain(self) -> None:
        """Wait for every delivery started so far; failures were recorded already."""
        while self._tasks:
            tasks, self._tasks = self._tasks, []
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, inp: NotifyInput) -> None:
        try:
            await workflow.execute_activity(
                NOTIFY_ACTIVITY,
                inp,
                start_to_close_timeout=NOTIFY_ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=NOTIFY_DEADLINE,
                retry_policy=NOTIFY_RETRY,
            )
        except ActivityError as err:
            await self._record_failure(inp, reason(err))

    async def _record_failure(self, inp: NotifyInput, error: str) -> None:
        """Audit a delivery that failed for good; never the URL (url_env's is a secret)."""
        n, target = inp.notification, inp.target
        details: dict = {"event": n.event, "target": inp.index, "error": error}
        if target.url_env:
            details["url_env"] = target.url_env
        key = [n.credential or "", "notify", n.event, n.tier or "", n.gate or "", str(inp.index)]
        try:
            await audit(AuditInput(run=n.run_id, key=key, step="notify", outcome="failed",
                                   tier=n.tier, credential=n.credential, details=details))
        except ActivityError:
            workflow.logger.warning("notification %s to target %d failed and could not be "
                                    "audited: %s", n.event, inp.index, error)
