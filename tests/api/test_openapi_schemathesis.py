"""schemathesis against /openapi.json: every documented route, fuzzed with valid tokens over
real HTTP (uvicorn) and a real Temporal (the dev server) with a worker, must answer no 5xx,
only documented status codes and content types, and bodies matching their schemas.

The stack runs in a thread of its own (its own event loop: the worker keeps polling while
the synchronous hypothesis tests block the test's thread). Random run ids mostly meet 404,
so each case whose path names a run is sent a second time with the ids of live runs: runs
waiting at a gate (one to approve, one to reject, one to cancel), one waiting for a supplied
value and one that has ended; a few starts name a runbook on the server.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.client import Client

from keyturn.api import ApiSettings, create_app
from keyturn.api.auth import add_token
from keyturn.audit import open_log
from keyturn.codec import data_converter, new_key
from keyturn.config import Settings
from keyturn.providers import registry
from keyturn.worker import build_workers, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflows"))
from api_support import free_port
from memory_provider import MemoryProvider, MemoryStore, MemorySuppliedProvider
from workflow_env import eventually

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
PRINCIPAL = "sam"  # operator, approver and auditor; in the runbooks' approver group
NAMED_RUNBOOK = "fuzz-named"
NAMED_STARTS = 3
ROLE_BY_SUFFIX = (("/supply", "supply"), ("/reject", "reject"), ("/cancel", "cancel"),
                  ("/audit", "ended"))


@dataclass
class Live:
    """The served API, the token of PRINCIPAL and the runs the cases are pointed at."""

    url: str
    token: str
    runs: dict[str, str] = field(default_factory=dict)  # role -> run id
    named_starts: int = 0  # runs started from the named runbook (a few are enough)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _runbook(cid: str, *, provider: str = "memory.key", gate: bool = False) -> str:
    """One tier of one credential over the in-memory providers, delivered to vault."""
    gated = "          gate: {before: promote, approvals: 2, from: security}\n" if gate else ""
    return f"""apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: fuzz, incident: INC-FUZZ}}
spec:
  approvers:
    security: [{PRINCIPAL}, bob]
  stores:
    vault: {{type: vault_kv, address: "http://127.0.0.1:1", mount: secret}}
  tiers:
    - id: tier1
      credentials:
        - id: {cid}
          provider: {provider}
          target: {{account: {cid}}}
          deliver: [{{store: vault, path: app/{cid}}}]
{gated}"""


async def _seed(http: httpx.AsyncClient, store: MemoryStore, provider: MemoryProvider,
                supplied: MemorySuppliedProvider) -> dict[str, str]:
    """Start the runs the cases are pointed at, and wait until each is where it should be."""
    runs = {}
    for role, cid, source, text in (
        ("gated", "fuzz-gated", provider, _runbook("fuzz-gated", gate=True)),
        ("reject", "fuzz-reject", provider, _runbook("fuzz-reject", gate=True)),
        ("cancel", "fuzz-cancel", provider, _runbook("fuzz-cancel", gate=True)),
        ("supply", "fuzz-supply", supplied, _runbook("fuzz-supply", provider="memory.supplied")),
        ("ended", "fuzz-ended", provider, _runbook("fuzz-ended")),
    ):
        key_id, secret = source.seed(cid)
        store.write(f"app/{cid}", secret, {"credential_id": key_id})
        response = await http.post("/v1/runs", json={"runbook_yaml": text})
        assert response.status_code == 201, response.text
        runs[role] = response.json()["run_id"]

    async def settled() -> bool:
        details = {role: (await http.get(f"/v1/runs/{run_id}")).json()
                   for role, run_id in runs.items()}
        steps = details["supply"]["credentials"][0]["steps"]
        return (all(details[r]["open_gates"] for r in ("gated", "reject", "cancel"))
                and details["ended"]["state"] == "succeeded"
                and bool(steps) and (steps[-1]["step"], steps[-1]["outcome"]) == (
                    "supply", "waiting"))

    await eventually(settled)
    return runs


def _serve(address: str, tmp: Path, live: Live, ready: threading.Event,
           stop: threading.Event, failed: list[BaseException]) -> None:
    """The thread's body: worker, app and uvicorn in one event loop, until `stop` is set."""

    async def main() -> None:
        key = new_key()
        client = await Client.connect(address, namespace="default",
                                      data_converter=data_converter(key))
        provider, store, supplied = MemoryProvider(), MemoryStore(), MemorySuppliedProvider()
        providers = {provider.name: provider, supplied.name: supplied}
        audit_path = tmp / "audit.jsonl"
        task_queue = f"fuzz-{uuid.uuid4().hex[:8]}"
        workers = build_workers(
            client, task_queue=task_queue, audit_log=open_log(audit_path),
            families=[MemoryProvider.family], rate_limits={MemoryProvider.family: 10_000},
            provider_for=providers.__getitem__, store_for=lambda plan: store,
        )
        runbook_dir = tmp / "runbooks"
        runbook_dir.mkdir()
        (runbook_dir / f"{NAMED_RUNBOOK}.yaml").write_text(_runbook("fuzz-named", gate=True))
        key_id, secret = provider.seed("fuzz-named")
        store.write("app/fuzz-named", secret, {"credential_id": key_id})
        api_settings = ApiSettings(
            keyturn=Settings(requester_may_approve=True,  # PRINCIPAL is requester and approver
                             temporal_address=address, namespace="default",
                             task_queue=task_queue, audit_log=audit_path, codec_key=key,
                             principal="nobody"),
            tokens=tmp / "api-tokens.yaml", runbook_dir=runbook_dir,
        )
        app = create_app(api_settings, client=client, store_for=lambda plan: store)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", access_log=False))
        async with running(workers):
            serving = asyncio.create_task(server.serve())
            try:
                await eventually(lambda: asyncio.sleep(0, server.started), timeout=10)
                live.url = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=live.url, headers=live.headers) as http:
                    live.runs.update(await _seed(http, store, provider, supplied))
                ready.set()
                await asyncio.to_thread(stop.wait)
            finally:
                server.should_exit = True
                await serving

    try:
        asyncio.run(main())
    except BaseException as exc:  # noqa: BLE001 - reported by the fixture
        failed.append(exc)
        ready.set()


