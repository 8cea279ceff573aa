"""Replay: a run's timeline and the three rotation invariants, each violation by seq."""

from __future__ import annotations

import random

import pytest

from keyturn.audit import INVARIANTS, replay


def _rotation(
    make_event, cred: str = "cred-a", *, run: str = "run-1", strategy: str = "rotate"
) -> list:
    """A clean make-before-break rotation of one credential."""

    def ev(step: str, outcome: str = "succeeded", **kw):
        return make_event(
            step,
            outcome,
            run=run,
            credential=cred,
            tier="tier1",
            provider="aws.iam_access_key",
            **kw,
        )

    return [
        ev("precheck", details={"strategy": strategy}),
        ev("create", "started"),
        ev("create", details={"credential_id": "AKIANEW", "fingerprint": "sha256:ab12"}),
        ev("verify_new"),
        ev("promote"),
        ev("revoke_old", "started", extra=["disable"], details={"phase": "disable"}),
        ev("revoke_old", extra=["delete"], details={"phase": "delete"}),
        ev("confirm_revoked"),
    ]


def _gate(
    make_event,
    approvals,
    *,
    cred="cred-a",
    required=2,
    distinct=True,
    requested_by="dave",
    passed=True,
):
    opened = make_event(
        "gate", "opened", credential=cred,
        details={"gate": "revoke", "approvers": ["alice", "bob", "carol", "dave"],
                 "approvals": required, "distinct": distinct, "requested_by": requested_by},
    )  # fmt: skip
    events = [opened]
    for i, who in enumerate(approvals):
        events.append(
            make_event(
                "gate",
                "approved",
                credential=cred,
                actor=who,
                extra=[who, i],
                details={"gate": "revoke"},
            )
        )
    if passed:
        events.append(make_event("gate", "passed", credential=cred, details={"gate": "revoke"}))
    return events


def _only(result, invariant):
    assert [v.invariant for v in result.violations] == [invariant], result.violations
    return result.violations[0]


def test_a_clean_run_has_no_violations(make_event, chain) -> None:
    rotate = _rotation(make_event, "cred-a")
    events = [
        make_event("run", "started", credential=None),
        make_event("tier", "started", credential=None, tier="tier1"),
        *rotate[:5],
        *_gate(make_event, ["alice", "bob"]),
        *rotate[5:],
        *_rotation(make_event, "cred-b", strategy="revoke-first")[:1],
        make_event(
            "revoke_old",
            "succeeded",
            credential="cred-b",
            extra=["disable"],
            details={"phase": "disable"},
        ),
        *[e for e in _rotation(make_event, "cred-b")[1:] if e.step != "revoke_old"],
        make_event(
            "revoke_old",
            "succeeded",
            credential="cred-b",
            extra=["delete"],
            details={"phase": "delete"},
        ),
        make_event("supply", "opened", credential="cred-c"),
        make_event("supply", "succeeded", credential="cred-c", actor="alice"),
        make_event("verify_new", credential="cred-c"),
        make_event("revoke_old", credential="cred-c"),
        make_event("run", "succeeded", credential=None),
    ]
    records = chain(events)
    other_run = chain([make_event("promote", run="run-2")])  # violates, but in another run
    shuffled = records + other_run
    random.Random(7).shuffle(shuffled)

    result = replay(shuffled, "run-1")
    assert result.ok and result.violations == () and result.warnings == ()
    assert [r.seq for r in result.records] == list(range(1, len(records) + 1))
    assert set(result.by_credential) == {None, "cred-a", "cred-b", "cred-c"}
    assert [r.step for r in result.by_credential[None]] == ["run", "tier", "run"]
    assert all(v == () for v in map(result.violations_of, INVARIANTS))


def test_an_unknown_run_replays_empty(make_event, chain) -> None:
    result = replay(chain(_rotation(make_event)), "nope")
    assert result.records == () and result.ok


# --- (a) nothing promoted unverified ---------------------------------------------------


def test_promote_without_verify_is_named(make_event, chain) -> None:
    events = [e for e in _rotation(make_event) if e.step != "verify_new"]
    records = chain(events)
    v = _only(replay(records, "run-1"), "verified_before_promote")
    assert v.seq == next(r.seq for r in records if r.step == "promote")
    assert v.credential == "cred-a" and "verify_new" in v.message


