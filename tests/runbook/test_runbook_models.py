"""Model-level rejections: every shape error names the right line, column and reason."""

from __future__ import annotations

import textwrap

import pytest

from keyturn.runbook import RunbookError, loads

APPROVERS = "{security: [alice, bob, carol], ops: [carol, dave]}"
STORES = "{vault: {type: vault_kv, mount: secret}}"


def doc(
    tiers: str,
    *,
    approvers: str = APPROVERS,
    defaults: str = "{}",
    stores: str = STORES,
    head: str = "apiVersion: keyturn/v1\nkind: Runbook\nmetadata: {name: test-rb}\n",
) -> str:
    """A runbook whose tiers start on line 9, indented by four spaces."""
    body = textwrap.indent(textwrap.dedent(tiers).strip("\n") + "\n", "    ")
    return (
        f"{head}spec:\n  approvers: {approvers}\n  defaults: {defaults}\n"
        f"  stores: {stores}\n  tiers:\n{body}"
    )


ONE_TIER = """
- id: t1
  credentials:
    - {id: a, provider: aws.iam_access_key, target: {}}
"""


def rejects(text: str) -> RunbookError:
    with pytest.raises(RunbookError) as info:
        loads(text, filename="rb.yaml")
    return info.value


def assert_error(err: RunbookError, line: int, column: int, reason: str) -> None:
    assert (err.file, err.line, err.column) == ("rb.yaml", line, column), str(err)
    assert reason in err.reason, str(err)


def test_helper_document_is_valid() -> None:
    assert loads(doc(ONE_TIER)).spec.tiers[0].credentials[0].id == "a"


def test_missing_nested_field_points_at_the_parent_mapping() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - {id: a, target: {}}
    """)
    )
    assert_error(err, 11, 11, "missing required field 'provider'")


def test_missing_top_level_field_points_at_the_document() -> None:
    err = rejects(doc(ONE_TIER, head="apiVersion: keyturn/v1\nmetadata: {name: test-rb}\n\n"))
    assert_error(err, 1, 1, "missing required field 'kind'")


def test_unknown_field_suggests_the_close_name() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {}
              dependson: [b]
    """)
    )
    assert_error(err, 14, 11, "unknown field 'dependson'; did you mean 'depends_on'?")


