"""Runs over the API on a real Temporal: start, list, describe, gates (quorum, distinct,
groups, rejection), cancel, supply, and every refusal with its stable code."""

from __future__ import annotations

import dataclasses
import logging
import uuid

import httpx
import pytest
from api_support import memory_credential, runbook_yaml
from workflow_env import eventually

from keyturn.api import create_app
from keyturn.config import Settings


def uid() -> str:
    return uuid.uuid4().hex[:8]


def tier(tier_id: str, *credentials: str, extra: str = "") -> str:
    return f"    - id: {tier_id}\n{extra}      credentials:\n" + "".join(credentials)


def gated(cid: str, gate: str) -> str:
    return memory_credential(cid, extra=f"          gate: {gate}\n")


# ---- start ---------------------------------------------------------------------------


async def test_a_run_started_from_yaml_is_requested_by_the_authenticated_principal(api_stack):
    account = f"k{uid()}"
    old = api_stack.seed(account)[account]
    response = await api_stack.post("/v1/runs", "alice",
                                    {"runbook_yaml": runbook_yaml(tier("t1", memory_credential(account)))})
    assert response.status_code == 201, response.text
    started = response.json()
    assert started["requested_by"] == "alice" and started["runbook"] == "api-test"
    assert started["run_id"].startswith("api-test-") and started["state"] is None

    detail = await api_stack.ended(started["run_id"])
    assert detail["state"] == "succeeded" and detail["requested_by"] == "alice"
    (cred,) = detail["credentials"]
    assert cred["credential"] == account and cred["state"] == "succeeded"
    assert cred["old_credential_ids"] == [old]
    assert cred["new_credential_id"] in api_stack.provider.keys[account]
    assert cred["new_fingerprint"].startswith("sha256:")
    assert list(dict.fromkeys(s["step"] for s in cred["steps"]))[:3] == [
        "precheck", "create", "verify_new"]
    assert detail["open_gates"] == [] and detail["tiers"][0]["state"] == "succeeded"


async def test_wait_answers_once_the_run_has_ended(api_stack):
    account = f"k{uid()}"
    api_stack.seed(account)
    text = runbook_yaml(tier("t1", memory_credential(account)))
    response = await api_stack.post("/v1/runs", "erin", {"runbook_yaml": text, "wait": True})
    assert response.status_code == 201
    assert response.json()["state"] == "succeeded"


async def test_a_run_starts_from_a_runbook_name_in_the_runbook_directory(api_stack):
    account = f"k{uid()}"
    api_stack.seed(account)
    (api_stack.runbook_dir / "rotate-one.yaml").write_text(
        runbook_yaml(tier("t1", memory_credential(account)), name="rotate-one"))
    response = await api_stack.post("/v1/runs", "alice", {"runbook": "rotate-one"})
    assert response.status_code == 201, response.text
    assert response.json()["runbook"] == "rotate-one"
    assert (await api_stack.ended(response.json()["run_id"]))["state"] == "succeeded"


async def test_an_invalid_runbook_is_422_with_file_line_and_column(api_stack):
    text = runbook_yaml(tier("t1", memory_credential("x1", provider="no.such-provider")))
    response = await api_stack.post("/v1/runs", "alice", {"runbook_yaml": text})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_runbook" and body["file"] == "runbook_yaml"
    line = text.splitlines()[body["line"] - 1]
    assert "no.such-provider" in line[body["column"] - 1:]
    assert body["message"].startswith(f"runbook_yaml:{body['line']}:{body['column']}: ")

    broken = await api_stack.post("/v1/runs", "alice",
                                  {"runbook_yaml": "apiVersion: keyturn/v1\nkind: [unclosed\n"})
    assert broken.status_code == 422 and broken.json()["code"] == "invalid_runbook"
    assert broken.json()["line"] >= 2

    (api_stack.runbook_dir / "bad.yaml").write_text("apiVersion: keyturn/v1\nkind: Runbook\n")
    named = await api_stack.post("/v1/runs", "alice", {"runbook": "bad"})
    assert named.status_code == 422 and named.json()["code"] == "invalid_runbook"
    assert named.json()["file"].endswith("bad.yaml") and named.json()["line"] >= 1


