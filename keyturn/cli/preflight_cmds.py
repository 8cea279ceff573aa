"""`keyturn preflight RUNBOOK`: every check a run makes before its first change, changing nothing.

Also the refusal `keyturn run` prints when preflight finds a problem. The report
is one block per credential (ready, or each problem with what to do), then the
gates; ids, paths and messages are printed whole and literally, one item a
line, so they can be copied and piped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from keyturn.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    OutputFormat,
    console,
    err_console,
    print_json,
)
from keyturn.operations.preflight import PreflightReport


def render_report(report: PreflightReport, out: Console) -> None:
    """The report as text: a line per credential, its problems and notes indented below it."""
    for check in report.credentials:
        mark, style = ("ready", "green") if check.ready else ("NOT READY", "bold red")
        out.print(Text.assemble((f"{mark:9} ", style), (check.credential, "bold"),
                                f"  {check.provider}  tier {check.tier}"), soft_wrap=True)
        for problem in check.problems:
            out.print(Text.assemble("    ", (f"{problem.check}: ", "red"), problem.message),
                      soft_wrap=True)
        for note in check.notes:
            out.print(Text(f"    {note}", style="dim"), soft_wrap=True)
    for gate in report.gates:
        mark, style = ("ready", "green") if gate.ready else ("NOT READY", "bold red")
        who = ", ".join(gate.eligible) or "nobody"
        out.print(Text.assemble((f"{mark:9} ", style), ("gate ", "bold"), gate.gate,
                                f"  {gate.approvals} of: {who}"), soft_wrap=True)
        if gate.message:
            out.print(Text(f"    {gate.message}", style="red"), soft_wrap=True)
    ready = sum(1 for c in report.credentials if c.ready)
    out.print(Text(f"{ready} of {len(report.credentials)} credential(s) ready"
                   + ("; nothing was changed" if not report.ready else ""),
                   style="bold" if report.ready else "bold red"), soft_wrap=True)


def report_json(report: PreflightReport) -> dict[str, Any]:
    return report.model_dump(mode="json")


def preflight_command(
    runbook: Annotated[Path, typer.Argument(help="runbook YAML file")],
    as_: Annotated[str | None, typer.Option(
        "--as", help="principal who would request the run (gates exclude them where distinct)"
    )] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json")]
    = OutputFormat.text,
) -> None:
    """Check a runbook against the real stores and providers without changing anything.

    Exit 0 when every credential and gate is ready, 1 when preflight found a problem, 2 for
    an invalid runbook.

    Example: keyturn preflight runbooks/incident.yaml -o json
    """
    from keyturn.cli.run_ops import operations, run_with

    report = run_with(operations(as_), lambda ops: ops.preflight(runbook), output)
    show(report, output)
    raise typer.Exit(EXIT_OK if report.ready else EXIT_FAILED)


def show(report: PreflightReport, output: OutputFormat, *, refused: bool = False) -> None:
    """Print the report (json on stdout, or text); a refusal's text goes to stderr."""
    if output == OutputFormat.json:
        print_json(report_json(report))
    else:
        render_report(report, err_console if refused else console)


def register(app: typer.Typer) -> None:
    app.command("preflight")(preflight_command)
