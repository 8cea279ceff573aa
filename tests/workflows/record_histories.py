"""Regenerate the saved workflow histories that test_history_replay.py replays.

    .venv/bin/python tests/workflows/record_histories.py [SCENARIO ...]   # or: preflight

Runs a few representative runs on the time-skipping server with the workflow test
harness (real activities, in-memory provider and store) and writes the history of
every workflow execution of each run to histories/<workflow id>.json, in the
format of WorkflowHistory.to_json(). Payloads are plain JSON (no codec key), so
replay needs no key; they hold references only, never a secret.

Regenerate after a deliberate, versioned change to a workflow, never to make a
failing replay pass: a replay failure means running workflows would break. Name
scenarios to record only those and keep every other saved history: that is how
a versioned change adds histories of its new behaviour while the histories
recorded before it go on proving that runs already in flight still replay.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sys
import tempfile
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.service import RPCError
from workflow_env import Harness, eventually, harness

from keyturn.codec import ZLIB_ENCODING
from keyturn.operations import gates, runs
from keyturn.operations.runs import cancel as cancel_run
from keyturn.runbook.plan_model import ExecutionPlan
from keyturn.workflows.lock import lock_workflow_id
from keyturn.workflows.models import RunStatus
from keyturn.workflows.preflight import PreflightWorkflow, preflight_workflow_id
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.runbook import RunbookWorkflow, tier_workflow_id
from keyturn.workflows.tier import credential_workflow_id

HISTORIES = Path(__file__).parent / "histories"
PREFLIGHT_ID = preflight_workflow_id("preflight")

HEADER = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {name: history, incident: INC-HIST}
spec:
  approvers:
    security: [alice, bob, carol, dave]
    ops: [erin]
  stores:
    vault: {type: vault_kv, address: "http://127.0.0.1:1", mount: secret}
  tiers:
"""


def cred(cid: str, *extra: str, fail_at: str | None = None) -> str:
    target = f"account: {cid}" + (f", fail_at: {fail_at}" if fail_at else "")
    lines = [f"        - id: {cid}", "          provider: memory.key",
             f"          target: {{{target}}}", f"          deliver: [{{store: vault, path: app/{cid}}}]"]
    return "\n".join(lines + [f"          {e}" for e in extra]) + "\n"


def tier(tid: str, *creds: str, extra: str = "") -> str:
    return f"    - id: {tid}\n{extra}      credentials:\n" + "".join(creds)


async def gate_opened(h: Harness, run_id: str, target: str) -> None:
    """Wait until the gate of `target` (a tier or a credential) is open."""
    if target.startswith("tier"):
        wid, query = run_id, RunbookWorkflow.status
    else:
        wid, query = credential_workflow_id(run_id, target), CredentialRotationWorkflow.status

    async def is_open():
        try:
            state = await h.client.get_workflow_handle(wid).query(query)
        except RPCError:
            return False  # not started yet
        return "status='open'" in repr(state)  # only gates have an "open" status

    await eventually(is_open)


async def approve(h: Harness, run_id: str, target: str, *principals: str) -> None:
    await gate_opened(h, run_id, target)
    for principal in principals:
        await gates.decide(h.client, run_id, target, principal, f"history: {principal}", approve=True)


async def reject(h: Harness, run_id: str, target: str) -> None:
    await gate_opened(h, run_id, target)
    await gates.decide(h.client, run_id, target, "alice", "history: wrong key", approve=False)


async def skip_grace(h: Harness, run_id: str, credential: str, grace: timedelta) -> None:
    """Skip over `credential`'s grace period once it has begun.

    The time-skipping server does not skip a child workflow's timer on its own while
    the client waits for the parent's result (the wait ends with "No completion
    event found"), so the time is skipped explicitly.
    """
    handle = h.client.get_workflow_handle(credential_workflow_id(run_id, credential))

    async def in_grace():
        try:
            status = await handle.query(CredentialRotationWorkflow.status)
        except RPCError:
            return False
        return bool(status.steps) and status.steps[-1].outcome == "waiting" \
            and status.steps[-1].step == "revoke_old"

    await eventually(in_grace)
    await h.env.sleep(grace)


async def cancel(h: Harness, run_id: str) -> None:
    await gate_opened(h, run_id, "a")
    await cancel_run(h.client, run_id, "erin", "history: wrong incident")


async def quorum_then_grace(h: Harness, run_id: str) -> None:
    await approve(h, run_id, "a", "alice", "bob")
    await skip_grace(h, run_id, "a", timedelta(hours=1))


@dataclass
class Scenario:
    name: str  # also the run id, so the file names are stable
    text: str
    expect: str  # the run's final state
    drive: Callable[[Harness, str], Awaitable[None]] | None = None
    holder: str | None = None  # a runbook whose run holds the target first, at a gate


HOLDER_GATE = "gate: {before: promote, approvals: 1, from: security}"


