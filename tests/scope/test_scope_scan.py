"""Scoping end to end on the fixtures: affected installs, classes, evidence, the catalog mapping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from keyturn.scope import advisory, catalog, evidence, scan
from keyturn.scope.errors import ScopeError
from keyturn.scope.report import Report, parse_window

FIXTURES = Path(__file__).parent / "fixtures"
CHECKOUTS = FIXTURES / "checkouts"
WINDOW = parse_window("2025-08-26T22:30Z/2025-08-27T03:00Z")
SHA = "a" * 40


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> catalog.Catalog:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    return catalog.load(FIXTURES / "catalog.yaml")


def classes(report: Report) -> dict[str, tuple[str, str | None]]:
    return {e.secret: (e.klass, e.credential) for e in report.sorted_exposures()}


def static(acme: catalog.Catalog, name: str = "mal-versions.json") -> Report:
    return scan.scope(scan.Inputs(
        advisory.load_osv(FIXTURES / "advisories" / name), acme,
        repos=[(CHECKOUTS / "app", "acme/app"), (CHECKOUTS / "api", "acme/api")],
        sboms=[FIXTURES / "sboms"], manifests=[FIXTURES / "manifests"], window=WINDOW))


def test_checkouts_sboms_and_manifests_give_classes_and_mapping(acme: catalog.Catalog) -> None:
    report = static(acme)
    assert {(a.file, a.path[-1]) for a in report.affected} == {
        ("acme/app/package-lock.json", "@acme/ui@2.1.0"),
        ("acme/api/pnpm-lock.yaml", "@acme/ui@2.1.0"),
        (str(FIXTURES / "sboms" / "api-image.cdx.json"), "@acme/ui@2.1.0"),
        (str(FIXTURES / "sboms" / "worker-github-export.json"), "@acme/ui@2.1.0"),
    }
    assert classes(report) == {
        "github:repos/acme/app/NPM_TOKEN": ("delivered", "npm-publish-token"),
        "github:repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID": (
            "delivered", "ci-deployer-aws"),
        "github:orgs/acme/DEPLOY_PAT": ("delivered", "release-bot-pat"),
        "k8s:prod/orders-db/password": ("delivered", "orders-db"),
        "github:repos/acme/app/SLACK_WEBHOOK": ("delivered", None),
        "k8s:prod/api-env": ("delivered", None),
        "github:repos/acme/app/DOCS_KEY": ("reachable", "docs-signing-key"),
    }
    assert report.unmapped == ["github:repos/acme/app/SLACK_WEBHOOK", "k8s:prod/api-env"]


def test_the_evidence_chain_runs_from_advisory_to_credential(acme: catalog.Catalog) -> None:
    report = static(acme)
    aws = report.exposures[("github:repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID",
                            "ci-deployer-aws")]
    assert aws.evidence == [[
        "MAL-2025-0001", "@acme/ui@2.1.0", "acme/app/package-lock.json:18", "acme/app",
        ".github/workflows/ci.yml:28 job deploy/release environment prod",
        "github:repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID", "ci-deployer-aws",
    ]]
    pat = report.exposures[("github:orgs/acme/DEPLOY_PAT", "release-bot-pat")]
    assert [chain[2] for chain in pat.evidence] == [  # toJSON(secrets) in acme/api too
        "acme/app/package-lock.json:18", "acme/api/pnpm-lock.yaml:52"]


def test_a_job_reading_every_secret_without_evidence_is_noted(acme: catalog.Catalog) -> None:
    report = static(acme)
    assert report.notes == [
        ("acme/api: .github/workflows/test.yaml:5 job test reads every secret (toJSON(secrets)); "
        "without collected evidence only the catalog's locations are known")]


def test_a_compromised_action_is_matched_in_the_workflow(acme: catalog.Catalog) -> None:
    report = static(acme, "ghsa-action.json")
    (hit,) = report.affected
    assert (hit.package, hit.version, hit.file) == (
        "acme/setup-tool", "v2.0.0", "acme/app/.github/workflows/ci.yml")
    assert classes(report)["github:repos/acme/app/NPM_TOKEN"] == ("delivered", "npm-publish-token")
    assert classes(report)["github:repos/acme/app/DOCS_KEY"][0] == "reachable"


def test_nothing_affected_gives_no_exposures_and_an_over_broad_note(
        acme: catalog.Catalog) -> None:
    report = static(acme, "mal-overbroad.json")
    assert report.affected == [] and report.exposures == {}
    assert any(note.startswith("over-broad advisory: PyPI:Ctrl_Utils") for note in report.notes)


def write_evidence(root: Path, runs: list[evidence.RunAttempt],
                   files: dict[str, str] | None = None) -> Path:
    repo = root / "repos" / "acme" / "app"
    shutil.copytree(CHECKOUTS / "app", repo / "tree" / SHA)
    for name, text in (files or {}).items():
        (repo / "tree" / SHA / name).write_text(text)
    evidence.write_json(root / "manifest.json", {
        "format": evidence.FORMAT, "org": "acme", "window": str(WINDOW),
        "repositories": ["acme/app"]})
    evidence.write_json(repo / "secrets.json", {
        "repository": ["NPM_TOKEN", "SLACK_WEBHOOK", "DOCS_KEY", "LEGACY_KEY"],
        "environments": {"prod": ["AWS_ACCESS_KEY_ID"], "staging": ["STAGING_KEY"]},
        "organization": ["DEPLOY_PAT"]})
    evidence.write_json(repo / "runs.json", [evidence.run_json(run) for run in runs])
    return root


def run(run_id: int, attempt: int, started: str, event: str = "push",
        excluded: str | None = None, ran: tuple[str, ...] = ("build",),
        skipped: tuple[str, ...] = ()) -> evidence.RunAttempt:
    return evidence.RunAttempt(run_id, attempt, ".github/workflows/ci.yml", event, SHA,
                               "acme/app", started, list(ran), excluded, list(skipped))


def collected(tmp_path: Path, acme: catalog.Catalog, runs: list[evidence.RunAttempt],
              files: dict[str, str] | None = None) -> Report:
    return scan.scope(scan.Inputs(
        advisory.load_osv(FIXTURES / "advisories" / "mal-versions.json"), acme,
        evidence=write_evidence(tmp_path, runs, files), window=WINDOW))


def test_a_job_github_skipped_exposes_nothing(tmp_path: Path, acme: catalog.Catalog) -> None:
    report = collected(tmp_path, acme, [run(105, 1, "2025-08-26T23:00:00Z",
                                            skipped=("deploy / release",))])
    found = classes(report)
    assert found["github:repos/acme/app/NPM_TOKEN"] == ("delivered", "npm-publish-token")
    aws = report.exposures[("github:repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID",
                            "ci-deployer-aws")]
    assert (aws.klass, aws.reason) == (
        "excluded", ("job 'deploy / release' was skipped in run 105 attempt 1 "
                    "(push, 2025-08-26T23:00:00Z)"))


def test_a_run_whose_package_jobs_all_skipped_makes_nothing_reachable(
        tmp_path: Path, acme: catalog.Catalog) -> None:
    report = collected(tmp_path, acme, [run(106, 1, "2025-08-26T23:00:00Z", ran=("docs",),
                                            skipped=("build", "deploy / release"))])
    assert {e.klass for e in report.exposures.values()} == {"excluded"}
    legacy = report.exposures[("github:repos/acme/app/LEGACY_KEY", None)]
    assert legacy.reason == ("no job of run 106 attempt 1 (push, 2025-08-26T23:00:00Z) "
                             "that runs the package ran")


def test_an_environment_chosen_at_run_time_may_be_any_of_the_repositorys(
        tmp_path: Path, acme: catalog.Catalog) -> None:
    deploy = (CHECKOUTS / "app" / ".github" / "workflows" / "deploy.yml").read_text().replace(
        "environment: prod", "environment: ${{ inputs.environment }}")
    report = collected(tmp_path, acme, [run(104, 1, "2025-08-26T23:00:00Z")],
                       {".github/workflows/deploy.yml": deploy})
    found = classes(report)
    assert found["github:repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID"] == (
        "delivered", "ci-deployer-aws")
    assert found["github:repos/acme/app/environments/staging/STAGING_KEY"] == ("reachable", None)
    assert "job deploy/release environment chosen at run time" in report.exposures[
        ("github:repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID", "ci-deployer-aws")
    ].evidence[0][4]


def test_a_retried_attempt_inside_the_window_delivers_the_one_before_it_is_excluded(
        tmp_path: Path, acme: catalog.Catalog) -> None:
    report = collected(tmp_path, acme, [
        run(101, 1, "2025-08-26T22:29:59Z"), run(101, 2, "2025-08-26T22:30:00Z")])
    npm = report.exposures[("github:repos/acme/app/NPM_TOKEN", "npm-publish-token")]
    assert npm.klass == "delivered"
    assert ["run 101 attempt 2" in chain[4] for chain in npm.evidence] == [True]
    found = classes(report)
    assert found["github:repos/acme/app/LEGACY_KEY"] == ("reachable", None)  # collected, unmapped
    assert "github:repos/acme/app/environments/staging/STAGING_KEY" not in found
    assert "github:repos/acme/app/LEGACY_KEY" in report.unmapped


def test_runs_at_the_window_end_and_from_forks_are_excluded_with_the_reason(
        tmp_path: Path, acme: catalog.Catalog) -> None:
    report = collected(tmp_path, acme, [
        run(102, 1, "2025-08-27T03:00:00Z"),
        run(103, 1, "2025-08-26T23:00:00Z", "pull_request",
            "pull_request from a fork gets no secrets"),
    ])
    assert {e.klass for e in report.exposures.values()} == {"excluded"}
    npm = report.exposures[("github:repos/acme/app/NPM_TOKEN", "npm-publish-token")]
    assert npm.reason == "run started outside the window 2025-08-26T22:30:00Z/2025-08-27T03:00:00Z"
    assert report.unmapped == []  # excluded locations need no catalog entry
    assert report.exposed_credentials() == {}


@pytest.mark.parametrize(("files", "message"), [
    ({"manifest.json": {"format": "other"}}, "not a scope evidence manifest"),
    ({"repos/acme/app/secrets.json": [], "repos/acme/app/runs.json": []},
     "secrets.json must be an object"),
    ({"repos/acme/app/secrets.json": {}, "repos/acme/app/runs.json": [{"id": 1}]},
     "a run has the wrong fields"),
    ({"repos/acme/app/secrets.json": {}}, "runs.json: cannot read"),
])
def test_evidence_that_is_not_ours_is_refused(tmp_path: Path, files: dict, message: str) -> None:
    evidence.write_json(tmp_path / "manifest.json", {
        "format": evidence.FORMAT, "repositories": ["acme/app"]})
    for name, data in files.items():
        evidence.write_json(tmp_path / name, data)
    with pytest.raises(ScopeError, match=message):
        evidence.read(tmp_path)


def test_evidence_with_broken_json_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{\n  "format":\n}\n')
    with pytest.raises(ScopeError) as err:
        evidence.read(tmp_path)
    assert err.value.line == 3
