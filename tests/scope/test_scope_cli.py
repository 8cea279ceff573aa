"""`keyturn scope` through typer's CliRunner: JSON shape, exit codes, runbook, audit record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keyturn.audit import JsonlAuditLog, verify
from keyturn.cli import app
from keyturn.runbook import check

FIXTURES = Path(__file__).parent / "fixtures"
WINDOW = "2025-08-26T22:30Z/2025-08-27T03:00Z"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    monkeypatch.delenv("KEYTURN_AUDIT_LOG", raising=False)
    monkeypatch.delenv("KEYTURN_AUDIT_DSN", raising=False)
    monkeypatch.delenv("KEYTURN_AUDIT_SIGNING_KEY", raising=False)
    monkeypatch.setenv("KEYTURN_PRINCIPAL", "alice")
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps at the terminal width


def scope(*args: object):
    return CliRunner().invoke(app, ["scope", *map(str, args)], terminal_width=200)


def full(*extra: object) -> list[object]:
    return ["--advisory", FIXTURES / "advisories" / "mal-versions.json", "--window", WINDOW,
            "--repo-dir", f"{FIXTURES / 'checkouts' / 'app'}=acme/app",
            "--repo-dir", f"{FIXTURES / 'checkouts' / 'api'}=acme/api",
            "--sbom", FIXTURES / "sboms", "--k8s", FIXTURES / "manifests",
            "--catalog", FIXTURES / "catalog.yaml", *extra]


def test_json_report_unmapped_exit_and_a_runbook_that_validates(tmp_path: Path) -> None:
    out = tmp_path / "incident.yaml"
    result = scope(*full("--runbook-out", out, "--incident", "INC-7", "-o", "json"))
    assert result.exit_code == 1, result.output  # two exposed locations have no catalog entry
    data = json.loads(result.stdout)
    assert {"affected", "exposures", "unmapped", "runbook"} <= set(data)
    assert data["runbook"] == str(out)
    assert {"package", "version", "file", "path"} <= set(data["affected"][0])
    assert {"secret", "class", "credential", "evidence"} <= set(data["exposures"][0])
    assert data["unmapped"] == ["github:repos/acme/app/SLACK_WEBHOOK", "k8s:prod/api-env"]
    assert len(check(out).credentials()) == 5


def test_text_report_lists_unmapped_locations_with_a_catalog_stub() -> None:
    result = scope(*full())
    assert result.exit_code == 1
    assert "delivered  github:repos/acme/app/NPM_TOKEN -> npm-publish-token" in result.stdout
    assert 'exposed_as: ["k8s:prod/api-env"]' in result.stdout
    assert "runbook: not written" in result.stdout


def test_nothing_affected_exits_0_without_a_runbook(tmp_path: Path) -> None:
    out = tmp_path / "incident.yaml"
    result = scope("--package", "npm:left-pad", "--versions", "9.9.9", "--repo-dir",
                   f"{FIXTURES / 'checkouts' / 'app'}=acme/app", "--catalog",
                   FIXTURES / "catalog.yaml", "--runbook-out", out)
    assert result.exit_code == 0, result.output
    assert "nothing affected" in result.stdout
    assert not out.exists()


def test_names_from_the_inputs_are_printed_literally(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "package-lock.json").write_text(json.dumps({
        "name": "[bold]x[/bold] :smile:", "lockfileVersion": 3, "packages": {
        "": {"name": "[bold]x[/bold] :smile:", "dependencies": {"a": "1"}},
        "node_modules/a": {"version": "1.0.0"}}}))
    result = scope("--package", "npm:a", "--versions", "1.0.0", "--repo-dir", f"{repo}=acme/r")
    assert "[bold]x[/bold] :smile: > a@1.0.0" in result.stdout
    assert "exposed secret locations: none" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    ([], "give exactly one of --advisory"),
    (["--package", "npm:a"], "give --versions"),
    (["--package", "npm:a", "--versions", "1", "--window", "yesterday"], "is not a window"),
    (["--package", "npm:a", "--versions", "1", "--repo-dir", "nowhere"], "expected DIR=owner/name"),
    (["--package", "npm:a", "--versions", "1", "--sbom", "no-such-sbom-dir"], "does not exist"),
    (["--package", "npm:a", "--versions", "1", "--catalog", FIXTURES / "uv.lock"], "uv.lock:1:1"),
    (["--package", "npm:a", "--versions", "1", "--runbook-out", "x.yaml"], "needs --catalog"),
])
def test_invalid_input_exits_2_and_says_where(args: list[object], message: str) -> None:
    result = scope(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_the_scoping_is_recorded_in_the_configured_audit_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("KEYTURN_AUDIT_LOG", str(log))
    out = tmp_path / "incident.yaml"
    for _ in range(2):  # the same scoping twice is one record
        assert scope(*full("--runbook-out", out)).exit_code == 1
    (record,) = list(JsonlAuditLog(log).records())
    assert (record.run, record.step, record.actor) == ("scope:MAL-2025-0001", "scope", "alice")
    details = record.details
    assert details["window"] == "2025-08-26T22:30:00Z/2025-08-27T03:00:00Z"
    assert details["counts"] == {"affected": 4, "delivered": 6, "reachable": 1, "excluded": 0,
                                 "unmapped": 2}
    assert details["runbook_sha256"] == "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest()
    assert set(details["inputs"]) == {"advisory", "catalog", "repo:acme/app", "repo:acme/api",
                                      f"sbom:{FIXTURES / 'sboms'}", f"k8s:{FIXTURES / 'manifests'}"}
    assert verify(log).ok
    assert scope(*full()).exit_code == 1  # no --runbook-out: no runbook digest
    unwritten = list(JsonlAuditLog(log).records())[-1].details
    assert (unwritten["runbook_path"], unwritten["runbook_sha256"]) == (None, None)
