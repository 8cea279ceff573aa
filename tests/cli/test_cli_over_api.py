"""The CLI over the HTTP API: with KEYTURN_API_URL and KEYTURN_TOKEN set, `keyturn run`,
`status`, `wait`, `approve`, `reject`, `cancel` and `supply` go through the real app served
by uvicorn on a loopback port, over a real (time-skipping) Temporal server and worker.

The acting principal comes from the token: the audit log names the token's principal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflows"))

from workflow_env import Harness, eventually, harness

from keyturn.api import ApiSettings, create_app
from keyturn.api.auth import add_token
from keyturn.cli import app as keyturn_app
from keyturn.cli.api_client import ApiClient, ApiRequestError
from keyturn.codec import new_key
from keyturn.config import Settings
from keyturn.devstack.servers import TemporalDevServer, free_port
from keyturn.fingerprint import fingerprint
from keyturn.operations.connect import connect

HEADER = """
apiVersion: keyturn/v1
kind: Runbook
metadata: {name: cli-api, incident: INC-7}
spec:
  approvers:
    security: [alice, bob]
  stores:
    vault: {type: vault_kv, address: "http://127.0.0.1:1", mount: secret}
  tiers:
    - id: tier1
      credentials:
"""
GATED = HEADER + """        - id: CID
          provider: memory.key
          target: {account: CID}
          deliver: [{store: vault, path: app/CID}]
          gate: {before: promote, approvals: 1, from: security}
"""
PLAIN = HEADER + """        - id: CID
          provider: memory.key
          target: {account: CID}
          deliver: [{store: vault, path: app/CID}]
"""
SUPPLIED = PLAIN.replace("memory.key", "memory.supplied")
PRINCIPALS = {
    "dave": ["operator", "auditor"],  # starts runs, reads audit; no approver role
    "alice": ["approver"],
    "mallory": ["approver"],  # an approver, but in none of the runbook's groups
}


@dataclass
class Api:
    h: Harness
    url: str
    tokens: dict[str, str]
    tmp: Path
    app: object

    def env(self, principal: str) -> dict[str, str]:
        return {"KEYTURN_API_URL": self.url, "KEYTURN_TOKEN": self.tokens[principal]}

    async def cli(self, principal: str, *args: str, input: str | None = None,
                  token: str | None = None):
        """`keyturn ARGS` as `principal`, in a thread while the server runs in this loop."""
        env = self.env(principal)
        if token is not None:
            env["KEYTURN_TOKEN"] = token
        return await asyncio.to_thread(CliRunner().invoke, keyturn_app, list(args), input=input,
                                       env=env, terminal_width=200)

    def runbook(self, template: str, cid: str) -> Path:
        path = self.tmp / f"{cid}.yaml"
        path.write_text(template.replace("CID", cid))
        return path

    def seed(self, cid: str, supplied: bool = False) -> str:
        key_id, secret = (self.h.supplied if supplied else self.h.provider).seed(cid)
        self.h.store.write(f"app/{cid}", secret, {"credential_id": key_id})
        return key_id

    async def start(self, template: str, cid: str, *, supplied: bool = False) -> str:
        self.seed(cid, supplied)
        result = await self.cli("dave", "run", str(self.runbook(template, cid)), "-o", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["run_id"]

    async def status(self, run_id: str) -> dict:
        result = await self.cli("dave", "status", run_id, "-o", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    async def gate_open(self, run_id: str, target: str) -> None:
        async def check():
            return target in (await self.status(run_id))["open_gates"]
        await eventually(check)


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    tmp = tmp_path_factory.mktemp("cli-api")
    async with harness(tmp) as h:
        tokens_file = tmp / "api-tokens.yaml"
        tokens = {name: add_token(tokens_file, name, roles) for name, roles in PRINCIPALS.items()}
        settings = ApiSettings(
            keyturn=Settings(temporal_address="unused", namespace=h.client.namespace,
                             task_queue=h.task_queue, audit_log=h.audit_path, codec_key=None,
                             principal="nobody"),
            tokens=tokens_file, runbook_dir=tmp, search_attributes=False,
            known_providers=["memory.key", "memory.supplied"],
        )
        app = create_app(settings, client=h.client, store_for=lambda _plan: h.store)
        async with serving(app) as url:
            yield Api(h, url, tokens, tmp, app)


@contextlib.asynccontextmanager
async def serving(app, port: int | None = None) -> AsyncIterator[str]:
    """Serve `app` with uvicorn in this event loop (beside the worker); yields its URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, server.started))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_run_status_approve_wait_with_the_token_principal(api: Api) -> None:
    run_id = await api.start(GATED, "cred-approve")
    await api.gate_open(run_id, "cred-approve")

    shown = await api.cli("dave", "status", run_id)
    assert shown.exit_code == 0, shown.output
    assert run_id in shown.stdout and "cred-approve" in shown.stdout

    wrong_gate = await api.cli("alice", "approve", run_id, "cred-approve", "--kind", "tier")
    assert wrong_gate.exit_code == 2
    assert "no tier 'cred-approve'" in " ".join(wrong_gate.stderr.split())
    approved = await api.cli("alice", "approve", run_id, "cred-approve", "--reason", "checked",
                             "--kind", "credential")
    assert approved.exit_code == 0, approved.output
    assert "approved cred-approve (gate before promote) as alice: gate passed, 1/1" in (
        approved.stdout)

    waited = await api.cli("dave", "wait", run_id, "-o", "json")
    assert waited.exit_code == 0, waited.output
    final = json.loads(waited.stdout)
    assert final["state"] == "succeeded"
    assert final["credential_details"]["cred-approve"]["state"] == "succeeded"

    records = [r for r in api.h.records(run_id) if r.step == "gate" and r.outcome == "approved"]
    assert [(r.actor, r.details["reason"]) for r in records] == [("alice", "checked")]
    started = next(r for r in api.h.records(run_id) if r.step == "run")
    assert started.details["requested_by"] == "dave"
    with ApiClient(api.url, api.tokens["dave"]) as client:  # and as the API shows it
        served = await asyncio.to_thread(client.audit, run_id)
    assert [r["actor"] for r in served if r["outcome"] == "approved"] == ["alice"]


