"""GitHub Actions workflows: which jobs run the packages they install, and which secrets they read.

A job counts as running an ecosystem's packages when a `run:` step calls its
package tools (npm, npx, pnpm, yarn, bun, or a script in node_modules/.bin for
npm; pip, uv, poetry, pipenv, pdm, tox, nox for PyPI), and as running an
action when a step `uses:` it. A
job reads the secrets it names (`secrets.NAME`, `secrets['NAME']`) anywhere
in it or in the workflow's `env`, and every secret with `toJSON(secrets)`.
A job that calls a reusable workflow of the same repository passes secrets on
(`secrets: inherit`, or a mapping), and the called jobs are analysed with the
caller's triggers, their own `environment:` and the secrets passed to them. An
environment named by an expression (`${{ inputs.environment }}`) may be any
of the repository's (`ANY_ENVIRONMENT`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from keyturn.scope.errors import ScopeError
from keyturn.scope.versions import NPM, PYPI
from keyturn.scope.yamlish import documents

_TOOLS = {
    NPM: re.compile(r"(?<![\w./-])(npm|npx|pnpm|pnpx|yarn|bun|bunx)(?![\w-])|node_modules/\.bin/"),
    PYPI: re.compile(r"(?<![\w./-])(pip3?|uv|uvx|poetry|pipenv|pdm|tox|nox)(?![\w-])"),
}
_SECRET_REFS = re.compile(
    r"secrets\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)|secrets\s*\[\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\]",
)
_ALL_SECRETS = re.compile(r"tojson\s*\(\s*secrets\s*\)", re.IGNORECASE)
AUTOMATIC = frozenset({"GITHUB_TOKEN"})  # minted per run by GitHub, not a stored secret
ANY_ENVIRONMENT = "*"  # `environment: ${{ inputs.env }}`: any of the repository's environments


@dataclass(frozen=True)
class Job:
    """One job as it runs: where it is declared, what it runs, which secrets it can read."""

    workflow: str  # file path in the repository
    job: str  # job id, "caller/called" when reached through a reusable workflow
    name: str  # as GitHub shows it: `name:` or the id, "caller / called" through a call
    line: int
    environment: str | None
    triggers: frozenset[str]
    runs: frozenset[str]  # ecosystems whose package tools a step calls
    actions: tuple[str, ...]  # `uses:` of steps, "owner/repo[/path]@ref"
    secrets: frozenset[str]  # names read, upper-case
    all_secrets: bool  # toJSON(secrets), or every secret passed on


@dataclass
class Workflow:
    path: str
    name: str
    triggers: frozenset[str]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    env_secrets: frozenset[str] = frozenset()
    lines: dict[str, int] = field(default_factory=dict)


def parse(text: str, path: str) -> Workflow:
    """Parse one workflow file; ScopeError with the line for YAML or shape problems."""
    loaded = documents(text, path)
    data = loaded[0] if len(loaded) == 1 else None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        raise ScopeError(path, "not a workflow: expected a mapping with 'jobs'")
    on = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` key as true
    if isinstance(on, str):
        triggers = frozenset({on})
    elif isinstance(on, list | dict):
        triggers = frozenset(str(t) for t in on)
    else:
        raise ScopeError(path, "not a workflow: 'on' names no trigger")
    lines = {}
    for job_id in data["jobs"]:
        found = re.search(rf"^\s+['\"]?{re.escape(str(job_id))}['\"]?\s*:", text, re.MULTILINE)
        lines[str(job_id)] = text.count("\n", 0, found.start()) + 2 if found else 1
    return Workflow(path, str(data.get("name") or path), triggers,
                    {str(k): v for k, v in data["jobs"].items() if isinstance(v, dict)},
                    frozenset(_secret_names(data.get("env"))[0]), lines)


def jobs(workflows: dict[str, Workflow]) -> list[Job]:
    """Every job that runs on a trigger, reusable workflows of the repository expanded."""
    found: list[Job] = []
    for workflow in workflows.values():
        if workflow.triggers <= {"workflow_call"}:
            continue  # runs only when called; expanded at its callers
        for job_id, body in workflow.jobs.items():
            found.extend(_expand(workflows, workflow, job_id, body, workflow.triggers))
    return found


def _expand(workflows: dict[str, Workflow], workflow: Workflow, job_id: str,
            body: dict[str, Any], triggers: frozenset[str]) -> list[Job]:
    uses = body.get("uses")
    if not isinstance(uses, str):
        return [_job(workflow, job_id, body, triggers)]
    called = workflows.get(uses.removeprefix("./")) if uses.startswith("./") else None
    if called is None:
        return []  # another repository's workflow: its jobs are not in this checkout
    passed = body.get("secrets")
    if passed == "inherit":
        mapping: dict[str, str] | None = None
    else:
        mapping = {}
        for name, value in (passed or {}).items() if isinstance(passed, dict) else ():
            names, _ = _secret_names(value)
            mapping[str(name).upper()] = next(iter(names), "")
    found = []
    for inner_id, inner in called.jobs.items():
        for job in _expand(workflows, called, inner_id, inner, triggers):
            secrets, everything = job.secrets, job.all_secrets
            if mapping is not None:
                secrets = frozenset(mapping[n] for n in secrets if mapping.get(n))
                if everything:
                    secrets, everything = frozenset(v for v in mapping.values() if v), False
            caller = str(body.get("name") or job_id)
            found.append(Job(workflow.path, f"{job_id}/{job.job}", f"{caller} / {job.name}",
                             workflow.lines.get(job_id, 1), job.environment, triggers, job.runs,
                             job.actions, secrets, everything))
    return found


def _job(workflow: Workflow, job_id: str, body: dict[str, Any], triggers: frozenset[str]) -> Job:
    runs: set[str] = set()
    actions = []
    for step in body.get("steps") or []:
        if not isinstance(step, dict):
            continue
        script = step.get("run")
        if isinstance(script, str):
            runs.update(eco for eco, tool in _TOOLS.items() if tool.search(script))
        if isinstance(step.get("uses"), str):
            actions.append(step["uses"])
    names, everything = _secret_names(body)
    environment = body.get("environment")
    if isinstance(environment, dict):
        environment = environment.get("name")
    if isinstance(environment, str) and "${{" in environment:
        environment = ANY_ENVIRONMENT  # chosen by an expression (inputs, matrix) at run time
    return Job(workflow.path, job_id, str(body.get("name") or job_id),
               workflow.lines.get(job_id, 1),
               str(environment) if environment else None, triggers, frozenset(runs),
               tuple(actions), frozenset(names | workflow.env_secrets), everything)


def _secret_names(value: Any) -> tuple[set[str], bool]:
    """Secret names referenced in every string under `value`, and whether all are."""
    names: set[str] = set()
    everything = False
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "secrets" in item:
                for match in _SECRET_REFS.finditer(item):
                    names.add((match.group(1) or match.group(2)).upper())
                everything = everything or bool(_ALL_SECRETS.search(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return names - AUTOMATIC, everything
