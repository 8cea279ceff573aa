"""`keyturn scope`: from an advisory and the evidence to the report and a runbook.

Offline: reads checkouts (`--repo-dir DIR=owner/name`), SBOMs, Kubernetes
manifests and collected evidence (`--evidence`, from `keyturn scope collect
github`, the one subcommand that uses the network). Exit 0: every exposed
location is in the catalog (or nothing is affected); 1: some are not (listed,
with a catalog stub; the runbook still holds the mapped ones); 2: bad input.
With an audit log configured ($KEYTURN_AUDIT_LOG or $KEYTURN_AUDIT_DSN, or
--audit-log), the scoping is recorded there as a `scope` record.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from keyturn.audit import AuditError, open_log
from keyturn.audit.backend import AUDIT_DSN_ENV, AUDIT_LOG_ENV
from keyturn.cli import scope_render
from keyturn.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OutputFormat,
    console,
    err_console,
    fail,
    print_json,
)
from keyturn.config import ConfigError, Settings
from keyturn.providers.errors import ProviderError
from keyturn.runbook import RunbookError
from keyturn.scope import advisory as advisories
from keyturn.scope import audit_record, catalog, collect_github, runbook_gen, scan
from keyturn.scope.errors import ScopeError
from keyturn.scope.report import parse_window

app = typer.Typer(help="Scope a supply-chain breach: what was installed where, which secrets "
                       "it could read, and the runbook that rotates them.\n\n"
                       "Example: keyturn scope --advisory MAL-2025-1234.json --repo-dir "
                       "./api=acme/api --catalog catalog.yaml --runbook-out incident.yaml")

collect_app = typer.Typer(help="Fetch the evidence of a window once, for offline scoping.",
                          no_args_is_help=True)
app.add_typer(collect_app, name="collect")


@app.callback(invoke_without_command=True)
def scope_command(
    ctx: typer.Context,
    advisory: Annotated[Path | None, typer.Option(help="OSV record (JSON): MAL-* or GHSA.")] = None,
    package: Annotated[str | None, typer.Option(
        help="Instead of --advisory: ECOSYSTEM:NAME (npm, PyPI, actions).")] = None,
    versions: Annotated[str | None, typer.Option(help="With --package: A,B,... (tags or SHAs "
                                                      "for actions).")] = None,
    range_: Annotated[str | None, typer.Option("--range", help="With --package: a range in the "
                                               "ecosystem's syntax (npm semver, PEP 440).")] = None,
    window: Annotated[str | None, typer.Option(help="START/END in ISO 8601, e.g. "
                                               "2025-08-26T22:30Z/2025-08-27T03:00Z.")] = None,
    repo_dir: Annotated[list[str] | None, typer.Option(
        "--repo-dir", help="A checkout: DIR=owner/name (repeatable).", show_default=False)] = None,
    sbom: Annotated[list[Path] | None, typer.Option(
        help="An SBOM file or a directory of them (repeatable).", show_default=False)] = None,
    k8s: Annotated[list[Path] | None, typer.Option(
        help="A manifest file or directory (repeatable).", show_default=False)] = None,
    evidence: Annotated[Path | None, typer.Option(
        help="A directory written by `keyturn scope collect github`.")] = None,
    catalog_path: Annotated[Path | None, typer.Option("--catalog", help="The catalog (kind: "
                                                      "Catalog) mapping locations to credentials.")] = None,
    runbook_out: Annotated[Path | None, typer.Option(help="Write the runbook here.")] = None,
    incident: Annotated[str | None, typer.Option(help="Incident id for the runbook.")] = None,
    delivered_only: Annotated[bool, typer.Option(
        help="Leave reachable-only credentials out of the runbook.")] = False,
    audit_log: Annotated[Path | None, typer.Option(
        help="Record the scoping in this audit log (default: $KEYTURN_AUDIT_LOG or "
             "$KEYTURN_AUDIT_DSN when set).")] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json.")] = (
        OutputFormat.text),
) -> None:
    """Scope an advisory: affected installs, exposed secrets by class, and a runbook."""
    if ctx.invoked_subcommand is not None:
        return
    if runbook_out is not None and catalog_path is None:
        fail("--runbook-out needs --catalog: the runbook is made of the catalog's credentials",
             EXIT_USAGE)
    try:
        inputs, files = _inputs(advisory, package, versions, range_, window, repo_dir or [],
                                sbom or [], k8s or [], evidence, catalog_path)
        with err_console.status("scoping") as status:
            report = scan.scope(inputs, lambda message: status.update(Text(message)))
    except (ScopeError, RunbookError) as exc:
        fail(str(exc), EXIT_USAGE)
    text = None
    if inputs.catalog is not None:
        text = runbook_gen.generate(report, inputs.catalog, incident, delivered_only)
    if text is not None and runbook_out is not None:
        runbook_out.write_text(text, encoding="utf-8")
        report.runbook = str(runbook_out)
    _audit(report, files, text if report.runbook else None, audit_log)
    if output is OutputFormat.json:
        print_json(report.to_json())
    else:
        scope_render.render(report, console)
    raise typer.Exit(EXIT_FAILED if report.unmapped else EXIT_OK)


@collect_app.command("github")
def collect_github_command(
    org: Annotated[str, typer.Option(help="The organization.")],
    window: Annotated[str, typer.Option(help="START/END in ISO 8601.")],
    out: Annotated[Path, typer.Option(help="The evidence directory to write (new or empty).")],
    repo: Annotated[list[str] | None, typer.Option(
        help="owner/name (repeatable); default: every repository of --org.",
        show_default=False)] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json.")] = (
        OutputFormat.text),
) -> None:
    """Runs in the window (each attempt), lockfiles and workflows at their head SHAs, jobs,
    and secret names (never values), from GitHub ($KEYTURN_GITHUB_API_URL, $KEYTURN_GITHUB_TOKEN).

    Example: keyturn scope collect github --org acme --window 2025-08-26T22:30Z/2025-08-27T03:00Z --out evidence
    """
    try:
        parsed = parse_window(window)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"{out} exists and is not an empty directory", EXIT_USAGE)
    try:
        with err_console.status("collecting") as status:
            manifest = collect_github.collect(
                org, repo or [], parsed, out, progress=lambda m: status.update(Text(m)))
    except ProviderError as exc:
        fail(f"collecting from GitHub failed: {exc}", EXIT_FAILED)
    if output is OutputFormat.json:
        print_json(manifest)
        return
    console.print(Text(f"wrote {out}: {len(manifest['repositories'])} repositories, window "
                       f"{manifest['window']}"))
    for note in manifest["notes"]:
        console.print(Text(f"note: {note}", style="yellow"))


def _inputs(advisory: Path | None, package: str | None, versions: str | None,
            range_: str | None, window: str | None, repo_dirs: list[str], sboms: list[Path],
            manifests: list[Path], evidence: Path | None,
            catalog_path: Path | None) -> tuple[scan.Inputs, dict[str, Path]]:
    if (advisory is None) == (package is None):
        raise ScopeError("--advisory", "give exactly one of --advisory FILE or --package "
                                       "ECOSYSTEM:NAME")
    files: dict[str, Path] = {}
    if advisory is not None:
        found = advisories.load_osv(advisory)
        files["advisory"] = advisory
    else:
        listed = [v.strip() for v in (versions or "").split(",") if v.strip()]
        found = advisories.from_command_line(str(package), listed, range_)
    try:
        parsed_window = parse_window(window) if window else None
    except ValueError as exc:
        raise ScopeError("--window", str(exc)) from None
    repos = []
    for item in repo_dirs:
        directory, sep, full_name = item.rpartition("=")
        if not sep or full_name.count("/") != 1 or not Path(directory).is_dir():
            raise ScopeError("--repo-dir", f"expected DIR=owner/name with an existing DIR, "
                                           f"got {item!r}")
        repos.append((Path(directory), full_name))
        files[f"repo:{full_name}"] = Path(directory)
    for option, paths in (("sbom", sboms), ("k8s", manifests)):
        for path in paths:
            if not path.exists():
                raise ScopeError(f"--{option}", f"{path} does not exist")
            files[f"{option}:{path}"] = path
    if evidence is not None:
        files["evidence"] = evidence
    loaded = None
    if catalog_path is not None:
        loaded = catalog.load(catalog_path)
        files["catalog"] = catalog_path
    return scan.Inputs(found, loaded, repos, sboms, manifests, evidence, parsed_window), files


def _audit(report, files: dict[str, Path], runbook: str | None, audit_log: Path | None) -> None:
    """Append the scope record when an audit log is configured; a failure is an error."""
    if audit_log is None and not (os.environ.get(AUDIT_LOG_ENV) or os.environ.get(AUDIT_DSN_ENV)):
        return
    try:
        log = open_log(audit_log)
        log.append(audit_record.event(report, files, runbook, Settings.from_env().principal))
    except (AuditError, OSError, ConfigError) as exc:
        fail(f"cannot record the scoping in the audit log: {exc}", EXIT_FAILED)
