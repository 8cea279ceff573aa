"""Compile a validated Runbook into the ExecutionPlan the workflows run.

`plan` is pure: tiers in a topological order of `after` (file order among
equals), defaults applied, gates resolved to principals, a staging location per
credential. `load_plan` is the shell that reads a file and does all three steps.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Collection
from datetime import UTC, datetime

from keyturn.runbook.graph import topological_order
from keyturn.runbook.loader import decode, loads, read_bytes
from keyturn.runbook.models import Credential, Runbook, Tier, TierGate
from keyturn.runbook.plan_model import (
    CredentialPlan,
    ExecutionPlan,
    GatePlan,
    GatePoint,
    Location,
    StorePlan,
    TierPlan,
)
from keyturn.runbook.validate import validate


def plan(runbook: Runbook, *, run_id: str, requested_by: str, source_sha256: str) -> ExecutionPlan:
    """The ExecutionPlan for one run of a runbook that passed `validate`."""
    tiers = {tier.id: tier for tier in runbook.spec.tiers}
    order = topological_order({tier.id: tier.after for tier in runbook.spec.tiers})
    return ExecutionPlan(
        run_id=run_id,
        runbook=runbook.metadata.name,
        incident=runbook.metadata.incident,
        requested_by=requested_by,
        source_sha256=source_sha256,
        stores={
            name: StorePlan(name=name, type=store.type, config=store.config)
            for name, store in runbook.spec.stores.items()
        },
        tiers=[_tier(runbook, tiers[tier_id], run_id) for tier_id in order],
    )


def new_run_id(runbook_name: str, now: datetime) -> str:
    """A unique, sortable run id such as "npm-axios-compromise-20261122t061500z-3fa9".

    A naive `now` is taken to be UTC.
    """
    utc = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return f"{runbook_name}-{utc:%Y%m%dt%H%M%Sz}-{secrets.token_hex(2)}"


def load_plan(
    path: str | os.PathLike[str],
    *,
    requested_by: str,
    now: datetime,
    known_providers: Collection[str] | None = None,
    run_id: str | None = None,
) -> ExecutionPlan:
    """Load, validate and plan the runbook at `path`; `run_id` defaults to `new_run_id`."""
    data = read_bytes(path)
    runbook = validate(loads(decode(data, str(path)), filename=str(path)), known_providers)
    return plan(
        runbook,
        run_id=run_id or new_run_id(runbook.metadata.name, now),
        requested_by=requested_by,
        source_sha256=hashlib.sha256(data).hexdigest(),
    )


def _tier(runbook: Runbook, tier: Tier, run_id: str) -> TierPlan:
    return TierPlan(
        id=tier.id,
        name=tier.name,
        after=tier.after,
        gate=_gate(runbook, tier.gate, "tier") if tier.gate else None,
        concurrency=tier.concurrency,
        credentials=[_credential(runbook, tier.id, cred, run_id) for cred in tier.credentials],
    )


def _credential(runbook: Runbook, tier_id: str, cred: Credential, run_id: str) -> CredentialPlan:
    defaults = runbook.spec.defaults
    deliver = [Location(store=target.store, path=target.path) for target in cred.deliver]
    staging_store = deliver[0].store if deliver else next(iter(runbook.spec.stores))
    return CredentialPlan(
        id=cred.id,
        tier=tier_id,
        provider=cred.provider,
        target=cred.target,
        strategy=cred.strategy or defaults.strategy,
        grace_period=cred.grace_period if cred.grace_period is not None else defaults.grace_period,
        gates=[_gate(runbook, cred.gate, cred.gate.before)] if cred.gate else [],
        depends_on=cred.depends_on,
        deliver=deliver,
        staging=Location(store=staging_store, path=f"keyturn/staging/{run_id}/{cred.id}"),
    )


def _gate(runbook: Runbook, gate: TierGate, before: GatePoint) -> GatePlan:
    groups = list(dict.fromkeys(gate.from_))
    principals = {p for group in groups for p in runbook.spec.approvers.get(group, [])}
    return GatePlan(
        before=before,
        approvals=gate.approvals,
        groups=groups,
        approvers=sorted(principals),
        distinct=gate.distinct,
        timeout=gate.timeout,
    )
