"""`keyturn validate` and `keyturn plan` through typer's CliRunner on a bare app."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from keyturn.cli import provider_cmds
from keyturn.cli.runbook_cmds import plan_table, register
from keyturn.config import Settings
from keyturn.operations.plans import RunbookSource, compile_plan

DEMO = Path(__file__).resolve().parents[2] / "runbooks" / "demo.yaml"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """The commands with the installed provider registry, as a user runs them."""
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(DEMO.read_text().replace("user_name: release-bot", "user_name: [release"))
    return path


def run(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args], terminal_width=200)


def run_narrow(app: typer.Typer, *args: str):
    return CliRunner().invoke(app, [str(arg) for arg in args], terminal_width=80)


def test_validate_ok(app: typer.Typer) -> None:
    result = run(app, "validate", DEMO)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: {DEMO} (3 tiers, 5 credentials)\n"


def test_validate_reports_file_line_column_and_exits_2(app: typer.Typer, broken: Path) -> None:
    result = run(app, "validate", broken)
    assert result.exit_code == 2
    assert result.stdout == ""
    line = next(
        n for n, text in enumerate(broken.read_text().splitlines(), 1) if "[release" in text
    )
    assert result.stderr == (
        f"{broken}:{line}:39: invalid YAML: while parsing a flow sequence, "
        "expected ',' or ']', but got '}'\n"
    )


def test_validate_checks_every_file(app: typer.Typer, broken: Path) -> None:
    result = run(app, "validate", broken, DEMO)
    assert result.exit_code == 2
    assert f"ok: {DEMO}" in result.stdout
    assert str(broken) in result.stderr


def test_validate_semantic_error(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text(
        DEMO.read_text().replace(
            "path: release/signing/cert}]",
            "path: release/signing/cert}]\n          depends_on: [artifact-signing-key]",
        )
    )
    result = run(app, "validate", path)
    assert result.exit_code == 2
    assert "credentials form a cycle through 'depends_on'" in result.stderr


def test_plan_text(app: typer.Typer) -> None:
    result = run(app, "plan", DEMO)
    assert result.exit_code == 0, result.output
    assert "demo-breach" in result.stdout and "(not started)" in result.stdout
    assert (
        result.stdout.index("tier1") < result.stdout.index("tier2") < result.stdout.index("tier3")
    )


def test_plan_table_shows_the_tier_matrix(app: typer.Typer) -> None:
    execution = compile_plan(
        Settings.from_env(), RunbookSource.read(DEMO),
        requested_by="alice", now=datetime.now(UTC), run_id="plan-preview")
    out = Console(file=io.StringIO(), width=250, force_terminal=True, color_system=None)
    out.print(plan_table(execution))
    lines = out.file.getvalue().splitlines()  # type: ignore[attr-defined]
    providers = {"aws.iam_access_key", "signing.vault_pki_cert", "aws.kms_key"}
    rows = {}  # credential id -> (provider, the cells after it)
    for words in (line.split() for line in lines):
        at = next((i for i, word in enumerate(words) if word in providers), None)
        if at is not None:
            rows[words[at - 1]] = (words[at], words[at + 1 :])
    assert {cred: provider for cred, (provider, _) in rows.items()} == {
        "ci-deployer-aws": "aws.iam_access_key",
        "release-bot-aws": "aws.iam_access_key",
        "release-signing-cert": "signing.vault_pki_cert",
        "artifact-signing-key": "aws.kms_key",
        "orders-app-aws": "aws.iam_access_key",
    }
    assert "release-signing-cert" in rows["artifact-signing-key"][1]  # the depends_on column
    assert "aws-sm:ci/aws/release-bot" in rows["release-bot-aws"][1]
    orders = lines[lines.index(next(line for line in lines if "orders-app-aws" in line)) :]
    tier3 = "\n".join(orders)
    for cell in (
        "tier3 Follow-up",
        "after tier1, tier2",
        "gate: 1 of security",
        "revoke-first",
        "before revoke: 2 of security distinct",
        "vault:apps/aws/orders-app",
    ):
        assert cell in tier3


def test_plan_piped_or_narrow_keeps_every_cell_whole(app: typer.Typer) -> None:
    """At 80 columns, or piped, each credential is one line with every column named."""
    result = run_narrow(app, "plan", DEMO)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert not any(ch in result.stdout for ch in "│┃━─")  # no box drawing in a pipe
    release = next(line for line in lines if "release-bot-aws" in line)
    assert "aws.iam_access_key" in release and "deliver=aws-sm:ci/aws/release-bot" in release
    signing = next(line for line in lines if "artifact-signing-key" in line)
    assert "depends_on=release-signing-cert" in signing
    orders = next(line for line in lines if "orders-app-aws" in line)
    assert "strategy=revoke-first grace" in orders
    assert "gate=before revoke: 2 of security distinct" in orders
    assert "(not started)" in lines[-1]


def test_plan_json(app: typer.Typer) -> None:
    result = run(app, "plan", DEMO, "--output", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["run_id"] == "plan-preview"
    assert plan["runbook"] == "demo-breach"
    assert [tier["id"] for tier in plan["tiers"]] == ["tier1", "tier2", "tier3"]
    assert plan["tiers"][2]["credentials"][0]["staging"] == {
        "store": "vault",
        "path": "keyturn/staging/plan-preview/orders-app-aws",
        "fields": {},
    }


def test_plan_of_a_bad_runbook_exits_2(app: typer.Typer, broken: Path) -> None:
    result = run(app, "plan", broken, "--output", "json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]  # -o json: the refusal as data too
    assert error["code"] == "invalid_runbook" and error["file"] == str(broken)
    assert f"{broken}:{error['line']}:{error['column']}:" in result.stderr


def test_providers_name_the_fields_of_each_secret() -> None:
    app = typer.Typer()
    provider_cmds.register(app)
    result = CliRunner().invoke(app, ["--output", "json"])
    assert result.exit_code == 0, result.output
    listed = {p["name"]: p for p in json.loads(result.stdout)["providers"]}
    aws = listed["aws.iam_access_key"]
    assert aws["secret_fields"] == ["aws_access_key_id", "aws_secret_access_key"]
    assert aws["optional_fields"] == [] and aws["reads_current"] is False
    assert listed["npm.token"]["reads_current"] is True
    assert "public_key_pem" in listed["aws.kms_key"]["optional_fields"]


def test_validate_json_names_each_file_and_its_first_problem(app: typer.Typer,
                                                             broken: Path) -> None:
    result = run(app, "validate", DEMO, broken, "--output", "json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False
    good, bad = report["files"]
    assert good == {"path": str(DEMO), "ok": True, "tiers": 3, "credentials": 5}
    assert bad["ok"] is False and bad["error"]["code"] == "invalid_runbook"
    assert bad["error"]["file"] == str(broken)
    assert bad["error"]["line"] > 1 and bad["error"]["column"] > 1
