"""`keyturn status` renderings of target holds: literal text, the holder named."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from keyturn.cli.render import locks_table, run_table
from keyturn.operations.runs import RunSnapshot
from keyturn.workflows.models import CredentialStatus, RunStatus, StepRecord, TierStatus


def text_of(renderable) -> str:
    console = Console(width=300, record=True)
    console.print(renderable)
    return console.export_text()


def test_held_targets_show_holder_and_target_literally() -> None:
    shown = text_of(locks_table([{
        "run_id": "inc-1", "credential": "ci-aws", "provider": "aws.iam_access_key",
        "target": "user_name=[bold]ci[/bold]", "since": "2026-12-04T18:00:01+00:00",
        "lock_key": "ab" * 16,
    }]))
    assert "held targets" in shown
    assert "inc-1" in shown and "ci-aws" in shown and "aws.iam_access_key" in shown
    assert "user_name=[bold]ci[/bold]" in shown  # markup in a target is not interpreted
    assert "2026-12-04 18:00:01" in shown


def test_a_credential_waiting_for_a_target_names_the_holder() -> None:
    now = datetime.now(UTC)
    detail = RunSnapshot(
        status=RunStatus(run_id="inc-2", runbook="rb", incident=None, requested_by="dave",
                         state="running", started_at=now,
                         tiers=[TierStatus(tier="t1", name="", after=[], state="running",
                                           credentials={"ci-aws": "running"})]),
        credentials={"ci-aws": CredentialStatus(
            credential="ci-aws", tier="t1", provider="aws.iam_access_key", state="running",
            step="lock", steps=[StepRecord(
                step="lock", outcome="waiting", at=now,
                detail="target user_name=[red]ci is held by run inc-1 (credential ci-aws)")])},
    )
    shown = text_of(run_table(detail))
    assert "lock waiting: target user_name=[red]ci is held by run inc-1" in shown
