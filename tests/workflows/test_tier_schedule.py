"""TierSchedule: depends_on as a ready queue, skips that cascade, outcomes carried over."""

from __future__ import annotations

from keyturn.runbook.plan_model import CredentialPlan, Location
from keyturn.workflows.schedule import TierSchedule


def creds(spec: dict[str, list[str]]) -> list[CredentialPlan]:
    return [
        CredentialPlan(id=cid, tier="t", provider="p", target={}, depends_on=deps,
                       staging=Location(store="s", path=f"x/{cid}"))
        for cid, deps in spec.items()
    ]


def drain(schedule: TierSchedule) -> list[str]:
    ready = []
    while (cid := schedule.next_ready()) is not None:
        schedule.start(cid)
        ready.append(cid)
    return ready


def test_independent_credentials_are_ready_in_runbook_order():
    schedule = TierSchedule(creds({"a": [], "b": [], "c": []}))
    assert drain(schedule) == ["a", "b", "c"]
    assert not schedule.done


def test_a_dependent_waits_for_every_dependency():
    schedule = TierSchedule(creds({"a": [], "b": [], "c": ["a", "b"]}))
    assert drain(schedule) == ["a", "b"]
    schedule.finish("a", "succeeded")
    assert schedule.next_ready() is None
    schedule.finish("b", "succeeded")
    assert drain(schedule) == ["c"]
    schedule.finish("c", "succeeded")
    assert schedule.done


def test_a_failure_skips_dependents_transitively_with_a_reason():
    schedule = TierSchedule(creds({"a": [], "b": ["a"], "c": ["b"], "d": []}))
    assert drain(schedule) == ["a", "d"]
    schedule.finish("a", "failed")
    assert schedule.outcomes["b"] == schedule.outcomes["c"] == "skipped"
    assert schedule.reasons["b"] == "skipped: depends on a, which did not succeed"
    assert schedule.reasons["c"] == "skipped: depends on b, which did not succeed"
    assert schedule.next_ready() is None
    schedule.finish("d", "succeeded")
    assert schedule.done


def test_carried_outcomes_count_as_finished():
    schedule = TierSchedule(creds({"a": [], "b": ["a"], "c": [], "d": ["c"]}),
                            finished={"a": "succeeded", "c": "failed"})
    assert drain(schedule) == ["b"]
    assert schedule.outcomes["d"] == "skipped"
    assert schedule.finished() == {"a": "succeeded", "c": "failed", "d": "skipped"}


def test_changes_counts_finishes():
    schedule = TierSchedule(creds({"a": [], "b": []}))
    drain(schedule)
    schedule.finish("a", "succeeded")
    schedule.finish("b", "cancelled")
    assert schedule.changes == 2
    assert schedule.done


def test_a_cancelled_tier_ends_every_unfinished_credential_cancelled():
    schedule = TierSchedule(creds({"a": [], "b": [], "c": ["b"], "d": []}))
    schedule.next_ready()
    schedule.start("a")
    schedule.finish("a", "succeeded")
    schedule.start("b")
    schedule.cancel()
    assert schedule.outcomes == {"a": "succeeded", "b": "cancelled", "c": "cancelled",
                                 "d": "cancelled"}
    assert schedule.done
