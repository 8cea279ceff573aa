"""Webhook destinations of runbooks posted to the API come from the server's configuration:
a literal URL (e.g. to a loopback service) is refused unless its host is allow-listed,
and url_env may name only *_WEBHOOK_URL variables; runbooks on the server are trusted."""

from __future__ import annotations

import dataclasses
import uuid

import httpx
from api_support import memory_credential, runbook_yaml
from webhook_receiver import receiver
from workflow_env import eventually

from keyturn.api import create_app


def with_notify(account: str, notify: str) -> str:
    text = runbook_yaml(f"    - id: t1\n      credentials:\n{memory_credential(account)}")
    return text.replace("  stores:", f"  notify:\n    - {notify}\n  stores:", 1)


async def test_a_posted_webhook_url_to_a_local_service_is_refused(api_stack):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    with receiver() as hooks:
        text = with_notify(account, f"{{url: '{hooks.url('/internal')}'}}")
        for route in ("/v1/runs", "/v1/preflight"):
            response = await api_stack.post(route, "erin", {"runbook_yaml": text})
            assert response.status_code == 422, response.text
            body = response.json()
            assert body["code"] == "invalid_runbook" and (body["line"], body["column"]) == (8, 13)
            assert "KEYTURN_API_NOTIFY_HOSTS" in body["message"]
        assert hooks.posts == []


async def test_an_allow_listed_host_is_notified(api_stack):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    settings = dataclasses.replace(api_stack.settings, notify_hosts=("127.0.0.1",))
    app = create_app(settings, client=api_stack.client, store_for=lambda plan: api_stack.store)
    with receiver() as hooks:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api") as http:
            response = await http.post("/v1/runs", headers=api_stack.auth("erin"), json={
                "runbook_yaml": with_notify(account, f"{{url: '{hooks.url('/ok')}'}}")})
            assert response.status_code == 201, response.text
        run_id = response.json()["run_id"]
        await api_stack.ended(run_id)
        ended = await eventually(lambda: _run_ended(hooks, run_id), timeout=20)
        assert ended[0]["text"].endswith("succeeded: tiers: 1 succeeded")


async def _run_ended(hooks, run_id: str) -> list[dict] | None:
    return [b for b in hooks.bodies("/ok") if f"keyturn: run {run_id} " in b["text"]] or None


async def test_url_env_must_name_a_webhook_variable(api_stack):
    refused = await api_stack.post("/v1/preflight", "erin", {
        "runbook_yaml": with_notify("k1", "{url_env: VAULT_ADDR}")})
    assert refused.status_code == 422 and "_WEBHOOK_URL" in refused.json()["message"]
    allowed = await api_stack.post("/v1/preflight", "erin", {
        "runbook_yaml": with_notify("k1", "{url_env: SLACK_WEBHOOK_URL}")})
    assert allowed.status_code == 200, allowed.text


async def test_a_runbook_on_the_server_may_name_a_url(api_stack):
    (api_stack.runbook_dir / "local-hook.yaml").write_text(
        with_notify("k1", "{url: 'http://127.0.0.1:9/hook'}"))
    response = await api_stack.post("/v1/preflight", "erin", {"runbook": "local-hook"})
    assert response.status_code == 200, response.text