async def test_runbook_yaml_sent_to_the_api_cannot_read_the_servers_secrets(
    api_stack, monkeypatch
):
    monkeypatch.setenv("KEYTURN_TEST_SERVER_SECRET", "server-side-secret-value")
    text = runbook_yaml(tier("t1", memory_credential("x1"))).replace(
        "api-test", "\"${KEYTURN_TEST_SERVER_SECRET}\"")
    response = await api_stack.post("/v1/runs", "alice", {"runbook_yaml": text})
    assert response.status_code == 422 and response.json()["code"] == "invalid_runbook"
    assert "KEYTURN_TEST_SERVER_SECRET is not set" in response.json()["message"]
    assert "server-side-secret-value" not in response.text


@pytest.mark.parametrize("name", ["../secret", "..", "a/../../etc/passwd", "/etc/passwd",
                                  "sub/rb", ".hidden", "a..b", "rb\\..\\x", "%2e%2e%2fx", ""])
async def test_a_runbook_name_that_could_leave_the_directory_is_refused(api_stack, name):
    secret = api_stack.runbook_dir.parent / "secret.yaml"
    secret.write_text(runbook_yaml(tier("t1", memory_credential("x1"))))
    response = await api_stack.post("/v1/runs", "alice", {"runbook": name})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"


async def test_an_unknown_runbook_name_is_404(api_stack):
    response = await api_stack.post("/v1/runs", "alice", {"runbook": "nope"})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.parametrize("body", [{}, {"runbook": "a", "runbook_yaml": "x"},
                                  {"runbook": "a", "requested_by": "mallory"}, []])
