"""The approval policy file over the API: a posted runbook cannot loosen it, its minimum
gates hold even for a runbook without gates, the run's audit record carries its hash, and
it can keep operators from cancelling runs others started."""

from __future__ import annotations

import hashlib
import uuid

from api_support import memory_credential, runbook_yaml

POLICY = b"""\
apiVersion: keyturn/v1
kind: Policy
groups:
  security: [bob, carol]
  ops: [erin, alice]
cancel_others: [security]
gates:
  - before: revoke
    providers: ["memory.*"]
    from: [security]
"""


def _with_policy(api_stack) -> str:
    path = api_stack.settings.tokens.parent / "policy.yaml"  # beside the token file
    path.write_bytes(POLICY)
    return hashlib.sha256(POLICY).hexdigest()


def _ungated(account: str, approvers: str = "ops: [erin]") -> str:
    return runbook_yaml(f"    - id: t1\n      credentials:\n{memory_credential(account)}",
                        approvers=approvers)


async def test_a_posted_runbook_cannot_widen_a_policy_group(api_stack):
    _with_policy(api_stack)
    account = f"k{uuid.uuid4().hex[:8]}"
    text = _ungated(account, approvers="security: [bob, erin]")
    response = await api_stack.post("/v1/runs", "erin", {"runbook_yaml": text})
    assert response.status_code == 422, response.text
    assert "'erin' is not in the policy's group 'security'" in response.json()["message"]


async def test_the_policy_gates_a_runbook_without_gates(api_stack):
    sha256 = _with_policy(api_stack)
    account = f"k{uuid.uuid4().hex[:8]}"
    old = api_stack.seed(account)[account]
    run_id = await api_stack.start(_ungated(account), who="erin")
    gate = await api_stack.open_gate(run_id, account)
    assert gate["before"] == "revoke" and gate["approvers"] == ["bob", "carol"]
    assert old in api_stack.provider.keys[account]  # nothing revoked without the gate
    refused = await api_stack.post(f"/v1/runs/{run_id}/gates/{account}/approve", "erin",
                                   {"reason": "mine"})
    assert refused.status_code == 403, refused.text
    approved = await api_stack.post(f"/v1/runs/{run_id}/gates/{account}/approve", "bob",
                                    {"reason": "checked"})
    assert approved.status_code == 200 and approved.json()["status"] == "passed"
    assert (await api_stack.ended(run_id))["state"] == "succeeded"
    assert old not in api_stack.provider.keys[account]
    started = next(r for r in api_stack.records(run_id) if r.outcome == "started")
    assert started.details["policy"] == sha256 and started.actor == "erin"


async def test_the_policy_keeps_operators_from_cancelling_others_runs(api_stack):
    _with_policy(api_stack)
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    run_id = await api_stack.start(_ungated(account), who="erin")
    await api_stack.open_gate(run_id, account)
    refused = await api_stack.post(f"/v1/runs/{run_id}/cancel", "alice", {"reason": "oops"})
    assert refused.status_code == 403, refused.text
    assert "may not cancel a run 'erin' started" in refused.json()["message"]
    assert (await api_stack.detail(run_id))["state"] == "running"
    assert not [r for r in api_stack.records(run_id) if r.outcome == "cancelled"]
    own = await api_stack.post(f"/v1/runs/{run_id}/cancel", "erin", {"reason": "mine"})
    assert own.status_code == 202, own.text
    assert (await api_stack.ended(run_id))["state"] == "cancelled"


async def test_an_invalid_policy_file_refuses_runs(api_stack):
    (api_stack.settings.tokens.parent / "policy.yaml").write_bytes(POLICY + b"bogus: 1\n")
    account = f"k{uuid.uuid4().hex[:8]}"
    response = await api_stack.post("/v1/runs", "erin", {"runbook_yaml": _ungated(account)})
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["code"] == "policy_invalid" and "unknown field 'bogus'" in body["message"]
