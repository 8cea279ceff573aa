"""Ctrl-C while following a run says that the run goes on, and how to find it again."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

import pytest
from stack_support import seed_user

RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: interrupt-{tag}}}
spec:
  approvers: {{security: [alice]}}
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  tiers:
    - id: tier1
      gate: {{approvals: 1, from: security}}
      credentials:
        - id: deployer
          provider: aws.iam_access_key
          target: {{user_name: interrupt-{tag}}}
          deliver: [{{store: vault, path: interrupt-{tag}/deployer}}]
"""


@pytest.fixture
def stack(worker_stack):
    """Every test here starts with a worker running."""
    return worker_stack


@pytest.mark.parametrize("command", ["wait", "run"])
def test_ctrl_c_while_following_says_the_run_goes_on(command, stack, iam_client, vault_client):
    tag = uuid.uuid4().hex[:6]
    seed_user(iam_client, vault_client, f"interrupt-{tag}", f"interrupt-{tag}/deployer")
    path = stack.tmp / "interrupt.yaml"
    path.write_text(RUNBOOK.format(tag=tag))
    if command == "wait":
        run_id = stack.cli_json("run", str(path))["run_id"]
        args = ["wait", run_id]
    else:
        run_id, args = None, ["run", str(path), "--wait"]
    out = stack.tmp / f"{command}.out"
    with out.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "keyturn", *args], env=stack.env,
                                stdout=sink, stderr=subprocess.PIPE, text=True)
        stack.wait_for(lambda: "gate open: tier1" in out.read_text(), what="the open gate")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    run_id = run_id or out.read_text().split("started run ")[1].split()[0]
    assert f"interrupted: run {run_id} goes on" in stderr
    assert f"keyturn wait {run_id}" in stderr
    status = stack.cli_json("status", run_id)
    assert status["state"] == "running" and status["open_gates"] == ["tier1"]
    stack.cli("cancel", run_id, check=True)
