"""Runbook benchmark: load, validate and plan a large runbook; size of the plan payload.

Generates a runbook with N credentials (default 10,000) spread evenly over three
tiers (tier3 runs after tier1 and tier2), every one ``aws.iam_access_key``
delivered to a ``vault_kv`` store, writes it to a temp dir, then times:

load       ``keyturn.runbook.load``: read, YAML parse with positions, pydantic model
validate   ``keyturn.runbook.validate`` with known_providers=["aws.iam_access_key"]
plan       ``keyturn.runbook.plan``: compile to the ExecutionPlan

and measures what travels through Temporal:

plan JSON             ``ExecutionPlan.model_dump_json()``
RunbookWorkflow input the plan as the worker's data converter encodes it (pydantic
                      JSON, AES-256-GCM, protobuf Payload): the workflow's start input
largest TierWorkflow input  one tier's TierInput, encoded the same way

Temporal rejects a payload over 2 MiB by default (BlobSizeLimitError, server
setting ``limit.blobSize.error``; it warns from 512 KiB), so the table says for
each payload whether it fits and how many credentials would, at the measured
bytes per credential. Then, unless ``--no-server``, it starts a Temporal dev
server (127.0.0.1, free ports, stopped at the end) and tries to start the
RunbookWorkflow with the plan (nothing polls its task queue), printing whether
the server accepted it: the limit measured, not assumed. Timings: ``per item
ms`` is total / N credentials.

    .venv/bin/python bench/runbook_plan.py [--n 10000] [--no-server]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from figures import print_table
from temporalio.client import Client
from temporalio.service import RPCError

from keyturn.codec import data_converter, new_key
from keyturn.devstack.servers import TemporalDevServer
from keyturn.errors import KeyturnError
from keyturn.operations import runs
from keyturn.runbook import load, plan, validate
from keyturn.workflows.models import RunContext, TierInput

BLOB_LIMIT = 2 * 1024 * 1024  # Temporal default limit.blobSize.error
BLOB_WARN = 512 * 1024  # Temporal default limit.blobSize.warn
TIERS = ("tier1", "tier2", "tier3")

HEADER = """\
apiVersion: keyturn/v1
kind: Runbook
metadata:
  name: bench-large
  incident: INC-BENCH-1
spec:
  approvers:
    security: [alice, bob, carol]
  defaults:
    strategy: rotate
    grace_period: 10m
  stores:
    vault: {type: vault_kv, address: "http://127.0.0.1:8200", mount: secret}
  tiers:
