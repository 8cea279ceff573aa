"""Scoping: from the advisory and the evidence to a Report of affected installs and exposures.

For each repository (a checkout, or each collected run's tree at its head
SHA): the lockfiles and SBOMs give the affected installs; the workflows give
the jobs that run an affected ecosystem's packages or use a compromised
action. Such a job's secrets are `delivered`; every other secret of the
repository, of the organization and of those jobs' environments is
`reachable`. A collected run from a fork or outside the window (given, else the one it was
collected for) makes its exposures `excluded`, with the reason. Containers whose image has an
affected SBOM deliver the Kubernetes Secrets they read. Each location is then
mapped to the catalog credential that lives there, or left unmapped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from keyturn.scope import discover, evidence, k8s, sbom, workflows
from keyturn.scope.advisory import Advisory
from keyturn.scope.catalog import Catalog
from keyturn.scope.inventory import Inventory
from keyturn.scope.locations import covers, github_org, github_repo
from keyturn.scope.report import Affected, Klass, Report, Window, parse_window
from keyturn.scope.versions import ACTIONS, NPM, normalize_name

Progress = Callable[[str], None]
UNMAPPED = "no catalog entry"


@dataclass
class Inputs:
    advisory: Advisory
    catalog: Catalog | None = None
    repos: list[tuple[Path, str]] = field(default_factory=list)  # checkout, owner/name
    sboms: list[Path] = field(default_factory=list)
    manifests: list[Path] = field(default_factory=list)
    evidence: Path | None = None
    window: Window | None = None


def scope(inputs: Inputs, progress: Progress = lambda _: None) -> Report:
    report = Report(inputs.advisory.id, inputs.window)
    for pkg in inputs.advisory.packages:
        if pkg.over_broad:
            report.notes.append(f"over-broad advisory: {pkg.describe()} covers every version")
    if inputs.advisory.ignored:
        report.notes.append(f"ignored (ecosystem not scoped): {', '.join(inputs.advisory.ignored)}")
    mapper = _Mapper(inputs.catalog)
    images: list[tuple[Inventory, list[Affected]]] = []
    for root, full_name in inputs.repos:
        progress(f"checkout {full_name}")
        tree = _read_tree(report, inputs.advisory, root, full_name, images)
        _repository(report, inputs.advisory, mapper, full_name, tree,
                    _Secrets(full_name, mapper, None), None)
    if inputs.evidence is not None:
        _evidence(report, inputs, mapper, images, progress)
    for path in inputs.sboms:
        for file in discover.sbom_files(path):
            inventory = sbom.parse(discover.read_text(file, str(file)), str(file))
            images.append((inventory, _match(report, inputs.advisory, inventory)))
    _workloads(report, inputs, mapper, images, progress)
    return report


def _evidence(report: Report, inputs: Inputs, mapper: _Mapper,
              images: list[tuple[Inventory, list[Affected]]], progress: Progress) -> None:
    assert inputs.evidence is not None
    manifest, repos = evidence.read(inputs.evidence)
    window = inputs.window
    if window is None and manifest.get("window"):
        window = report.window = parse_window(manifest["window"])
    report.notes.extend(str(note) for note in manifest.get("notes") or [])
    trees: dict[Path, _Tree] = {}  # many runs share a head SHA: each tree is read once
    for repo in repos:
        secrets = _Secrets(repo.full_name, mapper, repo.locations())
        for run in repo.runs:
            progress(f"{repo.full_name} {run.label()}")
            reason = run.excluded
            if reason is None and window is not None and run.start not in window:
                reason = f"run started outside the window {window}"
            root = repo.tree(run.head_sha)
            if root not in trees:
                trees[root] = _read_tree(report, inputs.advisory, root,
                                         f"{repo.full_name}@{run.head_sha[:12]}", images)
            _repository(report, inputs.advisory, mapper, repo.full_name, trees[root], secrets,
                        (run, reason))


_Tree = tuple[str, list[Affected], dict[str, workflows.Workflow]]
"""A checkout as read: its label, the affected installs in it, its workflows by path."""


def _read_tree(report: Report, advisory: Advisory, root: Path, label: str,
               images: list[tuple[Inventory, list[Affected]]]) -> _Tree:
    hits: list[Affected] = []
    for inventory in discover.inventories(root, label):
        found = _match(report, advisory, inventory)
        hits.extend(found)
        if inventory.subjects:
            images.append((inventory, found))
    parsed = {rel: workflows.parse(discover.read_text(path, f"{label}/{rel}"), rel)
              for rel, path in discover.workflow_files(root)}
    return label, hits, parsed


def _repository(report: Report, advisory: Advisory, mapper: _Mapper, full_name: str,
                tree: _Tree, secrets: _Secrets,
                run: tuple[evidence.RunAttempt, str | None] | None) -> None:
    """Exposures of one checkout, or of one collected run attempt of its tree."""
    label, hits, parsed = tree
    attempt, run_reason = run if run is not None else (None, None)
    environments: set[str | None] = set()
    causes_any: list[Affected] = []
    ran = False
    for job in workflows.jobs(parsed):
        if attempt is not None and job.workflow != attempt.workflow:
            continue
        causes = [hit for hit in hits if hit.ecosystem in job.runs]
        causes += _actions(report, advisory, label, job)
        if not causes:
            continue
        causes_any.extend(causes)
        reason = run_reason or _skipped(job, attempt)
        if reason is None:
            ran = True
            environments.add(job.environment)
        _job(report, mapper, secrets, [*_head(advisory, causes[0]), full_name], label, job,
             attempt, reason)
    if not hits and not causes_any:
        return
    reason = None if attempt is None or ran else (
        run_reason or f"no job of {attempt.label()} that runs the package ran")
    head = [*_head(advisory, (causes_any or hits)[0]), full_name]
    for place in secrets.available(environments):
        env = place.split("/environments/", 1)[1].rsplit("/", 1)[0] if (
            "/environments/" in place) else None
        where = f"available to environment {env}" if env else "available to the repository"
        _expose(report, mapper, place, "excluded" if reason else "reachable", [*head, where],
                reason)


def _job(report: Report, mapper: _Mapper, secrets: _Secrets, head: list[str], label: str,
         job: workflows.Job, attempt: evidence.RunAttempt | None, reason: str | None) -> None:
    """The secrets one job that runs the package reads: delivered, or excluded with `reason`."""
    step = f"{job.workflow}:{job.line} job {job.job}" + (
        "" if not job.environment else " environment chosen at run time"
        if job.environment == workflows.ANY_ENVIRONMENT else f" environment {job.environment}")
    if attempt is not None:
        step += f" {attempt.label()}"
    if job.all_secrets and not secrets.collected:
        note = (f"{label}: {step} reads every secret (toJSON(secrets)); without collected "
                "evidence only the catalog's locations are known")
        if note not in report.notes:
            report.notes.append(note)
    places = (secrets.available({job.environment}) if job.all_secrets else
              [place for name in sorted(job.secrets)
               for place in secrets.resolve(name, job.environment)])
    for place in places:
        _expose(report, mapper, place, "excluded" if reason else "delivered", [*head, step],
                reason)


def _skipped(job: workflows.Job, attempt: evidence.RunAttempt | None) -> str | None:
    """Why a job did not run in a collected attempt (GitHub lists it as skipped), else None.

    GitHub names a job by its `name` (`caller / called` through a reusable workflow,
    `name (a, b)` in a matrix); a name it cannot be matched to counts as run.
    """
    if attempt is None:
        return None

    def named(names: list[str]) -> bool:
        return any(n == job.name or n.startswith(f"{job.name} (") for n in names)

    if named(attempt.skipped) and not named(attempt.jobs):
        return f"job {job.name!r} was skipped in {attempt.label()}"
    return None


def _actions(report: Report, advisory: Advisory, label: str, job: workflows.Job) -> list[Affected]:
    found = []
    for uses in job.actions:
        name, at, ref = uses.partition("@")
        if not at or ACTIONS not in advisory.ecosystems:
            continue
        parts = name.split("/")
        for candidate in ("/".join(parts[:2]), name):
            if advisory.match(ACTIONS, candidate, ref):
                hit = Affected(ACTIONS, candidate, ref, f"{label}/{job.workflow}", job.line,
                               (job.workflow, f"job {job.job}", uses))
                report.add_affected(hit)
                found.append(hit)
                break
    return found


def _workloads(report: Report, inputs: Inputs, mapper: _Mapper,
               images: list[tuple[Inventory, list[Affected]]], progress: Progress) -> None:
    affected_images = [(inv, hits) for inv, hits in images if hits and inv.subjects]
    for path in inputs.manifests:
        files = [path] if path.is_file() else [
            p for p in discover.walk(path) if p.suffix in (".yaml", ".yml")]
        for file in files:
            progress(f"manifest {file}")
            for container in k8s.parse(discover.read_text(file, str(file)), str(file)):
                for inventory, hits in affected_images:
                    if not k8s.image_matches(container.image, inventory.subjects):
                        continue
                    for place in container.secrets:
                        chain = [*_head(inputs.advisory, hits[0]), container.workload,
                                 f"{container.file} container {container.name} ({container.image})"]
                        _expose(report, mapper, place, "delivered", chain, None)


def matches(advisory: Advisory, inventory: Inventory) -> list[str]:
    """The nodes of an inventory that the advisory covers, names filtered first (one set
    lookup a package; versions are compared only for the advisory's names)."""
    names = {eco: advisory.names(eco) for eco in advisory.ecosystems}
    found = []
    for node, package in inventory.packages.items():
        listed = names.get(package.ecosystem)
        if not listed:
            continue
        name = package.name if package.ecosystem == NPM else normalize_name(
            package.ecosystem, package.name)
        if name in listed and advisory.match(package.ecosystem, name, package.version):
            found.append(node)
    return found


def _match(report: Report, advisory: Advisory, inventory: Inventory) -> list[Affected]:
    found = []
    for node in matches(advisory, inventory):
        package = inventory.packages[node]
        hit = Affected(package.ecosystem, package.name, package.version, inventory.file,
                       inventory.line(node), tuple(inventory.path(node)))
        report.add_affected(hit)
        found.append(hit)
    return found


def _head(advisory: Advisory, cause: Affected) -> list[str]:
    return [advisory.id, f"{cause.package}@{cause.version}", cause.where()]


def _expose(report: Report, mapper: _Mapper, place: str, klass: Klass, chain: list[str],
            reason: str | None) -> None:
    credentials = mapper.credentials(place) or [None]
    for credential in credentials:
        report.expose(place, klass, credential, [*chain, place, credential or UNMAPPED], reason)


class _Mapper:
    """Secret location -> the catalog credentials that live there."""

    def __init__(self, catalog: Catalog | None) -> None:
        self.pairs = [(place, cred) for cred, places in
                      (catalog.exposures() if catalog else {}).items() for place in places]

    def credentials(self, place: str) -> list[str]:
        return list(dict.fromkeys(cred for known, cred in self.pairs if covers(known, place)))

    def locations(self) -> Iterable[str]:
        return (place for place, _ in self.pairs)


class _Secrets:
    """The GitHub secret locations one repository's jobs can read.

    `defined` is what was collected (every secret that exists); without it the
    catalog's locations for the repository, its environments and its owner
    stand in, and a name found nowhere is placed at the most specific level
    (with evidence, such a name is no secret and is left out).
    """

    def __init__(self, full_name: str, mapper: _Mapper, defined: set[str] | None) -> None:
        self.full_name, self.owner = full_name.lower(), full_name.split("/", 1)[0].lower()
        self.collected = defined is not None
        known = defined if defined is not None else set(mapper.locations())
        prefixes = (f"github:repos/{self.full_name}/", f"github:orgs/{self.owner}/")
        self.known = {place for place in known if place.startswith(prefixes)}
        self.environments = f"github:repos/{self.full_name}/environments/"

    def resolve(self, name: str, environment: str | None) -> list[str]:
        """Where `secrets.NAME` comes from: environment, then repository, then organization.

        Nothing when collected evidence shows no such secret (GitHub then gives an empty
        string). With an environment chosen at run time, the NAME of every environment
        that has one, and the repository's or organization's for those that do not.
        """
        shared = [github_repo(self.full_name, name), github_org(self.owner, name)]
        if environment == workflows.ANY_ENVIRONMENT:
            suffix = "/" + name.upper()
            found = sorted(place for place in self.known if "/environments/" in place
                           and place.startswith(self.environments) and place.endswith(suffix))
        else:
            candidates = [github_repo(self.full_name, name, environment)] if environment else []
            found = [c for c in candidates if c in self.known][:1]
            if found:
                return found
        fallback = next((c for c in shared if c in self.known), None)
        if fallback is None and not self.collected and not found:
            fallback = github_repo(self.full_name, name, environment) if environment and (
                environment != workflows.ANY_ENVIRONMENT) else shared[0]
        return found + ([fallback] if fallback else [])

    def available(self, environments: set[str | None]) -> list[str]:
        if workflows.ANY_ENVIRONMENT in environments:
            return sorted(self.known)
        envs = tuple(f"{self.environments}{e.lower()}/" for e in environments if e)
        return sorted(place for place in self.known
                      if "/environments/" not in place or place.startswith(envs))
