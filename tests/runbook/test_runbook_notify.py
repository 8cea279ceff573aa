"""spec.notify, gate on_timeout and quorum rules: model shape, validation, plan, positions."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from keyturn.runbook import RunbookError, loads, plan, validate
from keyturn.runbook.models import NOTIFY_EVENTS, webhook_url_problem
from keyturn.runbook.plan_model import ExecutionPlan, NotifyPlan

PROVIDERS = ["aws.iam_access_key"]
TIERS = """\
  tiers:
    - id: t1
      gate: {approvals: 2, from: [security, platform], distinct: true, timeout: 2h,
             on_timeout: reject}
      credentials:
        - id: a
          provider: aws.iam_access_key
          target: {}
          gate: {before: promote, from: security, timeout: 30m}
"""


def doc(notify: str = "", approvers: str = "{security: [alice, bob], platform: [carol]}",
        tiers: str = TIERS) -> str:
    """A runbook whose `notify:` key, when given, is on line 7 (its first item on line 8)."""
    return (
        "apiVersion: keyturn/v1\nkind: Runbook\nmetadata: {name: notify-rb}\nspec:\n"
        f"  approvers: {approvers}\n  stores: {{vault: {{type: vault_kv, mount: secret}}}}\n"
        + (f"  notify:\n{notify}" if notify else "") + tiers
    )


def rejects(text: str, *, semantic: bool = False) -> RunbookError:
    with pytest.raises(RunbookError) as info:
        runbook = loads(text, filename="rb.yaml")
        if semantic:
            validate(runbook, PROVIDERS)
    return info.value


def assert_error(err: RunbookError, line: int, column: int, reason: str) -> None:
    assert (err.file, err.line, err.column) == ("rb.yaml", line, column), str(err)
    assert reason in err.reason, str(err)


def planned(text: str, requested_by: str = "dave") -> ExecutionPlan:
    runbook = validate(loads(text, "rb.yaml"), PROVIDERS)
    return plan(runbook, run_id="r1", requested_by=requested_by,
                source_sha256=hashlib.sha256(text.encode()).hexdigest())


# ---- spec.notify: shape ---------------------------------------------------------------


def test_notify_targets_by_env_or_url_with_all_events_by_default() -> None:
    runbook = loads(doc("    - url_env: SLACK_WEBHOOK_URL\n"
                        "    - {url: 'https://hooks.example.com/x', events: [run_ended]}\n"))
    env_target, url_target = runbook.spec.notify
    assert (env_target.url_env, env_target.url) == ("SLACK_WEBHOOK_URL", None)
    assert env_target.events == list(NOTIFY_EVENTS)
    assert list(NOTIFY_EVENTS) == ["gate_opened", "credential_failed", "tier_ended", "run_ended"]
    assert (url_target.url, url_target.events) == ("https://hooks.example.com/x", ["run_ended"])


def test_notify_is_optional() -> None:
    assert loads(doc()).spec.notify == []


def test_plain_http_is_refused_except_to_loopback() -> None:
    err = rejects(doc("    - url: http://hooks.example.com/x\n"))
    assert_error(err, 8, 12, "url: the webhook URL must use https")
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]:9/h"):
        assert loads(doc(f"    - url: '{url}'\n")).spec.notify[0].url == url


@pytest.mark.parametrize(("url", "problem"), [
    ("ftp://example.com/x", "must be an https:// URL"),
    ("https://", "must be an https:// URL"),
    ("hooks.example.com/x", "must be an https:// URL"),
    ("http://10.0.0.1/x", "must use https"),
    ("https://hooks.example.com/services/x", None),
])
def test_webhook_url_problem(url: str, problem: str | None) -> None:
    found = webhook_url_problem(url)
    assert (found is None) if problem is None else (problem in found)


def test_exactly_one_of_url_env_and_url() -> None:
    both = rejects(doc("    - {url_env: HOOK, url: 'https://example.com/h'}\n"))
    assert_error(both, 8, 7, "give exactly one of 'url_env'")
    neither = rejects(doc("    - {events: [run_ended]}\n"))
    assert_error(neither, 8, 7, "give exactly one of 'url_env'")


def test_unknown_event_names_the_choices() -> None:
    err = rejects(doc("    - {url_env: HOOK, events: [gate_opened, run_finished]}\n"))
    assert_error(err, 8, 45, "run_ended")


def test_events_may_not_be_empty() -> None:
    err = rejects(doc("    - {url_env: HOOK, events: []}\n"))
    assert_error(err, 8, 31, "events")


def test_url_env_is_a_variable_name() -> None:
    err = rejects(doc("    - {url_env: 'not a name'}\n"))
    assert_error(err, 8, 17, "expected a name like 'SLACK_WEBHOOK_URL'")


def test_unknown_notify_field_suggests() -> None:
    err = rejects(doc("    - {url_env: HOOK, event: [run_ended]}\n"))
    assert_error(err, 8, 23, "did you mean 'events'?")


# ---- spec.notify: validation and plan ---------------------------------------------------


def test_a_literal_slack_webhook_url_is_refused_in_favour_of_url_env() -> None:
    err = rejects(doc("    - url: https://hooks.slack.com/services/T0/B0/xyz\n"), semantic=True)
    assert_error(err, 8, 12, "name that variable with 'url_env'")


def test_plan_carries_notify_targets_without_duplicate_events() -> None:
    text = doc("    - {url_env: HOOK, events: [run_ended, tier_ended, run_ended]}\n"
               "    - url: 'http://127.0.0.1:9/x'\n")
    assert planned(text).notify == [
        NotifyPlan(url_env="HOOK", events=["run_ended", "tier_ended"]),
        NotifyPlan(url="http://127.0.0.1:9/x", events=list(NOTIFY_EVENTS)),
    ]


def test_plans_without_notify_still_load() -> None:
    # plans in older workflow histories have no notify field
    data = planned(doc()).model_dump(mode="json")
    del data["notify"]
    assert ExecutionPlan.model_validate(data).notify == []


# ---- gates: on_timeout -------------------------------------------------------------------


def test_on_timeout_defaults_to_fail_and_is_carried_into_the_plan() -> None:
    tier_gate = planned(doc()).tiers[0].gate
    (cred_gate,) = planned(doc()).tiers[0].credentials[0].gates
    assert (tier_gate.timeout, tier_gate.on_timeout) == (timedelta(hours=2), "reject")
    assert (cred_gate.timeout, cred_gate.on_timeout) == (timedelta(minutes=30), "fail")


def test_on_timeout_is_fail_or_reject() -> None:
    err = rejects(doc(tiers=TIERS.replace("on_timeout: reject", "on_timeout: approve")))
    assert_error(err, 10, 26, "on_timeout: Input should be 'fail' or 'reject'")


# ---- gates: N of several groups, distinct -------------------------------------------------


def test_quorum_from_a_list_of_groups_is_their_union() -> None:
    gate = planned(doc()).tiers[0].gate
    assert (gate.approvals, gate.groups, gate.approvers, gate.distinct) == (
        2, ["security", "platform"], ["alice", "bob", "carol"], True)


def test_a_requester_who_would_leave_a_distinct_gate_short_is_refused() -> None:
    # security+platform have three principals; without alice only two remain: still enough
    assert planned(doc(), requested_by="alice").tiers[0].gate.approvals == 2
    text = doc(approvers="{security: [alice], platform: [carol]}")
    assert planned(text, requested_by="dave")  # the requester is no approver: two remain
    with pytest.raises(RunbookError) as info:
        planned(text, requested_by="alice")
    assert_error(info.value, 9, 25, "without 'alice' who requests this run")


@pytest.mark.parametrize("name", ["timeout", "worker"])
def test_reserved_actor_names_cannot_be_approvers(name: str) -> None:
    err = rejects(doc(approvers=f"{{security: [alice, {name}], platform: [carol]}}"),
                  semantic=True)
    assert_error(err, 5, 33, f"'{name}' is a name keyturn uses")
