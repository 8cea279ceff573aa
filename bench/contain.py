"""Time-to-contain: keyturn against the scripts a responder would write, on one dev stack.

Starts the Temporal dev server (SQLite file), OpenBao and moto with key checking
through ``keyturn.devstack.servers`` (127.0.0.1, free ports, temp state, stopped at
the end). Seeds three groups of N IAM users (default 100), each user with one access
key whose value sits in Vault in an application's shape ({ACCESS_KEY, SECRET_KEY,
region}), one group per contender so each starts from the same state. Then, in one run:

keyturn      ``python -m keyturn run runbook.yaml --wait`` (the real CLI: plan, preflight,
             run) served by ``python worker.py`` (the real worker, in its own process,
             durable JSONL audit log, encrypting codec), grace period 0,
             ``KEYTURN_RATE_LIMITS=aws=1000``; the worker starts and serves a one-credential
             warm-up run before the clock starts. Wall time of the CLI command.
sequential   a plain script, one user after the other: read the Vault path, create a
             key, write it to Vault (merging into the stored fields), STS
             GetCallerIdentity with the new key (retried as keyturn retries propagation),
             disable the old key, delete it: 6 requests per user
16 threads   the same function over a pool of 16 threads (a session and clients per
             thread)

Afterwards every user of every group must have exactly one access key, active, the one
in Vault, and STS must accept Vault's value as that user. The keyturn audit log is
verified. Prints each time, credentials/s and the ratios to the sequential script.

    .venv/bin/python bench/contain.py [--n 100] [--concurrency 10]   # --n 1000: issue 11
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import hvac
from figures import print_table
from preflight import CREDENTIAL, seed

from keyturn.audit import verify
from keyturn.codec import new_key
from keyturn.devstack.servers import (
    MOTO_REGION,
    MotoServer,
    OpenBaoServer,
    TemporalDevServer,
    terminate,
)

ROOT = Path(__file__).resolve().parents[1]
STS_ATTEMPTS, STS_DELAY = 6, 2.0  # as aws.iam_access_key waits for IAM to propagate
HEADER = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: bench-contain-{tag}, incident: INC-BENCH-11}}
spec:
  stores:
    vault: {{type: vault_kv, address: "{vault}", mount: secret}}
  defaults: {{grace_period: 0s}}
  tiers:
    - id: tier1
      concurrency: {concurrency}
      credentials:
"""
def sts_arn(session: boto3.session.Session, key_id: str, secret: str) -> str | None:
    """The ARN STS answers for this key, or None if it refuses it."""
    sts = session.client("sts", aws_access_key_id=key_id, aws_secret_access_key=secret)
    try:
        return sts.get_caller_identity()["Arn"]
    except sts.exceptions.ClientError:
        return None


class Rotator:
    """The responder's script: one user at a time, clients per thread."""

    def __init__(self, bao_url: str, token: str) -> None:
        self.bao_url, self.token, self.local = bao_url, token, threading.local()

    def clients(self) -> tuple[boto3.session.Session, object, hvac.Client]:
        if not hasattr(self.local, "session"):
            self.local.session = boto3.session.Session()
            self.local.iam = self.local.session.client("iam")
            self.local.vault = hvac.Client(self.bao_url, self.token)
        return self.local.session, self.local.iam, self.local.vault

    def rotate(self, seeded: tuple[str, str]) -> None:
        user, path = seeded
        session, iam, vault = self.clients()
        stored = vault.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)
        current = stored["data"]["data"]
        new = iam.create_access_key(UserName=user)["AccessKey"]
        vault.secrets.kv.v2.create_or_update_secret(path, {
            **current, "ACCESS_KEY": new["AccessKeyId"], "SECRET_KEY": new["SecretAccessKey"]})
        for attempt in range(STS_ATTEMPTS):
            if sts_arn(session, new["AccessKeyId"], new["SecretAccessKey"]) is not None:
                break
            if attempt + 1 == STS_ATTEMPTS:
                raise SystemExit(f"STS never accepted the new key of {user}")
            time.sleep(STS_DELAY)
        old = current["ACCESS_KEY"]
        iam.update_access_key(UserName=user, AccessKeyId=old, Status="Inactive")
        iam.delete_access_key(UserName=user, AccessKeyId=old)


def check(seeded: list[tuple[str, str]], iam, vault: hvac.Client, old: dict[str, str]) -> None:
    """Every user has exactly one key, active, new, the one in Vault, accepted by STS."""
    session = boto3.session.Session()
    for user, path in seeded:
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        stored = vault.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)
        value = stored["data"]["data"]
        ok = (len(keys) == 1 and keys[0]["Status"] == "Active"
              and keys[0]["AccessKeyId"] == value["ACCESS_KEY"] != old[user]
              and value.get("region") == "eu-west-1")
        arn = sts_arn(session, value["ACCESS_KEY"], value["SECRET_KEY"])
        if not ok or arn is None or not arn.endswith(f":user/{user}"):
            raise SystemExit(f"{user}: not contained (keys {keys}, STS {arn})")