async def lock_state(h: Harness, run_id: str, credential: str, outcome: str) -> None:
    """Wait until `credential`'s `lock` step has `outcome` (e.g. waiting)."""
    handle = h.client.get_workflow_handle(credential_workflow_id(run_id, credential))

    async def reached():
        try:
            status = await handle.query(CredentialRotationWorkflow.status)
        except RPCError:
            return False
        return any(s.step == "lock" and s.outcome == outcome for s in status.steps)

    await eventually(reached)


async def waiter_gets_the_hold(h: Harness, run_id: str) -> None:
    """Once the waiter has asked the hold to wake it, the holder finishes (its gate approved)."""
    await lock_state(h, run_id, "l", "waiting")
    holder = await runs.run_plan(h.client, f"{run_id}-holder")
    hold = h.client.get_workflow_handle(lock_workflow_id(holder.tiers[0].credentials[0].lock_key))

    async def asked():
        history = await hold.fetch_history()
        return any(e.HasField("workflow_execution_signaled_event_attributes")
                   for e in history.events)

    await eventually(asked)
    await approve(h, holder.run_id, "l", "alice")
    await h.client.get_workflow_handle(holder.run_id).result()


SCENARIOS = [
    Scenario(
        "three-tiers",
        HEADER
        + tier("tier1", cred("a"), cred("b", "depends_on: [a]"), extra="      concurrency: 1\n")
        + tier("tier2", cred("c"))
        + tier("tier3", cred("d"), extra="      after: [tier1, tier2]\n"
                                         "      gate: {approvals: 1, from: ops}\n"),
        "succeeded",
        lambda h, run_id: approve(h, run_id, "tier3", "erin"),
    ),
    Scenario(
        "quorum-gate",
        HEADER + tier("tier1", cred(
            "a", "gate: {before: revoke, approvals: 2, from: security, distinct: true}",
            "grace_period: 1h")),
        "succeeded",
        quorum_then_grace,
    ),
    Scenario(
        "verify-fails",
        HEADER
        + tier("tier1", cred("x", fail_at="verify_new"), cred("y", "depends_on: [x]"))
        + tier("tier2", cred("z"), extra="      after: [tier1]\n"),
        "failed",
    ),
    Scenario(
        "revoke-first",
        HEADER + tier("tier1", cred("a", "strategy: revoke-first", "grace_period: 30m")),
        "succeeded",
        lambda h, run_id: skip_grace(h, run_id, "a", timedelta(minutes=30)),
    ),
    Scenario(
        "gate-rejected",
        HEADER + tier("tier1", cred("a", "gate: {before: promote, approvals: 1, from: security}")),
        "failed",
        lambda h, run_id: reject(h, run_id, "a"),
    ),
    Scenario(
        "lock-refused",
        HEADER + tier("tier1", cred("r")),
        "failed",
        holder=HEADER + tier("tier1", cred("r", HOLDER_GATE)),
    ),
    Scenario(
        "lock-waits",
        HEADER.replace("spec:\n", "spec:\n  defaults: {on_locked: wait}\n") + tier("tier1", cred("l")),
        "succeeded",
        waiter_gets_the_hold,
        holder=HEADER + tier("tier1", cred("l", HOLDER_GATE)),
    ),
    Scenario(
        "cancelled",
        HEADER + tier("tier1", cred("a", "gate: {before: promote, approvals: 1, from: security}")),
        "cancelled",
        cancel,
    ),
]


def workflow_ids(status: RunStatus) -> list[str]:
    """Every workflow the run may have started: itself, its tiers, their credentials."""
    ids = [status.run_id]
    for t in status.tiers:
        ids.append(tier_workflow_id(status.run_id, t.tier))
        ids += [credential_workflow_id(status.run_id, c) for c in t.credentials]
    return ids


async def holds(h: Harness, plan: ExecutionPlan) -> list[tuple[str, WorkflowHistory]]:
    """(file name stem, history) of each hold the run's credentials took on their targets:
    `<run>.lock.<credential>`, since the holds of one target share a workflow id."""
    found = []
    for tier in plan.tiers:
        for cred in tier.credentials:
            try:
                history = await h.client.get_workflow_handle(
                    credential_workflow_id(plan.run_id, cred.id)).fetch_history()
            except RPCError:
                continue
            for event in history.events:
                if event.HasField("child_workflow_execution_started_event_attributes"):
                    started = event.child_workflow_execution_started_event_attributes
                    hold = h.client.get_workflow_handle(started.workflow_execution.workflow_id,
                                                        run_id=started.workflow_execution.run_id)
                    found.append((f"{plan.run_id}.lock.{cred.id}", await hold.fetch_history()))
    return found


