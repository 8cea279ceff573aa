"""What the run page shows, from a RunDetail: each open gate with its approvals' reasons and,
for the viewer, why approving would be refused; each tier with its credentials' progress.
Pure functions; the page's template renders them (autoescaped, free text in <bdi>)."""

from __future__ import annotations

from typing import Any

from keyturn.api.auth import Principal
from keyturn.api.models import RunDetail
from keyturn.workflows import gates
from keyturn.workflows.models import GateState


def _gate_states(detail: RunDetail) -> dict[tuple[str, str], GateState]:
    """The open gates' states by (kind, target): a tier and a credential of a run from before
    ids were unique across both may share an id, and each shows its own gate."""
    found = {("tier", t.tier): t.gate for t in detail.tiers if t.gate and t.gate.status == "open"}
    for cs in detail.credentials:
        gate = next((g for g in cs.gates if g.status == "open"), None)
        if gate is not None:
            found[("credential", cs.credential)] = gate
    return found


def open_gates(detail: RunDetail, principal: Principal) -> list[dict[str, Any]]:
    """The API's open gates, with the approvals' reasons and, for this principal, why
    approving would be refused (the workflow's own rule, so the page never guesses)."""
    states = _gate_states(detail)
    shown = []
    for gate in detail.open_gates:
        state = states.get((gate.kind, gate.target))
        note = gates.refusal(state, principal.name, detail.requested_by) if state else None
        shown.append({
            **gate.model_dump(),
            "approved_by": [d.model_dump() for d in state.approvals] if state else
            [{"principal": p, "reason": ""} for p in gate.approved_by],
            "note": f"You cannot approve this gate: {note}." if note else None,
        })
    return shown


def tiers(detail: RunDetail) -> list[dict[str, Any]]:
    by_tier: dict[str, list[dict[str, Any]]] = {t.tier: [] for t in detail.tiers}
    for cs in detail.credentials:
        gate = next((g for g in cs.gates if g.status == "open"), None) or \
            (cs.gates[-1] if cs.gates else None)
        by_tier.setdefault(cs.tier, []).append({
            "id": cs.credential,
            "state": cs.state,
            "step": cs.step,
            "error": cs.error,
            "old": ", ".join(cs.old_credential_ids) or "-",
            "new": cs.new_credential_id or "…",
            "fingerprint": cs.new_fingerprint or "",
            "gate": (f"before {gate.plan.before}: {gates.summary(gate)}" if gate else ""),
        })
    return [{"tier": t.tier, "name": t.name, "after": t.after, "state": t.state,
             "gate": gates.summary(t.gate), "credentials": by_tier.get(t.tier, [])}
            for t in detail.tiers]