async def test_as_is_refused_and_roles_are_named(api: Api) -> None:
    run_id = await api.start(GATED, "cred-roles")
    await api.gate_open(run_id, "cred-roles")
    message = ("--as cannot be used with KEYTURN_API_URL: the API takes your identity from "
               "KEYTURN_TOKEN")
    for args in (["approve", run_id, "cred-roles", "--as", "bob"],
                 ["reject", run_id, "cred-roles", "--reason", "no", "--as", "bob"],
                 ["run", str(api.runbook(GATED, "cred-as")), "--as", "bob"],
                 ["supply", run_id, "cred-roles", "--as", "bob"]):
        refused = await api.cli("alice", *args)
        assert refused.exit_code == 2, refused.output
        assert message in " ".join(refused.stderr.split())

    no_role = await api.cli("dave", "approve", run_id, "cred-roles")
    assert no_role.exit_code == 2
    said = " ".join(no_role.stderr.split())
    assert "KEYTURN_TOKEN" in said and "'approver'" in said and "[forbidden]" in said

    outsider = await api.cli("mallory", "approve", run_id, "cred-roles")
    assert outsider.exit_code == 2
    assert "not an approver for this gate" in outsider.stderr
    assert "[gate_refused]" in outsider.stderr

    not_operator = await api.cli("alice", "cancel", run_id)
    assert not_operator.exit_code == 2
    assert "'operator'" in " ".join(not_operator.stderr.split())

    unknown = await api.cli("dave", "status", run_id, token="kt_not-a-token")
    assert unknown.exit_code == 2
    assert "KEYTURN_TOKEN" in unknown.stderr and "[unauthenticated]" in unknown.stderr

    assert (await api.cli("dave", "cancel", run_id)).exit_code == 0


