"""`keyturn validate` and `keyturn plan`: check runbooks and show what a run would do.

Both are read-only: nothing is started, no provider or store is contacted.
Runbook problems print as "file:line:col: reason" on stderr and exit 2.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from keyturn.cli.common import EXIT_USAGE, OutputFormat, console, print_json
from keyturn.config import ConfigError, Settings
from keyturn.durations import format_duration
from keyturn.runbook import RunbookError, check, load_plan
from keyturn.runbook.plan_model import CredentialPlan, ExecutionPlan, GatePlan, TierPlan

PREVIEW_RUN_ID = "plan-preview"


def register(app: typer.Typer) -> None:
    """Add the runbook commands to the `keyturn` app."""
    app.command("validate")(validate_command)
    app.command("plan")(plan_command)


def validate_command(
    paths: Annotated[list[Path], typer.Argument(help="Runbook files to check.")],
) -> None:
    """Check runbooks: YAML, format, references, cycles, providers. Exit 2 on any problem."""
    failed = False
    for path in paths:
        try:
            runbook = check(path)
        except RunbookError as err:
            typer.echo(str(err), err=True)
            failed = True
            continue
        creds = len(runbook.credentials())
        typer.echo(f"ok: {path} ({len(runbook.spec.tiers)} tiers, {creds} credentials)")
    if failed:
        raise typer.Exit(EXIT_USAGE)


def plan_command(
    path: Annotated[Path, typer.Argument(help="Runbook file to plan.")],
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.text,
) -> None:
    """Show the execution plan: tiers in the order they run, gates, strategies, targets."""
    try:
        settings = Settings.from_env()
        execution = load_plan(
            path, requested_by=settings.principal, now=datetime.now(UTC), run_id=PREVIEW_RUN_ID,
            requester_may_approve=settings.requester_may_approve,
        )
    except (RunbookError, ConfigError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if output is OutputFormat.json:
        print_json(execution.model_dump(mode="json"))
    else:
        console.print(plan_table(execution))


def plan_table(execution: ExecutionPlan) -> Table:
    """The tier matrix in execution order: one row per credential, tier facts on its first row."""
    incident = f" ({escape(execution.incident)})" if execution.incident else ""
    table = Table(
        title=f"{execution.runbook}{incident}",
        caption="run_id: (not started)",
        box=box.SIMPLE_HEAD,
    )
    # Credential ids and providers stay whole; the rest wraps, down to a readable width.
    min_widths = {"tier": 10, "strategy": 12, "gate": 12, "depends_on": 10, "deliver": 12}
    for column in ("tier", "credential", "provider", "strategy", "gate", "depends_on", "deliver"):
        table.add_column(
            column,
            no_wrap=column not in min_widths,
            overflow="fold",
            min_width=min_widths.get(column),
        )
    for n, tier in enumerate(execution.tiers):
        for i, cred in enumerate(tier.credentials):
            table.add_row(_tier_cell(tier) if i == 0 else "", *_credential_cells(cred))
        if n < len(execution.tiers) - 1:
            table.add_section()
    return table


def _tier_cell(tier: TierPlan) -> str:
    lines = [f"[bold]{tier.id}[/] {escape(tier.name)}".rstrip()]
    if tier.after:
        lines.append(f"after {', '.join(tier.after)}")
    if tier.gate:
        lines.append(f"gate: {_gate_text(tier.gate)}")
    return "\n".join(lines)


def _credential_cells(cred: CredentialPlan) -> list[str]:
    strategy = "[bold red]revoke-first[/]" if cred.strategy == "revoke-first" else cred.strategy
    return [
        cred.id,
        cred.provider,
        f"{strategy}\ngrace {format_duration(cred.grace_period)}"
        + ("\nwaits if target held" if cred.on_locked == "wait" else ""),
        "\n".join(_gate_text(gate) for gate in cred.gates),
        ", ".join(cred.depends_on),
        "\n".join(escape(f"{loc.store}:{loc.path}") for loc in cred.deliver),
    ]


def _gate_text(gate: GatePlan) -> str:
    text = f"{gate.approvals} of {', '.join(gate.groups)}" + (" distinct" if gate.distinct else "")
    if gate.before != "tier":
        text = f"before {gate.before}: {text}"
    return text + (f", timeout {format_duration(gate.timeout)}" if gate.timeout else "")
