"""Workflow runs, their attempts and jobs, git trees and blobs for the GitHub fake.

`install(fake)` registers the routes `keyturn scope collect github` reads
(paths, filters and shapes as in GitHub's OpenAPI description) and returns the
`WorkflowRuns` state: tests add runs (each attempt with its start and jobs)
and files at commits. The run list honours `created=A..B` (inclusive, UTC
seconds) and pagination, and like GitHub lists at most 1,000 runs for one
query (`total_count` still counts all). Listing an organization's
repositories is here too.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from fakes.github import FakeHTTPError, FakeRequest, GitHubFake, _int, paginate

MAX_RESULTS = 1000


@dataclass
class _Run:
    id: int
    repo: str  # full name as created
    path: str
    event: str
    head_sha: str
    head_repository: str
    created_at: str
    attempts: list[tuple[str, list[str]]]  # (run_started_at, job names) per attempt
    skipped: tuple[str, ...] = ()  # jobs listed with conclusion "skipped"


@dataclass
class WorkflowRuns:
    fake: GitHubFake
    runs: list[_Run] = field(default_factory=list)
    files: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)  # (repo, sha)

    def add_run(self, full_name: str, *, path: str, head_sha: str, attempts: list[str],
                event: str = "push", jobs: tuple[str, ...] = ("build",),
                skipped: tuple[str, ...] = (), head_repository: str | None = None,
                created_at: str | None = None) -> int:
        """A run whose attempts started at `attempts` (ISO 8601 Z), each listing `jobs`
        (of which `skipped` were skipped); returns its id."""
        with self.fake.lock:
            run = _Run(self.fake.next_id(), full_name, path, event, head_sha,
                       head_repository or full_name, created_at or attempts[0],
                       [(start, list(jobs)) for start in attempts], tuple(skipped))
            self.runs.append(run)
            return run.id

    def add_file(self, full_name: str, sha: str, path: str, text: str) -> None:
        with self.fake.lock:
            self.files.setdefault((full_name.lower(), sha), {})[path] = text.encode()

    # -- route handlers (called under fake.lock) --------------------------------------

    def list_runs(self, request: FakeRequest) -> tuple:
        repo = self.fake.repo_for(request)
        runs = [r for r in self.runs if r.repo.lower() == repo.data["full_name"].lower()]
        if "created" in request.query:
            start, sep, end = request.query["created"].partition("..")
            if not sep:
                raise FakeHTTPError(422, "the fake reads created=A..B only")
            low, high = _moment(start), _moment(end)
            runs = [r for r in runs if low <= _moment(r.created_at) <= high]
        runs.sort(key=lambda r: r.created_at, reverse=True)
        items = [self._run_json(repo.data, r, len(r.attempts)) for r in runs[:MAX_RESULTS]]
        status, page, headers = paginate(request, items)
        return status, {"total_count": len(runs), "workflow_runs": page}, headers

    def get_attempt(self, request: FakeRequest) -> tuple:
        repo, run, number = self._attempt(request)
        return 200, self._run_json(repo.data, run, number)

    def list_jobs(self, request: FakeRequest) -> tuple:
        repo, run, number = self._attempt(request)
        started, names = run.attempts[number - 1]
        items = [self._job_json(repo.data, run, number, name, started) for name in names]
        status, page, headers = paginate(request, items)
        return status, {"total_count": len(items), "jobs": page}, headers

    def get_tree(self, request: FakeRequest) -> tuple:
        repo = self.fake.repo_for(request)
        sha = request.params["tree_sha"]
        files = self.files.get((repo.data["full_name"].lower(), sha))
        if files is None:
            raise FakeHTTPError(404, "Not Found")
        api = f"{self.fake.url}/repos/{repo.data['full_name']}/git"
        entries = [{"path": path, "mode": "100644", "type": "blob", "sha": _blob_sha(data),
                    "size": len(data), "url": f"{api}/blobs/{_blob_sha(data)}"}
                   for path, data in sorted(files.items())]
        return 200, {"sha": sha, "url": f"{api}/trees/{sha}", "tree": entries,
                     "truncated": False}

    def get_blob(self, request: FakeRequest) -> tuple:
        repo = self.fake.repo_for(request)
        wanted = request.params["file_sha"]
        for (name, _), files in self.files.items():
            if name != repo.data["full_name"].lower():
                continue
            for data in files.values():
                if _blob_sha(data) == wanted:
                    return 200, {
                        "sha": wanted, "node_id": f"B_{wanted[:12]}", "size": len(data),
                        "url": f"{self.fake.url}/repos/{repo.data['full_name']}/git/blobs/{wanted}",
                        "content": base64.encodebytes(data).decode(), "encoding": "base64"}
        raise FakeHTTPError(404, "Not Found")

    def list_org_repos(self, request: FakeRequest) -> tuple:
        org = self.fake.org_admin(request)
        items = [repo.data for name, repo in sorted(self.fake.repos.items())
                 if name.split("/")[0] == org]
        return paginate(request, items)

    # -- shapes -----------------------------------------------------------------------

    def _attempt(self, request: FakeRequest):
        repo = self.fake.repo_for(request)
        run_id, number = _int(request.params["run_id"]), _int(request.params["attempt_number"])
        run = next((r for r in self.runs if r.id == run_id
                    and r.repo.lower() == repo.data["full_name"].lower()), None)
        if run is None or not 1 <= number <= len(run.attempts):
            raise FakeHTTPError(404, "Not Found")
        return repo, run, number

    def _run_json(self, repo: dict, run: _Run, number: int) -> dict:
        api = f"{repo['url']}/actions/runs/{run.id}"
        head = self.fake.repos.get(run.head_repository.lower())
        head_data = head.data if head else {**repo, "full_name": run.head_repository,
                                             "name": run.head_repository.split("/")[1],
                                             "fork": True}
        return {
            "id": run.id, "name": run.path.rsplit("/", 1)[-1], "node_id": f"WFR_{run.id}",
            "head_branch": "main", "head_sha": run.head_sha, "path": run.path,
            "display_title": f"run {run.id}", "run_number": run.id % 1000, "event": run.event,
            "status": "completed", "conclusion": "success", "workflow_id": 1,
            "url": api, "html_url": f"https://github.com/{repo['full_name']}/actions/runs/{run.id}",
            "pull_requests": [], "created_at": run.created_at,
            "updated_at": run.attempts[number - 1][0], "run_attempt": number,
            "run_started_at": run.attempts[number - 1][0],
            "jobs_url": f"{api}/jobs", "logs_url": f"{api}/logs",
            "check_suite_url": f"{repo['url']}/check-suites/{run.id}",
            "artifacts_url": f"{api}/artifacts", "cancel_url": f"{api}/cancel",
            "rerun_url": f"{api}/rerun", "workflow_url": f"{repo['url']}/actions/workflows/1",
            "head_commit": None, "repository": repo, "head_repository": head_data,
        }

    def _job_json(self, repo: dict, run: _Run, number: int, name: str, started: str) -> dict:
        jid = int(hashlib.sha256(f"{run.id}/{number}/{name}".encode()).hexdigest()[:8], 16)
        api = f"{repo['url']}/actions/jobs/{jid}"
        return {
            "id": jid, "run_id": run.id, "run_url": f"{repo['url']}/actions/runs/{run.id}",
            "run_attempt": number, "node_id": f"J_{jid}", "head_sha": run.head_sha,
            "url": api, "html_url": f"https://github.com/{repo['full_name']}/actions/runs/"
                                    f"{run.id}/job/{jid}",
            "status": "completed",
            "conclusion": "skipped" if name in run.skipped else "success", "created_at": started,
            "started_at": started, "completed_at": started, "name": name, "steps": [],
            "check_run_url": f"{repo['url']}/check-runs/{jid}", "labels": ["ubuntu-latest"],
            "runner_id": None, "runner_name": None, "runner_group_id": None,
            "runner_group_name": None, "workflow_name": run.path.rsplit("/", 1)[-1],
            "head_branch": "main",
        }


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def install(fake: GitHubFake) -> WorkflowRuns:
    """Register the runs, jobs, trees, blobs and organization repository routes."""
    state = WorkflowRuns(fake)
    base = "/repos/{owner}/{repo}"
    fake.route("GET", f"{base}/actions/runs")(state.list_runs)
    fake.route("GET", f"{base}/actions/runs/{{run_id}}/attempts/{{attempt_number}}")(
        state.get_attempt)
    fake.route("GET", f"{base}/actions/runs/{{run_id}}/attempts/{{attempt_number}}/jobs")(
        state.list_jobs)
    fake.route("GET", f"{base}/git/trees/{{tree_sha}}")(state.get_tree)
    fake.route("GET", f"{base}/git/blobs/{{file_sha}}")(state.get_blob)
    fake.route("GET", "/orgs/{org}/repos")(state.list_org_repos)
    return state
