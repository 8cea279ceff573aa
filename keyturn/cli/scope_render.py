"""The text report of `keyturn scope`: affected installs, exposures by class, unmapped, runbook.

Every name in it comes from files an attacker may have written (package
names, job names, paths), so all of it is rich `Text`: printed literally,
never read as markup or emoji codes.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from keyturn.scope.report import Report

STYLE = {"delivered": "bold red", "reachable": "yellow", "excluded": "dim"}


def render(report: Report, console: Console) -> None:
    window = f" (window {report.window})" if report.window else ""
    console.print(Text.assemble(("advisory ", "bold"), (report.advisory, "bold"), window))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    if not report.affected:
        console.print(Text("nothing affected: no install of the advisory's packages was found; "
                           "no runbook written"))
        return
    affected = Table(title=Text("affected"), box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("package", "version", "file", "path"):
        affected.add_column(column, overflow="fold")
    for hit in report.affected:
        affected.add_row(Text(hit.package), Text(hit.version), Text(hit.where()),
                         Text(" > ".join(hit.path)))
    console.print(affected)
    if not report.exposures:
        console.print(Text("exposed secret locations: none (no job or workload that runs the "
                           "package reads a secret)"))
    else:
        console.print(Text("exposed secret locations", style="bold"))
    for exposure in report.sorted_exposures():
        console.print(Text.assemble(
            (f"{exposure.klass:<10} ", STYLE[exposure.klass]), exposure.secret, " -> ",
            exposure.credential or ("(unmapped)", "bold yellow")))
        if exposure.reason:
            console.print(Text(f"    reason: {exposure.reason}"))
        for chain in exposure.evidence:
            console.print(Text("    " + " → ".join(chain[:-2])))  # secret and credential: above
        if exposure.more:
            console.print(Text(f"    ... and {exposure.more} more"))
    if report.unmapped:
        console.print(Text(f"unmapped: {len(report.unmapped)} exposed locations have no catalog "
                           "entry; add them to the catalog:", style="bold yellow"))
        console.print(Text(catalog_stub(report.unmapped)))
    console.print(Text(f"runbook: {report.runbook}" if report.runbook else "runbook: not written"))


def catalog_stub(locations: list[str]) -> str:
    """Catalog entries to fill in, one per unmapped location."""
    lines = []
    for n, location in enumerate(locations, 1):
        lines += [f"    - id: todo-{n}            # name the credential",
                  "      provider: TODO          # e.g. npm.token, aws.iam_access_key",
                  "      target: {}",
                  f"      exposed_as: [\"{location}\"]"]
    return "\n".join(lines)
