"""TierWorkflow: rotates one tier's credentials, `concurrency` at a time, honouring depends_on.

A credential whose dependency failed is skipped, not attempted. The tier's
result lists every credential's outcome; it fails if any credential did not
succeed.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from keyturn.workflows.common import reason
    from keyturn.workflows.models import CredentialInput, Outcome, TierInput, TierResult
    from keyturn.workflows.rotation import CredentialRotationWorkflow


def credential_workflow_id(run_id: str, credential_id: str) -> str:
    return f"{run_id}.cred.{credential_id}"


@workflow.defn
class TierWorkflow:
    def __init__(self) -> None:
        self._outcomes: dict[str, Outcome] = {}

    @workflow.query
    def outcomes(self) -> dict[str, Outcome]:
        return dict(self._outcomes)

    @workflow.run
    async def run(self, inp: TierInput) -> TierResult:
        tier = inp.tier
        self._outcomes = {c.id: "pending" for c in tier.credentials}
        errors: dict[str, str] = {}
        running = 0

        def finished(cid: str) -> bool:
            return self._outcomes[cid] in ("succeeded", "failed", "skipped", "cancelled")

        async def rotate(cred) -> None:
            nonlocal running
            await workflow.wait_condition(lambda: all(finished(d) for d in cred.depends_on))
            blocked = [d for d in cred.depends_on if self._outcomes[d] != "succeeded"]
            if blocked:
                self._outcomes[cred.id] = "skipped"
                errors[cred.id] = f"skipped: depends on {', '.join(blocked)} which did not succeed"
                return
            await workflow.wait_condition(lambda: running < tier.concurrency)
            running += 1
            self._outcomes[cred.id] = "running"
            try:
                await workflow.execute_child_workflow(
                    CredentialRotationWorkflow.run,
                    CredentialInput(context=inp.context, credential=cred),
                    id=credential_workflow_id(inp.context.run_id, cred.id),
                )
                self._outcomes[cred.id] = "succeeded"
            except ChildWorkflowError as err:
                self._outcomes[cred.id] = "failed"
                errors[cred.id] = reason(err)
            finally:
                running -= 1

        await asyncio.gather(*(rotate(c) for c in tier.credentials))
        ok = all(o == "succeeded" for o in self._outcomes.values())
        return TierResult(
            tier=tier.id,
            state="succeeded" if ok else "failed",
            credentials=dict(self._outcomes),
            errors=errors,
        )
