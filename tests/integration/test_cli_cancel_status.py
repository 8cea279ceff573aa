"""After `keyturn cancel`, `status` shows every credential's last step and outcome: the
cancellation, and the rollback of what was created before promote."""

from __future__ import annotations

import uuid

from stack_support import seed_user

RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: cancel-{tag}}}
spec:
  approvers: {{security: [alice]}}
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  tiers:
    - id: tier1
      credentials:
        - id: deployer
          provider: aws.iam_access_key
          target: {{user_name: cancel-{tag}}}
          deliver: [{{store: vault, path: cancel-{tag}/deployer}}]
          gate: {{before: promote, from: security}}
        - id: waiting
          provider: aws.iam_access_key
          target: {{user_name: cancel2-{tag}}}
          deliver: [{{store: vault, path: cancel2-{tag}/deployer}}]
          depends_on: [deployer]
"""


def test_status_after_cancel_shows_the_rollback(worker_stack, iam_client, vault_client):
    stack, tag = worker_stack, uuid.uuid4().hex[:6]
    seed_user(iam_client, vault_client, f"cancel-{tag}", f"cancel-{tag}/deployer")
    seed_user(iam_client, vault_client, f"cancel2-{tag}", f"cancel2-{tag}/deployer")
    path = stack.tmp / "cancel.yaml"
    path.write_text(RUNBOOK.format(tag=tag))
    run_id = stack.cli_json("run", str(path), "--as", "bob")["run_id"]
    stack.wait_for(lambda: _credential(stack, run_id, "deployer").get("step") == "gate",
                   what="the promote gate")
    assert stack.cli("cancel", run_id, "--as", "bob", "--reason", "drill").returncode == 0
    stack.wait_for(lambda: stack.cli_json("status", run_id)["state"] == "cancelled",
                   what="the cancelled run")
    status = stack.cli_json("status", run_id)
    assert status["tiers"][0]["state"] == "cancelled"
    assert status["tiers"][0]["credentials"] == {"deployer": "cancelled", "waiting": "skipped"}
    deployer = status["credential_details"]["deployer"]
    assert (deployer["state"], deployer["step"]) == ("cancelled", "rollback")
    assert deployer["steps"][-1] == {**deployer["steps"][-1], "step": "rollback",
                                     "outcome": "succeeded", "detail": "cancelled"}
    assert status["open_gates"] == []  # a cancelled run waits for nobody
    keys = iam_client.list_access_keys(UserName=f"cancel-{tag}")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == deployer["old_credential_ids"]  # new one gone

    table = stack.cli("status", run_id, check=True).stdout
    row = next(line for line in table.splitlines() if "deployer" in line)
    assert "cancelled" in row and "rollback" in row, table


def _credential(stack, run_id: str, cid: str) -> dict:
    return stack.cli_json("status", run_id).get("credential_details", {}).get(cid, {})
