"""Semantic rejections: one test per check in validate.py, each with its exact position."""

from __future__ import annotations

import sys
import textwrap
import types

import pytest
from pydantic import BaseModel, ConfigDict

from keyturn.runbook import RunbookError, check, loads, validate

PROVIDERS = ["aws.iam_access_key", "github.deploy_key"]
APPROVERS = "{security: [alice, bob, carol], ops: [carol, dave]}"
STORES = "{vault: {type: vault_kv, mount: secret}}"


def doc(tiers: str, *, approvers: str = APPROVERS, stores: str = STORES) -> str:
    """A runbook whose tiers start on line 8, indented by four spaces."""
    body = textwrap.indent(textwrap.dedent(tiers).strip("\n") + "\n", "    ")
    return (
        f"apiVersion: keyturn/v1\nkind: Runbook\nmetadata: {{name: test-rb}}\nspec:\n"
        f"  approvers: {approvers}\n  stores: {stores}\n  tiers:\n{body}"
    )


def rejects(text: str) -> RunbookError:
    runbook = loads(text, filename="rb.yaml")
    with pytest.raises(RunbookError) as info:
        validate(runbook, PROVIDERS)
    return info.value


def assert_error(err: RunbookError, line: int, column: int, reason: str) -> None:
    assert (err.file, err.line, err.column) == ("rb.yaml", line, column), str(err)
    assert reason in err.reason, str(err)


def test_a_valid_runbook_passes() -> None:
    runbook = loads(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
            - {id: b, provider: aws.iam_access_key, target: {}, depends_on: [a]}
        - id: t2
          after: [t1]
          gate: {from: [security, ops], approvals: 4}
          credentials:
            - {id: c, provider: github.deploy_key, target: {}, deliver: [{store: vault, path: x}]}
    """)
    )
    assert validate(runbook, PROVIDERS) is runbook


def test_no_tiers() -> None:
    text = "apiVersion: keyturn/v1\nkind: Runbook\nmetadata: {name: x}\nspec:\n  tiers: []\n"
    assert_error(rejects(text), 5, 10, "the runbook has no tiers")


def test_no_tiers_key_points_at_spec() -> None:
    text = "apiVersion: keyturn/v1\nkind: Runbook\nmetadata: {name: x}\nspec: {}\n"
    assert_error(rejects(text), 4, 7, "the runbook has no tiers")


def test_tier_without_credentials() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
        - id: t2
          credentials: []
    """)
    )
    assert_error(err, 12, 20, "tier 't2' has no credentials")


def test_duplicate_tier_id() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
        - id: t1
          credentials:
            - {id: b, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 11, 11, "duplicate tier id 't1' (first used at line 8)")


def test_duplicate_credential_id_across_tiers() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
        - id: t2
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 13, 16, "duplicate credential id 'a' (first used at line 10)")


def test_a_credential_id_equal_to_a_tier_id() -> None:
    # approvals name a gate by id: with a clash, approving the credential's gate would
    # pass the tier's (the gate shown is not the gate approved)
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
        - id: t2
          credentials:
            - {id: t1, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 13, 16, "credential id 't1' is also a tier id (line 8)")


def test_store_option_that_looks_like_a_secret() -> None:
    err = rejects(
        doc(
            """
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """,
            stores="{vault: {type: vault_kv, token: s.abc}}",
        )
    )
    assert_error(err, 6, 36, "store option 'token' looks like a secret")


def test_unknown_provider_suggests() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_acess_key, target: {}}
    """)
    )
    assert_error(
        err, 10, 29, "unknown provider 'aws.iam_acess_key'; did you mean 'aws.iam_access_key'?"
    )


def test_unknown_provider_lists_the_known_ones() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: npm.token, target: {}}
    """)
    )
    assert_error(
        err, 10, 29, "unknown provider 'npm.token' (known: aws.iam_access_key, github.deploy_key)"
    )


def test_deliver_to_unknown_store() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {}
              deliver: [{store: vault, path: x}, {store: secretsmanager, path: y}]
    """)
    )
    assert_error(err, 13, 54, "unknown store 'secretsmanager' (known: vault)")


def test_tier_gate_names_unknown_group() -> None:
    err = rejects(
        doc("""
        - id: t1
          gate: {from: [security, secops]}
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 9, 31, "unknown approver group 'secops'; did you mean 'ops'?")


def test_credential_gate_names_unknown_group() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {}
              gate: {before: promote, from: release}
    """)
    )
    assert_error(err, 13, 41, "unknown approver group 'release' (known: ops, security)")


def test_more_approvals_than_distinct_principals() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {}
              gate: {before: revoke, from: [security, ops], approvals: 5, distinct: true}
    """)
    )
    assert_error(
        err,
        13,
        68,
        "needs 5 approvals but its groups (security, ops) have only 4 distinct principals",
    )


