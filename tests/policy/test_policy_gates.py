"""A policy applied to runbooks: its groups and minimum gates hold, a runbook may narrow and
tighten them, and every way of loosening them is refused at the runbook's file:line:col."""

from __future__ import annotations

import pytest

from keyturn.policy.load import parse_policy
from keyturn.policy.model import Policy
from keyturn.runbook import RunbookError, loads, plan, validate
from keyturn.runbook.plan_model import ExecutionPlan

PROVIDERS = ["aws.iam_access_key", "github.pat", "signing.vault_pki_cert"]
POLICY = b"""\
apiVersion: keyturn/v1
kind: Policy
groups:
  security: [alice, carol, frank]
  ops: [bob, dave]
gates:
  - before: revoke
    providers: ["aws.*"]
    from: [security]
    approvals: 2
  - before: tier
    tiers: [tier1]
    from: [security, ops]
  - before: promote
    runbooks: [prod-*]
    from: [ops]
"""


def runbook(approvers: str = "", aws_gate: str = "", name: str = "breach") -> str:
    return f"""\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: {name}}}
spec:
{approvers}  stores:
    vault: {{type: vault_kv, address: http://vault:8200, mount: secret}}
  tiers:
    - id: tier1
      credentials:
        - id: aws-key
          provider: aws.iam_access_key
          target: {{user_name: u1}}
{aws_gate}    - id: tier2
      after: [tier1]
      credentials:
        - {{id: pat, provider: github.pat, target: {{owner: acme, name: ci}}}}
"""


def compiled(text: str, requested_by: str = "erin", policy: Policy | None = None) -> ExecutionPlan:
    policy = policy or parse_policy(POLICY, "policy.yaml")
    checked = validate(loads(text, "runbook.yaml"), PROVIDERS, policy)
    return plan(checked, run_id="run-1", requested_by=requested_by, source_sha256="ab" * 32,
                policy=policy)


def refusal(text: str, requested_by: str = "erin") -> RunbookError:
    with pytest.raises(RunbookError) as caught:
        compiled(text, requested_by)
    return caught.value


def test_the_policy_adds_the_gates_a_runbook_left_out_with_its_groups() -> None:
    result = compiled(runbook())
    revoke = result.credential("aws-key").gate("revoke")
    assert (revoke.groups, revoke.approvers, revoke.approvals) == (
        ["security"], ["alice", "carol", "frank"], 2)
    assert revoke.distinct  # the requester never approves: the policy does not allow it
    tier1 = result.tier("tier1").gate
    assert tier1.groups == ["security", "ops"]
    assert tier1.approvers == ["alice", "bob", "carol", "dave", "frank"]
    assert result.tier("tier2").gate is None  # no rule covers tier2
    assert result.credential("pat").gates == []  # nor a github.pat at revoke
    assert result.credential("aws-key").gate("promote") is None  # prod-* runbooks only
    assert result.policy == parse_policy(POLICY, "p").sha256


def test_rules_match_runbooks_by_name() -> None:
    promote = compiled(runbook(name="prod-breach")).credential("aws-key").gate("promote")
    assert promote.groups == ["ops"] and promote.approvers == ["bob", "dave"]
    gates = [g.before for g in compiled(runbook(name="prod-breach")).credential("aws-key").gates]
    assert gates == ["promote", "revoke"]  # in the order the rotation meets them


def test_a_runbook_may_tighten_a_required_gate() -> None:
    gate = "          gate: {before: revoke, from: security, approvals: 3}\n"
    revoke = compiled(runbook(aws_gate=gate)).credential("aws-key").gate("revoke")
    assert revoke.approvals == 3 and revoke.groups == ["security"]


def test_a_weaker_runbook_gate_is_raised_to_the_policy() -> None:
    gate = "          gate: {before: revoke, from: security, approvals: 1}\n"
    assert compiled(runbook(aws_gate=gate)).credential("aws-key").gate("revoke").approvals == 2


def test_a_runbook_may_narrow_a_policy_group() -> None:
    narrowed = "  approvers:\n    security: [alice, carol]\n"
    revoke = compiled(runbook(approvers=narrowed)).credential("aws-key").gate("revoke")
    assert revoke.approvers == ["alice", "carol"]


def test_a_runbook_cannot_add_itself_to_a_policy_group() -> None:
    widened = "  approvers:\n    security: [alice, erin]\n"
    problem = refusal(runbook(approvers=widened))
    assert (problem.line, problem.column) == (6, 23)
    assert "'erin' is not in the policy's group 'security'" in problem.reason


def test_a_runbook_cannot_bring_its_own_group() -> None:
    own = "  approvers:\n    friends: [erin]\n"
    problem = refusal(runbook(approvers=own))
    assert (problem.line, problem.column) == (6, 5)
    assert "group 'friends' is not in the approval policy" in problem.reason


def test_a_group_outside_the_rule_cannot_approve_where_the_rule_guards() -> None:
    gate = "          gate: {before: revoke, from: [security, ops], approvals: 2}\n"
    problem = refusal(runbook(aws_gate=gate))
    assert (problem.line, problem.column) == (13, 51)  # at 'ops'
    assert "lets only security approve before revoke" in problem.reason
    assert "group 'ops' would loosen it" in problem.reason


def test_a_gate_the_policy_adds_must_be_passable_without_the_requester() -> None:
    problem = refusal(runbook(approvers="  approvers:\n    security: [alice, carol]\n"),
                      requested_by="alice")
    assert "needs 2 distinct approvals but, without 'alice'" in problem.reason


def test_a_policy_may_let_requesters_approve() -> None:
    relaxed = parse_policy(POLICY + b"requesters_may_approve: true\n", "policy.yaml")
    revoke = compiled(runbook(), requested_by="alice", policy=relaxed).credential("aws-key")
    assert not revoke.gate("revoke").distinct


def test_without_a_policy_file_the_runbook_rules_as_before() -> None:
    text = runbook(approvers="  approvers:\n    friends: [erin, bob]\n")
    result = compiled(text, requested_by="bob", policy=Policy.default())
    assert result.credential("aws-key").gates == [] and result.tier("tier1").gate is None
    assert result.policy == ""
