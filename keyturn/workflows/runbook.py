"""RunbookWorkflow: one run of one runbook.

Starts a TierWorkflow per tier as soon as the tiers it comes `after` have
succeeded (tiers without `after` start at once, so they run in parallel),
waiting first at the tier's gate if it has one. A tier whose `after` tier did
not succeed is skipped. The run succeeds only if every tier does.

The runbook's webhook targets hear when a tier gate opens, when each tier ends
(succeeded, failed or skipped) and when the run ends; deliveries run beside
the run and are awaited only before it returns (keyturn.workflows.notifications).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from keyturn.runbook.plan_model import ExecutionPlan, TierPlan
    from keyturn.workflows import gates
    from keyturn.workflows.common import audit, gate_outcome, reason, wait_for_gate
    from keyturn.workflows.models import (
        ApprovalRequest,
        ApprovalResult,
        AuditInput,
        CancelNotice,
        GateState,
        RunContext,
        RunStatus,
        TierInput,
        TierStatus,
    )
    from keyturn.workflows.notifications import Notifier
    from keyturn.workflows.schedule import FINISHED
    from keyturn.workflows.tier import TierWorkflow

STATE_KEY = SearchAttributeKey.for_keyword("KeyturnState")
RUNBOOK_KEY = SearchAttributeKey.for_keyword("KeyturnRunbook")
INCIDENT_KEY = SearchAttributeKey.for_keyword("KeyturnIncident")
STARTED_BY_REQUESTER = "run-started-by-requester"
"""Patch: the `run started` record names the requester as its actor (was: worker)."""


def tier_workflow_id(run_id: str, tier_id: str) -> str:
    return f"{run_id}.tier.{tier_id}"


def tally(outcomes: Iterable[str]) -> str:
    """Outcomes counted for a notification: "1 failed, 2 succeeded"."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))


