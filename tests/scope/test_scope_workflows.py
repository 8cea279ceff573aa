"""Workflow analysis: which jobs run packages, which secrets they read, reusable workflows."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn.scope import workflows
from keyturn.scope.errors import ScopeError
from keyturn.scope.versions import NPM, PYPI

APP = Path(__file__).parent / "fixtures" / "checkouts" / "app" / ".github" / "workflows"


def load(**texts: str) -> dict[str, workflows.Workflow]:
    return {f".github/workflows/{name}.yml": workflows.parse(text, f".github/workflows/{name}.yml")
            for name, text in texts.items()}


def app_jobs() -> dict[str, workflows.Job]:
    parsed = {f".github/workflows/{p.name}": workflows.parse(p.read_text(), f".github/workflows/"
                                                               f"{p.name}")
              for p in APP.iterdir()}
    return {job.job: job for job in workflows.jobs(parsed)}


def test_jobs_that_install_read_their_secrets_and_the_workflow_env() -> None:
    jobs = app_jobs()
    build = jobs["build"]
    assert build.runs == {NPM}
    assert build.secrets == {"NPM_TOKEN", "SLACK_WEBHOOK"}
    assert build.actions == ("actions/checkout@v4", "acme/setup-tool@v2.0.0")
    assert build.line == 12
    docs = jobs["docs"]
    assert docs.runs == frozenset()
    assert docs.secrets == {"DOCS_KEY", "SLACK_WEBHOOK"}  # secrets['DOCS_KEY']


def test_secrets_inherit_reaches_a_called_job_with_its_environment() -> None:
    jobs = app_jobs()
    assert "release" not in jobs  # deploy.yml runs only when called
    release = jobs["deploy/release"]
    assert release.environment == "prod"
    assert release.secrets == {"AWS_ACCESS_KEY_ID", "DEPLOY_PAT"}
    assert release.triggers == {"push", "pull_request"}  # the caller's


def test_a_secret_mapping_renames_and_limits_what_a_called_job_reads() -> None:
    parsed = load(
        caller="on: push\njobs:\n  go:\n    uses: ./.github/workflows/called.yml\n"
               "    secrets:\n      token: ${{ secrets.ORG_TOKEN }}\n",
        called="on: workflow_call\njobs:\n  inner:\n    runs-on: x\n    steps:\n"
               "      - run: pip install -r requirements.txt\n"
               "      - run: echo ${{ toJSON(secrets) }} ${{ secrets.token }}\n",
    )
    (job,) = workflows.jobs(parsed)
    assert (job.job, job.runs, job.secrets, job.all_secrets) == (
        "go/inner", {PYPI}, {"ORG_TOKEN"}, False)


def test_to_json_of_secrets_reads_them_all_and_github_token_is_not_a_stored_secret() -> None:
    parsed = load(ci="true: [push]\njobs:\n  t:\n    steps:\n      - run: yarn\n"
                     "        env: {A: '${{ toJson( secrets ) }}', T: '${{ secrets.GITHUB_TOKEN }}'}\n")
    (job,) = workflows.jobs(parsed)
    assert job.all_secrets and job.secrets == frozenset()


@pytest.mark.parametrize(("script", "runs"), [
    ("./node_modules/.bin/eslint .", {NPM}),
    ("python -m pip install -r requirements.txt", {PYPI}),
    ("uv sync && pnpm i", {NPM, PYPI}),
    ("make docs  # mentions npmjs.com/x and pip-tools.cfg", set()),
])
def test_package_tools_are_recognized_as_words(script: str, runs: set[str]) -> None:
    parsed = load(ci=f"on: push\njobs:\n  j:\n    steps:\n      - run: {script}\n")
    (job,) = workflows.jobs(parsed)
    assert job.runs == runs


@pytest.mark.parametrize(("environment", "expected"), [
    ("prod", "prod"), ("{name: prod, url: 'https://x'}", "prod"),
    ("${{ inputs.environment }}", workflows.ANY_ENVIRONMENT),
    ("${{ matrix.env }}", workflows.ANY_ENVIRONMENT),
])
def test_a_jobs_environment(environment: str, expected: str) -> None:
    parsed = load(ci=f"on: push\njobs:\n  j:\n    environment: {environment}\n"
                     "    steps: [{run: npm ci}]\n")
    (job,) = workflows.jobs(parsed)
    assert job.environment == expected


def test_another_repositorys_reusable_workflow_is_not_expanded() -> None:
    parsed = load(ci="on: push\njobs:\n  x:\n    uses: other/repo/.github/workflows/a.yml@v1\n"
                     "    secrets: inherit\n")
    assert workflows.jobs(parsed) == []


@pytest.mark.parametrize(("text", "message"), [
    ("on: [push\n", "invalid YAML"),
    ("on: push\n", "expected a mapping with 'jobs'"),
    ("name: x\njobs: {}\n", "'on' names no trigger"),
    ("on: push\njobs: {}\n---\non: push\njobs: {}\n", "expected a mapping with 'jobs'"),
])
def test_workflow_rejections(text: str, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        workflows.parse(text, "ci.yml")
