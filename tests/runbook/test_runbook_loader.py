"""Loading runbook YAML: the demo and the DESIGN example load; every YAML-level rejection."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from keyturn.runbook import RunbookError, load, loads, validate, yaml_tree

DEMO = Path(__file__).resolve().parents[2] / "runbooks" / "demo.yaml"

DESIGN_EXAMPLE = """\
apiVersion: keyturn/v1
kind: Runbook
metadata:
  name: npm-axios-compromise          # slug; run ids derive from it
  incident: INC-2026-0412
spec:
  approvers:                          # named groups of principals
    security: [alice, bob, carol]
  defaults:
    strategy: rotate                  # rotate | revoke-first
    grace_period: 10m
  stores:
    vault: {type: vault_kv, address: "${VAULT_ADDR}", mount: secret}
  tiers:
    - id: tier1
      name: Immediate                 # cloud keys, CI/CD deploy tokens
      credentials:
        - id: ci-deployer-aws
          provider: aws.iam_access_key
          target: {user_name: ci-deployer}
          deliver: [{store: vault, path: ci/aws/deployer}]
    - id: tier2
      name: Parallel                  # signing certs, deploy keys, PATs
      credentials:
        - id: app-deploy-key
          provider: github.deploy_key
          target: {repo: acme/app}
    - id: tier3
      name: Follow-up                 # database credentials, webhook secrets
      after: [tier1, tier2]
      gate: {approvals: 1, from: security}          # before the tier starts
      credentials:
        - id: orders-db
          provider: postgres.password
          target: {role: orders_app}
          gate: {before: revoke, approvals: 2, from: security, distinct: true}
