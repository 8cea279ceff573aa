"""PreflightWorkflow through the real preflight activity: it finds what would stop a run,
and changes nothing (in-memory provider and store; real time-skipping server)."""

from __future__ import annotations

from record_histories import HEADER, cred, tier
from workflow_env import harness

from keyturn.operations.preflight import gate_checks, preflight
from keyturn.runbook import loads, plan, validate


async def test_preflight_reports_each_problem_and_changes_nothing(tmp_path):
    async with harness(tmp_path) as h:
        for account in ("ok", "failing", "shaped", "stale"):
            key_id, secret = h.provider.seed(account)
            h.store.write(f"app/{account}", secret, {"credential_id": key_id})
        h.store.write("app/shaped", {"KEY": "k", "SECRET": "s", "region": "eu"}, {})
        h.store.write("app/stale", {"key_id": "stale-k0", "key_secret": "s"}, {})
        text = HEADER + tier(
            "tier1", cred("ok"), cred("failing", fail_at="precheck"), cred("shaped"),
            cred("stale"),
            extra="      gate: {approvals: 1, from: security}\n")
        plan = h.plan(text, requested_by="dave")
        versions = {p: len(v) for p, v in h.store.paths.items()}

        report = await preflight(h.client, plan, h.task_queue)

        checks = {c.credential: c for c in report.credentials}
        assert [c.credential for c in report.credentials] == ["ok", "failing", "shaped", "stale"]
        assert checks["ok"].ready and checks["ok"].notes == ["would replace ok-k1"]
        assert not report.ready
        failing = checks["failing"].problems
        assert [p.check for p in failing] == ["provider precheck"]
        assert "injected failure at precheck" in failing[0].message
        shaped = checks["shaped"].problems[0]
        assert shaped.check == "store shape"
        assert "holds fields KEY, SECRET, region, without key_id, key_secret" in shaped.message
        stale = checks["stale"].problems[0]
        assert stale.check == "provider precheck" and "stale-k0" in stale.message
        assert [g.gate for g in report.gates] == ["tier tier1"]
        assert report.gates[0].eligible == ["alice", "bob", "carol"]  # dave requested the run
        # nothing changed: no step past precheck, no store write
        assert {step for _, step in h.provider.calls} == {"precheck"}
        assert {p: len(v) for p, v in h.store.paths.items()} == versions
        assert h.records() == []


def test_a_distinct_gate_excludes_the_requester_from_the_eligible_approvers():
    text = HEADER + tier("tier1", cred(
        "a", "gate: {before: revoke, approvals: 2, from: security, distinct: true}"))
    runbook = validate(loads(text, "test.yaml"), known_providers=["memory.key"])
    (gate,) = gate_checks(plan(runbook, run_id="r", requested_by="bob", source_sha256="0"))
    assert gate.gate == "credential a before revoke"
    assert gate.eligible == ["alice", "carol", "dave"] and gate.ready
