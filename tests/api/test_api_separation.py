"""Separation of duties over the API: an operator who is also an approver cannot approve her
own run by posting a runbook that names her its approver; the server's setting, not the
runbook, decides whether a requester may approve at all."""

from __future__ import annotations

import dataclasses
import uuid

import httpx
from api_support import memory_credential, runbook_yaml

from keyturn.api import create_app

SELF_APPROVED = "          gate: {before: revoke, approvals: 1, from: ops}\n"


def _self_approving(account: str) -> str:
    return runbook_yaml(f"    - id: t1\n      credentials:\n"
                        f"{memory_credential(account, extra=SELF_APPROVED)}",
                        approvers="ops: [erin]")


async def test_a_posted_runbook_cannot_make_its_requester_its_approver(api_stack):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    response = await api_stack.post("/v1/runs", "erin", {"runbook_yaml": _self_approving(account)})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_runbook"
    assert "without 'erin' who requests this run" in body["message"]
    assert len(api_stack.provider.keys[account]) == 1  # nothing was created


async def test_where_the_server_allows_it_the_requester_may_approve(api_stack):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    keyturn = dataclasses.replace(api_stack.settings.keyturn, requester_may_approve=True)
    app = create_app(dataclasses.replace(api_stack.settings, keyturn=keyturn),
                     client=api_stack.client, store_for=lambda plan: api_stack.store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        started = await http.post("/v1/runs", headers=api_stack.auth("erin"),
                                  json={"runbook_yaml": _self_approving(account)})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        await api_stack.open_gate(run_id, account)
        approved = await http.post(f"/v1/runs/{run_id}/gates/{account}/approve",
                                   headers=api_stack.auth("erin"), json={"reason": "lab"})
        assert approved.status_code == 200 and approved.json()["status"] == "passed"
    assert (await api_stack.ended(run_id))["state"] == "succeeded"
