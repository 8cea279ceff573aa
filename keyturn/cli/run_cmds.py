"""`keyturn run | status | wait | approve | reject | cancel | worker`: operating runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from keyturn import runs
from keyturn.cli.common import EXIT_FAILED, EXIT_OK, OutputFormat, console, fail, print_json
from keyturn.cli.progress import watch
from keyturn.cli.render import open_gates, run_table, runs_table
from keyturn.client import connect
from keyturn.config import ConfigError, Settings
from keyturn.runbook import RunbookError, load_plan
from keyturn.workflows.models import GateState

Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json")]
As = Annotated[str | None, typer.Option("--as", help="principal acting (default: $KEYTURN_PRINCIPAL or $USER)")]
POLL_SECONDS = 1.0


def _run(coro):
    try:
        return asyncio.run(coro)
    except (ConfigError, runs.RunError) as exc:
        fail(str(exc))


def _detail_json(detail: runs.RunDetail) -> dict:
    return {
        **detail.status.model_dump(mode="json"),
        "credential_details": {k: v.model_dump(mode="json") for k, v in detail.credentials.items()},
        "open_gates": list(open_gates(detail)),
    }


async def _follow(client, run_id: str, output: OutputFormat) -> int:
    """Show live progress until the run ends; exit code 0 if it succeeded, 1 otherwise."""
    if output == OutputFormat.json:
        final = await runs.wait(client, run_id)
        print_json(_detail_json(await runs.describe(client, run_id)))
        return EXIT_OK if final.state == "succeeded" else EXIT_FAILED

    async def how_to_approve(target: str, gate: GateState, out: Console) -> None:
        out.print(f"[yellow]gate open:[/] {target}; approve with "
                  f"`keyturn approve {run_id} {target} --as <principal>`")

    final = await watch(client, run_id, console, how_to_approve, POLL_SECONDS)
    console.print(f"run {run_id} [bold]{final.state}[/]")
    return EXIT_OK if final.state == "succeeded" else EXIT_FAILED


def register(app: typer.Typer) -> None:
    @app.command()
    def worker() -> None:
        """Run a worker (same as `python worker.py`)."""
        from keyturn.worker import main

        main()

    @app.command()
    def run(
        runbook: Annotated[Path, typer.Argument(help="runbook YAML file")],
        as_: As = None,
        wait: Annotated[bool, typer.Option("--wait", help="follow progress until the run ends")] = False,
        output: Output = OutputFormat.text,
    ) -> None:
        """Start a rotation run; prints the run id."""
        settings = Settings.from_env()
        principal = as_ or settings.principal
        try:
            plan = load_plan(runbook, requested_by=principal, now=datetime.now(UTC))
        except RunbookError as exc:
            fail(str(exc))

        async def go() -> int:
            client = await connect(settings)
            run_id = await runs.start(client, plan, settings.task_queue)
            if output == OutputFormat.json and not wait:
                print_json({"run_id": run_id, "runbook": plan.runbook, "incident": plan.incident})
            elif output == OutputFormat.text:
                console.print(f"started run [bold]{run_id}[/] ({plan.runbook}, requested by {principal})")
            return await _follow(client, run_id, output) if wait else EXIT_OK

        raise typer.Exit(_run(go()))

    @app.command()
    def status(
        run_id: Annotated[str | None, typer.Argument(help="a run id; omit to list runs")] = None,
        output: Output = OutputFormat.text,
    ) -> None:
        """List runs, or show one run's tiers, credentials, steps and open gates."""
        settings = Settings.from_env()

        async def go() -> None:
            client = await connect(settings)
            if run_id is None:
                listed = await runs.list_runs(client)
                if output == OutputFormat.json:
                    print_json(listed)
                    return
                console.print(runs_table(listed) if listed else "no runs")
                return
            detail = await runs.describe(client, run_id)
            if output == OutputFormat.json:
                print_json(_detail_json(detail))
            else:
                console.print(run_table(detail))

        _run(go())

    @app.command()
    def wait(run_id: str, output: Output = OutputFormat.text) -> None:
        """Block until the run ends; exit 0 if it succeeded, 1 if it failed or was cancelled."""
        settings = Settings.from_env()

        async def go() -> int:
            client = await connect(settings)
            await runs.describe(client, run_id)
            return await _follow(client, run_id, output)

        raise typer.Exit(_run(go()))

    def _decide(run_id: str, target: str, principal: str, reason: str, approve: bool,
                output: OutputFormat) -> None:
        settings = Settings.from_env()

        async def go() -> None:
            client = await connect(settings)
            result = await runs.decide(client, run_id, target, principal, reason, approve=approve)
            if output == OutputFormat.json:
                print_json(result.model_dump(mode="json"))
            else:
                verb = "approved" if approve else "rejected"
                console.print(f"{verb} {target} (gate before {result.gate}) as {principal}: "
                              f"gate {result.status}, {result.approvals}/{result.needed} approvals")

        _run(go())

    @app.command()
    def approve(
        run_id: str,
        target: Annotated[str, typer.Argument(help="credential id or tier id with an open gate")],
        as_: As = None,
        reason: Annotated[str, typer.Option("--reason", help="why")] = "",
        output: Output = OutputFormat.text,
    ) -> None:
        """Approve an open gate."""
        _decide(run_id, target, as_ or Settings.from_env().principal, reason, True, output)

    @app.command()
    def reject(
        run_id: str,
        target: Annotated[str, typer.Argument(help="credential id or tier id with an open gate")],
        reason: Annotated[str, typer.Option("--reason", help="why (required)")],
        as_: As = None,
        output: Output = OutputFormat.text,
    ) -> None:
        """Reject an open gate.

        Before promote the credential rolls back (old one left working); at a revoke
        gate the new credential stays delivered and the old one is not deleted; a
        rejected tier gate keeps the tier from starting.
        """
        _decide(run_id, target, as_ or Settings.from_env().principal, reason, False, output)

    @app.command()
    def cancel(run_id: str) -> None:
        """Cancel a run; credentials not yet promoted roll back."""
        settings = Settings.from_env()

        async def go() -> None:
            client = await connect(settings)
            await runs.cancel(client, run_id)
            console.print(f"cancellation requested for {run_id}")

        _run(go())
