"""`keyturn run | status | wait | approve | reject | cancel | supply`: operating runs.

Each command is written once against RunOperations (keyturn.cli.run_ops): directly
over Temporal, or, when KEYTURN_API_URL and KEYTURN_TOKEN are both set, through
keyturn's HTTP API, which then takes the acting principal from the token (no --as).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.markup import escape
from rich.text import Text

from keyturn.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    OutputFormat,
    console,
    err_console,
    fail,
    print_json,
    show_view,
)
from keyturn.cli.render import locks_table, open_gates, run_table, runs_table
from keyturn.cli.run_ops import RunOperations, operations, run_with
from keyturn.operations.gates import GATE_KINDS
from keyturn.operations.runs import RunSnapshot
from keyturn.runbook.plan_model import ExecutionPlan

Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json")]
As = Annotated[str | None, typer.Option("--as", help="principal acting (default: $KEYTURN_PRINCIPAL or $USER)")]
GateKind = Enum("GateKind", {k: k for k in GATE_KINDS}, type=str)
Kind = Annotated[GateKind | None, typer.Option(
    "--kind", help="which gate TARGET names, tier or credential (refused if it is not)")]
Target = Annotated[str, typer.Argument(help="credential id or tier id with an open gate")]
RunIdArg = Annotated[str, typer.Argument(help="the run id (`keyturn status` lists runs)")]


class OnLockedChoice(str, Enum):
    refuse = "refuse"
    wait = "wait"


OnLockedOption = Annotated[OnLockedChoice | None, typer.Option(
    "--on-locked", help="when another run holds a credential's target: refuse (the credential "
    "fails at step lock, naming that run) or wait for it; default: as the runbook says")]


def interrupted(run_id: str | None) -> NoReturn:
    """Ctrl-C while following a run: it goes on without us; say how to find it again."""
    if run_id is None:
        err_console.print("interrupted before the run started: nothing was started",
                          highlight=False)
    else:
        err_console.print(Text(
            f"interrupted: run {run_id} goes on; follow it again with `keyturn wait {run_id}`, "
            f"see it with `keyturn status {run_id}`, stop it with `keyturn cancel {run_id}`"),
            highlight=False)
    raise SystemExit(130)


def detail_json(detail: RunSnapshot) -> dict:
    return {
        **detail.status.model_dump(mode="json"),
        "credential_details": {k: v.model_dump(mode="json") for k, v in detail.credentials.items()},
        "open_gates": list(open_gates(detail)),
    }


async def follow(ops: RunOperations, run_id: str, output: OutputFormat) -> int:
    """Show progress until the run ends; exit code 0 if it succeeded, 1 otherwise."""
    followed = await ops.follow(run_id, live=output == OutputFormat.text)
    if followed.detail is not None:
        print_json(detail_json(followed.detail))
    else:
        console.print(f"run {run_id} [bold]{followed.state}[/]")
    return EXIT_OK if followed.state == "succeeded" else EXIT_FAILED


def run(
    runbook: Annotated[Path, typer.Argument(help="runbook YAML file")],
    as_: As = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow progress until the run ends")] = False,
    skip_preflight: Annotated[bool, typer.Option(
        "--skip-preflight", help="BREAK-GLASS: start without preflight's checks (audited)")] = False,
    output: Output = OutputFormat.text,
    on_locked: OnLockedOption = None,
) -> None:
    """Run preflight, then start a rotation run; prints the run id.

    A preflight problem refuses the run with the report (exit 1) before anything changes.
    Example: keyturn run runbooks/incident.yaml --wait
    """
    ops = operations(as_)
    if skip_preflight:
        err_console.print("[bold red]warning:[/] --skip-preflight: the run starts without "
                          "preflight's checks; the audit log records who skipped them")
    started: list[str] = []

    def checking(plan: ExecutionPlan) -> None:
        if output == OutputFormat.text:
            count = sum(len(tier.credentials) for tier in plan.tiers)
            err_console.print(f"preflight: checking {count} credential(s)…", highlight=False)

    async def go(ops: RunOperations) -> int:
        done = await ops.start(runbook, skip_preflight=skip_preflight,
                               on_locked=on_locked.value if on_locked else None,
                               on_preflight=checking)
        started.append(done.run_id)
        if output == OutputFormat.json and not wait:
            print_json(done.shown)
        elif output == OutputFormat.text:
            console.print(f"started run [bold]{escape(done.run_id)}[/] ({escape(done.runbook)}, "
                          f"requested by {escape(done.requested_by)})")
        return await follow(ops, done.run_id, output) if wait else EXIT_OK

    try:
        raise typer.Exit(run_with(ops, go, output))
    except KeyboardInterrupt:
        interrupted(started[0] if started else None)


def status(
    run_id: Annotated[str | None, typer.Argument(help="a run id; omit to list runs")] = None,
    output: Output = OutputFormat.text,
) -> None:
    """List runs and the targets they hold, or show one run's tiers, credentials, steps
    and open gates.

    Example: keyturn status $RUN -o json
    """

    async def go(ops: RunOperations) -> None:
        if run_id is None:
            listed, held = await ops.listing()
            if output == OutputFormat.json:
                print_json({"runs": listed, "locks": held})
                return
            show_view(runs_table(listed) if listed else "no runs")
            show_view(locks_table(held) if held else "no targets held")
            return
        detail = await ops.detail(run_id)
        if output == OutputFormat.json:
            print_json(detail_json(detail))
        else:
            show_view(run_table(detail))

    run_with(operations(), go, output)


def wait(run_id: RunIdArg, output: Output = OutputFormat.text) -> None:
    """Block until the run ends; exit 0 if it succeeded, 1 if it failed or was cancelled.

    Example: keyturn wait $RUN
    """
    ops = operations()
    try:
        raise typer.Exit(run_with(ops, lambda ops: follow(ops, run_id, output), output))
    except KeyboardInterrupt:
        interrupted(run_id)


def decide(run_id: str, target: str, as_: str | None, reason: str, approve: bool,
           output: OutputFormat, kind: GateKind | None = None) -> None:
    """Approve or reject the open gate of `target`, and say where the gate stands now."""
    verb = "approved" if approve else "rejected"

    async def go(ops: RunOperations) -> None:
        decided = await ops.decide(run_id, target, reason, approve=approve,
                                   kind=kind.value if kind else None)
        if output == OutputFormat.json:
            print_json(decided.shown)
            return
        gate = decided.shown
        console.print(Text(f"{verb} {target} (gate before {gate['gate']}) as "
                           f"{decided.principal}: gate {gate['status']}, "
                           f"{gate['approvals']}/{gate['needed']} approvals"))

    run_with(operations(as_), go, output)


def approve(
    run_id: RunIdArg,
    target: Target,
    as_: As = None,
    reason: Annotated[str, typer.Option("--reason", help="why")] = "",
    kind: Kind = None,
    output: Output = OutputFormat.text,
) -> None:
    """Approve an open gate.

    Example: keyturn approve $RUN tier3 --reason "scope checked" --as bob
    """
    decide(run_id, target, as_, reason, True, output, kind)


def reject(
    run_id: RunIdArg,
    target: Target,
    reason: Annotated[str, typer.Option("--reason", help="why (required)")],
    as_: As = None,
    kind: Kind = None,
    output: Output = OutputFormat.text,
) -> None:
    """Reject an open gate.

    Before promote the credential rolls back (old one left working); at a revoke
    gate the new credential stays delivered and the old one is not deleted; a
    rejected tier gate keeps the tier from starting.

    Example: keyturn reject $RUN orders-app-aws --reason "wrong account" --as bob
    """
    decide(run_id, target, as_, reason, False, output, kind)


def cancel(
    run_id: RunIdArg,
    as_: As = None,
    reason: Annotated[str, typer.Option("--reason", help="why (in the audit log)")] = "",
    output: Output = OutputFormat.text,
) -> None:
    """Cancel a run; credentials not yet promoted roll back. The audit log names who.

    Example: keyturn cancel $RUN --reason "wrong account" --as alice
    """

    async def go(ops: RunOperations) -> None:
        await ops.cancel(run_id, reason)
        if output == OutputFormat.json:
            print_json({"run_id": run_id, "status": "cancel_requested"})
        else:
            console.print(Text(f"cancellation requested for {run_id}"))

    run_with(operations(as_), go, output)


def supply(
    run_id: RunIdArg,
    credential: Annotated[str, typer.Argument(help="the supplied credential waiting (e.g. a github.pat)")],
    as_: As = None,
    field: Annotated[str | None, typer.Option(
        "--field", help="secret field name (default: what the provider expects, e.g. token)")] = None,
    output: Output = OutputFormat.text,
) -> None:
    """Put an operator-made replacement into the store (read from a hidden prompt or stdin).

    The value goes straight to the credential's staging location; the run is
    told only its fingerprint, then verifies it and revokes the old credential.

    Example: keyturn supply $RUN ci-pat --as alice
    """

    async def go(ops: RunOperations) -> None:
        where = await ops.awaiting_supply(run_id, credential)  # before asking for the value
        notice = await ops.supply(run_id, credential, read_supplied_value(credential), field)
        if output == OutputFormat.json:
            print_json(notice)
        else:
            console.print(Text(f"{credential}: supplied value {notice['fingerprint']} written "
                               f"to {where} (version {notice['staging_version']}); the run "
                               "now verifies it"))

    run_with(operations(as_), go, output)


def read_supplied_value(credential: str) -> str:
    """One line from stdin when piped, else a hidden prompt asked twice."""
    if sys.stdin.isatty():
        value = typer.prompt(f"new value for {credential}", hide_input=True,
                             confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        fail(f"no value given for {credential}: pipe it on stdin or type it at the prompt")
    return value


def register(app: typer.Typer) -> None:
    for command in (run, status, wait, approve, reject, cancel, supply):
        app.command()(command)
