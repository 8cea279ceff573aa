"""`keyturn scope collect github`: the evidence of a window, fetched once, for offline scoping.

For each repository (those named, else every repository of the organization):
the workflow runs created in the window, listed in slices so that no query
matches more than GitHub's 1,000-result cap; every attempt of each run with
its start and jobs (those that ran, and those GitHub skipped); the lockfiles, SBOMs and workflow files at each run's head
SHA (git trees and blobs); and the names, never values, of the secrets of the
repository, of its environments and of the organization that it can see.
Pull request runs from forks get no secrets from GitHub and are marked
excluded. Runs created before the window and re-run inside it are not listed
by GitHub's `created` filter; widen the window to catch them.

The API is reached through keyturn's GitHub client code (KEYTURN_GITHUB_API_URL,
KEYTURN_GITHUB_TOKEN); failures surface as ProviderErrors.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from github import Github

from keyturn.providers.github_common import GitHubApi, call, github_errors, next_link
from keyturn.scope import discover, evidence
from keyturn.scope.report import Window

MAX_RESULTS = 1000  # GitHub lists at most this many runs for one query
FORK_REASON = "pull_request from a fork: GitHub gives such runs no secrets"
_WORKFLOWS = PurePosixPath(".github/workflows")


def collect(org: str, repos: list[str], window: Window, out: Path, api: GitHubApi | None = None,
            progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Write the evidence directory `out` (which must not hold anything yet); return the manifest."""
    gh = (api or GitHubApi()).admin()
    with github_errors(f"list the repositories of {org}"):
        names = repos or [r["full_name"] for r in _pages(gh, f"/orgs/{org}/repos", None)]
    notes: list[str] = []
    for full_name in names:
        root = out / "repos" / full_name
        progress(f"{full_name}: secret names")
        evidence.write_json(root / "secrets.json", _secret_names(gh, full_name))
        runs: list[evidence.RunAttempt] = []
        trees: set[str] = set()
        for start, end in _slices(gh, full_name, window.start, window.end - timedelta(seconds=1)):
            progress(f"{full_name}: runs {_iso(start)}..{_iso(end)}")
            with github_errors(f"list the workflow runs of {full_name}"):
                listed = _pages(gh, f"/repos/{full_name}/actions/runs", "workflow_runs",
                                {"created": f"{_iso(start)}..{_iso(end)}"})
            for run in listed:
                runs.extend(_attempts(gh, full_name, run))
                if run["head_sha"] not in trees:
                    trees.add(run["head_sha"])
                    notes += _tree(gh, full_name, run["head_sha"], root / "tree" / run["head_sha"])
        evidence.write_json(root / "runs.json", [evidence.run_json(run) for run in runs])
    manifest = {"format": evidence.FORMAT, "org": org, "window": str(window),
                "repositories": names, "notes": notes,
                "collected_at": _iso(datetime.now(UTC))}
    evidence.write_json(out / "manifest.json", manifest)
    return manifest


def _slices(gh: Github, full_name: str, start: datetime, end: datetime) -> Iterator[
        tuple[datetime, datetime]]:
    """[start, end] cut in halves until each slice matches at most MAX_RESULTS runs."""
    with github_errors(f"count the workflow runs of {full_name}"):
        _, page = call(gh, "GET", f"/repos/{full_name}/actions/runs",
                       params={"created": f"{_iso(start)}..{_iso(end)}", "per_page": 1})
    if page["total_count"] <= MAX_RESULTS or end - start < timedelta(seconds=2):
        yield start, end
        return
    middle = start + (end - start) / 2
    middle = middle.replace(microsecond=0)
    yield from _slices(gh, full_name, start, middle)
    yield from _slices(gh, full_name, middle + timedelta(seconds=1), end)


def _attempts(gh: Github, full_name: str, run: dict[str, Any]) -> list[evidence.RunAttempt]:
    found = []
    head = run.get("head_repository") or {}
    fork = run["event"] == "pull_request" and head.get("full_name") != run["repository"][
        "full_name"]
    for number in range(1, int(run.get("run_attempt") or 1) + 1):
        base = f"/repos/{full_name}/actions/runs/{run['id']}/attempts/{number}"
        with github_errors(f"read attempt {number} of run {run['id']} of {full_name}"):
            attempt = run if number == run.get("run_attempt") else call(gh, "GET", base)[1]
            jobs = _pages(gh, f"{base}/jobs", "jobs")
        found.append(evidence.RunAttempt(
            run["id"], number, run["path"].split("@", 1)[0], run["event"], run["head_sha"],
            head.get("full_name") or "(deleted fork)",
            attempt.get("run_started_at") or attempt["created_at"],
            [job["name"] for job in jobs if job.get("conclusion") != "skipped"],
            FORK_REASON if fork else None,
            [job["name"] for job in jobs if job.get("conclusion") == "skipped"]))
    return found


def _tree(gh: Github, full_name: str, sha: str, into: Path) -> list[str]:
    """The files scope reads at `sha`, written under `into`; notes on what was left out."""
    with github_errors(f"read the tree of {full_name} at {sha}"):
        _, tree = call(gh, "GET", f"/repos/{full_name}/git/trees/{sha}",
                       params={"recursive": "1"})
    notes = [f"{full_name}@{sha}: the tree is truncated; some files were not read"] if tree.get(
        "truncated") else []
    for entry in tree["tree"]:
        path = PurePosixPath(entry["path"])
        if entry["type"] != "blob" or not _wanted(path):
            continue
        if path.is_absolute() or ".." in path.parts:
            notes.append(f"{full_name}@{sha}: path {entry['path']!r} skipped")
            continue
        with github_errors(f"read {entry['path']} of {full_name} at {sha}"):
            _, blob = call(gh, "GET", f"/repos/{full_name}/git/blobs/{entry['sha']}")
        target = into / Path(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(blob["content"]))
    return notes


def _wanted(path: PurePosixPath) -> bool:
    if "node_modules" in path.parts:
        return False
    if path.parent == _WORKFLOWS:
        return path.suffix in (".yml", ".yaml")
    return discover.parser_for(path.name) is not None


def _secret_names(gh: Github, full_name: str) -> dict[str, Any]:
    with github_errors(f"list the secret names of {full_name}"):
        names: dict[str, Any] = {
            "repository": _names(gh, f"/repos/{full_name}/actions/secrets"),
            "organization": _names(gh, f"/repos/{full_name}/actions/organization-secrets"),
            "environments": {},
        }
        for environment in _pages(gh, f"/repos/{full_name}/environments", "environments"):
            env = environment["name"]
            names["environments"][env] = _names(
                gh, f"/repos/{full_name}/environments/{quote(env, safe='')}/secrets")
    return names


def _names(gh: Github, path: str) -> list[str]:
    return sorted(secret["name"] for secret in _pages(gh, path, "secrets"))


def _pages(gh: Github, path: str, key: str | None,
           params: dict[str, Any] | None = None) -> list[Any]:
    """Every item of a paginated GET (items under `key`, or the page itself)."""
    items: list[Any] = []
    url: str | None = path
    query: dict[str, Any] | None = {"per_page": 100, **(params or {})}
    while url:
        headers, page = call(gh, "GET", url, params=query)
        items.extend((page or {}).get(key, []) if key else page or [])
        url, query = next_link(headers.get("link", "")), None
    return items


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
