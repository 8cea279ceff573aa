"""Views never cut ids: a table on a terminal wide enough, one line per row otherwise
(narrow terminals, pipes); cells are literal text."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from keyturn.cli.layout import Sheet
from keyturn.cli.progress import changes
from keyturn.cli.render import run_table, runs_table
from keyturn.operations.runs import RunSnapshot
from keyturn.workflows.models import CredentialStatus, RunStatus, TierStatus

RUN_ID = "my-first-rotation-20261204t220548z-044c"
OLD, NEW = "AKIARZPUZDIKDTM5H6RH", "AKIARZPUZDIKBJRK75WI"


def rendered(view, *, width: int, terminal: bool) -> str:
    out = Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)
    out.print(view, soft_wrap=not terminal)
    return out.file.getvalue()  # type: ignore[attr-defined]


def detail(step: str = "promote", state: str = "running") -> RunSnapshot:
    now = datetime.now(UTC)
    return RunSnapshot(
        status=RunStatus(run_id=RUN_ID, runbook="rb", incident=None, requested_by="dave",
                         state="running", started_at=now,
                         tiers=[TierStatus(tier="tier1", name="Immediate", after=[],
                                           state="running",
                                           credentials={"ci-deployer-aws-production": state})]),
        credentials={"ci-deployer-aws-production": CredentialStatus(
            credential="ci-deployer-aws-production", tier="tier1",
            provider="aws.iam_access_key", state=state, step=step,
            old_credential_ids=[OLD], new_credential_id=NEW)},
    )


def test_a_wide_terminal_gets_the_table() -> None:
    shown = rendered(run_table(detail()), width=200, terminal=True)
    assert "┃" in shown or "│" in shown
    assert RUN_ID in shown and OLD in shown and NEW in shown


def test_at_80_columns_every_id_stays_whole() -> None:
    shown = rendered(run_table(detail()), width=80, terminal=True)
    assert "…" not in shown and "│" not in shown
    assert RUN_ID in shown and OLD in shown and NEW in shown
    assert "ci-deployer-aws-production" in shown


def test_piped_each_row_is_one_line_with_named_columns() -> None:
    shown = rendered(run_table(detail()), width=80, terminal=False)
    row = next(line for line in shown.splitlines() if "ci-deployer-aws-production" in line)
    assert row == (f"  ci-deployer-aws-production  state=running  step=promote  old={OLD}  "
                   f"new={NEW}")
    assert not any(ch in shown for ch in "│┃━─┏")


def test_the_runs_list_keeps_run_ids_whole_at_80_columns() -> None:
    listed = [{"run_id": RUN_ID, "state": "succeeded", "runbook": "demo-breach",
               "incident": "INC-2026-0412-supply-chain", "started_at": "2026-12-04T22:05:48Z"}]
    for terminal in (True, False):
        shown = rendered(runs_table(listed), width=80, terminal=terminal)
        assert RUN_ID in shown and "INC-2026-0412-supply-chain" in shown


def test_cells_are_literal() -> None:
    sheet = Sheet(["name", "reason"])
    sheet.add_row("[bold]x[/bold]", "serial 01:34:32:ab:fd :smile:")
    for terminal in (True, False):
        shown = rendered(sheet, width=200, terminal=terminal)
        assert "[bold]x[/bold]" in shown and "01:34:32:ab:fd :smile:" in shown


def test_progress_lines_name_only_what_changed() -> None:
    shown: dict[str, str] = {}
    first = changes(detail("create"), shown)
    assert [line.split(" ", 1)[1] for line in first] == [
        "tier tier1: running", "ci-deployer-aws-production: running create"]
    assert changes(detail("create"), shown) == []
    (line,) = changes(detail("done", "succeeded"), shown)
    assert line.endswith("ci-deployer-aws-production: succeeded done")