def test_promote_after_a_failed_verify_is_named(make_event, chain) -> None:
    events = [make_event("create"), make_event("verify_new", "failed"), make_event("promote")]
    assert _only(replay(chain(events), "run-1"), "verified_before_promote").seq == 3


def test_a_verify_of_an_earlier_replacement_does_not_count(make_event, chain) -> None:
    events = [
        make_event("create"), make_event("verify_new"),
        make_event("create", extra=["second"]), make_event("promote"),
    ]  # fmt: skip
    assert _only(replay(chain(events), "run-1"), "verified_before_promote").seq == 4


def test_verification_of_one_credential_does_not_cover_another(make_event, chain) -> None:
    events = [make_event("verify_new", credential="a"), make_event("promote", credential="b")]
    v = _only(replay(chain(events), "run-1"), "verified_before_promote")
    assert (v.seq, v.credential) == (2, "b")


# --- (b) nothing revoked before its replacement was delivered ----------------------------


@pytest.mark.parametrize("outcome", ["started", "succeeded", "failed", "error"])
def test_revoke_attempt_before_promote_is_named(make_event, chain, outcome: str) -> None:
    events = [make_event("create"), make_event("verify_new"), make_event("revoke_old", outcome)]
    v = _only(replay(chain(events), "run-1"), "delivered_before_revoke")
    assert v.seq == 3 and "before the replacement was delivered" in v.message


def test_skipped_or_cancelled_revoke_records_are_not_revocations(make_event, chain) -> None:
    events = [make_event("revoke_old", "skipped"), make_event("revoke_old", "cancelled")]
    assert replay(chain(events), "run-1").ok


def test_revoke_first_allows_only_the_disable_phase_early(make_event, chain) -> None:
    events = [
        make_event("precheck", details={"strategy": "revoke-first"}),
        make_event("revoke_old", extra=["disable"], details={"phase": "disable"}),
        make_event("create"),
        make_event("revoke_old", extra=["delete"], details={"phase": "delete"}),
    ]
    v = _only(replay(chain(events), "run-1"), "delivered_before_revoke")
    assert v.seq == 4 and "revoke-first allows only the disable phase" in v.message


def test_disable_first_without_a_declared_revoke_first_strategy_is_named(make_event, chain) -> None:
    events = [
        make_event("precheck", details={"strategy": "rotate"}),
        make_event("revoke_old", extra=["disable"], details={"phase": "disable"}),
    ]
    assert _only(replay(chain(events), "run-1"), "delivered_before_revoke").seq == 2


def test_revoke_first_declared_for_another_credential_does_not_apply(make_event, chain) -> None:
    events = [
        make_event("precheck", credential="x", details={"strategy": "revoke-first"}),
        make_event("revoke_old", credential="y", details={"phase": "disable"}),
    ]
    assert _only(replay(chain(events), "run-1"), "delivered_before_revoke").credential == "y"


def test_supplied_value_must_verify_before_revoke(make_event, chain) -> None:
    events = [make_event("supply", actor="alice"), make_event("revoke_old")]
    assert _only(replay(chain(events), "run-1"), "delivered_before_revoke").seq == 2


def test_revoke_after_a_rollback_is_named(make_event, chain) -> None:
    events = [
        make_event("create"), make_event("verify_new"), make_event("promote"),
        make_event("rollback", "started"), make_event("revoke_old"),
    ]  # fmt: skip
    assert _only(replay(chain(events), "run-1"), "delivered_before_revoke").seq == 5


def test_a_rolled_back_promote_no_longer_counts(make_event, chain) -> None:
    events = [
        make_event("create"), make_event("verify_new"), make_event("promote"),
        make_event("promote", "rolled_back"), make_event("revoke_old"),
    ]  # fmt: skip
    assert _only(replay(chain(events), "run-1"), "delivered_before_revoke").seq == 5


# --- (c) every approval from an allowed, distinct principal -------------------------------