async def test_reject_fails_the_run_and_records_the_reason(api: Api) -> None:
    run_id = await api.start(GATED, "cred-reject")
    await api.gate_open(run_id, "cred-reject")

    rejected = await api.cli("alice", "reject", run_id, "cred-reject", "--reason", "wrong key",
                             "-o", "json")
    assert rejected.exit_code == 0, rejected.output
    assert json.loads(rejected.stdout) == {
        "target": "cred-reject", "gate": "promote", "status": "rejected", "approvals": 0,
        "needed": 1, "principal": "alice"}

    waited = await api.cli("dave", "wait", run_id)
    assert waited.exit_code == 1
    assert f"run {run_id} failed" in waited.stdout
    record = next(r for r in api.h.records(run_id) if r.step == "gate" and r.outcome == "rejected")
    assert (record.actor, record.details["reason"]) == ("alice", "wrong key")


async def test_cancel_ends_the_run(api: Api) -> None:
    old = api.seed("cred-cancel")
    result = await api.cli("dave", "run", str(api.runbook(GATED, "cred-cancel")))
    assert result.exit_code == 0, result.output
    run_id = result.stdout.split()[2]
    assert "requested by dave" in result.stdout
    await api.gate_open(run_id, "cred-cancel")

    cancelled = await api.cli("dave", "cancel", run_id, "--reason", "rotating by hand")
    assert cancelled.exit_code == 0, cancelled.output
    assert f"cancellation requested for {run_id}" in cancelled.stdout

    waited = await api.cli("dave", "wait", run_id, "-o", "json")
    assert waited.exit_code == 1
    assert json.loads(waited.stdout)["state"] == "cancelled"
    assert old in api.h.provider.keys["cred-cancel"]  # nothing promoted: the old key stays
    (record,) = [r for r in api.h.records(run_id) if (r.step, r.outcome) == ("run", "cancelled")]
    assert (record.actor, record.details) == ("dave", {"reason": "rotating by hand"})


async def test_supply_sends_the_value_to_the_store_only(api: Api) -> None:
    run_id = await api.start(SUPPLIED, "cred-supply", supplied=True)

    early = await api.cli("dave", "supply", run_id, "no-such-credential")
    assert early.exit_code == 2
    assert "has no credential 'no-such-credential'" in early.stderr

    async def waiting():
        detail = (await api.status(run_id))["credential_details"].get("cred-supply")
        last = detail["steps"][-1] if detail and detail["steps"] else None
        return last and (last["step"], last["outcome"]) == ("supply", "waiting")

    await eventually(waiting)
    secret = api.h.supplied.mint("cred-supply")
    supplied = await api.cli("dave", "supply", run_id, "cred-supply", "-o", "json",
                             input=secret["token"] + "\n")
    assert supplied.exit_code == 0, supplied.output
    notice = json.loads(supplied.stdout)
    assert notice["credential"] == "cred-supply"
    assert notice["fingerprint"] == fingerprint(secret)
    assert secret["token"] not in supplied.output

    waited = await api.cli("dave", "wait", run_id, "-o", "json")
    assert waited.exit_code == 0, waited.output
    assert api.h.store.read("app/cred-supply").secret == secret
    record = next(r for r in api.h.records(run_id) if r.step == "supply")
    assert record.actor == "dave"
    assert secret["token"] not in api.h.audit_path.read_text()


async def test_run_wait_follows_progress_and_invalid_runbooks_name_the_file(api: Api) -> None:
    api.seed("cred-plain")
    path = api.runbook(PLAIN, "cred-plain")
    followed = await api.cli("dave", "run", str(path), "--wait", "-o", "json")
    assert followed.exit_code == 0, followed.output
    final = json.loads(followed.stdout)
    assert (final["state"], final["requested_by"]) == ("succeeded", "dave")
    assert final["open_gates"] == []

    api.seed("cred-text")
    shown = await api.cli("dave", "run", str(api.runbook(PLAIN, "cred-text")), "--wait")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.rstrip().endswith("succeeded")

    broken = api.tmp / "broken.yaml"
    broken.write_text(PLAIN.replace("CID", "x").replace("memory.key", "nope.key"))
    refused = await api.cli("dave", "run", str(broken))
    assert refused.exit_code == 2
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), 1) if "nope" in text)
    assert refused.stderr.startswith(f"error: {broken}:{line}:")



