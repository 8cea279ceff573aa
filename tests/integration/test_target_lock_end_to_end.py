"""One rotation per target, end to end: two `keyturn run`s of one runbook started at once
against the real worker, the Temporal dev server, OpenBao and the AWS emulator. The second
is refused naming the first (or, asked to, waits for it), the hold outlives a killed worker,
and either way the IAM user ends with exactly one key, the one Vault holds."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import pytest
from stack_support import seed_user, sts_accepts
from temporalio.client import Client
from temporalio.service import RPCError

from keyturn.codec import data_converter
from keyturn.operations import runs
from keyturn.operations.errors import RunError, TemporalUnavailable

RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: lock-{tag}}}
spec:
  approvers: {{security: [alice]}}
  defaults: {{grace_period: 1s}}
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  tiers:
    - id: tier1
      credentials:
        - id: deployer
          provider: aws.iam_access_key
          target: {{user_name: lock-{tag}}}
          deliver: [{{store: vault, path: lock-{tag}/deployer}}]
          gate: {{before: promote, approvals: 1, from: security}}
"""


@pytest.fixture
def stack(worker_stack):
    """Every test here starts with a worker running."""
    return worker_stack


@pytest.fixture
async def client(stack):
    return await Client.connect(stack.env["KEYTURN_TEMPORAL_ADDRESS"],
                                data_converter=data_converter(stack.env["KEYTURN_CODEC_KEY"]))


