"""keyturn over TLS, mutual TLS and an API key, against the real Temporal dev server behind a
TLS front (tests/fakes/grpc_tls_proxy.py) with a throwaway CA.

A rotation runs end to end with the client and the worker connected through the front
in each mode; every refusal is a ConfigError that says it was TLS, what to set, and never
quotes the API key or the client key. Settings come from the environment, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes.grpc_tls_proxy import GrpcTlsProxy
from fakes.tls_certs import Issued, TestCa
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "workflows"))

from memory_provider import MemoryProvider, MemoryStore

from keyturn.audit import open_log
from keyturn.cli import app as keyturn_app
from keyturn.codec import new_key
from keyturn.config import ConfigError, Settings
from keyturn.devstack.servers import TemporalDevServer, free_port
from keyturn.operations import runs
from keyturn.operations.connect import connect
from keyturn.providers import registry
from keyturn.runbook import loads, plan, validate
from keyturn.temporal_auth import (
    API_KEY_ENV,
    API_KEY_FILE_ENV,
    CA_ENV,
    CERT_ENV,
    KEY_ENV,
    SERVER_NAME_ENV,
    TLS_ENV,
)
from keyturn.worker import build_workers, running

SERVICE = "/temporal.api.workflowservice.v1.WorkflowService/"
RUNBOOK = """
apiVersion: keyturn/v1
kind: Runbook
metadata: {name: tls-rotation, incident: INC-TLS}
spec:
  stores:
    vault: {type: vault_kv, address: "http://127.0.0.1:1", mount: secret}
  tiers:
    - id: tier1
      credentials:
        - id: app-key
          provider: memory.key
          target: {account: ACCOUNT}
          deliver: [{store: vault, path: app/ACCOUNT}]
"""


@dataclass(frozen=True)
class Pki:
    """The test CA, the front's certificate, a client certificate it signed, one it did not,
    and the API key the front expects (also in a file)."""

    ca: TestCa
    server: Issued
    client: Issued
    stranger: Issued
    api_key: str
    api_key_file: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("tls")
    ca = TestCa(base / "ca")
    api_key = f"tc-{secrets.token_urlsafe(32)}"
    api_key_file = base / "api-key"
    api_key_file.write_text(api_key + "\n")
    return Pki(ca, ca.server("temporal-front"), ca.client("keyturn-worker"),
               TestCa(base / "other", "other CA").client("intruder"), api_key, api_key_file)


@contextlib.contextmanager
def front(server: TemporalDevServer, pki: Pki, mode: str = "tls") -> Iterator[GrpcTlsProxy]:
    """The dev server behind TLS ("tls"), mTLS ("mtls") or TLS plus an API key ("api_key")."""
    options = {"tls": {}, "mtls": {"client_ca": pki.ca.ca_pem}, "api_key": {"api_key": pki.api_key}}
    with GrpcTlsProxy(server.address, pki.server, **options[mode]) as proxy:
        yield proxy


def credentials(pki: Pki, mode: str) -> dict[str, str | Path]:
    """The variables a client of the `mode` front sets."""
    return {"tls": {CA_ENV: pki.ca.ca_pem},
            "mtls": {CA_ENV: pki.ca.ca_pem, CERT_ENV: pki.client.cert, KEY_ENV: pki.client.key},
            "api_key": {CA_ENV: pki.ca.ca_pem, API_KEY_FILE_ENV: pki.api_key_file}}[mode]


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Settings.from_env with KEYTURN_TEMPORAL_ADDRESS=`address` and exactly these TLS variables."""
    for name in (TLS_ENV, CA_ENV, CERT_ENV, KEY_ENV, SERVER_NAME_ENV, API_KEY_FILE_ENV, API_KEY_ENV):
        monkeypatch.delenv(name, raising=False)

    def make(address: str, **values: str | Path) -> Settings:
        for name, value in {"KEYTURN_TEMPORAL_ADDRESS": address, "KEYTURN_NAMESPACE": "default",
                            "KEYTURN_TASK_QUEUE": f"tls-{uuid.uuid4().hex[:8]}",
                            "KEYTURN_AUDIT_LOG": tmp_path / "audit.jsonl",
                            "KEYTURN_CODEC_KEY": new_key(), **values}.items():
            monkeypatch.setenv(name, str(value))
        return Settings.from_env()

    return make


