"""Fixtures for API tests: a token file with five principals, and the API app over a real
Temporal dev server with a worker running the real activities on in-memory providers.

    api_tokens          {name: token} for alice (operator), bob and carol (approvers),
                        dave (auditor), erin (operator + approver); file: api_tokens_file
    api_worker          (session) a worker with the real activities over in-memory
                        providers on a fresh task queue of the dev server
    api_stack           ApiStack: the app (create_app with the Temporal client and the
                        in-memory store injected), an httpx.AsyncClient over ASGITransport,
                        the worker's provider/store/audit log, helpers to start runs;
                        stack.make_app(**overrides) builds another app the same way
    live_api            the same app served by uvicorn on a free port (for real HTTP
                        clients: the CLI, a browser): LiveApi(url, stack)

The dev server (tests/conftest.py `temporal_dev_server`) is used rather than the
time-skipping one because listing runs needs visibility and search attributes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflows"))

from api_support import PRINCIPALS, free_port
from memory_provider import MemoryProvider, MemoryStore, MemorySuppliedProvider
from temporalio.client import Client
from workflow_env import eventually

from keyturn.api import ApiSettings, create_app
from keyturn.api.auth import add_token
from keyturn.audit import AuditRecord, open_log
from keyturn.codec import data_converter, new_key
from keyturn.config import Settings
from keyturn.providers import registry
from keyturn.worker import build_workers, running


@pytest.fixture
def api_tokens_file(tmp_path: Path) -> Path:
    return tmp_path / "api-tokens.yaml"


@pytest.fixture
def api_tokens(api_tokens_file: Path) -> dict[str, str]:
    """{name: token} for alice, bob, carol, dave and erin, written (as hashes) to the file."""
    return {name: add_token(api_tokens_file, name, roles) for name, roles in PRINCIPALS.items()}


@dataclass
class ApiStack:
    settings: ApiSettings
    client: Client
    http: httpx.AsyncClient
    provider: MemoryProvider
    store: MemoryStore
    supplied: MemorySuppliedProvider
    tokens: dict[str, str]
    runbook_dir: Path
    make_app: Callable[..., Any] = field(repr=False, default=None)

    @property
    def task_queue(self) -> str:
        return self.settings.keyturn.task_queue

    @property
    def audit_path(self) -> Path:
        return self.settings.keyturn.audit_log

    def auth(self, name: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"} if name else {}

    async def call(self, method: str, path: str, who: str | None, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=self.auth(who), **kwargs)

    async def get(self, path: str, who: str | None = "dave", **kwargs: Any) -> httpx.Response:
        return await self.call("GET", path, who, **kwargs)

    async def post(self, path: str, who: str | None, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.call("POST", path, who, json=json, **kw)

    def seed(self, *accounts: str) -> dict[str, str]:
        """One existing key per account, delivered to app/<account>; account -> key id."""
        old = {}
        for account in accounts:
            key_id, secret = self.provider.seed(account)
            self.store.write(f"app/{account}", secret, {"credential_id": key_id})
            old[account] = key_id
        return old

    async def start(self, text: str, who: str = "erin") -> str:
        response = await self.post("/v1/runs", who, {"runbook_yaml": text})
        assert response.status_code == 201, response.text
        return response.json()["run_id"]

    async def detail(self, run_id: str) -> dict:
        response = await self.get(f"/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def until(self, run_id: str, predicate: Callable[[dict], Any],
                    timeout: float = 30.0) -> dict:
        """Poll the run's detail until `predicate(detail)` holds; return that detail."""
        return await eventually(lambda: self._matching(run_id, predicate), timeout)

    async def _matching(self, run_id: str, predicate: Callable[[dict], Any]) -> dict | None:
        response = await self.get(f"/v1/runs/{run_id}")
        if response.status_code != 200:
            return None
        detail = response.json()
        return detail if predicate(detail) else None

    async def open_gate(self, run_id: str, target: str) -> dict:
        detail = await self.until(
            run_id, lambda d: any(g["target"] == target for g in d["open_gates"]))
        return next(g for g in detail["open_gates"] if g["target"] == target)

    async def ended(self, run_id: str) -> dict:
        return await self.until(run_id, lambda d: d["state"] not in ("running", "pending"))

    def records(self, run_id: str) -> list[AuditRecord]:
        if not self.audit_path.exists():
            return []
        return [r for r in open_log(self.audit_path).records() if r.run == run_id]