def test_after_names_unknown_tier() -> None:
    err = rejects(
        doc("""
        - id: t1
          after: [t0]
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 9, 15, "unknown tier 't0' in after")


def test_after_cycle() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
        - id: t2
          after: [t3]
          credentials:
            - {id: b, provider: aws.iam_access_key, target: {}}
        - id: t3
          after: [t1, t2]
          credentials:
            - {id: c, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 12, 14, "tiers form a cycle through 'after': t2 -> t3 -> t2")


def test_tier_after_itself() -> None:
    err = rejects(
        doc("""
        - id: t1
          after: [t1]
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 9, 14, "cycle through 'after': t1 -> t1")


def test_depends_on_credential_in_another_tier() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
        - id: t2
          credentials:
            - {id: b, provider: aws.iam_access_key, target: {}, depends_on: [a]}
    """)
    )
    assert_error(err, 13, 74, "'a' is in tier 't1'; depends_on names credentials of the same tier")


def test_depends_on_unknown_credential() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}, depends_on: [zz]}
    """)
    )
    assert_error(err, 10, 74, "unknown credential 'zz' in depends_on")


def test_depends_on_cycle() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
            - {id: b, provider: aws.iam_access_key, target: {}, depends_on: [c]}
            - {id: c, provider: aws.iam_access_key, target: {}, depends_on: [b]}
    """)
    )
    assert_error(err, 11, 73, "credentials form a cycle through 'depends_on': b -> c -> b")


def test_nowhere_to_stage_without_stores_or_deliver() -> None:
    err = rejects(
        doc(
            """
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {}
    """,
            stores="{}",
        )
    )
    assert_error(err, 10, 11, "credential 'a' has no deliver target and spec.stores is empty")


def test_first_problem_in_check_order_is_raised() -> None:
    err = rejects(
        doc("""
        - id: t1
          after: [nope]
          credentials:
            - {id: a, provider: unknown.provider, target: {}}
    """)
    )
    assert "unknown provider" in err.reason


def test_default_providers_come_from_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = types.ModuleType("keyturn.providers.registry")
    registry.provider_names = lambda: ["github.deploy_key"]  # type: ignore[attr-defined]
    registry.provider_class = lambda name: types.SimpleNamespace(target_model=BaseModel)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyturn.providers.registry", registry)
    runbook = loads(
        doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """),
        filename="rb.yaml",
    )
    with pytest.raises(RunbookError, match="unknown provider 'aws.iam_access_key'"):
        check(runbook)


class _UserTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_name: str
    port: int = 0


def rejects_target(target: str) -> RunbookError:
    runbook = loads(doc(f"""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {target}
    """), filename="rb.yaml")
    with pytest.raises(RunbookError) as info:
        validate(runbook, {"aws.iam_access_key": _UserTarget})
    return info.value


def test_target_unknown_field_is_named_with_a_suggestion() -> None:
    err = rejects_target("{username: bob}")
    assert_error(err, 12, 20, "target has no field 'username'; did you mean 'user_name'?")


def test_target_missing_field() -> None:
    assert_error(rejects_target("{}"), 12, 19, "target needs 'user_name'")


def test_target_field_of_the_wrong_type() -> None:
    assert_error(rejects_target("{user_name: bob, port: many}"), 12, 42, "target field 'port'")


def test_targets_pass_their_provider_model() -> None:
    runbook = loads(doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {user_name: bob}}
    """))
    assert validate(runbook, {"aws.iam_access_key": _UserTarget}) is runbook


def test_a_write_only_store_cannot_stage() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {}
              deliver: [{store: ci, path: repos/acme/app/KEY}, {store: vault, path: x}]
    """, stores="{vault: {type: vault_kv}, ci: {type: github_actions_secret}}")
    )
    assert_error(err, 13, 29, "would stage its new value in store 'ci' (github_actions_secret)")
    assert "list a readable store" in err.reason


def test_deliver_fields_name_an_unknown_provider_field() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {user_name: ci}
              deliver:
                - store: vault
                  path: apps/billing
                  fields: {aws_access_key_id: ACCESS_KEY, aws_secret_key: SECRET_KEY}
    """)
    )
    assert_error(err, 16, 55, "aws.iam_access_key has no field 'aws_secret_key'; did you "
                 "mean 'aws_secret_access_key'?; its fields are aws_access_key_id, "
                 "aws_secret_access_key")


def test_deliver_fields_may_not_store_two_fields_under_one_name() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {user_name: ci}
              deliver:
                - store: vault
                  path: apps/billing
                  fields: {aws_secret_access_key: aws_access_key_id}
    """)
    )
    assert_error(err, 16, 47, "fields 'aws_access_key_id' and 'aws_secret_access_key' would "
                 "both be stored as 'aws_access_key_id'")


def test_deliver_fields_that_fit_pass() -> None:
    runbook = loads(doc("""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {user_name: ci}
              deliver:
                - {store: vault, path: apps/billing,
                   fields: {aws_access_key_id: ACCESS_KEY, aws_secret_access_key: SECRET_KEY}}
    """))
    assert validate(runbook, PROVIDERS) is runbook


def test_an_unknown_store_type_is_refused_with_a_suggestion() -> None:
    err = rejects(doc("""
        - id: t1
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """, stores="{vault: {type: hashicorp_vault, mount: secret}}"))
    assert_error(err, 6, 26, "unknown store type 'hashicorp_vault'")
    assert "vault_kv" in err.reason
