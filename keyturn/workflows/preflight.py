"""PreflightWorkflow: run the `preflight` activity for every credential of a plan.

The checks run on the worker, with the same identity, network and rate limits
as the rotation would: one activity per provider family and chunk of
credentials, all at once, on that family's task queue. The workflow returns
what they found; it changes nothing and writes no audit record.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from keyturn.runbook.plan_model import ExecutionPlan
    from keyturn.workflows.common import STEP_RETRY, family_queue
    from keyturn.workflows.models import CredentialCheck, PreflightInput, RunContext

CHUNK = 25
"""Credentials checked by one activity: few enough to finish well inside its timeout."""
CHECK_TIMEOUT = timedelta(seconds=30)
"""Per credential: one precheck and a few store reads."""


def preflight_workflow_id(run_id: str) -> str:
    return f"{run_id}.preflight"


@workflow.defn
class PreflightWorkflow:
    @workflow.run
    async def run(self, plan: ExecutionPlan) -> list[CredentialCheck]:
        context = RunContext(run_id=plan.run_id, runbook=plan.runbook, incident=plan.incident,
                             requested_by=plan.requested_by, stores=plan.stores)
        by_family: dict[str, list] = {}
        for tier in plan.tiers:
            for cred in tier.credentials:
                by_family.setdefault(cred.family, []).append(cred)
        queue = workflow.info().task_queue
        calls = [
            workflow.execute_activity(
                "preflight",
                PreflightInput(context=context, credentials=creds[i:i + CHUNK]),
                result_type=list[CredentialCheck],
                task_queue=family_queue(queue, family) if family else None,
                start_to_close_timeout=CHECK_TIMEOUT * min(len(creds) - i, CHUNK),
                retry_policy=STEP_RETRY,
            )
            for family, creds in by_family.items()
            for i in range(0, len(creds), CHUNK)
        ]
        found = [check for chunk in await asyncio.gather(*calls) for check in chunk]
        order = {cred.id: n for n, cred in enumerate(c for t in plan.tiers for c in t.credentials)}
        return sorted(found, key=lambda check: order[check.credential])
