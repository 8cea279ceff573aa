"""Rich renderings of runs for `keyturn status`, `wait` and `run --wait`."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from keyturn.cli.layout import Sheet
from keyturn.operations.runs import RunSnapshot
from keyturn.workflows import gates
from keyturn.workflows.models import CredentialStatus, GateState
from keyturn.workflows.schedule import FINISHED

STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "running": "cyan",
    "waiting": "yellow",
    "pending": "dim",
    "skipped": "magenta",
    "cancelled": "red",
}


def state(value: str) -> Text:
    return Text(value, style=STYLE.get(value, ""))


def run_table(detail: RunSnapshot) -> Group:
    st = detail.status
    head = Text.assemble(
        ("run ", "bold"), (st.run_id, "bold"), "  ", state(st.state),
        f"  runbook {st.runbook}", f"  incident {st.incident or '-'}",
        f"  requested by {st.requested_by}",
    )
    sheet = Sheet(["tier", "credential", "state", "step", "old", "new", "gate"])
    for tier in st.tiers:
        sheet.add_row(
            Text(f"{tier.tier} {tier.name}".strip(), style="bold"), "", state(tier.state), "",
            f"after {', '.join(tier.after)}" if tier.after else "", "", gates.summary(tier.gate),
        )
        for cred_id, outcome in tier.credentials.items():
            cs = detail.credentials.get(cred_id)
            if cs is None:
                sheet.add_row("", cred_id, state(outcome), indent=1)
                continue
            open_gate = next((g for g in cs.gates if g.status == "open"), None)
            gate = open_gate or (cs.gates[-1] if cs.gates else None)
            sheet.add_row("", cred_id, state(cs.state), step_text(cs),
                          ", ".join(cs.old_credential_ids) or "-", cs.new_credential_id or "…",
                          (f"before {gate.plan.before}: " if gate else "") + gates.summary(gate),
                          indent=1)
    return Group(head, sheet)


def step_text(cs: CredentialStatus) -> Text:
    """The credential's step, with its error, or what it waits for (e.g. the run holding
    its target); literal text, since errors quote runbook values."""
    last = cs.steps[-1] if cs.steps else None
    if cs.error:
        return Text(f"{cs.step}: {cs.error}")
    if last is not None and last.outcome == "waiting" and last.detail:
        return Text(f"{cs.step} waiting: {last.detail}")
    return Text(cs.step)


def runs_table(listed: list[dict]) -> Sheet:
    """`keyturn status` without a run: one row per run, newest first."""
    sheet = Sheet(["run", "state", "runbook", "incident", "started (UTC)"])
    for item in listed:
        started = (item["started_at"] or "")[:19].replace("T", " ")
        sheet.add_row(item["run_id"], state(item["state"]), item["runbook"] or "",
                      item["incident"] or "", started)
    return sheet


def locks_table(held: list[dict]) -> Sheet:
    """`keyturn status` without a run: the targets held now and the rotation holding each."""
    sheet = Sheet(["run", "credential", "provider", "target", "since (UTC)"],
                  title="held targets")
    for item in held:
        since = (item["since"] or "")[:19].replace("T", " ")
        sheet.add_row(*(str(item[k] or "") for k in ("run_id", "credential", "provider",
                                                     "target")), since)
    return sheet
def open_gates(detail: RunSnapshot) -> dict[str, GateState]:
    """Gates waiting for approval, by target as `keyturn approve` takes it (tier or credential).

    A run or credential that ended (cancelled, say) waits for nothing, whatever its
    last gate's state says."""
    if detail.status.state in FINISHED:
        return {}
    found = {t.tier: t.gate for t in detail.status.tiers if t.gate and t.gate.status == "open"}
    for cred_id, cs in detail.credentials.items():
        if cs.state in FINISHED:
            continue
        gate = next((g for g in cs.gates if g.status == "open"), None)
        if gate is not None:
            found[cred_id] = gate
    return found
