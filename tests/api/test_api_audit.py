"""Audit over the API: a run's records name the authenticated principals who decided its
gates, with their reasons; verification reports an intact or a tampered log, in a JSONL
file or in PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import uuid

import httpx
from api_support import memory_credential, runbook_yaml

from keyturn.api import create_app
from keyturn.audit import AuditEvent, event_id
from keyturn.audit.postgres import PostgresAuditLog
from keyturn.audit.postgres_sql import RECORDS


async def test_the_audit_log_records_the_authenticated_approver_and_reason(api_stack):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    run_id = await api_stack.start(runbook_yaml(
        "    - id: t1\n      gate: {approvals: 1, from: security}\n      credentials:\n"
        + memory_credential(account)), who="alice")
    await api_stack.open_gate(run_id, "t1")
    refused = await api_stack.post(f"/v1/runs/{run_id}/gates/t1/approve", "bob",
                                   {"reason": "as erin", "principal": "erin"})
    assert refused.status_code == 422  # the body cannot name who approves
    approved = await api_stack.post(f"/v1/runs/{run_id}/gates/t1/approve", "bob",
                                    {"reason": "INC bridge agreed"})
    assert approved.status_code == 200 and approved.json()["principal"] == "bob"
    assert (await api_stack.ended(run_id))["state"] == "succeeded"

    response = await api_stack.get(f"/v1/runs/{run_id}/audit", "dave")
    assert response.status_code == 200
    body = response.json()
    assert body["run"] == run_id and {r["run"] for r in body["records"]} == {run_id}
    seqs = [r["seq"] for r in body["records"]]
    assert seqs == sorted(seqs)
    gate = [(r["outcome"], r["actor"], r["details"].get("reason")) for r in body["records"]
            if r["step"] == "gate"]
    assert gate == [("opened", "worker", None), ("approved", "bob", "INC bridge agreed"),
                    ("passed", "worker", None)]
    opened = next(r for r in body["records"] if (r["step"], r["outcome"]) == ("gate", "opened"))
    assert opened["details"]["requested_by"] == "alice"
    for who in ("alice", "bob", "erin"):
        assert (await api_stack.get(f"/v1/runs/{run_id}/audit", who)).status_code == 403


async def test_verification_reports_an_intact_log(api_stack):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    await api_stack.ended(await api_stack.start(runbook_yaml(
        "    - id: t1\n      credentials:\n" + memory_credential(account))))
    response = await api_stack.get("/v1/audit/verify", "dave")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["records"] >= 5 and body["problems"] == []
    assert body["head"]["seq"] == body["records"] and len(body["head"]["hash"]) == 64


def _app_with(api_stack, **audit):
    """The stack's app reading another audit log (`audit_log=path` or `audit_dsn=dsn`)."""
    settings = dataclasses.replace(api_stack.settings, keyturn=dataclasses.replace(
        api_stack.settings.keyturn, **audit))
    return create_app(settings, client=api_stack.client)


async def _get(app, path, headers):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        return await http.get(path, headers=headers)


async def test_verification_names_the_first_tampered_record(api_stack, tmp_path):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    await api_stack.ended(await api_stack.start(runbook_yaml(
        "    - id: t1\n      credentials:\n" + memory_credential(account))))
    lines = api_stack.audit_path.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[2])
    record["actor"] = "mallory"
    lines[2] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(b"".join(lines))

    app = _app_with(api_stack, audit_log=tampered)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        response = await http.get("/v1/audit/verify", headers=api_stack.auth("dave"))
        assert response.status_code == 200
        body = response.json()
        assert body["ok"] is False and body["first_bad_seq"] == 3 and body["reason"]

        missing = _app_with(api_stack, audit_log=tmp_path / "none.jsonl")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=missing),
                                 base_url="http://api") as http:
        response = await http.get("/v1/audit/verify", headers=api_stack.auth("dave"))
        assert response.status_code == 404 and response.json()["code"] == "not_found"


def _pg_run(dsn: str, run_id: str) -> None:
    log = PostgresAuditLog(dsn)
    for step in ("precheck", "create", "verify_new", "promote"):
        log.append(AuditEvent(run=run_id, event_id=event_id(run_id, "c", step), step=step,
                              outcome="succeeded", actor="worker", credential="c"))
    log.append(AuditEvent(run="other", event_id=event_id("other", None, "run"), step="run",
                          outcome="started", actor="worker"))
    log.close()


async def test_the_routes_read_a_postgresql_log(api_stack, audit_database):
    run_id = f"pg-{uuid.uuid4().hex[:8]}"
    _pg_run(audit_database.dsn, run_id)
    app, dave = _app_with(api_stack, audit_dsn=audit_database.dsn), api_stack.auth("dave")

    records = (await _get(app, f"/v1/runs/{run_id}/audit", dave)).json()["records"]
    assert [(r["seq"], r["step"]) for r in records] == [
        (1, "precheck"), (2, "create"), (3, "verify_new"), (4, "promote")]
    response = await _get(app, "/v1/audit/verify", dave)
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["records"] == 5
    assert body["path"].startswith("postgresql ") and audit_database.password not in response.text

    with audit_database.superuser() as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(f"DELETE FROM {RECORDS} WHERE seq = 2")
    body = (await _get(app, "/v1/audit/verify", dave)).json()
    assert body["ok"] is False and body["first_bad_seq"] == 2


async def test_postgresql_errors_do_not_show_the_password(api_stack, audit_database):
    empty = _app_with(api_stack, audit_dsn=audit_database.dsn)
    response = await _get(empty, "/v1/audit/verify", api_stack.auth("dave"))
    assert response.status_code == 404 and "tables do not exist" in response.json()["message"]

    password = "wrong-" + audit_database.password
    refused = _app_with(api_stack, audit_dsn=audit_database.dsn_for(audit_database.owner, password))
    for path in ("/v1/audit/verify", "/v1/runs/any/audit"):
        response = await _get(refused, path, api_stack.auth("dave"))
        assert response.status_code == 500 and response.json()["code"] == "audit_unreadable"
        assert "password authentication failed" in response.text and password not in response.text


async def test_a_body_that_is_not_json_is_an_invalid_request(api_stack):
    response = await api_stack.http.post("/v1/runs", content=b"\xff\xfe{",
                                         headers={**api_stack.auth("alice"),
                                                  "Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"