@dataclass
class ApiWorker:
    """One worker for the whole session: real activities over in-memory providers."""

    client: Client
    address: str
    codec_key: str
    task_queue: str
    audit_path: Path
    provider: MemoryProvider
    store: MemoryStore
    supplied: MemorySuppliedProvider

    @property
    def providers(self) -> dict[str, MemoryProvider]:
        return {self.provider.name: self.provider, self.supplied.name: self.supplied}


@pytest.fixture(scope="session")
async def api_worker(temporal_dev_server, tmp_path_factory) -> AsyncIterator[ApiWorker]:
    """A worker on a fresh task queue of the dev server, shared by the API tests (runs
    differ by id; tests seed accounts of their own)."""
    address, key = temporal_dev_server.address, new_key()
    client = await Client.connect(address, namespace="default", data_converter=data_converter(key))
    worker = ApiWorker(client, address, key, f"api-{uuid.uuid4().hex[:8]}",
                       tmp_path_factory.mktemp("api-audit") / "audit.jsonl",
                       MemoryProvider(), MemoryStore(), MemorySuppliedProvider())
    workers = build_workers(
        client, task_queue=worker.task_queue, audit_log=open_log(worker.audit_path),
        families=[MemoryProvider.family], rate_limits={MemoryProvider.family: 10_000},
        provider_for=worker.providers.__getitem__, store_for=lambda plan: worker.store,
    )
    async with running(workers):
        yield worker


@contextlib.asynccontextmanager
async def api_stack_for(worker: ApiWorker, tmp_path: Path, tokens: dict[str, str],
                        tokens_file: Path) -> AsyncIterator[ApiStack]:
    """The API app over the worker's client, with its own token file and runbook directory;
    the memory providers are registered (plans and validation look them up) meanwhile."""
    settings = ApiSettings(
        keyturn=Settings(temporal_address=worker.address, namespace="default",
                         task_queue=worker.task_queue, audit_log=worker.audit_path,
                         codec_key=worker.codec_key, principal="nobody"),
        tokens=tokens_file,
        runbook_dir=tmp_path / "runbooks",
    )
    settings.runbook_dir.mkdir(exist_ok=True)

    def make_app(**overrides: Any):
        options = {"client": worker.client, "store_for": lambda plan: worker.store, **overrides}
        return create_app(settings, **options)

    for instance in worker.providers.values():
        registry.register(type(instance))
    try:
        transport = httpx.ASGITransport(app=make_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield ApiStack(settings, worker.client, http, worker.provider, worker.store,
                           worker.supplied, tokens, settings.runbook_dir, make_app)
    finally:
        for name in worker.providers:
            registry.unregister(name)


@pytest.fixture
async def api_stack(api_worker: ApiWorker, tmp_path: Path, api_tokens: dict[str, str],
                    api_tokens_file: Path) -> AsyncIterator[ApiStack]:
    async with api_stack_for(api_worker, tmp_path, api_tokens, api_tokens_file) as stack:
        yield stack


@dataclass
class LiveApi:
    url: str
    stack: ApiStack


@pytest.fixture
async def live_api(api_stack: ApiStack) -> AsyncIterator[LiveApi]:
    """The stack's app served over real HTTP by uvicorn in a thread. That app connects its
    own Temporal client (same address, namespace and codec key) in the server's loop."""
    import uvicorn

    port = free_port()
    app = create_app(api_stack.settings, store_for=lambda plan: api_stack.store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="keyturn-api", daemon=True)
    thread.start()
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), timeout=10)
        yield LiveApi(f"http://127.0.0.1:{port}", api_stack)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
