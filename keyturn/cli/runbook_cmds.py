"""`keyturn validate` and `keyturn plan`: check runbooks and show what a run would do.

Both are read-only: nothing is started, no provider or store is contacted.
Runbook problems print as "file:line:col: reason" on stderr and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.text import Text

from keyturn.cli.common import EXIT_USAGE, OutputFormat, print_json, refuse, show_view
from keyturn.cli.layout import Sheet
from keyturn.config import ConfigError, Settings
from keyturn.durations import format_duration
from keyturn.operations.errors import InvalidRunbook
from keyturn.operations.plans import RunbookSource, compile_plan
from keyturn.policy.load import PolicyError, load_policy
from keyturn.runbook import RunbookError, check
from keyturn.runbook.plan_model import CredentialPlan, ExecutionPlan, GatePlan, TierPlan

PREVIEW_RUN_ID = "plan-preview"


def register(app: typer.Typer) -> None:
    """Add the runbook commands to the `keyturn` app."""
    app.command("validate")(validate_command)
    app.command("plan")(plan_command)


def validate_command(
    paths: Annotated[list[Path], typer.Argument(help="Runbook files to check.")],
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.text,
) -> None:
    """Check runbooks: YAML, format, references, cycles, providers, and the approval policy
    when one is in force. Exit 2 on any problem.

    Example: keyturn validate runbooks/demo.yaml -o json
    """
    try:
        policy = load_policy()
    except PolicyError as err:
        refuse(err, output)
    results = []
    for path in paths:
        try:
            runbook = check(path, policy=policy)
        except RunbookError as err:
            typer.echo(str(err), err=True)
            results.append({"path": str(path), "ok": False,
                            "error": {"code": err.code, "message": str(err), **err.details()}})
            continue
        tiers, creds = len(runbook.spec.tiers), len(runbook.credentials())
        results.append({"path": str(path), "ok": True, "tiers": tiers, "credentials": creds})
        if output is OutputFormat.text:
            typer.echo(f"ok: {path} ({tiers} tiers, {creds} credentials)")
    if output is OutputFormat.json:
        print_json({"ok": all(r["ok"] for r in results), "files": results})
    if not all(r["ok"] for r in results):
        raise typer.Exit(EXIT_USAGE)


def plan_command(
    path: Annotated[Path, typer.Argument(help="Runbook file to plan.")],
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.text,
) -> None:
    """Show the execution plan: tiers in the order they run, gates, strategies, targets.

    Example: keyturn plan runbooks/demo.yaml
    """
    try:
        settings = Settings.from_env()
        execution = compile_plan(settings, RunbookSource.read(path),
                                 requested_by=settings.principal, run_id=PREVIEW_RUN_ID)
    except (InvalidRunbook, ConfigError) as err:
        refuse(err, output)
    if output is OutputFormat.json:
        print_json(execution.model_dump(mode="json"))
    else:
        show_view(plan_table(execution))


def plan_table(execution: ExecutionPlan) -> Sheet:
    """The tier matrix in execution order: one row per credential, tier facts on its first row."""
    incident = f" ({execution.incident})" if execution.incident else ""
    sheet = Sheet(
        ["tier", "credential", "provider", "target", "strategy", "gate", "depends_on", "deliver"],
        title=f"{execution.runbook}{incident}",
        table={"caption": "run_id: (not started)", "box": box.SIMPLE_HEAD},
    )
    for n, tier in enumerate(execution.tiers):
        for i, cred in enumerate(tier.credentials):
            sheet.add_row(_tier_cell(tier) if i == 0 else "", *_credential_cells(cred),
                          indent=0 if i == 0 else 1)
        if n < len(execution.tiers) - 1:
            sheet.add_section()
    return sheet


def _tier_cell(tier: TierPlan) -> Text:
    cell = Text.assemble((tier.id, "bold"), f" {tier.name}".rstrip())
    if tier.after:
        cell.append(f"\nafter {', '.join(tier.after)}")
    if tier.gate:
        cell.append(f"\ngate: {_gate_text(tier.gate)}")
    return cell


def _credential_cells(cred: CredentialPlan) -> list[Text | str]:
    strategy = Text(cred.strategy, style="bold red" if cred.strategy == "revoke-first" else "")
    strategy.append(f"\ngrace {format_duration(cred.grace_period)}"
                    + ("\nwaits if target held" if cred.on_locked == "wait" else ""))
    return [
        cred.id,
        cred.provider,
        "\n".join(f"{key}={value}" for key, value in cred.target.items()),
        strategy,
        "\n".join(_gate_text(gate) for gate in cred.gates),
        ", ".join(cred.depends_on),
        "\n".join(f"{loc.store}:{loc.path}" for loc in cred.deliver),
    ]


def _gate_text(gate: GatePlan) -> str:
    text = f"{gate.approvals} of {', '.join(gate.groups)}" + (" distinct" if gate.distinct else "")
    if gate.before != "tier":
        text = f"before {gate.before}: {text}"
    return text + (f", timeout {format_duration(gate.timeout)}" if gate.timeout else "")