async def test_start_takes_exactly_one_runbook_and_nothing_else(api_stack, body):
    response = await api_stack.post("/v1/runs", "alice", body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request" and response.json()["errors"]


# ---- list and describe ---------------------------------------------------------------


async def test_runs_are_listed_by_incident_and_state(api_stack):
    incident, done, waiting = f"INC-{uid()}", f"k{uid()}", f"k{uid()}"
    api_stack.seed(done, waiting)
    finished = await api_stack.start(runbook_yaml(tier("t1", memory_credential(done)),
                                                  incident=incident))
    running = await api_stack.start(runbook_yaml(
        tier("t1", gated(waiting, "{before: promote, approvals: 1, from: security}")),
        incident=incident))
    await api_stack.ended(finished)
    await api_stack.open_gate(running, waiting)

    async def listed(query: str) -> set[str] | None:
        response = await api_stack.get(f"/v1/runs?incident={incident}{query}", "bob")
        assert response.status_code == 200
        found = {r["run_id"]: r for r in response.json()["runs"]}
        return found or None

    everything = await eventually(
        lambda: _when(listed(""), lambda f: set(f) == {finished, running}))
    assert everything[finished]["state"] == "succeeded"
    assert everything[running]["incident"] == incident
    assert everything[running]["runbook"] == "api-test"
    assert everything[running]["requested_by"] == "erin"  # the default starter
    assert set(await listed("&state=running")) == {running}
    assert set(await listed("&state=succeeded")) == {finished}
    assert len((await api_stack.get(f"/v1/runs?incident={incident}&limit=1")).json()["runs"]) == 1
    await api_stack.post(f"/v1/runs/{running}/cancel", "alice")


async def test_held_targets_are_listed_and_a_run_may_be_told_to_wait(api_stack):
    account = f"k{uid()}"
    api_stack.seed(account)
    text = runbook_yaml(tier("t1", gated(account, "{before: promote, approvals: 1, from: security}")))
    holder = await api_stack.start(text)
    await api_stack.open_gate(holder, account)

    async def held():
        response = await api_stack.get("/v1/runs", "bob")
        assert response.status_code == 200
        return [h for h in response.json()["locks"] if h["run_id"] == holder]
    (lock,) = await eventually(held)
    assert (lock["credential"], lock["provider"], lock["target"]) == (
        account, "memory.key", f"account={account}")
    assert lock["since"] and len(lock["lock_key"]) == 32

    started = await api_stack.post("/v1/runs", "erin", {"runbook_yaml": text, "on_locked": "wait"})
    assert started.status_code == 201, started.text
    waiter = started.json()["run_id"]

    async def waiting():
        detail = (await api_stack.get(f"/v1/runs/{waiter}")).json()
        steps = [c["steps"] for c in detail.get("credentials", []) if c["credential"] == account]
        return steps and steps[0] and steps[0][-1]["step"] == "lock" \
            and steps[0][-1]["outcome"] == "waiting" and holder in steps[0][-1]["detail"]
    await eventually(waiting)
    refused = await api_stack.post("/v1/runs", "erin", {"runbook_yaml": text, "on_locked": "no"})
    assert refused.status_code == 422
    for run_id in (waiter, holder):
        await api_stack.post(f"/v1/runs/{run_id}/cancel", "alice")


async def _when(awaitable, predicate):
    value = await awaitable
    return value if value and predicate(value) else None


@pytest.mark.parametrize("query", ["state=exploded", "incident=x'%20OR%20'1'='1", "limit=0",
                                   "limit=100000"])
async def test_list_filters_are_checked(api_stack, query):
    response = await api_stack.get(f"/v1/runs?{query}")
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


async def test_the_run_detail_shows_every_credential_and_the_open_gates_with_their_effect(api_stack):
    first, later = f"k{uid()}", f"k{uid()}"
    api_stack.seed(first, later)
    run_id = await api_stack.start(runbook_yaml(
        tier("t1", gated(first, "{before: promote, approvals: 1, from: security}"))
        + tier("t2", memory_credential(later),
               extra="      after: [t1]\n      gate: {approvals: 2, from: security}\n")))
    gate = await api_stack.open_gate(run_id, first)
    assert gate["kind"] == "credential" and gate["before"] == "promote" and gate["tier"] == "t1"
    assert (gate["approvals"], gate["needed"], gate["approved_by"]) == (0, 1, [])
    assert gate["approvers"] == ["bob", "carol", "erin"] and gate["groups"] == ["security"]
    assert f"becomes current in vault:app/{first}" in gate["effect"]

    detail = await api_stack.detail(run_id)
    states = {c["credential"]: c["state"] for c in detail["credentials"]}
    assert states == {first: "running", later: "pending"}
    assert [t["tier"] for t in detail["tiers"]] == ["t1", "t2"]

    approved = await api_stack.post(f"/v1/runs/{run_id}/gates/{first}/approve", "bob")
    assert approved.status_code == 200 and approved.json()["status"] == "passed"
    tier_gate = await api_stack.open_gate(run_id, "t2")
    assert tier_gate["kind"] == "tier" and tier_gate["needed"] == 2
    assert tier_gate["effect"].startswith("Tier t2 starts once 1 more approval")
    assert later in tier_gate["effect"]
    await api_stack.post(f"/v1/runs/{run_id}/cancel", "alice")


# ---- gates -----------------------------------------------------------------------------


async def test_a_distinct_quorum_gate_refuses_the_requester_and_double_votes(api_stack):
    account = f"k{uid()}"
    api_stack.seed(account)
    gate = "{before: revoke, approvals: 2, from: security, distinct: true}"
    run_id = await api_stack.start(runbook_yaml(tier("t1", gated(account, gate))), who="erin")
    await api_stack.open_gate(run_id, account)
    url = f"/v1/runs/{run_id}/gates/{account}/approve"

    own = await api_stack.post(url, "erin", {"reason": "mine"})
    assert own.status_code == 403
    assert own.json() | {"message": ""} == {"code": "gate_refused", "reason": "self_approval",
                                            "message": ""}
    assert "distinct" in own.json()["message"]

    first = await api_stack.post(url, "bob", {"reason": "new key verified"})
    assert first.status_code == 200
    assert first.json() == {"target": account, "gate": "revoke", "status": "open",
                            "approvals": 1, "needed": 2, "principal": "bob"}
    again = await api_stack.post(url, "bob", {"reason": "really"})
    assert again.status_code == 409 and again.json()["reason"] == "already_approved"
    assert (await api_stack.open_gate(run_id, account))["approved_by"] == ["bob"]

    second = await api_stack.post(url, "carol", {"reason": "agreed"})
    assert second.status_code == 200 and second.json()["status"] == "passed"
    assert (await api_stack.ended(run_id))["state"] == "succeeded"
    late = await api_stack.post(url, "carol", {"reason": "late"})
    assert late.status_code == 409
    assert (late.json()["code"], late.json()["reason"]) == ("gate_refused", "gate_closed")

    approvals = [(r.actor, r.details.get("reason")) for r in api_stack.records(run_id)
                 if (r.step, r.outcome) == ("gate", "approved")]
    assert approvals == [("bob", "new key verified"), ("carol", "agreed")]


async def test_an_approver_outside_the_gates_groups_is_refused(api_stack):
    account = f"k{uid()}"
    api_stack.seed(account)
    run_id = await api_stack.start(runbook_yaml(
        tier("t1", memory_credential(account), extra="      gate: {approvals: 1, from: ops}\n"),
        approvers="security: [bob, erin]\n    ops: [carol]"))
    gate = await api_stack.open_gate(run_id, "t1")
    assert gate["approvers"] == ["carol"]
    url = f"/v1/runs/{run_id}/gates/t1/approve"

    outsider = await api_stack.post(url, "bob", {"reason": "let me"})
    assert outsider.status_code == 403
    assert outsider.json()["reason"] == "not_an_approver" and "ops" in outsider.json()["message"]
    no_role = await api_stack.post(url, "alice", {"reason": "let me"})
    assert no_role.status_code == 403 and no_role.json()["code"] == "forbidden"
    spoofed = await api_stack.post(url, "bob", {"reason": "as carol", "principal": "carol"})
    assert spoofed.status_code == 422 and spoofed.json()["code"] == "invalid_request"

    member = await api_stack.post(url, "carol")  # no body: the reason is optional
    assert member.status_code == 200 and member.json()["status"] == "passed"
    assert (await api_stack.ended(run_id))["state"] == "succeeded"
    tier_approvals = [r.actor for r in api_stack.records(run_id)
                      if (r.step, r.outcome, r.tier) == ("gate", "approved", "t1")]
    assert tier_approvals == ["carol"]


async def test_a_rejection_needs_a_reason_and_closes_the_gate(api_stack):
    account = f"k{uid()}"
    old = api_stack.seed(account)[account]
    run_id = await api_stack.start(runbook_yaml(
        tier("t1", gated(account, "{before: promote, approvals: 1, from: security}"))))
    await api_stack.open_gate(run_id, account)
    url = f"/v1/runs/{run_id}/gates/{account}/reject"

    missing = await api_stack.post(url, "bob")
    assert missing.status_code == 422 and missing.json()["code"] == "invalid_request"
    for reason in ("", "   "):
        blank = await api_stack.post(url, "bob", {"reason": reason})
        assert blank.status_code == 422
        assert (blank.json()["code"], blank.json()["reason"]) == ("gate_refused", "reason_required")

    rejected = await api_stack.post(url, "bob", {"reason": "wrong account"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    after = await api_stack.post(f"/v1/runs/{run_id}/gates/{account}/approve", "carol")
    assert after.status_code == 409 and after.json()["reason"] == "gate_closed"

    detail = await api_stack.ended(run_id)
    assert detail["state"] == "failed"
    assert list(api_stack.provider.keys[account]) == [old]  # rolled back, old key kept
    (record,) = [r for r in api_stack.records(run_id) if (r.step, r.outcome) == ("gate", "rejected")]
    assert record.actor == "bob" and record.details["reason"] == "wrong account"


async def test_unknown_runs_and_targets_are_404(api_stack):
    account = f"k{uid()}"
    api_stack.seed(account)
    run_id = await api_stack.start(runbook_yaml(
        tier("t1", gated(account, "{before: promote, approvals: 1, from: security}"))))
    await api_stack.open_gate(run_id, account)
    for who, method, path, body in [
        ("dave", "GET", "/v1/runs/no-such-run", None),
        ("bob", "POST", "/v1/runs/no-such-run/gates/t1/approve", {}),
        ("bob", "POST", "/v1/runs/no-such-run/gates/t1/reject", {"reason": "x"}),
        ("alice", "POST", "/v1/runs/no-such-run/cancel", None),
        ("alice", "POST", "/v1/runs/no-such-run/credentials/c1/supply", {"value": "v"}),
        ("dave", "GET", "/v1/runs/no-such-run/audit", None),
        ("bob", "POST", f"/v1/runs/{run_id}/gates/nope/approve", {}),
        ("alice", "POST", f"/v1/runs/{run_id}/credentials/nope/supply", {"value": "v"}),
        ("dave", "GET", f"/v1/runs/{run_id}.cred.{account}", None),  # a child, not a run
        ("dave", "GET", "/v1/nothing-here", None),
    ]:
        response = await api_stack.call(method, path, who, json=body)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "not_found" and response.json()["message"]
    await api_stack.post(f"/v1/runs/{run_id}/cancel", "alice")


async def test_a_wrong_method_is_a_json_405(api_stack):
    response = await api_stack.call("DELETE", "/v1/runs", "alice")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


# ---- cancel ----------------------------------------------------------------------------


async def test_an_operator_cancels_a_run_and_its_gate_closes(api_stack):
    account = f"k{uid()}"
    old = api_stack.seed(account)[account]
    run_id = await api_stack.start(runbook_yaml(
        tier("t1", gated(account, "{before: promote, approvals: 1, from: security}"))))
    await api_stack.open_gate(run_id, account)

    # alice cancels a run erin started: the audit log says so, with her reason
    response = await api_stack.post(f"/v1/runs/{run_id}/cancel", "alice",
                                    {"reason": "wrong incident"})
    assert response.status_code == 202
    assert response.json() == {"run_id": run_id, "status": "cancel_requested"}
    detail = await api_stack.until(run_id, lambda d: d["state"] == "cancelled")

    async def run_records() -> dict | None:
        found = {r.outcome: r for r in api_stack.records(run_id) if r.step == "run"}
        return found if "cancelled" in found else None

    records = await eventually(run_records)
    assert (records["started"].actor, records["started"].details["requested_by"]) == ("erin",) * 2
    assert (records["cancelled"].actor, records["cancelled"].details) == (
        "alice", {"reason": "wrong incident"})
    assert detail["credentials"][0]["state"] == "cancelled"
    late = await api_stack.post(f"/v1/runs/{run_id}/gates/{account}/approve", "bob")
    assert late.status_code == 409 and late.json()["reason"] == "gate_closed"

    async def rolled_back() -> bool:
        return list(api_stack.provider.keys[account]) == [old]

    assert await eventually(rolled_back)

    async def ended() -> bool:
        again = await api_stack.post(f"/v1/runs/{run_id}/cancel", "alice")
        return again.status_code == 409 and again.json()["code"] == "conflict"

    assert await eventually(ended)


# ---- supply ----------------------------------------------------------------------------


async def test_a_supplied_value_goes_to_the_store_and_is_never_echoed(api_stack, caplog):
    caplog.set_level(logging.DEBUG)
    account = f"p{uid()}"
    old_id, old_secret = api_stack.supplied.seed(account)
    api_stack.store.write(f"app/{account}", old_secret, {"credential_id": old_id})
    run_id = await api_stack.start(runbook_yaml(
        tier("t1", memory_credential(account, provider="memory.supplied"))), who="alice")
    await api_stack.until(run_id, lambda d: d["credentials"][0]["steps"]
                          and d["credentials"][0]["steps"][-1]["outcome"] == "waiting")
    value = api_stack.supplied.mint(account)["token"]
    url = f"/v1/runs/{run_id}/credentials/{account}/supply"
    responses = []

    for who in ("bob", "dave"):
        responses.append(await api_stack.post(url, who, {"value": value}))
        assert responses[-1].status_code == 403
    for body in ({"value": value, "extra": 1}, {"value": [value]}, {"value": value, "field": "a/b"},
                 {"value": ""}):
        responses.append(await api_stack.post(url, "alice", body))
        assert responses[-1].status_code == 422, responses[-1].text

    supplied = await api_stack.post(url, "alice", {"value": value})
    responses.append(supplied)
    assert supplied.status_code == 202, supplied.text
    assert supplied.json()["credential"] == account
    assert supplied.json()["fingerprint"].startswith("sha256:")
    assert (await api_stack.ended(run_id))["state"] == "succeeded"
    assert api_stack.store.read(f"app/{account}").secret == {"token": value}

    responses.append(await api_stack.post(url, "alice", {"value": value}))
    assert responses[-1].status_code == 409 and responses[-1].json()["code"] == "conflict"
    responses.append(await api_stack.get(f"/v1/runs/{run_id}"))
    responses.append(await api_stack.get(f"/v1/runs/{run_id}/audit"))
    for response in responses:
        assert value not in response.text
    assert value not in caplog.text
    assert value not in api_stack.audit_path.read_text()
    (record,) = [r for r in api_stack.records(run_id) if r.step == "supply"]
    assert record.actor == "alice" and record.details["fingerprint"] == supplied.json()["fingerprint"]


async def test_supply_is_refused_for_a_credential_its_provider_creates(api_stack):
    account = f"k{uid()}"
    api_stack.seed(account)
    run_id = await api_stack.start(runbook_yaml(
        tier("t1", gated(account, "{before: promote, approvals: 1, from: security}"))))
    await api_stack.open_gate(run_id, account)
    response = await api_stack.post(f"/v1/runs/{run_id}/credentials/{account}/supply", "erin",
                                    {"value": "not-for-this-one"})
    assert response.status_code == 409 and "created by its provider" in response.json()["message"]
    assert "not-for-this-one" not in response.text
    await api_stack.post(f"/v1/runs/{run_id}/cancel", "alice")


# ---- Temporal away -----------------------------------------------------------------------


async def test_without_temporal_the_api_answers_503(api_stack):
    settings = dataclasses.replace(api_stack.settings, keyturn=dataclasses.replace(
        api_stack.settings.keyturn, temporal_address="127.0.0.1:1"))
    assert isinstance(settings.keyturn, Settings)
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        response = await http.get("/v1/runs/x", headers=api_stack.auth("dave"))
        assert response.status_code == 503
        assert response.json()["code"] == "temporal_unavailable"
        assert (await http.get("/v1/whoami", headers=api_stack.auth("dave"))).status_code == 200


async def test_the_live_server_serves_the_api_over_real_http(live_api):
    stack = live_api.stack
    account = f"k{uid()}"
    stack.seed(account)
    async with httpx.AsyncClient(base_url=live_api.url, headers=stack.auth("erin")) as http:
        started = await http.post("/v1/runs", json={
            "runbook_yaml": runbook_yaml(tier("t1", memory_credential(account)))})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]

        async def ended():
            detail = (await http.get(f"/v1/runs/{run_id}")).json()
            return detail if detail["state"] == "succeeded" else None

        assert (await eventually(ended))["requested_by"] == "erin"


# ---- preflight -----------------------------------------------------------------------


async def test_preflight_reports_without_changing_anything(api_stack):
    ready, unseeded = f"k{uid()}", f"k{uid()}"
    api_stack.seed(ready)
    text = runbook_yaml(tier("t1", memory_credential(ready), memory_credential(unseeded)))
    response = await api_stack.post("/v1/preflight", "alice", {"runbook_yaml": text})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ready"] is False and report["requested_by"] == "alice"
    checks = {c["credential"]: c for c in report["credentials"]}
    assert checks[ready]["ready"] and checks[ready]["problems"] == []
    assert checks[unseeded]["problems"][0]["check"] == "provider precheck"
    assert (await api_stack.post("/v1/preflight", "bob", {"runbook_yaml": text})).status_code == 403
    assert unseeded not in api_stack.provider.keys


async def test_a_run_that_preflight_refuses_is_not_started(api_stack):
    ready, unseeded = f"k{uid()}", f"k{uid()}"
    old = api_stack.seed(ready)[ready]
    text = runbook_yaml(tier("t1", memory_credential(ready), memory_credential(unseeded)))
    response = await api_stack.post("/v1/runs", "alice", {"runbook_yaml": text})
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "preflight_failed" and "nothing was changed" in body["message"]
    assert body["report"]["ready"] is False
    assert list(api_stack.provider.keys[ready]) == [old]  # nothing rotated

    skipped = await api_stack.post("/v1/runs", "alice",
                                   {"runbook_yaml": text, "skip_preflight": True})
    assert skipped.status_code == 201, skipped.text
    run_id = skipped.json()["run_id"]
    assert (await api_stack.ended(run_id))["state"] == "failed"
    started = next(r for r in api_stack.records(run_id) if r.step == "run")
    assert started.details["preflight"] == "skipped by alice"
