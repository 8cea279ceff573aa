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
anything changes; `wait` retries on a durable timer (5 s, doubling to 60 s)
until the hold is free. The refusal, each holder waited for, and the hold
taken after waiting are audited and shown in the status as step `lock`; an
uncontested hold is neither (it is visible as a running hold workflow).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
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


@workflow.defn
class TargetLockWorkflow:
    """Holds a target until it is cancelled or terminated; it does nothing else."""

    @workflow.run
    async def run(self, hold: LockHold) -> None:
        await workflow.wait_condition(lambda: False)


FIRST_WAIT = timedelta(seconds=5)
LONGEST_WAIT = timedelta(seconds=60)

Mark = Callable[[str, str, str], None]
"""The rotation's status marker: mark(step, outcome, detail)."""


class TargetHeld(Exception):
    """Another run holds the target and the credential refuses to wait; the message names it."""


def _held_by(holder: LockHold) -> str:
    if not holder.credential:
        return f"run {holder.run_id}"
    return f"run {holder.run_id} (credential {holder.credential})"


async def acquire(ctx: RunContext, cred: CredentialPlan, mark: Mark) -> workflow.ChildWorkflowHandle:
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
            if holder is None:  # released between the two calls: try again shortly
                await workflow.sleep(FIRST_WAIT)
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
            await workflow.sleep(delay)
            delay = min(delay * 2, LONGEST_WAIT)
            continue
        if waited_for:
            await record("succeeded", [], {"waited_for": waited_for})
            mark("lock", "succeeded", hold.target)
        return handle


async def release(handle: workflow.ChildWorkflowHandle) -> None:
    """End the hold now, and wait until it has ended; never raises for the hold's own end.

    The parent close policy ends it anyway when the rotation ends, so a hold
    that cannot be cancelled here costs nothing but time.
    """
    handle.cancel()
    await asyncio.gather(handle, return_exceptions=True)