async def refused(pki: Pki, settings: Settings, *key_files: Path) -> str:
    """The message of the ConfigError connecting raises, checked (with its repr and cause)
    to quote neither the API key nor a line of the client keys or `key_files`."""
    with pytest.raises(ConfigError) as caught:
        await connect(settings)
    everything = f"{caught.value}\n{caught.value!r}\n{caught.value.__cause__!r}"
    assert pki.api_key not in everything
    for path in (pki.client.key, pki.stranger.key, *key_files):
        for line in path.read_text().splitlines():
            assert line.startswith("-----") or line not in everything
    return str(caught.value)


async def rotate(settings: Settings) -> tuple[runs.RunSnapshot, MemoryProvider, str]:
    """One credential rotated by a worker and a client that both connect with `settings`."""
    client = await connect(settings)
    provider, store = MemoryProvider(), MemoryStore()
    account = f"acct-{uuid.uuid4().hex[:6]}"
    old_key, secret = provider.seed(account)
    store.write(f"app/{account}", secret, {"credential_id": old_key})
    workers = build_workers(
        client, task_queue=settings.task_queue, audit_log=open_log(settings.audit_log),
        families=[MemoryProvider.family], rate_limits={MemoryProvider.family: 10_000},
        provider_for={provider.name: provider}.__getitem__, store_for=lambda plan: store,
    )
    registry.register(MemoryProvider)
    try:
        runbook = loads(RUNBOOK.replace("ACCOUNT", account), "tls.yaml")
        validate(runbook, known_providers=[MemoryProvider.name])
        execution = plan(runbook, run_id=f"tls-{uuid.uuid4().hex[:8]}", requested_by="dave",
                         source_sha256="0" * 64)
        async with running(workers):
            run_id = await runs.start(client, execution, settings.task_queue)
            final = await asyncio.wait_for(runs.wait(client, run_id), 60)
            assert final.state == "succeeded", final
            detail = await runs.describe(client, run_id)
    finally:
        registry.unregister(MemoryProvider.name)
    return detail, provider, old_key


# -- it works ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["tls", "mtls", "api_key"])
async def test_a_rotation_runs_through_the_front(temporal_dev_server, pki, settings,
                                                 mode: str) -> None:
    with front(temporal_dev_server, pki, mode) as proxy:
        config = settings(proxy.address, **credentials(pki, mode))
        detail, provider, old_key = await rotate(config)
    status = detail.credentials["app-key"]
    assert status.state == "succeeded" and status.old_credential_ids == [old_key]
    (account,) = provider.keys
    assert list(provider.keys[account]) == [status.new_credential_id]
    # the client and the worker both went through the front
    assert {f"{SERVICE}{m}" for m in ("StartWorkflowExecution", "PollWorkflowTaskQueue",
                                      "PollActivityTaskQueue", "QueryWorkflow")} <= proxy.methods
    assert proxy.refused == 0


async def test_the_server_name_override_checks_that_name(temporal_dev_server, pki,
                                                         settings) -> None:
    with front(temporal_dev_server, pki) as proxy:
        client = await connect(settings(proxy.address, KEYTURN_TEMPORAL_TLS_SERVER_NAME="localhost",
                                        **credentials(pki, "tls")))
        await client.count_workflows()  # answered through the front, name checked as "localhost"
        assert f"{SERVICE}CountWorkflowExecutions" in proxy.methods and proxy.refused == 0
        said = await refused(pki, settings(proxy.address, **credentials(pki, "tls"),
                                           KEYTURN_TEMPORAL_TLS_SERVER_NAME="temporal.example.com"))
    assert "TLS connection to Temporal" in said and SERVER_NAME_ENV in said
    assert "not issued for the name" in said


def test_the_cli_reads_tls_and_the_api_key_from_the_environment(temporal_dev_server, pki,
                                                                 settings, tmp_path) -> None:
    with front(temporal_dev_server, pki, "api_key") as proxy:
        settings(proxy.address, **credentials(pki, "api_key"))
        listed = CliRunner().invoke(keyturn_app, ["status", "-o", "json"],
                                    env={"KEYTURN_API_URL": "", "KEYTURN_TOKEN": ""})
        assert listed.exit_code == 0, listed.output
        assert isinstance(json.loads(listed.stdout)["runs"], list)
        assert f"{SERVICE}ListWorkflowExecutions" in proxy.methods

        wrong = tmp_path / "wrong-key"
        wrong.write_text(wrong_key := secrets.token_urlsafe(32))
        refused_cli = CliRunner().invoke(keyturn_app, ["status", "-o", "json"],
                                         env={"KEYTURN_API_URL": "", API_KEY_FILE_ENV: str(wrong)})
    said = " ".join(refused_cli.stderr.split())
    assert refused_cli.exit_code == 2 and API_KEY_FILE_ENV in said and "refused" in said
    assert wrong_key not in refused_cli.output and pki.api_key not in refused_cli.output


