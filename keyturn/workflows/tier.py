"""TierWorkflow: rotates one tier's credentials, `concurrency` at a time, honouring depends_on.

Each credential runs as its own CredentialRotationWorkflow child. A credential
whose dependency did not succeed is skipped, not attempted. The tier fails if
any credential did not succeed.

A tier of thousands of credentials would outgrow one workflow history, so when
the history passes its budget the workflow stops starting children, waits for
the running ones, and continues as new with the outcomes so far.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from keyturn.workflows.common import reason
    from keyturn.workflows.models import CredentialInput, Outcome, TierInput, TierResult
    from keyturn.workflows.rotation import CredentialRotationWorkflow
    from keyturn.workflows.schedule import TierSchedule


def credential_workflow_id(run_id: str, credential_id: str) -> str:
    return f"{run_id}.cred.{credential_id}"


@workflow.defn
class TierWorkflow:
    def __init__(self) -> None:
        self._schedule: TierSchedule | None = None

    @workflow.query
    def outcomes(self) -> dict[str, Outcome]:
        return dict(self._schedule.outcomes) if self._schedule else {}

    @workflow.run
    async def run(self, inp: TierInput) -> TierResult:
        tier = inp.tier
        creds = {c.id: c for c in tier.credentials}
        schedule = self._schedule = TierSchedule(tier.credentials, inp.finished)
        errors = dict(inp.errors)
        running: set[asyncio.Task] = set()

        async def rotate(cid: str) -> None:
            outcome: Outcome = "succeeded"
            try:
                await workflow.execute_child_workflow(
                    CredentialRotationWorkflow.run,
                    CredentialInput(context=inp.context, credential=creds[cid]),
                    id=credential_workflow_id(inp.context.run_id, cid),
                )
            except ChildWorkflowError as err:
                outcome = "cancelled" if isinstance(err.cause, CancelledError) else "failed"
                errors[cid] = reason(err)
            schedule.finish(cid, outcome)

        try:
            await self._drive(inp, schedule, running, rotate, errors)
        except asyncio.CancelledError:
            for task in list(running):  # cancel the children; they roll back what they can
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            schedule.cancel()  # for the `outcomes` query of the closed workflow
            raise

        ok = all(o == "succeeded" for o in schedule.outcomes.values())
        return TierResult(
            tier=tier.id,
            state="succeeded" if ok else "failed",
            credentials=dict(schedule.outcomes),
            errors={**schedule.reasons, **errors},
        )

    @staticmethod
    async def _drive(inp: TierInput, schedule: TierSchedule, running: set[asyncio.Task],
                     rotate: Callable[[str], Awaitable[None]], errors: dict[str, str]) -> None:
        """Start ready credentials up to `concurrency`; drain and continue as new when long."""
        draining = False
        while not schedule.done:
            while not draining and len(running) < inp.tier.concurrency:
                cid = schedule.next_ready()
                if cid is None:
                    break
                schedule.start(cid)
                task = asyncio.create_task(rotate(cid))
                running.add(task)
                task.add_done_callback(running.discard)
            info = workflow.info()
            long = info.get_current_history_length() > inp.history_budget
            if long or info.is_continue_as_new_suggested():
                draining = True
            if draining and not running:
                workflow.continue_as_new(inp.model_copy(update={
                    "finished": schedule.finished(), "errors": errors}))
            seen = schedule.changes
            await workflow.wait_condition(lambda seen=seen: schedule.changes != seen)
