"""The `keyturn` command: typer app assembled from the command groups."""

from __future__ import annotations

import typer

from keyturn.cli import audit_cmds, dev_cmds, run_cmds, runbook_cmds

app = typer.Typer(
    name="keyturn",
    help="Rotate every credential a supply-chain breach exposed: declarative, durable, audited.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
runbook_cmds.register(app)
run_cmds.register(app)
app.add_typer(dev_cmds.app, name="dev")
app.add_typer(audit_cmds.app, name="audit")


def main() -> None:
    app()