"""


@pytest.fixture(autouse=True)
def vault_addr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")


def rejects(text: str) -> RunbookError:
    with pytest.raises(RunbookError) as info:
        loads(text, filename="rb.yaml")
    return info.value


def assert_error(err: RunbookError, line: int, column: int, reason: str) -> None:
    assert (err.file, err.line, err.column) == ("rb.yaml", line, column), str(err)
    assert reason in err.reason
    assert str(err) == f"rb.yaml:{line}:{column}: {err.reason}"


def test_demo_loads_and_validates() -> None:
    runbook = load(DEMO)
    assert (runbook.metadata.name, runbook.metadata.incident) == ("demo-breach", "INC-DEMO-0001")
    assert [tier.id for tier in runbook.spec.tiers] == ["tier1", "tier2", "tier3"]
    assert [tier.name for tier in runbook.spec.tiers] == ["Immediate", "Parallel", "Follow-up"]
    assert [(cred.id, cred.provider) for cred in runbook.credentials()] == [
        ("ci-deployer-aws", "aws.iam_access_key"),
        ("release-bot-aws", "aws.iam_access_key"),
        ("release-signing-cert", "signing.vault_pki_cert"),
        ("artifact-signing-key", "aws.kms_key"),
        ("orders-app-aws", "aws.iam_access_key"),
    ]
    assert runbook.spec.stores["vault"].type == "vault_kv"
    assert runbook.spec.stores["vault"].config == {
        "address": "http://127.0.0.1:8200",
        "mount": "secret",
    }
    assert runbook.spec.stores["aws-sm"].type == "aws_secrets_manager"
    assert runbook.credentials()[1].deliver[0].store == "aws-sm"
    tier2 = runbook.spec.tiers[1]
    assert tier2.credentials[1].depends_on == ["release-signing-cert"]
    assert runbook.spec.approvers == {"security": ["alice", "bob", "carol"]}
    assert runbook.spec.defaults.grace_period == timedelta(seconds=5)
    tier3 = runbook.spec.tiers[2]
    assert tier3.after == ["tier1", "tier2"]
    assert tier3.gate is not None and (tier3.gate.approvals, tier3.gate.from_) == (1, ["security"])
    (orders,) = tier3.credentials
    assert orders.strategy == "revoke-first"
    assert orders.gate is not None
    assert (orders.gate.before, orders.gate.approvals, orders.gate.distinct) == ("revoke", 2, True)
    assert validate(runbook, ["aws.iam_access_key", "aws.kms_key", "signing.vault_pki_cert"]) \
        is runbook


def test_demo_positions_are_recorded() -> None:
    runbook = load(DEMO)
    lines = DEMO.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "strategy: revoke-first" in text)
    path = ("spec", "tiers", 2, "credentials", 0, "strategy")
    assert runbook.source.position(path) == (line, lines[line - 1].index("revoke-first") + 1)
    assert runbook.source.position(path, key=True) == (line, lines[line - 1].index("strategy") + 1)
    assert runbook.source.file == str(DEMO)


def test_libyaml_and_pure_python_parsers_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = load(DEMO)
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    pure = load(DEMO)
    assert fast == pure
    assert fast.source == pure.source


def test_design_example_loads_and_validates() -> None:
    runbook = loads(DESIGN_EXAMPLE)
    known = ["aws.iam_access_key", "github.deploy_key", "postgres.password"]
    assert validate(runbook, known).spec.tiers[1].credentials[0].target == {"repo": "acme/app"}


def test_env_reference_expands_inside_a_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KT_PORT", "8200")
    runbook = loads(DESIGN_EXAMPLE.replace("${VAULT_ADDR}", "http://vault:${KT_PORT}/x"))
    assert runbook.spec.stores["vault"].config["address"] == "http://vault:8200/x"


def test_double_dollar_escapes_a_reference() -> None:
    runbook = loads(DESIGN_EXAMPLE.replace("${VAULT_ADDR}", "$${VAULT_ADDR}"))
    assert runbook.spec.stores["vault"].config["address"] == "${VAULT_ADDR}"


def test_unset_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR")
    err = rejects(DESIGN_EXAMPLE)
    assert_error(err, 13, 38, "environment variable VAULT_ADDR is not set")


def test_malformed_variable_reference() -> None:
    err = rejects(DESIGN_EXAMPLE.replace("${VAULT_ADDR}", "${vault-addr}"))
    assert_error(err, 13, 38, "malformed variable reference")


def test_yaml_syntax_error() -> None:
    err = rejects("apiVersion: keyturn/v1\nkind: [Runbook\n")
    assert_error(err, 3, 1, "invalid YAML: while parsing a flow sequence")


def test_tab_indentation_is_a_syntax_error() -> None:
    err = rejects("metadata:\n\tname: x\n")
    assert_error(err, 2, 1, "found character '\\t'")


def test_unacceptable_character() -> None:
    err = rejects("kind: Run\x07book\n")
    assert_error(err, 1, 10, "character #x0007 is not allowed")


def test_duplicate_key() -> None:
    err = rejects("apiVersion: keyturn/v1\nkind: Runbook\nmetadata: {name: a, name: b}\n")
    assert_error(err, 3, 21, "duplicate key 'name' (first at line 3)")


def test_non_string_key() -> None:
    err = rejects("apiVersion: keyturn/v1\nkind: Runbook\nspec:\n  on: true\n")
    assert_error(err, 4, 3, "mapping keys must be strings")


def test_merge_key_is_refused() -> None:
    err = rejects("base: &b {a: 1}\nspec:\n  <<: *b\n")
    assert_error(err, 3, 3, "merge keys (<<) are not supported")


def test_unsupported_collection_tag() -> None:
    err = rejects("apiVersion: keyturn/v1\nspec: !!set {a, b}\n")
    assert_error(err, 2, 7, "unsupported YAML tag 'tag:yaml.org,2002:set'")


def test_unsupported_scalar_tag() -> None:
    err = rejects("apiVersion: keyturn/v1\nkind: !!python/name:os.system x\n")
    assert_error(err, 2, 7, "could not determine a constructor")


def test_explicit_tag_that_does_not_fit_its_value() -> None:
    err = rejects("apiVersion: keyturn/v1\nspec: {n: !!int twelve}\n")
    assert_error(err, 2, 11, "cannot read 'twelve' as tag:yaml.org,2002:int")


def test_empty_file() -> None:
    assert_error(rejects("# nothing here\n"), 1, 1, "the file is empty")


def test_document_is_not_a_mapping() -> None:
    assert_error(rejects("\n- apiVersion: keyturn/v1\n"), 2, 1, "a runbook is a mapping")


def test_several_documents() -> None:
    err = rejects("kind: Runbook\n---\nkind: Runbook\n")
    assert_error(err, 2, 1, "expected a single document")


def test_alias_expansion_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_tree, "MAX_NODES", 50)
    bomb = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
    # measured over the node graph before anything is built: 1 + 2 keys + 9 + 1 + 8 * 9
    assert_error(rejects(bomb), 1, 1, "expands to 85 values through aliases, more than 50")


def test_recursive_alias() -> None:
    assert_error(rejects("a: &a [*a]\n"), 1, 1, "nested too deeply")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: Runbook\nmetadata: {name: caf\xe9}\n")
    with pytest.raises(RunbookError) as info:
        load(path)
    assert (info.value.file, info.value.line, info.value.column) == (str(path), 2, 21)
    assert "not UTF-8" in info.value.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RunbookError) as info:
        load(tmp_path / "absent.yaml")
    assert (
        str(info.value) == f"{tmp_path / 'absent.yaml'}:1:1: cannot read the file: "
        "No such file or directory"
    )