def scrub_stack_trace(attrs: dict) -> None:
    """Blank the stack trace in a failure's encoded attributes (a JSON payload, or a
    zlib-compressed serialized one when large: keyturn.codec.CompressionCodec)."""
    data = base64.b64decode(attrs["data"])
    compressed = attrs.get("metadata", {}).get("encoding") == base64.b64encode(
        ZLIB_ENCODING).decode()
    inner = Payload.FromString(zlib.decompress(data)) if compressed else None
    decoded = json.loads(inner.data if inner else data)
    if not decoded.get("stack_trace"):
        return
    decoded["stack_trace"] = ""
    plain = json.dumps(decoded, separators=(",", ":")).encode()
    if inner is not None:
        inner.data = plain
        plain = zlib.compress(inner.SerializeToString())
    attrs["data"] = base64.b64encode(plain).decode()


def scrub_machine(value):
    """Blank what names this machine (stack traces inside encoded failure attributes, worker
    identities of pid@host); replay reads neither."""
    if isinstance(value, dict):
        if "encodedAttributes" in value:
            scrub_stack_trace(value["encodedAttributes"])
        return {k: "recorder" if k == "identity" else scrub_machine(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_machine(v) for v in value]
    return value


async def record(scenario: Scenario, tmp: Path, out: Path) -> list[Path]:
    """Run `scenario` and write the history of each of its workflows into `out`."""
    async with harness(tmp, encrypt=False) as h:
        for account in ("a", "b", "c", "d", "x", "y", "z", "l", "r"):
            key_id, secret = h.provider.seed(account)
            h.store.write(f"app/{account}", secret, {"credential_id": key_id})
        if scenario.holder:
            holder = h.plan(scenario.holder, requested_by="dave", run_id=f"{scenario.name}-holder")
            await runs.start(h.client, holder, h.task_queue, search_attributes=False)
            await gate_opened(h, holder.run_id, holder.tiers[0].credentials[0].id)
        plan = h.plan(scenario.text, requested_by="dave", run_id=scenario.name)
        await runs.start(h.client, plan, h.task_queue, search_attributes=False)
        if scenario.drive:
            await scenario.drive(h, plan.run_id)
        status = await runs.wait(h.client, plan.run_id)
        if status.state != scenario.expect:
            raise AssertionError(f"{scenario.name}: run {status.state}, expected {scenario.expect}")
        histories = []
        for wid in workflow_ids(status):
            try:
                histories.append((wid, await h.client.get_workflow_handle(wid).fetch_history()))
            except RPCError:
                continue  # never started (skipped tier or credential)
        for run in [plan, holder] if scenario.holder else [plan]:
            histories += await holds(h, run)
        written = []
        for stem, history in histories:
            path = out / f"{stem}.json"
            save(history, path)
            written.append(path)
        return written


async def record_preflight(tmp: Path, out: Path) -> list[Path]:
    """A PreflightWorkflow over one ready credential and one a precheck refuses."""
    async with harness(tmp, encrypt=False) as h:
        key_id, secret = h.provider.seed("a")
        h.store.write("app/a", secret, {"credential_id": key_id})
        h.provider.seed("x")
        plan = h.plan(HEADER + tier("tier1", cred("a"), cred("x", fail_at="precheck")),
                      run_id="preflight")
        await h.client.execute_workflow(PreflightWorkflow.run, plan, id=PREFLIGHT_ID,
                                        task_queue=h.task_queue)
        history = await h.client.get_workflow_handle(PREFLIGHT_ID).fetch_history()
        path = out / f"{PREFLIGHT_ID}.json"
        save(history, path)
        return [path]


def save(history, path: Path) -> None:
    # compact, one event per line: smaller files and readable diffs
    events = scrub_machine(json.loads(history.to_json())["events"])
    path.write_text('{"events": [\n'
                    + ",\n".join(json.dumps(e, separators=(",", ":")) for e in events)
                    + "\n]}\n")


async def main(names: list[str]) -> int:
    """Record every scenario (replacing the saved set), or only `names` (adding them)."""
    known = [s.name for s in SCENARIOS] + ["preflight"]
    unknown = set(names) - set(known)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    recorders = {s.name: s for s in SCENARIOS}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "histories"
        out.mkdir()
        for name in names or known:
            (Path(tmp) / name).mkdir()
            paths = (await record_preflight(Path(tmp) / name, out) if name == "preflight"
                     else await record(recorders[name], Path(tmp) / name, out))
            for path in paths:
                print(f"{path.name:40} {len(json.loads(path.read_text())['events']):4} events "
                      f"{path.stat().st_size:7} bytes")
        # replace the saved set (all of it unless scenarios were named) only once every
        # scenario has run as expected
        HISTORIES.mkdir(exist_ok=True)
        if not names:
            for old in HISTORIES.glob("*.json"):
                old.unlink()
        written = sorted(out.glob("*.json"))
        for path in written:
            shutil.copyfile(path, HISTORIES / path.name)
    print(f"wrote {len(written)} histories to {HISTORIES}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