def test_approval_from_a_principal_not_allowed_is_named(make_event, chain) -> None:
    records = chain(_gate(make_event, ["alice", "mallory", "bob"]))
    result = replay(records, "run-1")
    v = _only(result, "approvals_valid")
    assert v.seq == 3 and "mallory is not an allowed approver" in v.message


def test_the_same_principal_twice_is_named_and_counted_once(make_event, chain) -> None:
    result = replay(chain(_gate(make_event, ["alice", "alice"])), "run-1")
    assert [(v.seq, v.message) for v in result.violations] == [
        (3, "alice approved gate 'revoke' twice"),
        (4, "gate 'revoke' passed with 1 of 2 required valid approvals"),
    ]


def test_the_requester_cannot_approve_a_distinct_gate(make_event, chain) -> None:
    result = replay(chain(_gate(make_event, ["dave", "alice"], passed=False)), "run-1")
    v = _only(result, "approvals_valid")
    assert v.seq == 2 and "dave requested gate 'revoke'" in v.message


def test_the_requester_may_approve_when_not_distinct(make_event, chain) -> None:
    assert replay(chain(_gate(make_event, ["dave", "alice"], distinct=False)), "run-1").ok


def test_passing_with_too_few_approvals_is_named(make_event, chain) -> None:
    records = chain(_gate(make_event, ["alice"]))
    v = _only(replay(records, "run-1"), "approvals_valid")
    assert v.seq == 3 and "1 of 2" in v.message


def test_approval_of_a_gate_never_opened_is_named(make_event, chain) -> None:
    events = [make_event("gate", "approved", actor="alice", details={"gate": "promote"})]
    assert "never opened" in _only(replay(chain(events), "run-1"), "approvals_valid").message


def test_approvals_belong_to_their_own_gate(make_event, chain) -> None:
    events = [
        *_gate(make_event, ["alice"], cred="x", required=1, passed=False),
        *_gate(make_event, [], cred="y", required=1, passed=False),
        make_event("gate", "passed", credential="y", details={"gate": "revoke"}),
    ]
    v = _only(replay(chain(events), "run-1"), "approvals_valid")
    assert (v.seq, v.credential) == (4, "y")


def test_tier_gates_are_keyed_by_tier(make_event, chain) -> None:
    def tier_gate(tier, outcome, **kw):
        return make_event(
            "gate", outcome, credential=None, tier=tier, extra=[tier, kw.get("actor", "")], **kw
        )

    opened = {
        "gate": "tier",
        "approvers": ["alice"],
        "approvals": 1,
        "distinct": False,
        "requested_by": "bob",
    }
    events = [
        tier_gate("tier3", "opened", details=opened),
        tier_gate("tier3", "approved", actor="alice", details={"gate": "tier"}),
        tier_gate("tier3", "passed", details={"gate": "tier"}),
        tier_gate("tier4", "passed", details={"gate": "tier"}),
    ]
    v = _only(replay(chain(events), "run-1"), "approvals_valid")
    assert v.seq == 4 and v.credential is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"approvers": "alice"}, "approvers list"),
        ({"approvers": ["alice", 3]}, "approvers list"),
        ({"approvals": 0}, "positive number"),
        ({"approvals": True}, "positive number"),
        ({"distinct": "yes"}, "boolean 'distinct'"),
    ],
)
def test_a_malformed_gate_is_named(make_event, chain, change: dict, message: str) -> None:
    details = {"gate": "revoke", "approvers": ["alice"], "approvals": 1, "distinct": True} | change
    events = [make_event("gate", "opened", details=details)]
    assert message in _only(replay(chain(events), "run-1"), "approvals_valid").message


def test_rejected_and_timed_out_gates_are_not_violations(make_event, chain) -> None:
    events = _gate(make_event, [], passed=False) + [
        make_event("gate", "rejected", actor="alice", details={"gate": "revoke"}),
        make_event("gate", "timed_out", details={"gate": "revoke"}),
    ]
    assert replay(chain(events), "run-1").ok


def test_unknown_vocabulary_is_a_warning(make_event, chain) -> None:
    result = replay(chain([make_event("teleport", "succeeded")]), "run-1")
    assert result.ok and result.warnings == ("seq 1: unknown step/outcome teleport/succeeded",)
