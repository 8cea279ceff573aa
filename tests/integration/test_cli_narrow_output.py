"""The real CLI into a pipe at 80 columns: progress one line per change, and status, the
run list, audit replay and providers with every id whole and no box drawing."""

from __future__ import annotations

import json
import uuid

import pytest
from stack_support import seed_user

RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: narrow-output-{tag}}}
spec:
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  tiers:
    - id: tier1
      credentials:
        - id: ci-deployer-aws-production-{tag}
          provider: aws.iam_access_key
          target: {{user_name: narrow-{tag}}}
          deliver: [{{store: vault, path: narrow-{tag}/deployer}}]
"""
BOXES = "│┃━─┏┓└┘"


@pytest.fixture
def narrow(worker_stack):
    worker_stack.env["COLUMNS"] = "80"
    return worker_stack


def test_a_piped_run_at_80_columns(narrow, iam_client, vault_client):
    stack, tag = narrow, uuid.uuid4().hex[:6]
    seed_user(iam_client, vault_client, f"narrow-{tag}", f"narrow-{tag}/deployer")
    path = stack.tmp / "narrow.yaml"
    path.write_text(RUNBOOK.format(tag=tag))
    cred = f"ci-deployer-aws-production-{tag}"

    ran = stack.cli("run", str(path), "--wait", check=True).stdout
    progress = [line for line in ran.splitlines() if f"{cred}:" in line]
    assert f"{cred}: succeeded " in progress[-1], ran
    assert any(": running " in line for line in progress), ran  # steps as they happened
    run_id = ran.split("started run ")[1].split()[0]

    detail = stack.cli_json("status", run_id)["credential_details"][cred]
    status = stack.cli("status", run_id, check=True).stdout
    row = next(line for line in status.splitlines() if cred in line)
    assert f"old={detail['old_credential_ids'][0]}" in row
    assert f"new={detail['new_credential_id']}" in row
    assert run_id in status and not any(ch in status for ch in BOXES)

    listed = stack.cli("status", check=True).stdout
    assert any(line.startswith(f"{run_id}  state=succeeded") for line in listed.splitlines())

    replay = stack.cli("audit", "replay", run_id, check=True).stdout
    records = stack.audit_records(run_id)
    timeline = [line for line in replay.splitlines() if line[:1].isdigit()]
    assert len(timeline) == len(records)  # one line per record, however long
    assert not any(ch in replay for ch in BOXES)

    providers = stack.cli("providers", check=True).stdout
    assert any(line.startswith("signing.vault_pki_cert  family=") for line in providers.splitlines())


def test_near_misses_and_refusals_say_what_to_do(worker_stack, iam_client, vault_client):
    """A mistyped run id or target gets "did you mean"; under -o json a refusal is also a
    JSON error object on stdout, with the same exit code."""
    stack, tag = worker_stack, uuid.uuid4().hex[:6]
    seed_user(iam_client, vault_client, f"narrow-{tag}", f"narrow-{tag}/deployer")
    path = stack.tmp / "near.yaml"
    path.write_text(RUNBOOK.format(tag=tag))
    run_id = stack.cli_json("run", str(path), "--wait")["run_id"]

    typo = run_id[:-1] + ("0" if run_id[-1] != "0" else "1")
    missing = stack.cli("status", typo, "-o", "json")
    assert missing.returncode == 2
    error = json.loads(missing.stdout)["error"]
    assert error["code"] == "not_found"
    assert f"no run {typo!r}; did you mean {run_id}?" in error["message"]
    assert "keyturn status" in error["message"] and "workflow not found" not in missing.stderr

    wrong = stack.cli("approve", run_id, f"ci-deployer-aws-productio-{tag}", "--as", "bob")
    assert wrong.returncode == 2
    assert f"did you mean ci-deployer-aws-production-{tag}?" in wrong.stderr

    ended = stack.cli("cancel", run_id, "-o", "json")
    assert ended.returncode == 2
    assert json.loads(ended.stdout)["error"]["code"] == "conflict"
    assert "has already ended" in ended.stderr
