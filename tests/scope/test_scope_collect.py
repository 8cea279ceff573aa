"""`scope collect github` against the GitHub fake, then `scope --evidence` offline on its output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import github_actions, github_runs
from fakes.github import GitHubFake
from typer.testing import CliRunner

from keyturn.cli import app
from keyturn.providers.github_common import GitHubApi
from keyturn.scope import advisory, catalog, collect_github, evidence, scan
from keyturn.scope.report import parse_window
from keyturn.stores.github_actions_secret import GitHubActionsSecretStore

FIXTURES = Path(__file__).parent / "fixtures"
WINDOW = "2025-08-26T22:30Z/2025-08-27T03:00Z"
SHA = "c" * 40
VALUES = ("npm-secret-value", "aws-secret-value", "org-secret-value")


class Org:
    def __init__(self, fake: GitHubFake, runs: github_runs.WorkflowRuns, token: str) -> None:
        self.fake, self.runs, self.token = fake, runs, token
        self.api = GitHubApi(base_url=fake.url, token=token)


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch) -> Iterator[Org]:
    fake = GitHubFake()
    actions = github_actions.install(fake)
    runs = github_runs.install(fake)
    fake.start()
    try:
        token = fake.add_user("alice")
        fake.add_repo("acme/app", "alice")
        fake.add_repo("acme/site", "alice")
        actions.add_environment("acme/app", "prod")
        monkeypatch.setenv("KEYTURN_GITHUB_TOKEN", token)
        store = GitHubActionsSecretStore("gha", {"api_url": fake.url})
        for path, value in zip(("repos/acme/app/NPM_TOKEN",
                                "repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID",
                                "orgs/acme/DEPLOY_PAT"), VALUES, strict=True):
            store.write(path, {"value": value}, {})
        for path in ("package-lock.json", ".github/workflows/ci.yml",
                     ".github/workflows/deploy.yml"):
            runs.add_file("acme/app", SHA, path, (FIXTURES / "checkouts" / "app" / path).read_text())
        runs.add_file("acme/app", SHA, "node_modules/x/package-lock.json", "not read")
        runs.add_file("acme/app", SHA, "../outside/package-lock.json", "{}")
        runs.add_file("acme/app", SHA, "README.md", "not read")
        yield Org(fake, runs, token)
    finally:
        fake.stop()


def add_runs(runs: github_runs.WorkflowRuns) -> dict[str, int]:
    ci = ".github/workflows/ci.yml"
    return {
        "before": runs.add_run("acme/app", path=ci, head_sha=SHA, attempts=["2025-08-26T22:29:59Z"]),
        "retried": runs.add_run("acme/app", path=ci, head_sha=SHA,
                                attempts=["2025-08-26T22:30:00Z", "2025-08-27T02:00:00Z"],
                                jobs=("build", "deploy / release"),
                                skipped=("deploy / release",)),
        "late_retry": runs.add_run("acme/app", path=ci, head_sha=SHA,
                                   attempts=["2025-08-27T02:59:59Z", "2025-08-27T03:00:00Z"]),
        "at_end": runs.add_run("acme/app", path=ci, head_sha=SHA, attempts=["2025-08-27T03:00:00Z"]),
        "fork": runs.add_run("acme/app", path=ci, head_sha=SHA, event="pull_request",
                             head_repository="mallory/app", attempts=["2025-08-26T23:00:00Z"]),
    }


def test_collect_writes_runs_attempts_files_and_secret_names(org: Org, tmp_path: Path) -> None:
    ids = add_runs(org.runs)
    out = tmp_path / "evidence"
    manifest = collect_github.collect("acme", ["acme/app"], parse_window(WINDOW), out, org.api)
    assert manifest["repositories"] == ["acme/app"]
    assert any("'../outside/package-lock.json' skipped" in note for note in manifest["notes"])
    _, (repo,) = evidence.read(out)
    attempts = {(run.id, run.attempt): run for run in repo.runs}
    assert set(attempts) == {(ids["retried"], 1), (ids["retried"], 2), (ids["late_retry"], 1),
                             (ids["late_retry"], 2), (ids["fork"], 1)}
    assert attempts[(ids["late_retry"], 2)].started_at == "2025-08-27T03:00:00Z"
    assert attempts[(ids["fork"], 1)].excluded == collect_github.FORK_REASON
    assert attempts[(ids["retried"], 1)].jobs == ["build"]
    assert attempts[(ids["retried"], 1)].skipped == ["deploy / release"]
    assert repo.secrets == {"repository": ["NPM_TOKEN"], "organization": ["DEPLOY_PAT"],
                            "environments": {"prod": ["AWS_ACCESS_KEY_ID"]}}
    tree = repo.tree(SHA)
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()) == [
        ".github/workflows/ci.yml", ".github/workflows/deploy.yml", "package-lock.json"]
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert not any(value.encode() in written for value in VALUES)


def test_a_window_with_more_runs_than_one_query_lists_is_split(
        org: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect_github, "MAX_RESULTS", 2)
    for hour in range(23, 29):
        day, at = (26, hour) if hour < 24 else (27, hour - 24)
        org.runs.add_run("acme/app", path=".github/workflows/ci.yml", head_sha=SHA,
                         attempts=[f"2025-08-{day}T{at:02d}:15:00Z"])
    out = tmp_path / "evidence"
    collect_github.collect("acme", [], parse_window(WINDOW), out, org.api)
    _, repos = evidence.read(out)
    assert [r.full_name for r in repos] == ["acme/app", "acme/site"]  # the whole organization
    assert len(repos[0].runs) == 4  # 23:15 .. 02:15; 03:15 and 04:15 are after the window
    counts = [path for method, path in org.fake.requests if path.endswith("/actions/runs")]
    assert len(counts) > 3  # sliced: more than one count and one listing


def test_scope_on_the_evidence_classifies_offline(org: Org, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    add_runs(org.runs)
    out = tmp_path / "evidence"
    collect_github.collect("acme", ["acme/app"], parse_window(WINDOW), out, org.api)
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    report = scan.scope(scan.Inputs(advisory.load_osv(FIXTURES / "advisories" / "mal-versions.json"),
                                    catalog.load(FIXTURES / "catalog.yaml"), evidence=out))
    assert str(report.window) == "2025-08-26T22:30:00Z/2025-08-27T03:00:00Z"  # the manifest's
    found = {e.secret: (e.klass, e.credential) for e in report.sorted_exposures()}
    assert found == {
        "github:repos/acme/app/NPM_TOKEN": ("delivered", "npm-publish-token"),
        "github:repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID": (
            "delivered", "ci-deployer-aws"),
        "github:orgs/acme/DEPLOY_PAT": ("delivered", "release-bot-pat"),
    }  # SLACK_WEBHOOK is referenced but not defined: GitHub gives the job an empty string


def test_collect_command_refuses_a_used_directory_and_reports_github_failures(
        org: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_GITHUB_API_URL", org.fake.url)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    runner = CliRunner()
    base = ["scope", "collect", "github", "--org", "acme", "--window", WINDOW]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "used")])
    assert result.exit_code == 2 and "is not an empty directory" in result.output
    with org.fake.failing(500):
        result = runner.invoke(app, [*base, "--out", str(tmp_path / "new")])
    assert result.exit_code == 1 and "collecting from GitHub failed" in result.output
    result = runner.invoke(app, [*base, "--repo", "acme/app", "--out", str(tmp_path / "ok"),
                                 "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((tmp_path / "ok" / "manifest.json").read_text())
    assert json.loads(result.stdout)["repositories"] == ["acme/app"]
