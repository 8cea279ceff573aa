"""The `notify` activity's body, link, URL handling and error classification, without Temporal.

Deliveries go to a real local http.server; only the retry decision is Temporal's.
"""

from __future__ import annotations

import socket

import pytest
from webhook_receiver import receiver

from keyturn.activities.notify import NotifyFailed, deliver, message, run_link, summary
from keyturn.runbook.plan_model import NotifyPlan
from keyturn.workflows.models import Notification, NotifyInput

GATE = Notification(event="gate_opened", run_id="rb-20261122t061500z-3fa9", runbook="rb",
                    incident="INC-1", requested_by="dave", tier="tier1", credential="db",
                    gate="revoke", approvals=2, groups=["security", "platform"], distinct=True)


def inp(target: NotifyPlan, notification: Notification = GATE, index: int = 0) -> NotifyInput:
    return NotifyInput(notification=notification, target=target, index=index)


def test_gate_opened_body_is_slack_json_with_a_link_to_the_approvals_page():
    body = message(GATE, "https://keyturn.example/ui/")
    assert body == {
        "text": "keyturn: approval needed before revoke of credential db in run "
                "rb-20261122t061500z-3fa9 (INC-1): 2 approvals from security, platform "
                "(not dave, who started the run)",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": (
            "*Approval needed* before revoke of credential db\n"
            "Runbook `rb`, run `rb-20261122t061500z-3fa9`, incident INC-1\n"
            "Needs 2 approvals from security, platform (not dave, who started the run)\n"
            "Approving will revoke the old credential\n"
            "<https://keyturn.example/ui/runs/rb-20261122t061500z-3fa9|Review and approve>")}}],
    }


def test_without_keyturn_ui_url_there_is_no_link():
    assert run_link("r", None) is None and run_link("r", "  ") is None
    assert "<" not in message(GATE, None)["blocks"][0]["text"]["text"]


def test_the_link_quotes_the_run_id():
    assert run_link("a b/c", "http://x/ui") == "http://x/ui/runs/a%20b%2Fc"


def test_text_from_the_run_is_escaped_for_mrkdwn():
    failed = Notification(event="credential_failed", run_id="r", runbook="rb", credential="c",
                          detail="verify_new: <!channel> & <https://evil|click>")
    text = message(failed, None)["blocks"][0]["text"]["text"]
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in text
    assert "<!channel>" not in text


@pytest.mark.parametrize(("notification", "expected"), [
    (Notification(event="tier_ended", run_id="r", runbook="rb", tier="t2", state="skipped",
                  detail="after t1, which did not succeed"),
     "keyturn: tier t2 skipped in run r: after t1, which did not succeed"),
    (Notification(event="run_ended", run_id="r", runbook="rb", incident="INC-2",
                  state="failed", detail="tiers: 1 failed"),
     "keyturn: run r (INC-2) failed: tiers: 1 failed"),
    (Notification(event="gate_opened", run_id="r", runbook="rb", tier="t3", gate="tier",
                  approvals=1, groups=["ops"]),
     "keyturn: approval needed before tier t3 starts in run r: 1 approval from ops"),
])
def test_one_line_summaries(notification, expected):
    assert summary(notification) == expected


async def test_delivery_posts_the_body_to_the_url_from_the_environment():
    with receiver() as hooks:
        await deliver(inp(NotifyPlan(url_env="HOOK", events=["gate_opened"])),
                      {"HOOK": hooks.url("/in"), "KEYTURN_UI_URL": "http://127.0.0.1/ui"})
        (body,) = hooks.bodies("/in")
    assert body == message(GATE, "http://127.0.0.1/ui")


@pytest.mark.parametrize(("status", "retryable"), [
    (500, True), (503, True), (429, True), (408, True), (400, False), (404, False), (410, False),
])
async def test_http_errors_are_retryable_unless_retrying_cannot_help(status, retryable):
    with receiver({"/x": status}) as hooks, pytest.raises(NotifyFailed) as info:
        await deliver(inp(NotifyPlan(url=hooks.url("/x"), events=["gate_opened"]), index=3),
                      {})
    assert str(info.value) == f"webhook target 3 answered HTTP {status}"
    assert info.value.retryable is retryable


async def test_a_refused_connection_is_retryable_and_never_names_the_url():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T000/B000/very-secret"
    with pytest.raises(NotifyFailed) as info:
        await deliver(inp(NotifyPlan(url_env="HOOK", events=["gate_opened"])), {"HOOK": url})
    assert info.value.retryable
    assert str(info.value).startswith("webhook target 0: ConnectError")
    assert "very-secret" not in str(info.value) and str(port) not in str(info.value)


@pytest.mark.parametrize(("env", "message_part"), [
    ({}, "environment variable HOOK is not set on the worker"),
    ({"HOOK": "http://hooks.example.com/secret-path"}, "the URL in HOOK must use https"),
    ({"HOOK": "not a url"}, "the URL in HOOK must be an https:// URL"),
])
async def test_a_bad_url_env_fails_for_good_without_echoing_the_value(env, message_part):
    with pytest.raises(NotifyFailed) as info:
        await deliver(inp(NotifyPlan(url_env="HOOK", events=["gate_opened"])), env)
    assert not info.value.retryable
    assert message_part in str(info.value)
    assert "secret-path" not in str(info.value)
