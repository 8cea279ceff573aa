"""CredentialRotationWorkflow: the rotation protocol for one credential.

lock -> precheck -> [gate create] -> create -> verify_new -> [gate promote] -> promote
-> [gate revoke] -> revoke_old (disable, grace period, delete) -> confirm_revoked

For a `supplied` credential (no API creates one, e.g. a GitHub PAT) the run
waits before create for the `supply` Update: an operator has written the new
value into the staging store (`keyturn supply`) and tells the workflow its
fingerprint; create then only identifies the supplied credential.

With `strategy: revoke-first` the old credential is disabled right after
precheck, before anything is created. Any failure, rejection or cancellation
up to and including promote rolls back: a promote that fails gives the
deliver targets it wrote their previous fields back, then the new credential
is deleted, staging is cleared and (revoke-first) the old credential is
re-enabled. After promote there is nothing to roll back to; a failure there is
reported, and both the new and (not yet deleted) old credential keep working.

Before precheck the rotation holds its target (keyturn.workflows.lock), so one
run at a time rotates it; it lets go once it has ended its work (after any
rollback), and a rotation that ends in any other way lets go with it.

The runbook's webhook targets hear when one of this credential's gates opens
and when the rotation fails; the workflow waits for those deliveries only
right before it ends (keyturn.workflows.notifications).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from keyturn.errors import PermanentError
    from keyturn.workflows import gates, lock
    from keyturn.workflows.common import audit, call, gate_outcome, reason, wait_for_gate
    from keyturn.workflows.models import (
        ApprovalRequest,
        ApprovalResult,
        AuditInput,
        CreateResult,
        CredentialInput,
        CredentialStatus,
        GateState,
        PrecheckResult,
        PromoteResult,
        StepInput,
        StepRecord,
        SupplyNotice,
    )
    from keyturn.workflows.notifications import Notifier


ROLLBACK_FAILED_PROMOTE = "rollback-failed-promote"
"""Patch: a failed promote rolls back too (promote restores the targets it wrote first)."""


class RotationFailed(PermanentError):
    """A step failed or a gate closed; `step` names where."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@workflow.defn