# -- TLS refusals -----------------------------------------------------------------------


async def test_tls_without_the_ca_names_the_ca_variable(temporal_dev_server, pki,
                                                        settings) -> None:
    with front(temporal_dev_server, pki) as proxy:
        said = await refused(pki, settings(proxy.address, KEYTURN_TEMPORAL_TLS="true"))
    assert said.startswith(f"TLS connection to Temporal at {proxy.address} failed")
    assert f"set {CA_ENV} to the PEM file of the CA" in said
    assert "TLS with the system's root CAs" in said


async def test_a_ca_that_did_not_sign_the_server_is_named(temporal_dev_server, pki,
                                                          settings, tmp_path) -> None:
    other = TestCa(tmp_path / "other", "unrelated CA")
    with front(temporal_dev_server, pki) as proxy:
        said = await refused(pki, settings(proxy.address, KEYTURN_TEMPORAL_TLS_CA=other.ca_pem))
    assert "not signed by a CA keyturn trusts" in said and f"TLS with CA {other.ca_pem}" in said


async def test_plaintext_to_a_tls_server_suggests_tls(temporal_dev_server, pki, settings) -> None:
    with front(temporal_dev_server, pki) as proxy:
        said = await refused(pki, settings(proxy.address))
    assert said.startswith(f"cannot reach Temporal at {proxy.address}")
    assert f"{TLS_ENV}=true if the server requires TLS" in said


async def test_tls_to_a_plaintext_server_says_it_does_not_speak_tls(temporal_dev_server, pki,
                                                                    settings) -> None:
    said = await refused(pki, settings(temporal_dev_server.address, **credentials(pki, "tls")))
    assert "TLS connection to Temporal" in said and "does not speak TLS" in said


async def test_nothing_listening_is_still_named(pki, settings) -> None:
    address = f"127.0.0.1:{free_port()}"
    said = await refused(pki, settings(address))
    assert said.startswith(f"cannot reach Temporal at {address}") and "keyturn dev up" in said
    said = await refused(pki, settings(address, KEYTURN_TEMPORAL_TLS="true"))
    assert "TLS connection" in said and "nothing listens there" in said


# -- mTLS refusals ----------------------------------------------------------------------


async def test_mtls_without_a_client_certificate_is_refused(temporal_dev_server, pki,
                                                            settings) -> None:
    with front(temporal_dev_server, pki, "mtls") as proxy:
        said = await refused(pki, settings(proxy.address, **credentials(pki, "tls")))
    assert said.startswith(f"TLS connection to Temporal at {proxy.address} failed")
    assert CERT_ENV in said and KEY_ENV in said


async def test_mtls_with_a_certificate_of_another_ca_is_refused(temporal_dev_server, pki,
                                                                settings) -> None:
    with front(temporal_dev_server, pki, "mtls") as proxy:
        said = await refused(pki, settings(proxy.address, KEYTURN_TEMPORAL_TLS_CA=pki.ca.ca_pem,
                                           KEYTURN_TEMPORAL_TLS_CERT=pki.stranger.cert,
                                           KEYTURN_TEMPORAL_TLS_KEY=pki.stranger.key))
    assert "TLS connection" in said and CERT_ENV in said
    assert f"client certificate {pki.stranger.cert}" in said


# -- API key refusals -------------------------------------------------------------------


async def test_a_wrong_api_key_is_refused_without_quoting_either_key(
        temporal_dev_server, pki, settings, tmp_path) -> None:
    wrong = tmp_path / "wrong-key"
    wrong.write_text(secrets.token_urlsafe(32))
    with front(temporal_dev_server, pki, "api_key") as proxy:
        said = await refused(pki, settings(proxy.address, KEYTURN_TEMPORAL_TLS_CA=pki.ca.ca_pem,
                                           KEYTURN_TEMPORAL_API_KEY_FILE=wrong), wrong)
    assert "TLS connection" in said and "refused keyturn's credentials" in said
    assert f"API key from {wrong}" in said and API_KEY_FILE_ENV in said
    assert proxy.refused >= 1


async def test_a_missing_api_key_is_refused(temporal_dev_server, pki, settings) -> None:
    with front(temporal_dev_server, pki, "api_key") as proxy:
        said = await refused(pki, settings(proxy.address, **credentials(pki, "tls")))
    assert "refused keyturn's credentials" in said and API_KEY_FILE_ENV in said
    assert proxy.refused >= 1
