"""`keyturn dev up|down|status|env`: run the embedded local stack for demos and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from keyturn.cli.common import EXIT_FAILED, OutputFormat, console, fail, print_json
from keyturn.devstack.servers import DevServerError
from keyturn.devstack.stack import DEFAULT_STATE_DIR, DevStack, StackReport

app = typer.Typer(
    help="Run the local stack (Temporal dev server, OpenBao, moto) on 127.0.0.1.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path,
    typer.Option("--state-dir", help="Where the stack keeps pids, logs, keys and dev.env."),
]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json.")]


def _print(report: StackReport, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json(report.to_dict())
        return
    table = Table("server", "state", "pid", "address", "action", "notes")
    for server in report.servers:
        colour = "green" if server.state == "up" else "red"
        table.add_row(
            server.name,
            f"[{colour}]{server.state}[/]",
            str(server.pid or "-"),
            server.address or "-",
            server.action or "-",
            "\n".join(server.notes),
        )
    console.print(table)
    for server in report.servers:
        if server.ui:
            console.print(f"Temporal Web UI: {server.ui}", highlight=False, soft_wrap=True)


@app.command()
def up(state_dir: StateDir = DEFAULT_STATE_DIR, output: Output = OutputFormat.text) -> None:
    """Start the servers that are not running (idempotent) and write dev.env.

    Example: keyturn dev up && source .keyturn/dev.env
    """
    stack = DevStack(state_dir)
    try:
        if output is OutputFormat.json:
            report = stack.up()
        else:
            with console.status("starting") as spinner:
                report = stack.up(lambda name: spinner.update(f"starting {name}"))
    except DevServerError as err:
        fail(str(err), EXIT_FAILED)
    _print(report, output)
    if output is OutputFormat.text:
        console.print(f"load the environment with: [bold]. {report.env_file}[/]")


@app.command()
def down(state_dir: StateDir = DEFAULT_STATE_DIR, output: Output = OutputFormat.text) -> None:
    """Stop the servers that `up` started (state files and the Temporal database stay).

    Example: keyturn dev down
    """
    try:
        report = DevStack(state_dir).down()
    except DevServerError as err:
        fail(str(err), EXIT_FAILED)
    _print(report, output)


@app.command()
def status(state_dir: StateDir = DEFAULT_STATE_DIR, output: Output = OutputFormat.text) -> None:
    """Show each server: up/down, pid, address. Exits 1 unless all are up.

    Example: keyturn dev status -o json
    """
    report = DevStack(state_dir).status()
    _print(report, output)
    if not report.all_up:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def env(state_dir: StateDir = DEFAULT_STATE_DIR, output: Output = OutputFormat.text) -> None:
    """Print dev.env (export lines), or its path and variables as json.

    Example: keyturn dev env -o json
    """
    stack = DevStack(state_dir)
    if not stack.env_file.exists():
        fail(f"{stack.env_file} does not exist: run `keyturn dev up` first", EXIT_FAILED)
    if output is OutputFormat.json:
        print_json({"env_file": str(stack.env_file), "env": stack.read_env_file()})
    else:
        typer.echo(stack.env_file.read_text(), nl=False)