def start_both(stack, path, *extra: str) -> tuple[list[str], list[str]]:
    """Two `keyturn run`s of the same runbook, started at once: the run ids of those that
    started, and the output of any that preflight refused (the other already held the target)."""
    procs = [subprocess.Popen([sys.executable, "-m", "keyturn", "run", str(path), "-o", "json",
                               *extra], env=stack.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    started = [json.loads(out)["run_id"] for p, (out, _) in zip(procs, outputs, strict=True)
               if p.returncode == 0]
    refused = [out for p, (out, _) in zip(procs, outputs, strict=True) if p.returncode == 1]
    assert len(started) + len(refused) == 2 and started, outputs
    return started, refused


def refusal_names(output: str, holder: str) -> bool:
    """Whether preflight's JSON report refuses the credential for `holder`'s hold."""
    (check,) = json.loads(output)["credentials"]
    return any(p["check"] == "lock" and f"run {holder} (credential deployer)" in p["message"]
               for p in check["problems"])


async def last_steps(client, run_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """run id -> (step, outcome, detail) of the credential's latest step, once both started."""
    found = {}
    for run_id in run_ids:
        try:
            detail = await runs.describe(client, run_id)
        except (RunError, TemporalUnavailable, RPCError):  # not started yet, or a query timed out
            return {}
        cred = detail.credentials.get("deployer")
        if cred is None or not cred.steps:
            return {}
        last = cred.steps[-1]
        found[run_id] = (last.step, last.outcome, cred.error or last.detail)
    return found


async def split(client, run_ids: list[str], loser_step: tuple[str, str]):
    """(holder, other): the run waiting at its gate and the one at `loser_step`."""
    async def settled():
        steps = await last_steps(client, run_ids)
        if len(steps) < 2:
            return None
        holder = [r for r, s in steps.items() if s[:2] == ("gate", "waiting")]
        other = [r for r, s in steps.items() if s[:2] == loser_step]
        return (holder[0], other[0], steps[other[0]][2]) if holder and other else None
    return await poll(settled, what=f"one run at its gate, the other at {loser_step}")


async def poll(predicate, *, what: str, timeout: float = 60.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def read_store(vault, tag: str) -> dict:
    return vault.secrets.kv.v2.read_secret_version(
        path=f"lock-{tag}/deployer", mount_point="secret", raise_on_deleted_version=True,
    )["data"]["data"]


def only_key_is_the_stores(iam, vault, moto, tag: str) -> dict:
    keys = iam.list_access_keys(UserName=f"lock-{tag}")["AccessKeyMetadata"]
    value = read_store(vault, tag)
    assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(value["aws_access_key_id"], "Active")]
    assert sts_accepts(moto, value)
    return value


async def test_the_second_run_is_refused_naming_the_first(stack, client, iam_client,
                                                          vault_client, moto):
    tag = uuid.uuid4().hex[:6]
    old = seed_user(iam_client, vault_client, f"lock-{tag}", f"lock-{tag}/deployer")
    path = stack.tmp / "lock.yaml"
    path.write_text(RUNBOOK.format(tag=tag))

    run_ids, refused_by_preflight = start_both(stack, path)
    if refused_by_preflight:  # the first already held the target when the second checked
        (holder,) = run_ids
        assert refusal_names(refused_by_preflight[0], holder)
        refused = None
    else:  # both started: the second is refused at its lock step
        holder, refused, error = await split(client, run_ids, ("lock", "failed"))
        assert f"held by run {holder} (credential deployer)" in error
        assert f"user_name=lock-{tag}" in error

    # a third run, started while the first holds the target, is refused by preflight
    third = stack.cli("run", str(path), "-o", "json")
    assert third.returncode == 1 and refusal_names(third.stdout, holder), third.stderr

    # a worker crash does not release the hold: a new worker finds it held and carries on
    stack.kill_worker(stack.workers[0])
    stack.start_worker()
    listed = stack.cli_json("status")
    held = [h for h in listed["locks"] if h["run_id"] == holder]
    assert [(h["credential"], h["provider"], h["target"]) for h in held] == [
        ("deployer", "aws.iam_access_key", f"user_name=lock-{tag}")]
    text = stack.cli("status", check=True).stdout
    assert "held targets" in text and holder in text

    if refused is not None:
        assert stack.cli("wait", refused).returncode == 1
        refused_steps = [(r["step"], r["outcome"]) for r in stack.audit_records(refused)
                         if r["credential"] == "deployer"]
        assert refused_steps == [("lock", "failed")]  # no precheck: nothing was touched

    stack.cli("approve", holder, "deployer", "--as", "alice", check=True)
    assert stack.cli("wait", holder).returncode == 0
    value = only_key_is_the_stores(iam_client, vault_client, moto, tag)
    assert value["aws_access_key_id"] != old["aws_access_key_id"]
    assert not [h for h in stack.cli_json("status")["locks"] if h["run_id"] == holder]


async def test_asked_to_wait_the_second_run_rotates_after_the_first(stack, client, iam_client,
                                                                    vault_client, moto):
    tag = uuid.uuid4().hex[:6]
    old = seed_user(iam_client, vault_client, f"lock-{tag}", f"lock-{tag}/deployer")
    path = stack.tmp / "lock.yaml"
    path.write_text(RUNBOOK.format(tag=tag))

    run_ids, refused = start_both(stack, path, "--on-locked", "wait")
    assert refused == []  # asked to wait, preflight notes the hold but refuses nothing
    first, second, detail = await split(client, run_ids, ("lock", "waiting"))
    assert f"held by run {first} (credential deployer)" in detail

    stack.cli("approve", first, "deployer", "--as", "alice", check=True)
    assert stack.cli("wait", first).returncode == 0
    after_first = read_store(vault_client, tag)  # the second may be creating its key already
    assert sts_accepts(moto, after_first)

    async def second_at_gate():
        steps = await last_steps(client, [second])
        return steps.get(second, ("",))[:2] == ("gate", "waiting")
    await poll(second_at_gate, what="the second run holding the target, at its gate")
    stack.cli("approve", second, "deployer", "--as", "alice", check=True)
    assert stack.cli("wait", second).returncode == 0

    value = only_key_is_the_stores(iam_client, vault_client, moto, tag)
    assert value["aws_access_key_id"] not in (old["aws_access_key_id"],
                                              after_first["aws_access_key_id"])
    lock_records = [r["outcome"] for r in stack.audit_records(second) if r["step"] == "lock"]
    assert lock_records == ["waiting", "succeeded"]
