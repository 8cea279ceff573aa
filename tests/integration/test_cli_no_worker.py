"""Without a worker, `status` says so at once (never that a live run does not exist), and
`wait` says so and keeps waiting until a worker starts and the run ends."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from stack_support import one_key_runbook, seed_user


def test_without_a_worker_status_and_wait_say_so(stack, iam_client, vault_client):
    tag = uuid.uuid4().hex[:6]
    seed_user(iam_client, vault_client, f"no-worker-{tag}", f"no-worker-{tag}/deployer")
    path = stack.tmp / "no-worker.yaml"
    path.write_text(one_key_runbook(f"no-worker-{tag}"))
    run_id = stack.cli_json("run", str(path), "--skip-preflight")["run_id"]

    began = time.monotonic()
    status = stack.cli("status", run_id)
    assert time.monotonic() - began < 10, "status must not wait for a worker that is not there"
    assert status.returncode == 2, status.stderr
    assert f"run {run_id} is running, but no worker polls its task queue" in status.stderr
    assert "keyturn worker" in status.stderr and "no run" not in status.stderr

    out = stack.tmp / "wait.out"
    with out.open("w") as sink:
        waiting = subprocess.Popen([sys.executable, "-m", "keyturn", "wait", run_id],
                                   env=stack.env, stdout=sink, stderr=subprocess.STDOUT, text=True)
        stack.wait_for(lambda: "no worker polls its task queue" in out.read_text(),
                       timeout=20, what="wait to say that no worker serves the run")
        assert waiting.poll() is None  # and it keeps waiting
        stack.start_worker()
        assert waiting.wait(timeout=120) == 0, out.read_text()
    assert f"run {run_id} succeeded" in out.read_text()


def test_preflight_names_a_worker_that_just_stopped(stack, iam_client, vault_client):
    """The server still lists a worker killed a moment ago as polling; preflight notices
    that nobody picks its checks up instead of waiting out its five minutes."""
    tag = uuid.uuid4().hex[:6]
    seed_user(iam_client, vault_client, f"no-worker-{tag}", f"no-worker-{tag}/deployer")
    path = stack.tmp / "stalled.yaml"
    path.write_text(one_key_runbook(f"no-worker-{tag}"))
    worker = stack.start_worker()
    stack.wait_for(lambda: stack.cli("preflight", str(path)).returncode == 0,
                   what="a first preflight served by the worker")
    stack.kill_worker(worker)

    began = time.monotonic()
    refused = stack.cli("preflight", str(path))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert time.monotonic() - began < 60
    assert "preflight has waited" in refused.stderr and "keyturn worker" in refused.stderr
    assert "Traceback" not in refused.stderr
