"""A real rotation on the real local servers with a worker serving --metrics-port and
--temporal-metrics-port, in each --log-format: the counters moved, the step histograms are
there, no label holds a target, credential id or secret, and neither log format holds a
secret (the JSON one is one object a line, with the run, credential and step)."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families
from stack_support import one_key_runbook, seed_user

from keyturn.devstack.servers import free_port


def scrape(port: int) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(found: list, name: str, **labels: str) -> float:
    return sum(s.value for s in found
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def listening(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_rotation_moves_the_workers_metrics_and_logs_no_secret(
        stack, iam_client, vault_client, log_format):
    tag, port, sdk_port = uuid.uuid4().hex[:6], free_port(), free_port()
    user = f"metrics-{tag}"
    old = seed_user(iam_client, vault_client, user, f"{user}/deployer")
    stack.start_worker("--metrics-port", str(port), "--temporal-metrics-port", str(sdk_port),
                       "--log-format", log_format)
    stack.wait_for(lambda: listening(port), what="the worker's metrics port")
    path = stack.tmp / "runbook.yaml"
    path.write_text(one_key_runbook(user))

    run_id = stack.cli_json("run", str(path), "--as", "erin")["run_id"]
    stack.cli("wait", run_id, check=True)
    new = vault_client.secrets.kv.v2.read_secret_version(
        path=f"{user}/deployer", mount_point="secret",
        raise_on_deleted_version=True)["data"]["data"]
    assert new["aws_access_key_id"] != old["aws_access_key_id"]

    found = scrape(port)
    provider = {"provider": "aws.iam_access_key", "tier": "tier1"}
    assert value(found, "keyturn_rotations_total", outcome="started", **provider) == 1
    assert value(found, "keyturn_rotations_total", outcome="succeeded", **provider) == 1
    assert value(found, "keyturn_rotations_total", outcome="failed", **provider) == 0
    for step in ("precheck", "create", "verify_new", "promote", "revoke_old", "confirm_revoked"):
        assert value(found, "keyturn_step_duration_seconds_count", provider="aws.iam_access_key",
                     step=step, outcome="succeeded") >= 1, step
    assert value(found, "keyturn_audit_append_duration_seconds_count") >= 8
    assert value(found, "keyturn_audit_append_failures_total") == 0
    forbidden = {user, run_id, "deployer", *old.values(), *new.values()}
    assert not forbidden & {v for s in found for v in s.labels.values()}
    sdk = scrape(sdk_port)
    assert {"temporal_activity_execution_latency_seconds_count",
            "temporal_workflow_completed_total"} <= {s.name for s in sdk}
    assert not forbidden & {v for s in sdk for v in s.labels.values()}

    stack.stop()
    logs = stack.worker_logs()
    for secret in (old["aws_secret_access_key"], new["aws_secret_access_key"]):
        assert secret not in logs
    if log_format == "json":
        entries = [json.loads(line) for line in logs.splitlines() if line.strip()]
        steps = [e for e in entries if e.get("run") == run_id and e.get("outcome") == "succeeded"]
        assert {e["step"] for e in steps} >= {"precheck", "create", "promote", "confirm_revoked"}
        assert all(e["credential"] == "deployer" and e["provider"] == "aws.iam_access_key"
                   and e["tier"] == "tier1" and e["attempt"] >= 1 and e["level"] == "INFO"
                   and e["time"] for e in steps)
