"""What a person sees is the gate they approve: a runbook whose credential shares a tier's
id is refused, and where such a run already exists (started before the rule) an approval
must say which gate it means; a `kind` that does not match the target is refused."""

from __future__ import annotations

import hashlib
import uuid

from api_support import memory_credential, runbook_yaml

from keyturn.operations import runs
from keyturn.runbook import loads, plan

GATE = "          gate: {before: promote, approvals: 1, from: security}\n"


def clash(account: str) -> str:
    """Tier `account` (gated) and, in another tier, a credential `account` (gated)."""
    return runbook_yaml(
        f"    - id: t1\n      credentials:\n{memory_credential(account, extra=GATE)}"
        f"    - id: {account}\n      gate: {{approvals: 1, from: security}}\n"
        f"      credentials:\n{memory_credential(f'{account}-x')}")


async def test_a_runbook_whose_credential_id_is_a_tier_id_is_refused(api_stack):
    response = await api_stack.post("/v1/runs", "erin", {"runbook_yaml": clash("prod-wipe")})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_runbook"
    assert "is also a tier id" in body["message"] and body["line"] == 12


async def _clashing_run(api_stack) -> tuple[str, str]:
    """A run with the clash, started as one could before the rule (no validation)."""
    account = f"w{uuid.uuid4().hex[:8]}"
    api_stack.seed(account, f"{account}-x")
    text = clash(account)
    the_plan = plan(loads(text, "old.yaml"), run_id=f"clash-{account}", requested_by="erin",
                    source_sha256=hashlib.sha256(text.encode()).hexdigest())
    await runs.start(api_stack.client, the_plan, api_stack.task_queue,
                     search_attributes=api_stack.settings.search_attributes)
    await api_stack.until(the_plan.run_id, lambda d: {(g["kind"], g["target"]) for g in
                                                       d["open_gates"]} == {("tier", account),
                                                                            ("credential", account)})
    return the_plan.run_id, account


async def test_an_ambiguous_approval_is_refused_and_kind_picks_the_gate(api_stack):
    run_id, account = await _clashing_run(api_stack)
    approve = f"/v1/runs/{run_id}/gates/{account}/approve"
    page = (await api_stack.get(f"/ui/runs/{run_id}", "bob")).text
    for kind, before in (("tier", "tier"), ("credential", "promote")):
        assert f'{kind} <span class="mono">{account}</span>: gate before {before}' in page
        assert f'name="kind" value="{kind}"' in page

    ambiguous = await api_stack.post(approve, "bob", {"reason": "looks right"})
    assert ambiguous.status_code == 409, ambiguous.text
    assert "both a tier and a credential" in ambiguous.json()["message"]

    decided = await api_stack.post(approve, "bob", {"reason": "new key ok", "kind": "credential"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["gate"] == "promote"
    detail = await api_stack.until(run_id, lambda d: len(d["open_gates"]) == 1)
    assert [(g["kind"], g["target"]) for g in detail["open_gates"]] == [("tier", account)]
    await api_stack.post(f"/v1/runs/{run_id}/cancel", "alice")


async def test_a_kind_that_does_not_match_the_target_is_refused(api_stack):
    account = f"k{uuid.uuid4().hex[:8]}"
    api_stack.seed(account)
    run_id = await api_stack.start(runbook_yaml(
        f"    - id: t1\n      credentials:\n{memory_credential(account, extra=GATE)}"))
    await api_stack.open_gate(run_id, account)
    wrong = await api_stack.post(f"/v1/runs/{run_id}/gates/{account}/approve", "bob",
                                 {"kind": "tier"})
    assert wrong.status_code == 404 and f"no tier '{account}'" in wrong.json()["message"]
    right = await api_stack.post(f"/v1/runs/{run_id}/gates/{account}/approve", "bob",
                                 {"kind": "credential"})
    assert right.status_code == 200 and right.json()["status"] == "passed"
