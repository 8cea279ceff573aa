"""`make demo`: the main job end to end on the embedded local stack.

Brings the stack up, seeds the AWS emulator with users and their old keys (and
Vault with the old values), starts a worker, runs runbooks/demo.yaml with the
CLI, approves its gates from the CLI as principals distinct from the requester,
then verifies and replays the audit log and shows what was rotated.
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

import boto3
import botocore.exceptions
import hvac
from rich.console import Console
from rich.table import Table

from keyturn.cli.progress import watch
from keyturn.client import connect
from keyturn.config import Settings
from keyturn.devstack.stack import DevStack
from keyturn.runbook import load
from keyturn.workflows.models import GateState

console = Console()
REQUESTER = "dave"
APPROVERS = ["alice", "bob"]  # each gate gets as many of these as it needs


def keyturn_cli(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run the keyturn CLI as a user would, echoing the command."""
    console.print(f"[dim]$ keyturn {' '.join(shlex.quote(a) for a in args)}[/]")
    return subprocess.run([sys.executable, "-m", "keyturn", *args], text=True,
                          capture_output=capture, check=False)


def aws_users(runbook_path: Path) -> list[tuple[str, str, str]]:
    """(credential id, IAM user, Vault path) for each AWS key in the runbook."""
    runbook = load(runbook_path)
    found = []
    for tier in runbook.spec.tiers:
        for cred in tier.credentials:
            if cred.provider == "aws.iam_access_key":
                found.append((cred.id, cred.target["user_name"], cred.deliver[0].path))
    return found


def seed(users: list[tuple[str, str, str]], vault: hvac.Client, iam) -> dict[str, str]:
    """Each user gets exactly one (old) key, and Vault holds its value; returns user -> key id."""
    old = {}
    for _, user, path in users:
        try:
            iam.create_user(UserName=user)
        except iam.exceptions.EntityAlreadyExistsException:
            for key in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
                iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
        key = iam.create_access_key(UserName=user)["AccessKey"]
        vault.secrets.kv.v2.create_or_update_secret(
            path=path, mount_point="secret",
            secret={"aws_access_key_id": key["AccessKeyId"],
                    "aws_secret_access_key": key["SecretAccessKey"]},
        )
        old[user] = key["AccessKeyId"]
    return old


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


def summary(users, old: dict[str, str], iam, sts_for, vault: hvac.Client) -> bool:
    """Table of what was rotated, checked against the emulator and Vault; True if all is right."""
    table = Table(title="rotated")
    for col in ("credential", "IAM user", "old key", "new key", "Vault", "old key rejected"):
        table.add_column(col)
    ok = True
    for cred_id, user, path in users:
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        stored = vault.secrets.kv.v2.read_secret_version(path=path, mount_point="secret",
                                                         raise_on_deleted_version=True)
        value, version = stored["data"]["data"], stored["data"]["metadata"]["version"]
        new_ids = [k["AccessKeyId"] for k in keys]
        good = new_ids == [value["aws_access_key_id"]] and old[user] not in new_ids
        old_value = vault.secrets.kv.v2.read_secret_version(
            path=path, mount_point="secret", version=version - 1,
            raise_on_deleted_version=True)["data"]["data"]
        try:
            sts_for(old_value).get_caller_identity()
            rejected = False
        except botocore.exceptions.ClientError:
            rejected = True
        ok = ok and good and rejected
        table.add_row(cred_id, user, old[user], ", ".join(new_ids),
                      f"{path} v{version}", "yes" if rejected else "[red]NO[/]")
    console.print(table)
    return ok


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
    os.environ.update(stack.read_env_file())
    settings = Settings.from_env()

    session = {"region_name": os.environ["AWS_DEFAULT_REGION"],
               "endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
    iam = boto3.client("iam", **session)
    vault = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])

    def sts_for(secret: dict[str, str]):
        return boto3.client("sts", aws_access_key_id=secret["aws_access_key_id"],
                            aws_secret_access_key=secret["aws_secret_access_key"], **session)

    users = aws_users(runbook)
    console.rule("[bold]seeding: one old key per IAM user, its value in Vault")
    old = seed(users, vault, iam)
    for _, user, path in users:
        console.print(f"  {user:20} {old[user]}  -> vault secret/{path}")

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
        final = asyncio.run(follow(settings, run_id))
        console.print(f"run {run_id}: [bold]{final}[/]")

        console.rule("[bold]audit trail")
        signed = keyturn_cli("audit", "checkpoint").returncode == 0
        verified = signed and keyturn_cli("audit", "verify").returncode == 0
        replayed = keyturn_cli("audit", "replay", run_id).returncode == 0
        console.rule("[bold]summary")
        rotated = summary(users, old, iam, sts_for, vault)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    return final == "succeeded" and verified and replayed and rotated


if __name__ == "__main__":
    sys.exit(main())