@workflow.defn
class RunbookWorkflow:
    def __init__(self) -> None:
        self._status: RunStatus | None = None
        self._plan: ExecutionPlan | None = None
        self._notifier: Notifier | None = None
        self._cancel: CancelNotice | None = None

    @workflow.query
    def status(self) -> RunStatus:
        assert self._status is not None
        return self._status

    @workflow.query
    def plan(self) -> ExecutionPlan:
        assert self._plan is not None
        return self._plan

    @workflow.signal
    def cancel_requested(self, request: CancelNotice) -> None:
        """Who is about to cancel this run, and why (runs.cancel sends it first)."""
        self._cancel = request

    def _tier(self, tier_id: str) -> TierStatus | None:
        return next((t for t in self._status.tiers if t.tier == tier_id), None)

    @workflow.update
    def approve(self, request: ApprovalRequest) -> ApprovalResult:
        gate = self._tier(request.target).gate
        gates.approve(gate, request.principal, request.reason, workflow.now())
        return gates.result(request, gate)

    @approve.validator
    def _validate_approve(self, request: ApprovalRequest) -> None:
        gates.check(self._tier_gate(request), request, self._plan.requested_by, rejecting=False)

    @workflow.update
    def reject(self, request: ApprovalRequest) -> ApprovalResult:
        gate = self._tier(request.target).gate
        gates.reject(gate, request.principal, request.reason, workflow.now())
        return gates.result(request, gate)

    @reject.validator
    def _validate_reject(self, request: ApprovalRequest) -> None:
        gates.check(self._tier_gate(request), request, self._plan.requested_by, rejecting=True)

    def _tier_gate(self, request: ApprovalRequest) -> GateState | None:
        if self._status is None:
            raise ValueError("the run has not started yet")
        tier = self._tier(request.target)
        if tier is None:
            raise ValueError(f"{request.target!r} is not a tier of this run")
        return tier.gate

    @workflow.run
    async def run(self, plan: ExecutionPlan) -> RunStatus:
        self._plan = plan
        self._status = status = RunStatus(
            run_id=plan.run_id,
            runbook=plan.runbook,
            incident=plan.incident,
            requested_by=plan.requested_by,
            state="running",
            started_at=workflow.now(),
            tiers=[
                TierStatus(
                    tier=t.id,
                    name=t.name,
                    after=t.after,
                    gate=GateState(plan=t.gate) if t.gate else None,
                    credentials={c.id: "pending" for c in t.credentials},
                )
                for t in plan.tiers
            ],
        )
        context = RunContext(
            run_id=plan.run_id,
            runbook=plan.runbook,
            incident=plan.incident,
            requested_by=plan.requested_by,
            stores=plan.stores,
            notify=plan.notify,
        )
        self._notifier = Notifier(context)
        self._set_state("running")
        starter = plan.requested_by if workflow.patched(STARTED_BY_REQUESTER) else "worker"
        await self._record("run", "started", [], actor=starter, details={
            "runbook": plan.runbook,
            "incident": plan.incident,
            "requested_by": plan.requested_by,
            "source_sha256": plan.source_sha256,
            "tiers": [t.id for t in plan.tiers],
            "preflight": plan.preflight or "not run",
            "policy": plan.policy or "built-in",
        })
        try:
            await asyncio.gather(*(self._run_tier(t, context) for t in plan.tiers))
        except asyncio.CancelledError:
            status.state = "cancelled"
            status.ended_at = workflow.now()
            self._set_state("cancelled")
            cancel = self._cancel  # None: cancelled without saying who (e.g. temporal CLI)
            await self._record("run", "cancelled", [], actor=cancel.principal if cancel else
                               "worker", details={"reason": cancel.reason} if cancel else {})
            await self._run_ended()
            raise
        ok = all(t.state == "succeeded" for t in status.tiers)
        status.state = "succeeded" if ok else "failed"
        status.ended_at = workflow.now()
        self._set_state(status.state)
        await self._record("run", status.state, [], details={
            "tiers": {t.tier: t.state for t in status.tiers},
        })
        await self._run_ended()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return status

    async def _run_ended(self) -> None:
        """Tell the webhooks how the run ended, and wait for every delivery still under way."""
        status = self._status
        detail = "tiers: " + tally(t.state for t in status.tiers)
        self._notifier.send(self._notifier.notification(
            "run_ended", state=status.state, detail=detail))
        await self._notifier.drain()

    def _tier_ended(self, ts: TierStatus, detail: str) -> None:
        self._notifier.send(self._notifier.notification(
            "tier_ended", tier=ts.tier, state=ts.state, detail=detail))

    async def _run_tier(self, tier: TierPlan, context: RunContext) -> None:
        ts = self._tier(tier.id)
        await workflow.wait_condition(
            lambda: all(self._tier(a).state in FINISHED for a in tier.after)
        )
        blocked = [a for a in tier.after if self._tier(a).state != "succeeded"]
        if blocked:
            ts.state = "skipped"
            ts.credentials = {c: "skipped" for c in ts.credentials}
            why = f"after {', '.join(blocked)}, which did not succeed"
            await self._record("tier", "skipped", [tier.id], tier=tier.id, details={
                "reason": why,
            })
            self._tier_ended(ts, why)
            return
        if ts.gate is not None:
            ts.state = "waiting"

            async def record(outcome: str, key: str, details: dict, actor: str) -> None:
                await self._record("gate", outcome, [tier.id, "gate", key], tier=tier.id,
                                   details=details, actor=actor)

            def opened(gate: GateState = ts.gate) -> None:
                self._notifier.send(self._notifier.notification(
                    "gate_opened", tier=tier.id, gate="tier", approvals=gate.plan.approvals,
                    groups=gate.plan.groups, distinct=gate.plan.distinct))

            await wait_for_gate(ts.gate, context.requested_by, record, opened)
            if ts.gate.status != "passed":
                ts.state = "failed"
                ts.credentials = {c: "skipped" for c in ts.credentials}
                self._tier_ended(ts, gate_outcome(ts.gate))
                return
        ts.state = "running"
        await self._record("tier", "started", [tier.id, "started"], tier=tier.id, details={
            "credentials": [c.id for c in tier.credentials],
        })
        try:
            result = await workflow.execute_child_workflow(
                TierWorkflow.run,
                TierInput(context=context, tier=tier),
                id=tier_workflow_id(context.run_id, tier.id),
            )
            final, credentials = result.state, result.credentials
            details = {"credentials": result.credentials, "errors": result.errors}
        except ChildWorkflowError as err:
            # cancelled: the tier workflow's `outcomes` query says how each credential ended
            final = "cancelled" if isinstance(err.cause, CancelledError) else "failed"
            credentials, details = ts.credentials, {"error": reason(err)}
        # Record the end before publishing it: tiers waiting on this one start after the record.
        await self._record("tier", final, [tier.id, "ended"], tier=tier.id, details=details)
        ts.state, ts.credentials = final, credentials
        self._tier_ended(ts, "credentials: " + tally(credentials.values()))

    async def _record(self, step: str, outcome: str, key: list[str], *, details: dict,
                      tier: str | None = None, actor: str = "worker") -> None:
        await audit(AuditInput(run=self._plan.run_id, key=[step, *key, outcome], step=step,
                               outcome=outcome, tier=tier, actor=actor, details=details))

    def _set_state(self, state: str) -> None:
        """Keep the KeyturnState search attribute current, when the starter set one."""
        if workflow.info().typed_search_attributes.get(STATE_KEY) is not None:
            workflow.upsert_search_attributes([STATE_KEY.value_set(state)])

