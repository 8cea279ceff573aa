"""The policy file: where it is found, how it is read, and every rejection at file:line:col."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from keyturn.policy.load import PolicyError, load_policy, parse_policy, policy_path
from keyturn.policy.model import Policy
from keyturn.runbook import RunbookError

GOOD = b"""\
apiVersion: keyturn/v1
kind: Policy
groups:
  security: [alice, carol]
  ops: [bob, dave]
cancel_others: security
gates:
  - before: revoke
    providers: ["aws.*"]
    from: [security]
    approvals: 2
"""


def test_a_good_policy_is_read_with_the_hash_of_its_bytes() -> None:
    policy = parse_policy(GOOD, "policy.yaml")
    assert policy.groups == {"security": ["alice", "carol"], "ops": ["bob", "dave"]}
    assert policy.cancel_others == ["security"]
    assert policy.gates[0].from_ == ["security"] and policy.gates[0].approvals == 2
    assert policy.sha256 == hashlib.sha256(GOOD).hexdigest()
    assert policy.from_file and not policy.requesters_may_approve


@pytest.mark.parametrize(("text", "where", "reason"), [
    (GOOD.replace(b"cancel_others", b"cancel_other"), (6, 1), "unknown field 'cancel_other'"),
    (GOOD.replace(b"from: [security]", b"from: [sec]"), (10, 12), "unknown group 'sec'"),
    (GOOD.replace(b"cancel_others: security", b"cancel_others: [ops, nobody]"), (6, 22),
     "unknown group 'nobody'"),
    (GOOD.replace(b"approvals: 2", b"approvals: 3"), (11, 16),
     "needs 3 approvals but its groups have only 2 principals"),
    (GOOD.replace(b"[bob, dave]", b"[bob, worker]"), (5, 14), "'worker' is a name keyturn uses"),
    (GOOD.replace(b"before: revoke", b"before: deploy"), (8, 13), "before"),
    (b"apiVersion: keyturn/v1\nkind: Policy\n", (1, 1), "names its approver groups"),
    (b"- just\n- a list\n", (1, 1), "a policy is a mapping"),
])
def test_each_problem_is_named_at_its_place(text: bytes, where: tuple[int, int],
                                            reason: str) -> None:
    with pytest.raises(RunbookError) as caught:
        parse_policy(text, "policy.yaml")
    assert (caught.value.file, caught.value.line, caught.value.column) == ("policy.yaml", *where)
    assert reason in caught.value.reason


def test_the_file_is_the_named_one_else_the_one_beside_the_token_file(tmp_path: Path) -> None:
    tokens = tmp_path / "api-tokens.yaml"
    assert policy_path({}, tokens) is None
    (tmp_path / "policy.yaml").write_bytes(GOOD)
    assert policy_path({}, tokens) == tmp_path / "policy.yaml"
    assert policy_path({"KEYTURN_API_TOKENS": str(tokens)}) == tmp_path / "policy.yaml"
    assert policy_path({"KEYTURN_POLICY": "/elsewhere/p.yaml"}, tokens) == Path("/elsewhere/p.yaml")


def test_without_a_file_the_default_follows_the_requester_setting() -> None:
    assert load_policy(environ={}) == Policy.default()
    relaxed = load_policy(requester_may_approve=True, environ={})
    assert relaxed.requesters_may_approve and not relaxed.from_file and relaxed.sha256 == ""


def test_a_named_file_that_is_missing_or_invalid_refuses(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(environ={"KEYTURN_POLICY": str(missing)})
    broken = tmp_path / "broken.yaml"
    broken.write_bytes(GOOD.replace(b"from: [security]", b"from: [sec]"))
    with pytest.raises(PolicyError, match=r"invalid policy: .*broken.yaml:10:12: unknown group"):
        load_policy(environ={"KEYTURN_POLICY": str(broken)})


def test_the_requester_setting_cannot_sit_beside_a_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(GOOD)
    environ = {"KEYTURN_POLICY": str(path), "KEYTURN_REQUESTER_MAY_APPROVE": "true"}
    with pytest.raises(PolicyError, match="say 'requesters_may_approve' in the policy file"):
        load_policy(environ=environ)
    assert load_policy(environ={"KEYTURN_POLICY": str(path)}).sha256 == \
        hashlib.sha256(GOOD).hexdigest()


def test_who_may_cancel_whose_run() -> None:
    policy = parse_policy(GOOD, "policy.yaml")
    assert policy.may_cancel("bob", "bob")  # one's own run, always
    assert policy.may_cancel("alice", "bob")  # a security member, anyone's
    assert not policy.may_cancel("dave", "bob")
    assert Policy.default().may_cancel("dave", "bob")  # no rule: any operator


@pytest.mark.parametrize("module", ["keyturn.policy.model", "keyturn.policy.gates",
                                    "keyturn.policy.load", "keyturn.runbook.models"])
def test_each_policy_and_runbook_module_imports_first(module: str) -> None:
    """keyturn.policy uses the runbook models and the runbook's plan uses the policy: a
    process that imports either first must work (it once failed with a circular import)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
