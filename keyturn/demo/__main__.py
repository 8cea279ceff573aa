"""`make demo`: the main job end to end on the embedded local stack.

Brings the stack up, seeds what runbooks/demo.yaml rotates (IAM keys, a PKI
code-signing certificate, a KMS signing key; their old values in OpenBao and
Secrets Manager), starts a worker, runs the runbook with the CLI, approves its
gates from the CLI as principals distinct from the requester, then verifies and
replays the audit log and proves each rotation against the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from keyturn.cli.progress import watch
from keyturn.config import Settings
from keyturn.demo.proofs import summary
from keyturn.demo.seed import Admin, seed
from keyturn.devstack.stack import DevStack
from keyturn.operations.connect import connect
from keyturn.runbook import load
from keyturn.workflows.models import GateState

console = Console(emoji=False)  # serials and names are shown as they are
REQUESTER = "dave"
APPROVERS = ["alice", "bob"]  # each gate gets as many of these as it needs


def keyturn_cli(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run the keyturn CLI as a user would, echoing the command."""
    console.print(f"[dim]$ keyturn {' '.join(shlex.quote(a) for a in args)}[/]")
    return subprocess.run([sys.executable, "-m", "keyturn", *args], text=True,
                          capture_output=capture, check=False)


async def follow(settings: Settings, run_id: str) -> str:
    """Live progress; approve each gate from the CLI as it opens. Returns the final state."""

    async def approve(target: str, gate: GateState, out: Console) -> None:
        out.print(f"[yellow]gate open[/] on {target} (needs {gate.plan.approvals}, "
                  f"from {', '.join(gate.plan.groups)})")
        for principal in APPROVERS[: gate.plan.approvals]:
            result = await asyncio.to_thread(
                keyturn_cli, "approve", run_id, target, "--as", principal,
                "--reason", "demo: replacement verified", capture=True)
            out.print(result.stdout.strip() or result.stderr.strip())

    final = await watch(await connect(settings), run_id, console, approve, poll_seconds=0.5)
    return final.state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", default=".keyturn")
    parser.add_argument("--runbook", default="runbooks/demo.yaml", type=Path)
    parser.add_argument("--down", action="store_true", help="stop the local stack at the end")
    args = parser.parse_args(argv)
    if not sys.stdout.isatty():
        os.environ.setdefault("COLUMNS", "160")  # logs and CI: wide tables, for us and the CLI
        console.width = int(os.environ["COLUMNS"])
    stack = DevStack(args.state_dir)
    try:
        good = demo(stack, args.runbook)
    finally:
        if args.down:
            stack.down()
    console.print("[bold green]demo complete: every credential rotated, audit trail verified[/]"
                  if good else "[bold red]demo failed[/]")
    if not args.down:
        console.print(f"the stack is still up: `source {stack.env_file}` to explore, "
                      "`keyturn dev down` to stop it")
    return 0 if good else 1


def demo(stack: DevStack, runbook: Path) -> bool:
    """Stack up, seed, worker, run with approvals, audit, summary; True if all went right."""
    console.rule("[bold]keyturn demo: local stack")
    with console.status("starting Temporal, OpenBao and the AWS emulator on 127.0.0.1") as status:
        report = stack.up(lambda name: status.update(f"starting {name}"))
    for server in report.servers:
        console.print(f"  {server.name:9} {server.state:4} {server.address or server.url}  ({server.action})")
        if server.ui:
            console.print(f"  Temporal Web UI: {server.ui}", highlight=False)
    ui = next((server.ui for server in report.servers if server.ui), None)
    os.environ.update(stack.read_env_file())
    settings = Settings.from_env()

    admin = Admin.from_env()
    rotating = load(runbook)
    console.rule("[bold]seeding: the credentials to rotate, their old values in the stores")
    seeded = seed(rotating, admin)
    for cred_id, old in seeded.items():
        console.print(f"  {cred_id:22} {old.described}  -> {old.location}")

    console.rule("[bold]worker")
    log_path = stack.state_dir / "worker.log"
    with open(log_path, "ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "keyturn", "worker"], stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    console.print(f"  worker pid {worker.pid}, log {log_path}")
    try:
        console.rule(f"[bold]run {runbook} (requested by {REQUESTER})")
        started = keyturn_cli("run", str(runbook), "--as", REQUESTER, "--output", "json",
                              capture=True)
        if started.returncode != 0:
            console.print(started.stderr)
            return False
        run_id = json.loads(started.stdout)["run_id"]
        console.print(f"  run id {run_id}")
        if ui:
            console.print(f"  in the Web UI: {ui}/namespaces/{settings.namespace}/workflows/"
                          f"{run_id}", highlight=False, soft_wrap=True)
        final = asyncio.run(follow(settings, run_id))
        console.print(f"run {run_id}: [bold]{final}[/]")

        console.rule("[bold]audit trail")
        signed = keyturn_cli("audit", "checkpoint").returncode == 0
        verified = signed and keyturn_cli("audit", "verify").returncode == 0
        replayed = keyturn_cli("audit", "replay", run_id).returncode == 0
        console.rule("[bold]summary")
        table, rotated = summary(rotating, admin, seeded)
        console.print(table)
    finally:
        stop_worker(worker)
    return final == "succeeded" and verified and replayed and rotated


def stop_worker(worker: subprocess.Popen) -> None:
    """SIGTERM the worker's process group (in-flight activities finish); SIGKILL after 30 s."""
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


if __name__ == "__main__":
    sys.exit(main())
