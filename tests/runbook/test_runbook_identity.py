"""Target identity: lock keys in plans, on_locked, and one rotation per target in a runbook."""

from __future__ import annotations

import hashlib
import textwrap

import pytest
from pydantic import BaseModel, ConfigDict

from keyturn.providers.aws_iam import AwsIamTarget
from keyturn.runbook import RunbookError, loads, plan, validate
from keyturn.runbook.identity import LOCK_KEY_LENGTH, describe_target, lock_key


class UserTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_name: str
    port: int = 5432
    tags: list[str] = []


MODELS = {"aws.iam_access_key": UserTarget, "github.deploy_key": UserTarget}


def doc(credentials: str, defaults: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(credentials).strip("\n") + "\n", "        ")
    return ("apiVersion: keyturn/v1\nkind: Runbook\nmetadata: {name: rb}\nspec:\n"
            f"  stores: {{vault: {{type: vault_kv}}}}\n{defaults}"
            f"  tiers:\n    - id: t1\n      credentials:\n{body}")


def compiled(text: str, **kwargs):
    runbook = validate(loads(text, filename="rb.yaml"), MODELS)
    return plan(runbook, run_id="rb-1", requested_by="dave",
                source_sha256=hashlib.sha256(text.encode()).hexdigest(), **kwargs)


def test_the_same_target_written_differently_has_one_key() -> None:
    plain = lock_key("aws.iam_access_key", {"user_name": "ci"}, UserTarget)
    spelled_out = lock_key("aws.iam_access_key", {"tags": [], "port": 5432, "user_name": "ci"},
                           UserTarget)
    quoted_number = lock_key("aws.iam_access_key", {"user_name": "ci", "port": "5432"},
                             UserTarget)
    assert plain == spelled_out == quoted_number
    assert len(plain) == LOCK_KEY_LENGTH and int(plain, 16) >= 0


@pytest.mark.parametrize(("provider", "target"), [
    ("aws.iam_access_key", {"user_name": "cd"}),
    ("aws.iam_access_key", {"user_name": "ci", "port": 5433}),
    ("github.deploy_key", {"user_name": "ci"}),
])
def test_different_targets_have_different_keys(provider: str, target: dict) -> None:
    assert lock_key(provider, target, UserTarget) != lock_key(
        "aws.iam_access_key", {"user_name": "ci"}, UserTarget)


def test_without_a_model_the_target_as_written_decides() -> None:
    assert lock_key("x.y", {"a": 1, "b": 2}) == lock_key("x.y", {"b": 2, "a": 1})
    assert lock_key("x.y", {"a": 1}) != lock_key("x.y", {"a": 1, "b": 2})


def test_describe_target_is_short_sorted_and_literal() -> None:
    assert describe_target({"user_name": "ci", "account": "[red]x"}) == \
        "account=[red]x, user_name=ci"
    assert describe_target({"hook_id": 7, "repo": "acme/app"}) == "hook_id=7, repo=acme/app"
    long = describe_target({"name": "n" * 500})
    assert len(long) == 120 and long.endswith("…")


def test_plans_carry_the_lock_key_and_on_locked() -> None:
    text = doc("""
        - {id: a, provider: aws.iam_access_key, target: {user_name: ci}}
        - {id: b, provider: aws.iam_access_key, target: {user_name: cd}, on_locked: wait}
    """)
    a, b = compiled(text).tiers[0].credentials
    # the installed provider's own target model reads the target
    assert a.lock_key == lock_key("aws.iam_access_key", {"user_name": "ci"}, AwsIamTarget)
    assert b.lock_key != a.lock_key
    assert (a.on_locked, b.on_locked) == ("refuse", "wait")


def test_runbook_defaults_and_the_run_override_on_locked() -> None:
    text = doc("""
        - {id: a, provider: aws.iam_access_key, target: {user_name: ci}}
        - {id: b, provider: aws.iam_access_key, target: {user_name: cd}, on_locked: refuse}
    """, defaults="  defaults: {on_locked: wait}\n")
    a, b = compiled(text).tiers[0].credentials
    assert (a.on_locked, b.on_locked) == ("wait", "refuse")
    forced = compiled(text, on_locked="refuse").tiers[0].credentials
    assert [c.on_locked for c in forced] == ["refuse", "refuse"]


def test_plans_made_before_locks_hold_nothing() -> None:
    text = doc("- {id: a, provider: aws.iam_access_key, target: {user_name: ci}}")
    data = compiled(text).model_dump(mode="json")
    for cred in data["tiers"][0]["credentials"]:
        del cred["lock_key"], cred["on_locked"]
    old = type(compiled(text)).model_validate(data)
    assert old.tiers[0].credentials[0].lock_key == ""
    assert old.tiers[0].credentials[0].on_locked == "refuse"


def test_two_credentials_of_one_runbook_on_one_target_are_an_error() -> None:
    text = doc("""
        - {id: a, provider: aws.iam_access_key, target: {user_name: ci}}
        - {id: b, provider: aws.iam_access_key, target: {user_name: cd}}
        - {id: c, provider: aws.iam_access_key, target: {port: 5432, user_name: ci}}
    """)
    with pytest.raises(RunbookError) as info:
        validate(loads(text, filename="rb.yaml"), MODELS)
    err = info.value
    assert (err.file, err.line, err.column) == ("rb.yaml", 11, 57), str(err)
    assert "credential 'c' rotates the same aws.iam_access_key target" in err.reason
    assert "as credential 'a' (target at line 9)" in err.reason


def test_one_target_under_two_providers_is_two_targets() -> None:
    text = doc("""
        - {id: a, provider: aws.iam_access_key, target: {user_name: ci}}
        - {id: b, provider: github.deploy_key, target: {user_name: ci}}
    """)
    runbook = loads(text, filename="rb.yaml")
    assert validate(runbook, MODELS) is runbook