class CredentialRotationWorkflow:
    def __init__(self) -> None:
        self._status: CredentialStatus | None = None
        self._requested_by = ""
        self._promoted = False
        self._awaiting_supply = False
        self._supplied: SupplyNotice | None = None
        self._notifier: Notifier | None = None
        self._hold: workflow.ChildWorkflowHandle | None = None
        self._lock_waiter = lock.Waiter()

    # ---- queries and updates --------------------------------------------------------

    @workflow.query
    def status(self) -> CredentialStatus:
        assert self._status is not None
        return self._status

    def _open_gate(self) -> GateState | None:
        """The gate waiting for decisions; none once the rotation stopped (cancelled, failed)."""
        if self._status is None or self._status.state != "running":
            return None
        return next((g for g in self._status.gates if g.status == "open"), None)

    @workflow.update
    def approve(self, request: ApprovalRequest) -> ApprovalResult:
        gate = self._open_gate()
        gates.approve(gate, request.principal, request.reason, workflow.now())
        return gates.result(request, gate)

    @approve.validator
    def _validate_approve(self, request: ApprovalRequest) -> None:
        gates.check(self._open_gate(), request, self._requested_by, rejecting=False)

    @workflow.update
    def reject(self, request: ApprovalRequest) -> ApprovalResult:
        gate = self._open_gate()
        gates.reject(gate, request.principal, request.reason, workflow.now())
        return gates.result(request, gate)

    @reject.validator
    def _validate_reject(self, request: ApprovalRequest) -> None:
        gates.check(self._open_gate(), request, self._requested_by, rejecting=True)

    @workflow.update
    def supply(self, notice: SupplyNotice) -> str:
        self._supplied = notice
        self._awaiting_supply = False
        return f"{notice.credential}: supplied value {notice.fingerprint} accepted"

    @supply.validator
    def _validate_supply(self, notice: SupplyNotice) -> None:
        if not self._awaiting_supply:
            raise ApplicationError(
                f"credential {notice.credential} is not waiting for a supplied value",
                type="NotAwaitingSupply",
                non_retryable=True,
            )

    # ---- the protocol -----------------------------------------------------------------

    @workflow.run
    async def run(self, inp: CredentialInput) -> CredentialStatus:
        cred = inp.credential
        self._requested_by = inp.context.requested_by
        self._notifier = notifier = Notifier(inp.context)
        self._status = status = CredentialStatus(
            credential=cred.id,
            tier=cred.tier,
            provider=cred.provider,
            state="running",
            gates=[GateState(plan=g) for g in cred.gates],
        )
        step = StepInput(context=inp.context, credential=cred)
        try:
            await self._protocol(inp, step)
        except RotationFailed as failure:
            status.state = "failed"
            status.error = f"{cred.id}: {failure.step}: {failure}"
            notifier.send(notifier.notification(
                "credential_failed", tier=cred.tier, credential=cred.id, state="failed",
                detail=f"{failure.step}: {failure}"))
        except asyncio.CancelledError:
            status.state = "cancelled"
            try:
                await self._rollback_if_needed(step, "cancelled")
            finally:
                await self._release_target()
                await notifier.drain()
            raise
        await self._release_target()
        await notifier.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if status.state == "failed":
            raise ApplicationError(status.error or "rotation failed", non_retryable=True)
        status.state = "succeeded"
        return status

    async def _protocol(self, inp: CredentialInput, step: StepInput) -> None:
        cred = inp.credential
        await self._hold_target(inp)
        pre: PrecheckResult = await self._step("precheck", step, PrecheckResult)
        step.old_credential_ids = list(pre.old_credential_ids)
        step.existing_credential_ids = list(pre.existing_credential_ids)
        step.old_version = pre.old_version
        self._status.old_credential_ids = step.old_credential_ids
        revoke_first = cred.strategy == "revoke-first"
        try:
            await self._gate(inp, "create")
            if revoke_first:
                await self._step("revoke_old", step.model_copy(update={"phase": "disable"}))
            if cred.supplied:
                step.supplied = await self._await_supply(inp)
            created: CreateResult = await self._step("create", step, CreateResult)
            step.new_credential_id = created.credential_id
            self._status.new_credential_id = created.credential_id
            self._status.new_fingerprint = created.fingerprint
            await self._step("verify_new", step)
            await self._gate(inp, "promote")
            if workflow.patched(ROLLBACK_FAILED_PROMOTE):
                promoted: PromoteResult = await self._step("promote", step, PromoteResult)
        except RotationFailed as failure:
            await self._rollback_if_needed(step, str(failure))
            raise
        if not workflow.patched(ROLLBACK_FAILED_PROMOTE):  # histories from before the patch
            promoted = await self._step("promote", step, PromoteResult)
        self._promoted = True
        step.promoted = True
        step.previous_version = promoted.previous_version
        await self._gate(inp, "revoke")
        if not revoke_first:
            await self._step("revoke_old", step.model_copy(update={"phase": "disable"}))
        if cred.grace_period.total_seconds() > 0:
            self._mark("revoke_old", "waiting", f"grace period {cred.grace_period}")
            await workflow.sleep(cred.grace_period)
        await self._step("revoke_old", step.model_copy(update={"phase": "delete"}))
        await self._step("confirm_revoked", step)

    # ---- one rotation per target (keyturn.workflows.lock) ------------------------------

    async def _hold_target(self, inp: CredentialInput) -> None:
        """Hold the target before precheck; another run's hold fails the credential at
        `lock` (on_locked: refuse) or is waited out (wait). Plans made before locks
        (no lock_key) and histories recorded before them hold nothing."""
        if not inp.credential.lock_key or not workflow.patched("target-lock"):
            return
        try:
            self._hold = await lock.acquire(inp.context, inp.credential, self._mark,
                                            self._lock_waiter)
        except lock.TargetHeld as held:
            raise RotationFailed("lock", str(held)) from None

    @workflow.signal(name=lock.RELEASED_SIGNAL)
    def _target_released(self) -> None:
        """The hold this rotation waits for was released (sent by TargetLockWorkflow)."""
        self._lock_waiter.wake()

    async def _release_target(self) -> None:
        """Let go of the target as soon as the rotation's work is over."""
        hold, self._hold = self._hold, None
        if hold is not None:
            await lock.release(hold)

    async def _await_supply(self, inp: CredentialInput) -> SupplyNotice:
        ctx, cred = inp.context, inp.credential
        self._mark("supply", "waiting", f"keyturn supply {ctx.run_id} {cred.id}")
        self._awaiting_supply = True
        await workflow.wait_condition(lambda: self._supplied is not None)
        notice = self._supplied
        assert notice is not None
        await audit(
            AuditInput(
                run=ctx.run_id,
                key=[cred.id, "supply", notice.fingerprint],
                step="supply",
                outcome="succeeded",
                tier=cred.tier,
                credential=cred.id,
                provider=cred.provider,
                actor=notice.principal,
                details={
                    "fingerprint": notice.fingerprint,
                    "staging": f"{cred.staging.store}:{cred.staging.path}@{notice.staging_version}",
                },
            )
        )
        self._mark("supply", "succeeded", notice.fingerprint)
        return notice

    async def _step(self, name: str, step: StepInput, result_type: type | None = None) -> Any:
        self._mark(name, "running", step.phase)
        try:
            cred = step.credential
            result = await call(
                name, step, result_type, family=cred.family, timeout=cred.step_timeout,
                on_audit_wait=lambda why: self._mark(name, "waiting", why),
            )
        except Exception as err:  # ActivityError: the activity already audited its failure
            self._mark(name, "failed", reason(err))
            raise RotationFailed(name, reason(err)) from err
        self._mark(name, "succeeded", step.phase)
        return result

    async def _gate(self, inp: CredentialInput, before: str) -> None:
        gate = next((g for g in self._status.gates if g.plan.before == before), None)
        if gate is None:
            return
        self._mark("gate", "waiting", f"before {before}")
        ctx, cred = inp.context, inp.credential

        async def record(outcome: str, key: str, details: dict, actor: str) -> None:
            await audit(
                AuditInput(
                    run=ctx.run_id,
                    key=[cred.id, "gate", before, key],
                    step="gate",
                    outcome=outcome,
                    tier=cred.tier,
                    credential=cred.id,
                    provider=cred.provider,
                    actor=actor,
                    details=details,
                )
            )

        def opened() -> None:
            self._notifier.send(self._notifier.notification(
                "gate_opened", tier=cred.tier, credential=cred.id, gate=before,
                approvals=gate.plan.approvals, groups=gate.plan.groups,
                distinct=gate.plan.distinct))

        await wait_for_gate(gate, ctx.requested_by, record, opened)
        if gate.status != "passed":
            self._mark("gate", "failed", f"before {before}: {gate.status}")
            raise RotationFailed("gate", f"before {before}: {gate_outcome(gate)}")
        self._mark("gate", "succeeded", f"before {before}")

    async def _rollback_if_needed(self, step: StepInput, why: str) -> None:
        """Undo everything before promote; the rollback activity is idempotent."""
        if self._promoted:
            return
        self._mark("rollback", "running", why)
        try:
            await call(
                "rollback",
                step.model_copy(update={"phase": why[:200]}),
                family=step.credential.family,
                timeout=step.credential.step_timeout,
                on_audit_wait=lambda why: self._mark("rollback", "waiting", why),
            )
        except Exception as err:
            self._mark("rollback", "failed", reason(err))
            raise RotationFailed("rollback", f"rollback failed: {reason(err)}") from err
        self._mark("rollback", "succeeded", why)

    def _mark(self, step: str, outcome: str, detail: str = "") -> None:
        self._status.step = step
        self._status.steps.append(
            StepRecord(step=step, outcome=outcome, at=workflow.now(), detail=detail)
        )
