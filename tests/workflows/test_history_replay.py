"""Saved workflow histories still replay: the guard against non-deterministic workflow changes.

The histories under histories/ come from record_histories.py (one file per workflow
execution, named by workflow id). A failure here means a change to a workflow would
break runs already in flight: version the change instead of regenerating the files.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from record_histories import SCENARIOS as RECORDED
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from keyturn.codec import data_converter
from keyturn.worker import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"
SCENARIOS = [s.name for s in RECORDED]


def saved() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def test_every_scenario_and_workflow_type_is_saved():
    names = [p.stem for p in saved()]
    for scenario in SCENARIOS:
        assert scenario in names, f"no saved run for {scenario}: run record_histories.py"
    types = {workflow_type(load(p)) for p in saved()}
    assert types == {w.__name__ for w in WORKFLOWS}


@pytest.mark.parametrize("path", saved(), ids=lambda p: p.stem)
async def test_saved_history_replays(path):
    history = load(path)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(None))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"


async def test_all_histories_replay_in_one_replayer():
    # the way a release check would run them: one replayer, every history
    async def histories():
        for path in saved():
            yield load(path)

    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(None))
    results = await replayer.replay_workflows(histories(), raise_on_replay_failure=False)
    assert results.replay_failures == {}
    assert len(saved()) >= 3 * len(SCENARIOS)


@workflow.defn(name="CredentialRotationWorkflow")
class SkipsPrecheck:
    """A changed protocol: creates before prechecking."""

    @workflow.run
    async def run(self, inp: dict) -> None:
        await workflow.execute_activity("create", inp, start_to_close_timeout=timedelta(seconds=30))


async def test_a_changed_workflow_fails_replay():
    # proof that replay would notice: the same history against a reordered protocol
    history = load(HISTORIES / "three-tiers.cred.a.json")
    replayer = Replayer(workflows=[SkipsPrecheck], data_converter=data_converter(None),
                        workflow_runner=UnsandboxedWorkflowRunner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError)
