"""TargetLockWorkflow: a hold on one target, so one run at a time rotates it.

A target's hold is a running workflow whose id is `keyturn-lock-<lock key>`:
Temporal refuses to start a second workflow with a running workflow's id, and
that refusal is the whole mutual exclusion. A CredentialRotationWorkflow starts
the hold as its child before precheck, with the parent close policy TERMINATE,
so the hold lasts exactly as long as the rotation: a worker crash does not
release it (the rotation is still running), and a rotation that ends in any
way (succeeded, failed, cancelled, terminated) does not keep it. The rotation
also cancels it as soon as its own work is done.

The hold's input, also its memo, names the holder (keyturn.workflows.models.LockHold)
so that a refused or waiting rotation, `keyturn status` and preflight can say
who holds the target (keyturn.locks reads it; a workflow asks through the
`lock_holder` activity, since workflows do no I/O).

`acquire` and `release` run inside the rotation workflow. When the target is
held, `on_locked: refuse` fails the credential at its `lock` step before
anything changes; `wait` asks the hold to wake it when released (the
`wake_when_released` signal; the hold signals `target_released` back as it
ends) and tries again then, or after a durable timer (5 s, doubling to 5 min)
in case the hold ended without a word (terminated). Waiting thus costs a
rotation's history a few events per holder, not a steady stream. The refusal,
each holder waited for, and the hold taken after waiting are audited and shown
in the status as step `lock`; an uncontested hold is neither (it is visible
as a running hold workflow).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from keyturn.errors import PermanentError
    from keyturn.runbook.identity import describe_target
    from keyturn.runbook.plan_model import CredentialPlan
    from keyturn.workflows.common import audit, call
    from keyturn.workflows.models import AuditInput, LockHold, RunContext

LOCK_ID_PREFIX = "keyturn-lock-"
HOLDER_MEMO = "holder"
"""The memo key under which a hold names its holder (a LockHold)."""


def lock_workflow_id(lock_key: str) -> str:
    """The workflow id of the hold on the target whose lock key is `lock_key`."""
    return f"{LOCK_ID_PREFIX}{lock_key}"


RELEASED_SIGNAL = "target_released"
"""The signal a hold sends each rotation waiting for it as it is released."""


@workflow.defn
class TargetLockWorkflow:
    """Holds a target until it is cancelled or terminated; then wakes whoever waits for it."""

    def __init__(self) -> None:
        self._waiters: list[str] = []

    @workflow.signal
    def wake_when_released(self, waiter_workflow_id: str) -> None:
        if waiter_workflow_id not in self._waiters:
            self._waiters.append(waiter_workflow_id)

    @workflow.run
    async def run(self, hold: LockHold) -> None:
        try:
            await workflow.wait_condition(lambda: False)
        except asyncio.CancelledError:  # released. A waiter that went away needs no word.
            woken = 0
            while woken < len(self._waiters):  # waiters may still arrive while others are woken
                waiter = workflow.get_external_workflow_handle(self._waiters[woken])
                await asyncio.gather(waiter.signal(RELEASED_SIGNAL), return_exceptions=True)
                woken += 1
            raise


SOON = timedelta(seconds=1)
"""How soon to try again when a hold has just ended (a woken waiter may be a moment early)."""
FIRST_WAIT = timedelta(seconds=5)
LONGEST_WAIT = timedelta(minutes=5)
"""The longest a waiting rotation sleeps between tries when no hold woke it."""


class Waiter:
    """A rotation's side of waiting: its `target_released` signal handler calls `wake`."""

    def __init__(self) -> None:
        self.woken = False

    def wake(self) -> None:
        self.woken = True


Mark = Callable[[str, str, str], None]
"""The rotation's status marker: mark(step, outcome, detail)."""


class TargetHeld(PermanentError):
    """Another run holds the target and the credential refuses to wait; the message names it."""


def _held_by(holder: LockHold) -> str:
    if not holder.credential:
        return f"run {holder.run_id}"
    return f"run {holder.run_id} (credential {holder.credential})"


async def acquire(ctx: RunContext, cred: CredentialPlan, mark: Mark,
                  waiter: Waiter) -> workflow.ChildWorkflowHandle:
    """Hold `cred`'s target for this rotation: the running hold's handle, for `release`.

    Raises TargetHeld when another run holds it and `cred.on_locked` is "refuse".
    """
    hold = LockHold(lock_key=cred.lock_key, run_id=ctx.run_id, credential=cred.id,
                    provider=cred.provider, target=describe_target(cred.target))

    async def record(outcome: str, key: list[str], details: dict) -> None:
        await audit(AuditInput(
            run=ctx.run_id, key=[cred.id, "lock", outcome, *key], step="lock", outcome=outcome,
            tier=cred.tier, credential=cred.id, provider=cred.provider,
            details={"target": hold.target, "lock": lock_workflow_id(cred.lock_key),
                     "on_locked": cred.on_locked, **details}))

    delay, waited_for = FIRST_WAIT, []
    while True:
        try:
            handle = await workflow.start_child_workflow(
                TargetLockWorkflow.run, hold, id=lock_workflow_id(cred.lock_key),
                memo={HOLDER_MEMO: hold}, parent_close_policy=workflow.ParentClosePolicy.TERMINATE)
        except WorkflowAlreadyStartedError:
            holder: LockHold | None = await call("lock_holder", cred.lock_key, LockHold | None)
            if holder is None:  # released between the two calls (or ending): try again soon
                await workflow.sleep(SOON)
                continue
            held = f"target {hold.target} is held by {_held_by(holder)}"
            details = {"holder_run": holder.run_id, "holder_credential": holder.credential}
            if cred.on_locked == "refuse":
                message = (f"{held}; nothing was changed (on_locked: refuse): start again once "
                           f"that run ends, or with `--on-locked wait`")
                mark("lock", "failed", message)
                await record("failed", [], details)
                raise TargetHeld(message) from None
            if holder.run_id not in waited_for:
                waited_for.append(holder.run_id)
                mark("lock", "waiting", f"{held}; waiting for it (on_locked: wait)")
                await record("waiting", [holder.run_id], details)
            if await _woken(cred.lock_key, waiter, delay):
                delay = FIRST_WAIT
            else:
                delay = min(delay * 2, LONGEST_WAIT)
            continue
        if waited_for:
            await record("succeeded", [], {"waited_for": waited_for})
            mark("lock", "succeeded", hold.target)
        return handle


async def _woken(lock_key: str, waiter: Waiter, timeout: timedelta) -> bool:
    """Ask the hold to wake this rotation when released; wait for that, at most `timeout`.

    True when woken, or when the hold could not be asked (it has just ended):
    then after a second, so that a hold that cannot be reached is no busy loop.
    """
    waiter.woken = False
    hold = workflow.get_external_workflow_handle(lock_workflow_id(lock_key))
    try:
        await hold.signal(TargetLockWorkflow.wake_when_released, workflow.info().workflow_id)
    except Exception:  # noqa: BLE001 - the hold is gone (or unreachable): try again soon
        await workflow.sleep(SOON)
        return True
    try:
        await workflow.wait_condition(lambda: waiter.woken, timeout=timeout)
    except TimeoutError:
        return False
    return True


async def release(handle: workflow.ChildWorkflowHandle) -> None:
    """End the hold now, and wait until it has ended; never raises for the hold's own end.

    The parent close policy ends it anyway when the rotation ends, so a hold
    that cannot be cancelled here costs nothing but time.
    """
    handle.cancel()
    await asyncio.gather(handle, return_exceptions=True)
