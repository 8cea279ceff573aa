"""The CLI without the API follows the same approval policy: `keyturn run` gets the policy's
gates, the run's audit record carries the policy's hash, and cancelling someone else's run
is refused where the policy says so."""

from __future__ import annotations

import hashlib
import uuid

from stack_support import one_key_runbook, seed_user

POLICY = b"""\
apiVersion: keyturn/v1
kind: Policy
groups:
  security: [alice, bob]
cancel_others: [security]
gates:
  - before: tier
    from: [security]
"""


def test_the_direct_cli_follows_the_policy(worker_stack, iam_client, vault_client):
    stack, tag = worker_stack, uuid.uuid4().hex[:6]
    seed_user(iam_client, vault_client, f"policy-{tag}", f"policy-{tag}/deployer")
    policy = stack.tmp / "policy.yaml"
    policy.write_bytes(POLICY)
    stack.env["KEYTURN_POLICY"] = str(policy)
    path = stack.tmp / "ungated.yaml"
    path.write_text(one_key_runbook(f"policy-{tag}"))

    run_id = stack.cli_json("run", str(path), "--as", "erin")["run_id"]
    stack.wait_for(lambda: _tier_gate(stack, run_id) == "open", what="the policy's tier gate")
    assert iam_client.list_access_keys(UserName=f"policy-{tag}")["AccessKeyMetadata"][0][
        "Status"] == "Active"  # the tier waits: nothing rotated yet

    refused = stack.cli("cancel", run_id, "--as", "dave", "--reason", "not mine")
    assert refused.returncode == 2, refused.stderr
    assert "'dave' may not cancel a run 'erin' started" in refused.stderr
    assert stack.cli("cancel", run_id, "--as", "erin", "--reason", "mine").returncode == 0
    stack.wait_for(lambda: any(r["outcome"] == "cancelled" for r in stack.audit_records(run_id)),
                   what="the cancellation")

    records = stack.audit_records(run_id)
    started = next(r for r in records if r["outcome"] == "started")
    assert started["details"]["policy"] == hashlib.sha256(POLICY).hexdigest()
    cancelled = next(r for r in records if r["outcome"] == "cancelled")
    assert cancelled["actor"] == "erin"
    assert not any(r["actor"] == "dave" for r in records)


def _tier_gate(stack, run_id: str) -> str | None:
    status = stack.cli_json("status", run_id)
    tier = next(t for t in status["tiers"] if t["tier"] == "tier1")
    return (tier.get("gate") or {}).get("status")
