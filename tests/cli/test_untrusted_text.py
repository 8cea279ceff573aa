"""Untrusted text in every CLI view is shown as typed: markup, emoji codes and a certificate
serial that looks like emoji codes neither crash a view nor change on screen."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from rich.console import Console

from keyturn.cli import common
from keyturn.cli.render import run_table
from keyturn.operations.runs import RunSnapshot
from keyturn.workflows.models import CredentialStatus, RunStatus, StepRecord, TierStatus

HOSTILE = [
    "[/]",                           # closing tag without an opening one: MarkupError
    "[bold red]not red[/bold red]",
    "01:34:32:ab:fd:cd:00",          # a serial rich would show with the AB emoji
    ":warning: :smile:",
    "\u202eevil",                    # a bidi override (runbook validation refuses it in ids)
    "x" * 300,
]


def snapshot(text: str) -> RunSnapshot:
    now = datetime.now(UTC)
    return RunSnapshot(
        status=RunStatus(run_id="inc-1", runbook="rb", incident=None, requested_by="dave",
                         state="running", started_at=now,
                         tiers=[TierStatus(tier="t1", name="", after=[], state="running",
                                           credentials={"c1": "failed"})]),
        credentials={"c1": CredentialStatus(
            credential="c1", tier="t1", provider="signing.vault_pki_cert", state="failed",
            step="verify_new", error=text, old_credential_ids=[text], new_credential_id=text,
            steps=[StepRecord(step="verify_new", outcome="failed", at=now, detail=text)])},
    )


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("terminal", [True, False])
def test_status_shows_hostile_text_as_typed(text: str, terminal: bool) -> None:
    out = Console(file=io.StringIO(), width=400, force_terminal=terminal, color_system=None,
                  emoji=False)
    out.print(run_table(snapshot(text)), soft_wrap=not terminal)
    shown = out.file.getvalue()  # type: ignore[attr-defined]
    assert text[:100] in shown.replace("\n", "")
    assert "🆎" not in shown and "⚠" not in shown


def test_the_cli_consoles_never_interpret_emoji_codes(capsys) -> None:
    common.console.print("serial 01:34:32:ab:fd")
    assert "01:34:32:ab:fd" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        common.fail("serial 01:34:32:ab:fd [/] :warning:")
    assert "01:34:32:ab:fd [/] :warning:" in capsys.readouterr().err
