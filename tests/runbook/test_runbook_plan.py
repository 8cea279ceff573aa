"""Compiling runbooks into ExecutionPlans: order, gates, defaults, staging, run ids."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from keyturn.config import Settings
from keyturn.operations.plans import RunbookSource, compile_plan
from keyturn.policy.model import Policy
from keyturn.runbook import RunbookError, loads, new_run_id, plan, validate
from keyturn.runbook.plan_model import ExecutionPlan, GatePlan, Location

DEMO = Path(__file__).resolve().parents[2] / "runbooks" / "demo.yaml"
PROVIDERS = ["aws.iam_access_key", "aws.kms_key", "signing.vault_pki_cert"]
NOW = datetime(2026, 11, 22, 6, 15, 0, tzinfo=UTC)

RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {name: plan-test, incident: INC-1}
spec:
  approvers:
    security: [carol, alice, bob]
    ops: [dave, alice]
  defaults: {strategy: revoke-first, grace_period: 10m}
  stores:
    vault: {type: vault_kv, address: http://vault:8200, mount: secret}
    asm: {type: aws_secrets_manager, region: eu-west-1}
  tiers:
    - id: last
      name: Last
      after: [middle, first]
      gate: {from: [ops, security, ops], approvals: 2, timeout: 1h}
      credentials:
        - id: staged-in-first-store
          provider: aws.iam_access_key
          target: {user_name: u1}
    - id: first
      concurrency: 3
      credentials:
        - id: delivers-to-asm
          provider: aws.iam_access_key
          target: {user_name: u2}
          strategy: rotate
          grace_period: 0s
          deliver: [{store: asm, path: app/key}, {store: vault, path: app/key}]
          gate: {before: promote, from: security, distinct: true}
    - id: middle
      after: [first]
      credentials:
        - {id: m1, provider: aws.iam_access_key, target: {user_name: u3}, depends_on: [m2]}
        - {id: m2, provider: aws.iam_access_key, target: {user_name: u4}}
    - id: independent
      credentials:
        - {id: i1, provider: aws.iam_access_key, target: {user_name: u5}}
"""


def compiled(text: str = RUNBOOK, *, requester_may_approve: bool = False) -> ExecutionPlan:
    runbook = validate(loads(text), PROVIDERS)
    return plan(runbook, run_id="run-1", requested_by="alice", source_sha256="ab" * 32,
                policy=Policy.default(requesters_may_approve=requester_may_approve))


def test_tiers_in_topological_order_with_file_order_among_equals() -> None:
    # first and independent are ready at once; first comes first in the file and
    # unlocks middle and then last, both lower in file index than independent.
    assert [tier.id for tier in compiled().tiers] == ["first", "middle", "last", "independent"]


def test_header_fields() -> None:
    result = compiled()
    assert (result.run_id, result.runbook, result.incident) == ("run-1", "plan-test", "INC-1")
    assert (result.requested_by, result.source_sha256) == ("alice", "ab" * 32)


def test_stores_carry_their_configuration() -> None:
    stores = compiled().stores
    assert list(stores) == ["vault", "asm"]
    assert stores["vault"].type == "vault_kv"
    assert stores["vault"].config == {"address": "http://vault:8200", "mount": "secret"}
    assert stores["asm"].config == {"region": "eu-west-1"}


def test_tier_gate_resolves_groups_to_sorted_unique_principals() -> None:
    last = compiled().tier("last")
    assert last is not None
    assert last.gate == GatePlan(
        before="tier",
        approvals=2,
        groups=["ops", "security"],
        approvers=["alice", "bob", "carol", "dave"],
        distinct=True,  # the requester never approves, whatever the runbook says
        timeout=timedelta(hours=1),
    )
    assert last.after == ["middle", "first"]


def test_a_gate_is_distinct_as_written_only_where_requesters_may_approve() -> None:
    last = compiled(requester_may_approve=True).tier("last")
    assert last is not None and last.gate is not None and last.gate.distinct is False


def test_a_runbook_cannot_make_its_requester_an_approver_of_its_own_gates() -> None:
    # the attack: an operator who is also an approver posts a runbook naming herself
    text = RUNBOOK.replace("{before: promote, from: security, distinct: true}",
                           "{before: promote, from: self}").replace(
        "  approvers:\n", "  approvers:\n    self: [alice]\n", 1)
    with pytest.raises(RunbookError, match="without 'alice' who requests this run"):
        compiled(text)
    assert compiled(text, requester_may_approve=True).credential("delivers-to-asm")


