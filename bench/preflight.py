"""Preflight against the plain checks a responder would script, side by side, on real servers.

Starts the Temporal dev server, OpenBao and moto (key checking on) through
``keyturn.devstack.servers`` (127.0.0.1, free ports, temp state, stopped at the end)
and one in-process worker with the real activities, providers and stores. It seeds
N IAM users, each with one key whose value sits in Vault in an application's own
shape ({ACCESS_KEY, SECRET_KEY, region}), and a runbook mapping them with `fields:`.

Then, in one run, alternating R rounds:

plain script      what a responder writes in ten minutes to check before rotating:
                  for each credential, read the Vault path and check its two fields,
                  list the user's keys and check the stored key id is one of them
                  (sequential, hvac + boto3, no Temporal: 2 requests per credential);
                  and the same script making the 5 requests preflight makes (write
                  capability of the staging and deliver paths, a second key listing)
keyturn preflight ``keyturn.operations.preflight.preflight``: the PreflightWorkflow on
                  the dev server, its activities on the worker (store write permission,
                  shape, stale check, the provider's dry-run precheck), gates
run start         ``keyturn.operations.runs.start`` alone, and preflight + start: what preflight
                  adds before a run's first change

    .venv/bin/python bench/preflight.py [--n 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import hvac
from figures import print_table
from temporalio.client import Client

from keyturn.audit import JsonlAuditLog
from keyturn.codec import data_converter, new_key
from keyturn.devstack.servers import MOTO_REGION, MotoServer, OpenBaoServer, TemporalDevServer
from keyturn.operations import runs
from keyturn.operations.preflight import preflight
from keyturn.runbook import loads, plan, validate
from keyturn.worker import build_workers, running

HEADER = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: bench-preflight}}
spec:
  stores:
    vault: {{type: vault_kv, address: "{vault}", mount: secret}}
  tiers:
    - id: tier1
      concurrency: 50
      credentials:
"""
CREDENTIAL = """\
        - id: c{i}
          provider: aws.iam_access_key
          target: {{user_name: {user}}}
          deliver:
            - store: vault
              path: bench/{tag}/c{i}
              fields: {{aws_access_key_id: ACCESS_KEY, aws_secret_access_key: SECRET_KEY}}
"""


def seed(n: int, tag: str, iam, vault: hvac.Client) -> list[tuple[str, str]]:
    """N users with one key each, in Vault in the application's shape; (user, path) pairs."""
    seeded = []
    for i in range(n):
        user, path = f"bench-{tag}-{i}", f"bench/{tag}/c{i}"
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        vault.secrets.kv.v2.create_or_update_secret(path, {
            "ACCESS_KEY": key["AccessKeyId"], "SECRET_KEY": key["SecretAccessKey"],
            "region": "eu-west-1"})
        seeded.append((user, path))
    return seeded


def plain_checks(seeded: list[tuple[str, str]], iam, vault: hvac.Client, *,
                 same_as_preflight: bool = False) -> int:
    """The ten-minute script: read each path, check its fields and that its key still exists;
    with `same_as_preflight`, also the requests preflight makes besides (write capability on
    the staging and deliver paths, a second key listing)."""
    ready = 0
    for user, path in seeded:
        if same_as_preflight:
            for checked in (f"secret/data/keyturn/staging/x/{path}", f"secret/data/{path}"):
                vault.adapter.post("/v1/sys/capabilities-self", json={"paths": [checked]})
            iam.list_access_keys(UserName=user)
        data = vault.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)
        stored = data["data"]["data"]
        keys = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
        ready += {"ACCESS_KEY", "SECRET_KEY"} <= stored.keys() and stored["ACCESS_KEY"] in keys
    return ready


async def bench(args: argparse.Namespace, temporal, bao, moto, workdir: Path) -> None:
    env = {"VAULT_TOKEN": bao.root_token, "AWS_ENDPOINT_URL": moto.url,
           "AWS_DEFAULT_REGION": MOTO_REGION,
           "AWS_ACCESS_KEY_ID": moto.admin_credentials["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": moto.admin_credentials["aws_secret_access_key"]}
    os.environ.update(env)
    iam = boto3.client("iam")
    vault = hvac.Client(bao.url, bao.root_token)
    tag = uuid.uuid4().hex[:6]
    seeded = seed(args.n, tag, iam, vault)
    text = HEADER.format(vault=bao.url) + "".join(
        CREDENTIAL.format(i=i, user=user, tag=tag) for i, (user, _) in enumerate(seeded))
    runbook = validate(loads(text, "bench.yaml"))

    def new_plan():
        return plan(runbook, run_id=f"bench-preflight-{uuid.uuid4().hex[:8]}",
                    requested_by="alice", source_sha256=hashlib.sha256(text.encode()).hexdigest())

    client = await Client.connect(temporal.address, data_converter=data_converter(new_key()))
    queue = f"bench-{tag}"
    workers = build_workers(client, task_queue=queue, audit_log=JsonlAuditLog(workdir / "a.jsonl"),
                            families=["aws"])
    timings: dict[str, list[float]] = {"plain": [], "same": [], "preflight": [], "start": []}
    async with running(workers):
        await preflight(client, new_plan(), queue)  # warm-up: sandbox imports, clients
        for _ in range(args.rounds):
            began = time.perf_counter()
            assert plain_checks(seeded, iam, vault) == args.n
            timings["plain"].append(time.perf_counter() - began)
            began = time.perf_counter()
            assert plain_checks(seeded, iam, vault, same_as_preflight=True) == args.n
            timings["same"].append(time.perf_counter() - began)
            began = time.perf_counter()
            report = await preflight(client, new_plan(), queue)
            timings["preflight"].append(time.perf_counter() - began)
            assert report.ready, [c.problems for c in report.credentials if not c.ready]
            started = new_plan()
            began = time.perf_counter()
            await runs.start(client, started, f"{queue}-idle", search_attributes=False)
            timings["start"].append(time.perf_counter() - began)
            await client.get_workflow_handle(started.run_id).terminate("benchmark")

    plain, same, checked, start = (statistics.median(timings[k])
                                   for k in ("plain", "same", "preflight", "start"))
    print(f"preflight benchmark: n={args.n} IAM keys in Vault paths of the application's "
          f"shape, {args.rounds} rounds (median), cpus={os.cpu_count()}\n")
    print_table(["figure", "total s", "per credential ms", "vs plain script"], [
        ["plain script (hvac + boto3, sequential)", f"{plain:.3f}",
         f"{plain / args.n * 1e3:.1f}", "1.00x"],
        ["plain script making preflight's 5 requests", f"{same:.3f}",
         f"{same / args.n * 1e3:.1f}", f"{same / plain:.2f}x"],
        ["keyturn preflight (workflow + activities)", f"{checked:.3f}",
         f"{checked / args.n * 1e3:.1f}", f"{checked / plain:.2f}x"],
        ["runs.start alone", f"{start:.3f}", "-", "-"],
        ["preflight + runs.start (time to the run's start)", f"{checked + start:.3f}", "-",
         f"{(checked + start) / start:.1f}x runs.start"],
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="credentials (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="keyturn-bench-preflight-"))
    try:
        with TemporalDevServer(workdir / "temporal") as temporal, \
                OpenBaoServer(workdir / "bao") as bao, MotoServer(workdir / "moto") as moto:
            asyncio.run(bench(args, temporal, bao, moto, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
