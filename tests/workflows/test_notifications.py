"""Webhook notifications end to end on the time-skipping server, into a local HTTP receiver.

The receiver is a real http.server on a free loopback port; the `notify` activity
posts to it through httpx exactly as it would to Slack.
"""

from __future__ import annotations

import json
from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.worker import Replayer
from webhook_receiver import receiver
from workflow_env import eventually, harness

from keyturn.operations import gates, runs
from keyturn.worker import WORKFLOWS
from keyturn.workflows import notifications
from keyturn.workflows.models import RunStatus
from keyturn.workflows.tier import credential_workflow_id

HEADER = """
apiVersion: keyturn/v1
kind: Runbook
metadata: {name: notify-test, incident: INC-7}
spec:
  approvers:
    security: [alice, bob]
    ops: [erin]
  stores:
    vault: {type: vault_kv, address: "http://127.0.0.1:1", mount: secret}
"""
UI = "https://keyturn.example/ui"


def cred(cid: str, extra: str = "", fail_at: str | None = None) -> str:
    target = f"account: {cid}" + (f", fail_at: {fail_at}" if fail_at else "")
    return (f"        - id: {cid}\n          provider: memory.key\n"
            f"          target: {{{target}}}\n"
            f"          deliver: [{{store: vault, path: app/{cid}}}]\n{extra}")


def seed(h, *accounts: str) -> None:
    for account in accounts:
        key_id, secret = h.provider.seed(account)
        h.store.write(f"app/{account}", secret, {"credential_id": key_id})


def kind(body: dict) -> str:
    """Which event a Slack body is about, from its one-line summary."""
    text = body["text"]
    for prefix, event in (("keyturn: approval needed", "gate_opened"),
                          ("keyturn: credential", "credential_failed"),
                          ("keyturn: tier", "tier_ended"), ("keyturn: run", "run_ended")):
        if text.startswith(prefix):
            return event
    raise AssertionError(f"unexpected summary {text!r}")


def section(body: dict) -> str:
    """The mrkdwn text of the body's one section block, after checking the Slack shape."""
    assert set(body) == {"text", "blocks"}
    assert isinstance(body["text"], str) and "\n" not in body["text"]
    (block,) = body["blocks"]
    assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
    return block["text"]["text"]


async def start(h, text: str):
    plan = h.plan(text, requested_by="dave")
    await runs.start(h.client, plan, h.task_queue, search_attributes=False)
    return plan, h.client.get_workflow_handle(plan.run_id, result_type=RunStatus)


async def test_gates_tiers_and_the_run_are_announced_with_a_link_to_the_approvals_page(
    tmp_path, monkeypatch
):
    gate = "          gate: {before: promote, approvals: 1, from: security}\n"
    with receiver() as hooks:
        monkeypatch.setenv("KT_TEST_HOOK", hooks.url("/all"))
        monkeypatch.setenv("KEYTURN_UI_URL", UI + "/")
        text = (HEADER + f"  notify:\n    - url_env: KT_TEST_HOOK\n"
                f"    - {{url: '{hooks.url('/end')}', events: [run_ended]}}\n  tiers:\n"
                "    - id: tier1\n      credentials:\n" + cred("a", extra=gate)
                + "    - id: tier2\n      after: [tier1]\n      gate: {approvals: 1, from: ops}\n"
                "      credentials:\n" + cred("b"))
        async with harness(tmp_path) as h:
            seed(h, "a", "b")
            plan, handle = await start(h, text)
            link = f"<{UI}/runs/{plan.run_id}|Review and approve>"

            first = await eventually(lambda: _first(hooks, "/all"))
            assert first["text"] == (f"keyturn: approval needed before promote of credential a "
                                     f"in run {plan.run_id} (INC-7): 1 approval from security "
                                     "(not dave, who started the run)")
            body = section(first)
            assert body.startswith("*Approval needed* before promote of credential a\n")
            assert "Approving will promote the new value to every deliver target" in body
            assert body.endswith(link)
            await gates.decide(h.client, plan.run_id, "a", "alice", "ok", approve=True)

            async def tier_gate_announced():
                return [b for b in hooks.bodies("/all") if "before tier tier2" in b["text"]]

            (tier_gate,) = await eventually(tier_gate_announced)
            assert "1 approval from ops" in tier_gate["text"]
            assert "Approving will start the tier" in section(tier_gate)
            await gates.decide(h.client, plan.run_id, "tier2", "erin", "go", approve=True)
            assert (await handle.result()).state == "succeeded"

            # run_ended went out before the run returned: no waiting here
            everything = hooks.bodies("/all")
            assert sorted(kind(b) for b in everything) == sorted(
                ["gate_opened", "gate_opened", "tier_ended", "tier_ended", "run_ended"])
            tiers = sorted(b["text"] for b in everything if kind(b) == "tier_ended")
            assert tiers == [f"keyturn: tier {t} succeeded in run {plan.run_id} (INC-7): "
                             "credentials: 1 succeeded" for t in ("tier1", "tier2")]
            (end,) = hooks.bodies("/end")  # the second target asked for run_ended only
            assert end["text"] == (f"keyturn: run {plan.run_id} (INC-7) succeeded: "
                                   "tiers: 2 succeeded")
            assert section(end).startswith("*Run succeeded*\nRunbook `notify-test`")
            assert section(end).endswith(f"<{UI}/runs/{plan.run_id}|Open the run>")
            assert not [r for r in h.records(plan.run_id) if r.step == "notify"]
            await assert_replays(h, plan.run_id, credential_workflow_id(plan.run_id, "a"))