@pytest.fixture(scope="module")
def live(temporal_dev_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    live = Live(url="", token=add_token(tmp / "api-tokens.yaml", PRINCIPAL,
                                        ["operator", "approver", "auditor"]))
    ready, stop, failed = threading.Event(), threading.Event(), []
    for cls in (MemoryProvider, MemorySuppliedProvider):  # plans look the providers up
        registry.register(cls)
    thread = threading.Thread(target=_serve, name="schemathesis-stack", daemon=True,
                              args=(temporal_dev_server.address, tmp, live, ready, stop, failed))
    thread.start()
    try:
        ready.wait(timeout=90)
        if failed or not live.runs:
            raise RuntimeError("the API stack did not start") from (failed[0] if failed else None)
        assert httpx.get(f"{live.url}/openapi.json").json() == DOCUMENT
        yield live
    finally:
        stop.set()
        thread.join(timeout=30)
        for cls in (MemoryProvider, MemorySuppliedProvider):
            registry.unregister(cls.name)


def _document() -> dict:
    """/openapi.json of an app built as the served one is (settings do not change it)."""
    unused = Settings(temporal_address="127.0.0.1:1", namespace="default", task_queue="unused",
                      audit_log=Path("unused.jsonl"), codec_key=None, principal="nobody")
    return create_app(ApiSettings(keyturn=unused, tokens=Path("unused.yaml"))).openapi()


# The document is needed when tests are collected, before the stack runs; the `live` fixture
# checks that the served /openapi.json is this same document.
DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def _on_live_runs(case, live: Live):
    """The same case pointed at live runs (None when its path names no run)."""
    params = case.path_parameters or {}
    if "run_id" in params:
        path = case.operation.path
        role = next((role for suffix, role in ROLE_BY_SUFFIX if path.endswith(suffix)), "gated")
        params = {**params, "run_id": live.runs[role]}
        for name in ("target", "credential_id"):
            if name in params:
                params[name] = f"fuzz-{role}"
        case.path_parameters = params
        return case
    if case.operation.path == "/v1/runs" and case.method.upper() == "POST" and (
            live.named_starts < NAMED_STARTS):
        live.named_starts += 1
        case.body = {"runbook": NAMED_RUNBOOK}
        return case
    return None


@schema.parametrize()
@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, live: Live) -> None:
    case.call_and_validate(base_url=live.url, headers=live.headers, checks=CHECKS)
    pointed = _on_live_runs(case, live)
    if pointed is not None:
        pointed.call_and_validate(base_url=live.url, headers=live.headers, checks=CHECKS)