def test_unknown_field_lists_the_allowed_fields() -> None:
    err = rejects(
        doc("""
        - id: t1
          colour: red
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(
        err,
        10,
        7,
        "unknown field 'colour' (allowed: id, name, after, gate, concurrency, credentials)",
    )


def test_tier_gate_has_no_before() -> None:
    err = rejects(
        doc("""
        - id: t1
          gate: {before: revoke, from: security}
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 10, 14, "a tier gate has no 'before'")


def test_id_must_be_a_slug() -> None:
    err = rejects(doc(ONE_TIER.replace("id: t1", "id: Tier_1")))
    assert_error(err, 9, 11, "id: 'Tier_1' is not a slug")


def test_runbook_name_must_be_a_slug() -> None:
    head = "apiVersion: keyturn/v1\nkind: Runbook\nmetadata: {name: NPM axios}\n"
    assert_error(rejects(doc(ONE_TIER, head=head)), 3, 18, "name: 'NPM axios' is not a slug")


@pytest.mark.parametrize(("escape", "code"), [("\\u202e", "202E"), ("\\u2066", "2066"),
                                               ("\\e", "001B"), ("\\n", "000A"),
                                               ("\\x85", "0085")])
def test_control_and_bidi_characters_are_refused_in_incidents_names_and_principals(
        escape, code) -> None:
    # U+202E shows "INC-7 evil" to an approver as "INC-7 live"; a newline or an escape
    # would forge a log line or drive a terminal
    char = chr(int(code, 16))
    head = ("apiVersion: keyturn/v1\nkind: Runbook\n"
            f'metadata: {{name: test-rb, incident: "INC-7 {escape}evil"}}\n')
    err = rejects(doc(ONE_TIER, head=head))
    assert_error(err, 3, 37, f"control or bidi character U+{code}")
    assert char not in str(err)
    err = rejects(doc(ONE_TIER.replace("id: t1", f'id: t1\n  name: "Tier {escape}1"')))
    assert_error(err, 10, 13, f"U+{code}")
    err = rejects(doc(ONE_TIER, approvers=f'{{security: ["bob{escape}"]}}'))
    assert f"U+{code}" in err.reason and char not in str(err)


def test_api_version_must_be_v1() -> None:
    head = "apiVersion: keyturn/v2\nkind: Runbook\nmetadata: {name: test-rb}\n"
    assert_error(
        rejects(doc(ONE_TIER, head=head)), 1, 13, "apiVersion: Input should be 'keyturn/v1'"
    )


def test_kind_must_be_runbook() -> None:
    head = "apiVersion: keyturn/v1\nkind: Playbook\nmetadata: {name: test-rb}\n"
    assert_error(rejects(doc(ONE_TIER, head=head)), 2, 7, "kind: Input should be 'Runbook'")


def test_provider_name_shape() -> None:
    err = rejects(doc(ONE_TIER.replace("aws.iam_access_key", "AWS IAM")))
    assert_error(err, 11, 29, "provider: 'AWS IAM' is not valid here, expected a name like")


def test_duration_syntax() -> None:
    err = rejects(doc(ONE_TIER, defaults="{grace_period: 10 minutes}"))
    assert_error(err, 6, 28, "grace_period: '10 minutes' is not a duration like")


def test_duration_is_not_a_float() -> None:
    err = rejects(doc(ONE_TIER, defaults="{grace_period: 1.5}"))
    assert_error(err, 6, 28, "grace_period: expected a duration like")


def test_gate_timeout_must_be_positive() -> None:
    err = rejects(
        doc("""
        - id: t1
          gate: {from: security, timeout: 0s}
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 10, 39, "timeout: must be longer than 0s")


def test_approvals_at_least_one() -> None:
    err = rejects(
        doc("""
        - id: t1
          gate: {from: security, approvals: 0}
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 10, 41, "approvals: Input should be greater than or equal to 1")


def test_concurrency_at_least_one() -> None:
    err = rejects(doc(ONE_TIER.replace("  credentials:", "  concurrency: 0\n  credentials:")))
    assert_error(err, 10, 20, "concurrency: Input should be greater than or equal to 1")


def test_strategy_is_rotate_or_revoke_first() -> None:
    err = rejects(doc(ONE_TIER, defaults="{strategy: yolo}"))
    assert_error(err, 6, 24, "strategy: Input should be 'rotate' or 'revoke-first'")


def test_credential_gate_needs_a_valid_before() -> None:
    err = rejects(
        doc("""
        - id: t1
          credentials:
            - id: a
              provider: aws.iam_access_key
              target: {}
              gate: {before: rotate, from: security}
    """)
    )
    assert_error(err, 14, 26, "before: Input should be 'create', 'promote' or 'revoke'")


def test_gate_from_is_a_name_or_a_list_of_names() -> None:
    err = rejects(
        doc("""
        - id: t1
          gate: {from: {security: 1}}
          credentials:
            - {id: a, provider: aws.iam_access_key, target: {}}
    """)
    )
    assert_error(err, 10, 20, "from: Input should be a valid list")


def test_target_is_a_mapping() -> None:
    err = rejects(doc(ONE_TIER.replace("target: {}", "target: ci-deployer")))
    assert_error(err, 11, 57, "target: Input should be a valid dictionary")


def test_store_name_must_be_a_slug_and_the_key_is_blamed() -> None:
    err = rejects(doc(ONE_TIER, stores="{Vault_1: {type: vault_kv}}"))
    assert_error(err, 7, 12, "'Vault_1' is not a slug")


def test_store_needs_a_type() -> None:
    err = rejects(doc(ONE_TIER, stores="{vault: {mount: secret}}"))
    assert_error(err, 7, 19, "missing required field 'type'")


def test_the_error_first_in_the_file_wins() -> None:
    # pydantic reports metadata before spec; spec comes first in this file.
    text = "apiVersion: keyturn/v1\nkind: Runbook\nspec: {tiers: [{id: T}]}\nmetadata: {name: X}\n"
    assert_error(rejects(text), 3, 21, "id: 'T' is not a slug")
