"""`keyturn doctor`: check this deployment's configuration, changing nothing.

A table of checks (Temporal, search attributes, codec key, workers, audit log,
signing key, provider identities, API token file, policy), each failed one
with its fix; exit 0 when nothing failed, 1 otherwise. Skipped checks (nothing
configured to check) do not fail. Secrets are never printed.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.text import Text

from keyturn.cli.common import EXIT_FAILED, EXIT_OK, OutputFormat, print_json, refuse, show_view
from keyturn.cli.layout import Sheet
from keyturn.config import ConfigError, Settings
from keyturn.doctor import DEFAULT_TIMEOUT, Context, Finding, run_checks

_STYLE = {"ok": "green", "fail": "bold red", "skip": "dim"}


def _sheet(findings: list[Finding]) -> Sheet:
    sheet = Sheet(["check", "status", "detail", "fix"])
    for f in findings:
        sheet.add_row(Text(f.check, style="bold"), Text(f.status, style=_STYLE[f.status]),
                      f.detail, f.fix)
    return sheet


def doctor_command(
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0.1, help="seconds each check may take before it is reported failed",
    )] = DEFAULT_TIMEOUT,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json")]
    = OutputFormat.text,
) -> None:
    """Check this deployment's configuration without changing anything.

    Temporal (address, TLS, API key, namespace), keyturn's search attributes, the codec
    key against the polling workers', the workers, the audit log and its signing key,
    each provider identity configured in the environment, the API token file and the
    policy file. Exit 0 when no check failed, 1 otherwise.

    Example: keyturn doctor -o json
    """
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        refuse(exc, output)
    findings = asyncio.run(run_checks(Context(settings), timeout))
    if output == OutputFormat.json:
        print_json({"ok": all(f.status != "fail" for f in findings),
                    "checks": [f.to_dict() for f in findings]})
    else:
        show_view(_sheet(findings))
        bad = [f.check for f in findings if f.status == "fail"]
        show_view(Text(f"{len(bad)} check(s) failed: {', '.join(bad)}" if bad else
                       "every check passed", style="bold red" if bad else "bold green"))
    raise typer.Exit(EXIT_FAILED if any(f.status == "fail" for f in findings) else EXIT_OK)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)
