"""The evidence directory `scope collect github` writes and `scope --evidence` reads offline.

    manifest.json                      {"format", "org", "window", "repositories"}
    repos/OWNER/REPO/secrets.json      {"repository": [names], "environments": {ENV: [names]},
                                        "organization": [names visible to the repository]}
    repos/OWNER/REPO/runs.json         [{"id", "attempt", "workflow", "event", "head_sha",
                                         "head_repository", "started_at", "jobs", "excluded",
                                         "skipped"}]
    repos/OWNER/REPO/tree/SHA/...      lockfiles and workflow files at each run's head SHA

Secret names only, never values. `excluded` is null or the reason a run could
not have exposed anything (a pull request from a fork, a start outside the
window), so the scope re-run offline classifies exactly as collected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from keyturn.scope.errors import ScopeError
from keyturn.scope.locations import github_org, github_repo

FORMAT = "keyturn-scope-evidence/1"


@dataclass(frozen=True)
class RunAttempt:
    id: int
    attempt: int
    workflow: str  # path of the workflow file in the repository
    event: str
    head_sha: str
    head_repository: str
    started_at: str  # ISO 8601, as GitHub gives run_started_at
    jobs: list[str] = field(default_factory=list)  # names of the jobs that ran
    excluded: str | None = None
    skipped: list[str] = field(default_factory=list)  # names of the jobs GitHub skipped

    @property
    def start(self) -> datetime:
        return datetime.fromisoformat(self.started_at)

    def label(self) -> str:
        return f"run {self.id} attempt {self.attempt} ({self.event}, {self.started_at})"


@dataclass
class RepoEvidence:
    full_name: str
    root: Path
    secrets: dict[str, Any]
    runs: list[RunAttempt]

    def tree(self, sha: str) -> Path:
        return self.root / "tree" / sha

    def locations(self) -> set[str]:
        """Every secret location defined for the repository, its environments and org."""
        owner = self.full_name.split("/", 1)[0]
        found = {github_repo(self.full_name, n) for n in self.secrets.get("repository", [])}
        for env, names in (self.secrets.get("environments") or {}).items():
            found.update(github_repo(self.full_name, n, env) for n in names)
        found.update(github_org(owner, n) for n in self.secrets.get("organization", []))
        return found


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def run_json(run: RunAttempt) -> dict[str, Any]:
    return asdict(run)


def read(directory: Path) -> tuple[dict[str, Any], list[RepoEvidence]]:
    """The manifest and each repository's evidence; ScopeError if the layout is not ours."""
    manifest = _load(directory / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ScopeError(str(directory / "manifest.json"), f"not a scope evidence manifest "
                                                           f"(format {FORMAT})")
    repos = []
    for full_name in manifest.get("repositories") or []:
        root = directory / "repos" / full_name
        secrets = _load(root / "secrets.json")
        raw_runs = _load(root / "runs.json")
        if not isinstance(secrets, dict) or not isinstance(raw_runs, list):
            raise ScopeError(str(root), "secrets.json must be an object, runs.json a list")
        try:
            runs = [RunAttempt(**item) for item in raw_runs]
        except TypeError as exc:
            raise ScopeError(str(root / "runs.json"), f"a run has the wrong fields: {exc}") from exc
        repos.append(RepoEvidence(full_name, root, secrets, runs))
    return manifest, repos


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScopeError(str(path), f"cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ScopeError(str(path), f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