"""


def runbook_text(n: int) -> str:
    """A runbook with ``n`` credentials, split evenly over three tiers."""
    parts = [HEADER]
    for t, tier in enumerate(TIERS):
        parts.append(f"    - id: {tier}\n      name: Tier {t + 1}\n      concurrency: 50\n")
        if tier == "tier3":
            parts.append("      after: [tier1, tier2]\n")
        parts.append("      credentials:\n")
        for i in range(t, n, len(TIERS)):
            parts.append(
                f"        - id: svc-{i:05d}-aws\n"
                f"          provider: aws.iam_access_key\n"
                f"          target: {{user_name: svc-{i:05d}}}\n"
                f"          deliver: [{{store: vault, path: ci/aws/svc-{i:05d}}}]\n"
            )
    return "".join(parts)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def encoded_size(converter, value) -> int:
    """Bytes of ``value`` as one Temporal Payload after the codec (what history stores)."""
    payloads = converter.payload_converter.to_payloads([value])
    payloads = asyncio.run(converter.payload_codec.encode(payloads))
    return payloads[0].ByteSize()


async def try_start(address: str, converter, execution_plan) -> str:
    """Start the run on the server at ``address``; what the server answered."""
    client = await Client.connect(address, data_converter=converter)
    try:
        await runs.start(client, execution_plan, "bench-nobody-polls")
    except KeyturnError as exc:  # the server's refusal, as the operations core words it
        cause = exc.__cause__
        return f"rejected: {cause.message if isinstance(cause, RPCError) else exc}"
    await client.get_workflow_handle(execution_plan.run_id).terminate("benchmark")
    return "accepted"



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="credentials (default 10000)")
    parser.add_argument("--no-server", action="store_true",
                        help="skip starting the plan on a Temporal dev server")
    args = parser.parse_args()
    if args.n < len(TIERS):
        parser.error(f"--n must be at least {len(TIERS)} (one credential per tier)")

    workdir = Path(tempfile.mkdtemp(prefix="keyturn-bench-runbook-"))
    try:
        text = runbook_text(args.n)
        path = workdir / "large.yaml"
        path.write_text(text)

        runbook, t_load = timed(load, path)
        runbook, t_validate = timed(validate, runbook, known_providers=["aws.iam_access_key"])
        execution_plan, t_plan = timed(
            plan, runbook, run_id="bench-large-20260101t000000z-0000", requested_by="alice",
            source_sha256=hashlib.sha256(text.encode()).hexdigest(),
        )
        creds = sum(len(t.credentials) for t in execution_plan.tiers)
        assert creds == args.n, (creds, args.n)

        converter = data_converter(new_key())
        plan_json, t_dump = timed(execution_plan.model_dump_json)
        plan_payload = encoded_size(converter, execution_plan)
        context = RunContext(
            run_id=execution_plan.run_id, runbook=execution_plan.runbook,
            incident=execution_plan.incident, requested_by=execution_plan.requested_by,
            stores=execution_plan.stores,
        )
        tier_sizes = {
            tier.id: (len(tier.credentials),
                      encoded_size(converter, TierInput(context=context, tier=tier)))
            for tier in execution_plan.tiers
        }
        big_tier = max(tier_sizes, key=lambda t: tier_sizes[t][1])

        print(f"runbook plan benchmark: n={args.n} credentials in {len(TIERS)} tiers, "
              f"cpus={os.cpu_count()}")
        print(f"runbook YAML {len(text.encode()):,} bytes\n")
        rows = [
            [name, str(args.n), f"{t:.3f}", f"{t / args.n * 1e3:.4f}", f"{args.n / t:,.0f}"]
            for name, t in (("load (read + YAML + model)", t_load), ("validate", t_validate),
                            ("plan", t_plan), ("plan.model_dump_json", t_dump),
                            ("load + validate + plan", t_load + t_validate + t_plan))
        ]
        print_table(["step", "creds", "total s", "per item ms", "creds/s"], rows)

        print()
        sizes = [
            ("ExecutionPlan JSON", args.n, len(plan_json.encode())),
            ("RunbookWorkflow input (encoded)", args.n, plan_payload),
            (f"TierWorkflow input {big_tier} (encoded)", *tier_sizes[big_tier]),
        ]
        rows = []
        for name, count, size in sizes:
            verdict = "EXCEEDS" if size > BLOB_LIMIT else "warns" if size > BLOB_WARN else "ok"
            fits = int(BLOB_LIMIT / (size / count))
            rows.append([name, str(count), f"{size:,}", f"{size / count:.0f}",
                         f"{size / BLOB_LIMIT:.0%}", verdict, f"~{fits:,}"])
        print_table(["payload", "creds", "bytes", "bytes/cred", "of 2 MiB", "limit",
                     "max creds"], rows)
        answer = None
        if not args.no_server:
            with TemporalDevServer(workdir / "temporal") as server:
                answer = asyncio.run(try_start(server.address, converter, execution_plan))
            print(f"\nTemporal dev server, starting the RunbookWorkflow: {answer}")
        if plan_payload > BLOB_LIMIT:
            seen = f"; dev server: {answer}" if answer else ""
            print(f"\nFINDING: a {args.n:,}-credential plan is {plan_payload:,} bytes as the "
                  f"RunbookWorkflow input, over Temporal's default 2 MiB payload limit "
                  f"({BLOB_LIMIT:,} bytes): the run cannot start{seen}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