async def assert_replays(h, *workflow_ids: str) -> None:
    """Runs with notifications replay deterministically (the deliveries run in tasks)."""
    replayer = Replayer(workflows=WORKFLOWS, data_converter=h.client.data_converter)
    for wid in workflow_ids:
        history = await h.client.get_workflow_handle(wid).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{wid}: {result.replay_failure!r}"


def _first(hooks, path):
    async def check():
        bodies = hooks.bodies(path)
        return bodies[0] if bodies else None
    return check()


async def test_a_failing_webhook_is_retried_then_audited_and_the_run_goes_on(
    tmp_path, monkeypatch
):
    # the production policy backs off for a minute; the same number of attempts, quicker
    fast = RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0,
                       maximum_attempts=notifications.NOTIFY_RETRY.maximum_attempts)
    monkeypatch.setattr(notifications, "NOTIFY_RETRY", fast)
    with receiver({"/down": 500}) as hooks:
        down, up = hooks.url("/down"), hooks.url("/up")
        monkeypatch.setenv("KT_DOWN_HOOK", down)
        monkeypatch.setenv("KT_UP_HOOK", up)
        monkeypatch.delenv("KEYTURN_UI_URL", raising=False)
        monkeypatch.delenv("KT_UNSET_HOOK", raising=False)
        text = (HEADER + "  notify:\n"
                "    - {url_env: KT_DOWN_HOOK, events: [credential_failed]}\n"
                "    - {url_env: KT_UP_HOOK, events: [credential_failed, run_ended]}\n"
                "    - {url_env: KT_UNSET_HOOK, events: [run_ended]}\n"
                "  tiers:\n    - id: tier1\n      credentials:\n"
                + cred("x", fail_at="verify_new") + cred("y"))
        async with harness(tmp_path) as h:
            seed(h, "x", "y")
            plan, handle = await start(h, text)
            status = await handle.result()
            # the rotation's own outcome: x failed (verify), y rotated; notifications changed nothing
            assert status.state == "failed"
            assert status.tiers[0].credentials == {"x": "failed", "y": "succeeded"}

            attempts = hooks.bodies("/down")
            assert len(attempts) == fast.maximum_attempts == 6
            assert all(body == attempts[0] for body in attempts)
            assert attempts[0]["text"].startswith(f"keyturn: credential x failed in run "
                                                  f"{plan.run_id} (INC-7): verify_new: ")
            assert "/runs/" not in json.dumps(attempts[0])  # no KEYTURN_UI_URL, no link
            delivered = sorted(kind(b) for b in hooks.bodies("/up"))
            assert delivered == ["credential_failed", "run_ended"]

            failures = {r.details["target"]: r for r in h.records(plan.run_id)
                        if r.step == "notify"}
            assert set(failures) == {0, 2}
            assert (failures[0].outcome, failures[0].credential, failures[0].tier) == (
                "failed", "x", "tier1")
            assert failures[0].details == {"event": "credential_failed", "target": 0,
                                           "error": "webhook target 0 answered HTTP 500",
                                           "url_env": "KT_DOWN_HOOK"}
            assert failures[2].details == {
                "event": "run_ended", "target": 2, "url_env": "KT_UNSET_HOOK",
                "error": "webhook target 2: environment variable KT_UNSET_HOOK is not set "
                         "on the worker"}
            log = h.audit_path.read_text()
            assert str(hooks.port) not in log and "/down" not in log  # never the URL
            # the failure records come before the run's end record
            steps = [(r.step, r.outcome) for r in h.records(plan.run_id)]
            assert steps.index(("notify", "failed")) < steps.index(("run", "failed"))
            await assert_replays(h, plan.run_id, credential_workflow_id(plan.run_id, "x"))
