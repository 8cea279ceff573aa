"""The `keyturn` command: typer app assembled from the command groups."""

from __future__ import annotations

import os
import sys

import click
import typer
from typer.core import TyperOption

from keyturn.cli import (
    api_cmds,
    audit_cmds,
    dev_cmds,
    doctor_cmds,
    preflight_cmds,
    provider_cmds,
    run_cmds,
    runbook_cmds,
    scope_cmds,
)


def _flags_render_as_flags() -> None:
    """Help shows a flag as a flag: typer (0.29) prints every option's type, `<bool>` for
    flags too (`--wait <bool>`), which reads as if the flag took a value."""
    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: click.Context) -> str | None:
        return None if self.is_flag and not self.count else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_render_as_flags()
app = typer.Typer(
    name="keyturn",
    help="Rotate every credential a supply-chain breach exposed: declarative, durable, audited.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
runbook_cmds.register(app)
preflight_cmds.register(app)
run_cmds.register(app)
provider_cmds.register(app)
app.add_typer(dev_cmds.app, name="dev")
app.add_typer(audit_cmds.app, name="audit")
app.add_typer(scope_cmds.app, name="scope")
api_cmds.register(app)
doctor_cmds.register(app)


def main() -> None:
    """Run the app, then leave without interpreter finalization.

    The Temporal SDK's native runtime threads can crash the interpreter while
    it finalizes (seen with temporalio 1.35: "PyGILState_Release ... must be
    current"), turning a finished command into exit 134. Everything the
    command had to say is flushed first; nothing else is left to clean up.
    """
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