def old_keys(seeded: list[tuple[str, str]], vault: hvac.Client) -> dict[str, str]:
    return {user: vault.secrets.kv.v2.read_secret_version(
        path, raise_on_deleted_version=True)["data"]["data"]["ACCESS_KEY"]
        for user, path in seeded}  # fmt: skip


def keyturn_run(env: dict[str, str], workdir: Path, name: str, text: str) -> float:
    """Wall seconds of ``keyturn run RUNBOOK --wait``; exits if the run did not succeed."""
    runbook = workdir / f"{name}.yaml"
    runbook.write_text(text)
    began = time.perf_counter()
    with open(workdir / f"{name}.out", "wb") as out:
        done = subprocess.run([sys.executable, "-m", "keyturn", "run", str(runbook), "--wait"],
                              env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, check=False)
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        tail = (workdir / f"{name}.out").read_text(errors="replace")[-2000:]
        raise SystemExit(f"keyturn run {name} exited {done.returncode}:\n{tail}")
    return elapsed


def wait_polling(log: Path, queue: str, worker: subprocess.Popen, timeout: float = 60) -> None:
    """Until the worker process logs that it polls ``queue``."""
    deadline = time.monotonic() + timeout
    while queue not in log.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def bench(args: argparse.Namespace, temporal, bao, moto, workdir: Path) -> None:
    admin = moto.admin_credentials
    env = {**os.environ, "VAULT_TOKEN": bao.root_token, "AWS_ENDPOINT_URL": moto.url,
           "AWS_DEFAULT_REGION": MOTO_REGION, "AWS_ACCESS_KEY_ID": admin["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": admin["aws_secret_access_key"],
           "KEYTURN_TEMPORAL_ADDRESS": temporal.address, "KEYTURN_CODEC_KEY": new_key(),
           "KEYTURN_AUDIT_LOG": str(workdir / "audit.jsonl"), "KEYTURN_PRINCIPAL": "bench",
           "KEYTURN_TASK_QUEUE": f"contain-{uuid.uuid4().hex[:6]}",
           "KEYTURN_RATE_LIMITS": "aws=1000"}  # fmt: skip
    os.environ.update({k: env[k] for k in ("VAULT_TOKEN", "AWS_ENDPOINT_URL",
                                           "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                                           "AWS_SECRET_ACCESS_KEY")})
    iam, vault = boto3.client("iam"), hvac.Client(bao.url, bao.root_token)
    tag = uuid.uuid4().hex[:6]
    groups = {name: seed(n, f"{name}{tag}", iam, vault)
              for name, n in (("w", 1), ("k", args.n), ("s", args.n), ("t", args.n))}
    old = {user: key for seeded in groups.values() for user, key in old_keys(seeded, vault).items()}

    def runbook(group: str) -> str:
        return HEADER.format(tag=f"{group}{tag}", vault=bao.url,
                             concurrency=args.concurrency) + "".join(
            CREDENTIAL.format(i=i, user=user, tag=f"{group}{tag}")
            for i, (user, _) in enumerate(groups[group]))

    with open(workdir / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env,
                                  cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_polling(workdir / "worker.log", f"'{env['KEYTURN_TASK_QUEUE']}.aws'", worker)
        warm = keyturn_run(env, workdir, "warm-up", runbook("w"))
        timings = {"keyturn": keyturn_run(env, workdir, "contain", runbook("k"))}
    finally:
        terminate(worker.pid)
    rotator = Rotator(bao.url, bao.root_token)
    began = time.perf_counter()
    for seeded in groups["s"]:
        rotator.rotate(seeded)
    timings["sequential"] = time.perf_counter() - began
    began = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(rotator.rotate, groups["t"]))
    timings["16 threads"] = time.perf_counter() - began

    audit = verify(workdir / "audit.jsonl")
    for seeded in groups.values():
        check(seeded, iam, vault, old)
    if not audit.ok:
        raise SystemExit(f"keyturn's audit log does not verify: {audit.problems[:1]}")

    print(f"time-to-contain benchmark: n={args.n} aws.iam_access_key in Vault KV, grace 0, "
          f"tier concurrency {args.concurrency}, KEYTURN_RATE_LIMITS=aws=1000, "
          f"cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print(f"keyturn warm-up run (1 credential, not counted) {warm:.1f} s; audit log "
          f"{audit.records} records, verifies; every user holds exactly its new key\n")
    sequential = timings["sequential"]
    print_table(["contender", "seconds", "credentials/s", "vs sequential"], [
        [name, f"{seconds:.1f}", f"{args.n / seconds:.1f}", f"{seconds / sequential:.2f}x"]
        for name, seconds in timings.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="users per contender (default 100)")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="the runbook tier's concurrency (default 10, the runbook default)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="keyturn-bench-contain-"))
    try:
        with TemporalDevServer(workdir / "temporal") as temporal, \
                OpenBaoServer(workdir / "bao") as bao, MotoServer(workdir / "moto") as moto:
            bench(args, temporal, bao, moto, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