async def test_status_lists_runs_from_the_servers_visibility(
        temporal_dev_server: TemporalDevServer, tmp_path: Path) -> None:
    """Listing needs visibility (the dev server; the time-skipping one has none). No worker
    serves this task queue: the run stays running until the test terminates it."""
    tokens_file = tmp_path / "api-tokens.yaml"
    token = add_token(tokens_file, "dave", ["operator", "auditor"])
    keyturn = Settings(temporal_address=temporal_dev_server.address, namespace="default",
                       task_queue=f"nobody-{tmp_path.name}", audit_log=tmp_path / "audit.jsonl",
                       codec_key=new_key(), principal="nobody")
    client = await connect(keyturn)
    app = create_app(ApiSettings(keyturn=keyturn, tokens=tokens_file, runbook_dir=tmp_path),
                     client=client)
    runbook = tmp_path / "listed.yaml"
    runbook.write_text(LISTED)
    env = {"KEYTURN_API_URL": "", "KEYTURN_TOKEN": token, "COLUMNS": "200"}

    async def cli(*args: str):
        return await asyncio.to_thread(CliRunner().invoke, keyturn_app, list(args), env=env,
                                       terminal_width=200)

    async with serving(app) as url:
        env["KEYTURN_API_URL"] = url
        started = await cli("run", str(runbook), "-o", "json", "--skip-preflight")
        assert started.exit_code == 0, started.output
        run_id = json.loads(started.stdout)["run_id"]
        try:
            async def listed():
                result = await cli("status", "-o", "json")
                assert result.exit_code == 0, result.output
                return next((r for r in json.loads(result.stdout)["runs"]
                             if r["run_id"] == run_id), None)

            found = await eventually(listed)
            assert (found["runbook"], found["incident"], found["state"]) == (
                "cli-listed", "INC-8", "running")
            table = await cli("status")
            assert table.exit_code == 0, table.output
            assert run_id in table.stdout and "INC-8" in table.stdout
        finally:
            await client.get_workflow_handle(run_id).terminate("test over")


LISTED = """
apiVersion: keyturn/v1
kind: Runbook
metadata: {name: cli-listed, incident: INC-8}
spec:
  stores:
    vault: {type: vault_kv, address: "http://127.0.0.1:1", mount: secret}
  tiers:
    - id: tier1
      credentials:
        - id: deployer
          provider: aws.iam_access_key
          target: {user_name: deployer}
          deliver: [{store: vault, path: ci/deployer}]
"""


def test_an_unreachable_api_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(keyturn_app, ["status", "some-run"],
                                env={"KEYTURN_API_URL": url, "KEYTURN_TOKEN": "kt_x"})
    assert result.exit_code == 2
    said = " ".join(result.stderr.split())
    assert f"cannot reach the keyturn API at {url}" in said and "KEYTURN_API_URL" in said


async def test_wait_rides_out_an_api_outage(api: Api, monkeypatch) -> None:
    run_id = await api.start(GATED, "outage")
    await api.gate_open(run_id, "outage")
    refused: list[str] = []  # each failed poll of the run, by error code
    detail = ApiClient.detail

    def counted(self: ApiClient, run: str):
        try:
            return detail(self, run)
        except ApiRequestError as exc:
            refused.append(exc.code)
            raise

    monkeypatch.setattr(ApiClient, "detail", counted)
    later = free_port()  # nothing listens here yet: the API is "down"
    env = {**api.env("dave"), "KEYTURN_API_URL": f"http://127.0.0.1:{later}"}
    waiting = asyncio.create_task(asyncio.to_thread(
        CliRunner().invoke, keyturn_app, ["wait", run_id, "-o", "json"], env=env))
    await eventually(lambda: asyncio.sleep(0, len(refused) >= 2))  # polled through the outage
    assert not waiting.done()
    approved = await api.cli("alice", "approve", run_id, "outage")
    assert approved.exit_code == 0, approved.output
    async with serving(api.app, later):  # the API comes back
        result = await waiting
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "succeeded"
    assert "still waiting; the API is unavailable" in result.stderr
