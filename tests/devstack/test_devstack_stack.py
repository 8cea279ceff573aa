"""`keyturn dev up|status|down|env` and DevStack: detached servers, state files, idempotence."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import boto3
import hvac
import pytest
from typer.testing import CliRunner

from keyturn.cli.dev_cmds import app
from keyturn.devstack.servers import http_status, pid_alive, port_open, terminate
from keyturn.devstack.stack import DevStack

REQUIRED_ENV = {
    "KEYTURN_TEMPORAL_ADDRESS",
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "KEYTURN_AUDIT_LOG",
    "KEYTURN_CODEC_KEY",
}


def _cli(*args: str, exit_code: int = 0) -> dict:
    result = CliRunner().invoke(app, [*args, "--output", "json"])
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def _by_name(report: dict) -> dict[str, dict]:
    return {server["name"]: server for server in report["servers"]}


@pytest.fixture
def stack(tmp_path):
    stack = DevStack(tmp_path / ".keyturn")
    yield stack
    stack.down()


def _private(path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_up_status_env_down(stack) -> None:
    state = str(stack.state_dir)
    report = _cli("up", "--state-dir", state)
    assert report["all_up"]
    assert {s["action"] for s in report["servers"]} == {"started"}

    env = _cli("env", "--state-dir", state)["env"]
    assert REQUIRED_ENV <= set(env)
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["KEYTURN_AUDIT_LOG"] == str(stack.state_dir / "audit.jsonl")
    for path in (stack.env_file, stack.codec_key_file, stack.stack_file):
        assert _private(path), path
    sts = boto3.client(
        "sts",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    assert sts.get_caller_identity()["Arn"].endswith(":user/keyturn-admin")
    assert hvac.Client(url=env["VAULT_ADDR"], token=env["VAULT_TOKEN"]).is_authenticated()

    status = _by_name(_cli("status", "--state-dir", state))
    assert all(s["state"] == "up" and pid_alive(s["pid"]) for s in status.values())
    assert status["temporal"]["address"] == env["KEYTURN_TEMPORAL_ADDRESS"]
    ui = status["temporal"]["ui"]
    assert ui.startswith("http://127.0.0.1:") and ui == _by_name(report)["temporal"]["ui"]
    answer, page = http_status(ui)
    assert answer == 200 and b"<html" in page.lower()

    down = _cli("down", "--state-dir", state)
    assert {s["action"] for s in down["servers"]} == {"stopped"}
    for server in status.values():
        assert not pid_alive(server["pid"])
        assert not port_open(int(server["address"].rsplit(":", 1)[1]))
    assert not _cli("status", "--state-dir", state, exit_code=1)["all_up"]


def test_up_twice_keeps_servers_and_restarts_only_the_dead(stack) -> None:
    first = {s.name: s for s in stack.up().servers}
    key = stack.codec_key()
    second = {s.name: s for s in stack.up().servers}
    assert {s.action for s in second.values()} == {"kept"}
    assert {n: s.pid for n, s in second.items()} == {n: s.pid for n, s in first.items()}

    terminate(first["moto"].pid)
    third = {s.name: s for s in stack.up().servers}
    assert third["moto"].action == "restarted"
    assert third["moto"].pid != first["moto"].pid
    assert any("restarted empty" in note for note in third["moto"].notes)
    assert third["temporal"].action == third["openbao"].action == "kept"
    assert stack.codec_key() == key
    env = stack.read_env_file()
    assert env["AWS_ENDPOINT_URL"] == third["moto"].url
    sts = boto3.client(
        "sts",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    assert sts.get_caller_identity()["Arn"].endswith(":user/keyturn-admin")


def test_servers_outlive_their_starter_and_down_spares_a_reused_pid(stack) -> None:
    code = f"from keyturn.devstack.stack import DevStack; DevStack({str(stack.state_dir)!r}).up()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=dict(os.environ))
    assert stack.status().all_up

    records = json.loads(stack.stack_file.read_text())
    real_pid = records["servers"]["moto"]["pid"]
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        records["servers"]["moto"]["pid"] = stranger.pid
        stack.stack_file.write_text(json.dumps(records))
        moto = _by_name(stack.down().to_dict())["moto"]
        assert moto["action"] == "already stopped"
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
        terminate(real_pid)
