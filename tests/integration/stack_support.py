"""Support for integration tests: the environment a CLI user or worker would have, a worker
process, CLI invocation, seeding IAM users, and reading a run's Temporal histories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import botocore.exceptions
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from keyturn.codec import EncryptionCodec, parse_key
from keyturn.devstack.servers import MOTO_REGION


@dataclass
class Stack:
    env: dict[str, str]
    tmp: Path
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def audit_log(self) -> Path:
        return Path(self.env["KEYTURN_AUDIT_LOG"])

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "keyturn", *args], env=self.env, check=False,
                                text=True, capture_output=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"keyturn {' '.join(args)} -> {result.returncode}\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def cli_json(self, *args: str):
        return json.loads(self.cli(*args, "--output", "json", check=True).stdout)

    def start_worker(self, *args: str) -> subprocess.Popen:
        """A worker process (`keyturn worker ARGS`, e.g. --metrics-port), its output in
        worker-<n>.log."""
        log = open(self.tmp / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen([sys.executable, "-m", "keyturn", "worker", *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def worker_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("worker-*.log")))

    def stop(self) -> None:
        for proc in self.workers:
            self.kill_worker(proc, signal.SIGTERM)

    def wait_for(self, predicate, timeout: float = 90.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}")

    def audit_records(self, run_id: str | None = None) -> list[dict]:
        if not self.audit_log.exists():
            return []
        records = [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]
        return [r for r in records if run_id is None or r["run"] == run_id]


def make_stack(tmp: Path, temporal, openbao, moto, codec_key: str) -> Stack:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULT_", "KEYTURN_"))}
    env.update(
        KEYTURN_TEMPORAL_ADDRESS=temporal.address,
        KEYTURN_TASK_QUEUE=f"it-{uuid.uuid4().hex[:8]}",
        KEYTURN_AUDIT_LOG=str(tmp / "audit.jsonl"),
        KEYTURN_CODEC_KEY=codec_key,
        VAULT_ADDR=openbao.url,
        VAULT_TOKEN=openbao.root_token,
        AWS_ENDPOINT_URL=moto.url,
        AWS_ACCESS_KEY_ID=moto.admin_credentials["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=moto.admin_credentials["aws_secret_access_key"],
        AWS_DEFAULT_REGION=MOTO_REGION,
        COLUMNS="200",
    )
    return Stack(env=env, tmp=tmp)


def one_key_runbook(name: str) -> str:
    """A runbook named `name` rotating the access key of IAM user `name` into Vault at
    `name`/deployer (credential `deployer` in tier `tier1`)."""
    return f"""\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: {name}}}
spec:
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  tiers:
    - id: tier1
      credentials:
        - id: deployer
          provider: aws.iam_access_key
          target: {{user_name: {name}}}
          deliver: [{{store: vault, path: {name}/deployer}}]
"""


def seed_user(iam, vault, user: str, path: str) -> dict[str, str]:
    """An IAM user with one active key whose value Vault holds at `path`; returns the secret."""
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    secret = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    vault.secrets.kv.v2.create_or_update_secret(path=path, mount_point="secret", secret=secret)
    return secret


def sts_accepts(moto, secret: dict[str, str]) -> bool:
    sts = boto3.client("sts", endpoint_url=moto.url, region_name=MOTO_REGION, **secret)
    try:
        sts.get_caller_identity()
    except botocore.exceptions.ClientError:
        return False
    return True


def _payloads(message: Message):
    """Every Payload nested anywhere in a protobuf message."""
    if isinstance(message, Payload):
        yield message
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.is_repeated:
            items = value.values() if hasattr(value, "values") else value
            for item in items:
                if isinstance(item, Message):
                    yield from _payloads(item)
        else:
            yield from _payloads(value)


async def run_histories(client: Client, workflow_ids: list[str], codec_key: str
                        ) -> tuple[str, list[bytes], dict[str, int]]:
    """The workflows' histories as exported JSON, every payload in them decrypted,
    and each history's length in events."""
    codec = EncryptionCodec(parse_key(codec_key))
    exported, plain, sizes = [], [], {}
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        exported.append(history.to_json())
        sizes[workflow_id] = len(history.events)
        for event in history.events:
            encoded = list(_payloads(event))
            plain.extend(p.data for p in await codec.decode(encoded))
    return "\n".join(exported), plain, sizes


def run_workflow_ids(status: dict) -> list[str]:
    """The run's workflow ids: the run, its tiers that started, their credentials."""
    ids = [status["run_id"]]
    for tier in status["tiers"]:
        if tier["state"] not in ("pending", "skipped"):
            ids.append(f"{status['run_id']}.tier.{tier['tier']}")
    ids += [f"{status['run_id']}.cred.{c}" for c in status["credential_details"]]
    return ids
