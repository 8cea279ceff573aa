"""One run as the API and the approvals page show it: every credential, and each open gate
with what approving it will do, in a sentence an approver can check.

`run_detail` reads the run through the operations core (keyturn.operations.runs) and
only shapes what it found; GET /v1/runs/{id} and the page /ui/runs/{id} both call it.
"""

from __future__ import annotations

from temporalio.client import Client

from keyturn.api.models import OpenGate, RunDetail
from keyturn.operations import runs
from keyturn.runbook.plan_model import CredentialPlan, GatePlan, TierPlan
from keyturn.workflows.models import CredentialStatus, GateState


def _after(needed: int, approvals: int) -> str:
    """When approving takes effect: now, or once the rest of the quorum approves too."""
    others = needed - approvals - 1
    if others <= 0:
        return ""
    if others == 1:
        return " once 1 more approval after yours arrives"
    return f" once {others} more approvals after yours arrive"


def effect(gate: GatePlan, tier: TierPlan, cred: CredentialPlan | None, approvals: int) -> str:
    """What approving this gate will do, in one sentence an approver can check."""
    later = _after(gate.approvals, approvals)
    if cred is None:
        ids = ", ".join(c.id for c in tier.credentials)
        return (f"Tier {tier.id}{f' ({tier.name})' if tier.name else ''} starts{later}: "
                f"{len(tier.credentials)} credential(s) rotate: {ids}.")
    where = ", ".join(f"{d.store}:{d.path}" for d in cred.deliver) or "its stores"
    if gate.before == "create" and cred.strategy == "revoke-first":
        return (f"The old {cred.id} credential ({cred.provider}) is disabled at once "
                f"(revoke-first), then its replacement is created{later}.")
    if gate.before == "create":
        return f"{cred.id} ({cred.provider}) creates its replacement credential{later}."
    if gate.before == "promote":
        return f"The verified new {cred.id} credential becomes current in {where}{later}."
    if gate.before == "revoke":
        grace = f" after a grace period of {cred.grace_period}" if cred.grace_period else ""
        return (f"The old {cred.id} credential ({cred.provider}) is disabled and deleted"
                f"{grace}{later}; anything still using it stops working.")
    return f"The {gate.before} gate of {cred.id} passes{later}."


def _open_gate(target: str, kind: str, tier: TierPlan, cred: CredentialPlan | None,
               gate: GateState) -> OpenGate:
    approved = [d.principal for d in gate.approvals]
    return OpenGate(
        target=target, kind=kind, tier=tier.id, before=gate.plan.before,
        approvals=len(approved), needed=gate.plan.approvals, approvers=gate.plan.approvers,
        groups=gate.plan.groups, distinct=gate.plan.distinct, timeout=gate.plan.timeout,
        approved_by=approved, effect=effect(gate.plan, tier, cred, len(approved)),
    )


async def run_detail(client: Client, run_id: str) -> RunDetail:
    """The run with its tiers, every credential (steps once started) and its open gates."""
    the_plan = await runs.run_plan(client, run_id)
    detail = await runs.describe(client, run_id, plan=the_plan)
    status = detail.status
    outcomes = {cid: o for tier in status.tiers for cid, o in tier.credentials.items()}
    credentials: list[CredentialStatus] = []
    open_gates: list[OpenGate] = []
    for tier in the_plan.tiers:
        tier_status = next((t for t in status.tiers if t.tier == tier.id), None)
        if tier_status and tier_status.gate and tier_status.gate.status == "open":
            open_gates.append(_open_gate(tier.id, "tier", tier, None, tier_status.gate))
        for cred in tier.credentials:
            cs = detail.credentials.get(cred.id) or CredentialStatus(
                credential=cred.id, tier=tier.id, provider=cred.provider,
                state=outcomes.get(cred.id, "pending"))
            credentials.append(cs)
            gate = next((g for g in cs.gates if g.status == "open"), None)
            if gate is not None:
                open_gates.append(_open_gate(cred.id, "credential", tier, cred, gate))
    return RunDetail(
        run_id=status.run_id, runbook=status.runbook, incident=status.incident,
        requested_by=status.requested_by, state=status.state, started_at=status.started_at,
        ended_at=status.ended_at, tiers=status.tiers, credentials=credentials,
        open_gates=open_gates,
    )
