"""`keyturn validate` and `keyturn plan` under a policy file (KEYTURN_POLICY)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keyturn.cli.runbook_cmds import register

POLICY = b"""\
apiVersion: keyturn/v1
kind: Policy
groups:
  security: [alice, bob]
gates:
  - {before: revoke, from: [security]}
"""
RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {name: cli-policy}
spec:
  approvers: {security: [alice, %s]}
  stores:
    vault: {type: vault_kv, address: http://127.0.0.1:8200, mount: secret}
  tiers:
    - id: tier1
      credentials:
        - {id: deployer, provider: aws.iam_access_key, target: {user_name: u1}}
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    (tmp_path / "policy.yaml").write_bytes(POLICY)
    monkeypatch.setenv("KEYTURN_POLICY", str(tmp_path / "policy.yaml"))
    monkeypatch.setenv("KEYTURN_PRINCIPAL", "erin")
    app = typer.Typer()
    register(app)
    return app


def runbook(tmp_path: Path, member: str) -> Path:
    path = tmp_path / f"{member}.yaml"
    path.write_text(RUNBOOK % member)
    return path


def test_validate_refuses_a_runbook_that_widens_a_policy_group(app, tmp_path: Path) -> None:
    path = runbook(tmp_path, "erin")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:5:33: 'erin' is not in the policy's group 'security'" in result.stderr


def test_plan_shows_the_policy_gates_and_hash(app, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plan", str(runbook(tmp_path, "bob")), "-o", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["policy"] == hashlib.sha256(POLICY).hexdigest()
    (gate,) = plan["tiers"][0]["credentials"][0]["gates"]
    assert gate["before"] == "revoke" and gate["approvers"] == ["alice", "bob"]


def test_an_invalid_policy_file_is_a_usage_error(app, tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_bytes(POLICY + b"bogus: 1\n")
    result = CliRunner().invoke(app, ["validate", str(runbook(tmp_path, "bob"))])
    assert result.exit_code == 2
    assert "unknown field 'bogus'" in result.stderr