def test_credential_gate_keeps_its_point_and_distinct() -> None:
    cred = compiled().credential("delivers-to-asm")
    assert cred is not None
    assert cred.gates == [
        GatePlan(
            before="promote",
            approvals=1,
            groups=["security"],
            approvers=["alice", "bob", "carol"],
            distinct=True,
        )
    ]
    assert cred.gate("promote") is cred.gates[0]
    assert compiled().credential("m1").gates == []  # type: ignore[union-attr]


def test_defaults_apply_only_where_the_credential_is_silent() -> None:
    result = compiled()
    defaulted = result.credential("staged-in-first-store")
    explicit = result.credential("delivers-to-asm")
    assert defaulted is not None and explicit is not None
    assert (defaulted.strategy, defaulted.grace_period) == ("revoke-first", timedelta(minutes=10))
    assert (explicit.strategy, explicit.grace_period) == ("rotate", timedelta(0))


def test_defaults_of_the_format_itself() -> None:
    text = RUNBOOK.replace("  defaults: {strategy: revoke-first, grace_period: 10m}\n", "")
    cred = compiled(text).credential("m1")
    assert cred is not None
    assert (cred.strategy, cred.grace_period) == ("rotate", timedelta(0))


def test_staging_uses_the_first_deliver_store_else_the_first_store() -> None:
    result = compiled()
    delivered = result.credential("delivers-to-asm")
    undelivered = result.credential("staged-in-first-store")
    assert delivered is not None and undelivered is not None
    assert delivered.staging == Location(store="asm", path="keyturn/staging/run-1/delivers-to-asm")
    assert delivered.deliver == [
        Location(store="asm", path="app/key"),
        Location(store="vault", path="app/key"),
    ]
    assert undelivered.staging == Location(
        store="vault", path="keyturn/staging/run-1/staged-in-first-store"
    )


def test_tier_fields_and_credential_order() -> None:
    result = compiled()
    first, middle = result.tier("first"), result.tier("middle")
    assert first is not None and middle is not None
    assert (first.concurrency, middle.concurrency) == (3, 10)
    assert [cred.id for cred in middle.credentials] == ["m1", "m2"]
    assert middle.credentials[0].depends_on == ["m2"]
    assert {cred.tier for cred in middle.credentials} == {"middle"}
    assert middle.credentials[0].target == {"user_name": "u3"}


def test_plan_survives_a_json_round_trip() -> None:
    result = compiled()
    assert ExecutionPlan.model_validate(result.model_dump(mode="json")) == result


def test_new_run_id_format() -> None:
    run_id = new_run_id("npm-axios-compromise", NOW)
    assert re.fullmatch(r"npm-axios-compromise-20261122t061500z-[0-9a-f]{4}", run_id)


def test_new_run_id_converts_to_utc_and_reads_naive_as_utc() -> None:
    plus_two = datetime(2026, 11, 22, 8, 15, tzinfo=timezone(timedelta(hours=2)))
    assert new_run_id("x", plus_two).startswith("x-20261122t061500z-")
    assert new_run_id("x", NOW.replace(tzinfo=None)).startswith("x-20261122t061500z-")


def test_new_run_ids_differ() -> None:
    assert len({new_run_id("x", NOW) for _ in range(20)}) > 1


def test_load_plan_of_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    result = compile_plan(
        Settings.from_env(), RunbookSource.read(DEMO),
        requested_by="alice", now=NOW, known_providers=PROVIDERS)
    assert re.fullmatch(r"demo-breach-20261122t061500z-[0-9a-f]{4}", result.run_id)
    assert result.source_sha256 == hashlib.sha256(DEMO.read_bytes()).hexdigest()
    assert [tier.id for tier in result.tiers] == ["tier1", "tier2", "tier3"]
    tier3 = result.tiers[2]
    assert tier3.gate is not None and tier3.gate.approvers == ["alice", "bob", "carol"]
    orders = tier3.credentials[0]
    assert orders.strategy == "revoke-first"
    assert orders.grace_period == timedelta(seconds=5)
    revoke_gate = orders.gate("revoke")
    assert revoke_gate is not None and (revoke_gate.approvals, revoke_gate.distinct) == (2, True)
    assert orders.staging.path == f"keyturn/staging/{result.run_id}/orders-app-aws"
    assert result.stores["vault"].config["address"] == "http://127.0.0.1:8200"


def test_load_plan_with_a_fixed_run_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    result = compile_plan(
        Settings.from_env(), RunbookSource.read(DEMO),
        requested_by="bob", now=NOW, known_providers=PROVIDERS, run_id="plan-preview"
    )
    assert (result.run_id, result.requested_by) == ("plan-preview", "bob")
