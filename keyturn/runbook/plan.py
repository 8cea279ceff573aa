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
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from keyturn.runbook.graph import topological_order
from keyturn.runbook.identity import lock_key
from keyturn.runbook.loader import decode, loads, read_bytes
from keyturn.runbook.models import Credential, Runbook, Tier, TierGate
from keyturn.runbook.plan_model import (
    CredentialPlan,
    ExecutionPlan,
    GatePlan,
    GatePoint,
    Location,
    NotifyPlan,
    OnLocked,
    StorePlan,
    TierPlan,
)
from keyturn.runbook.validate import validate


def plan(runbook: Runbook, *, run_id: str, requested_by: str, source_sha256: str,
         on_locked: OnLocked | None = None,
         requester_may_approve: bool = False) -> ExecutionPlan:
    """The ExecutionPlan for one run of a runbook that passed `validate`.

    `on_locked` (from `keyturn run --on-locked`) overrides what the runbook says
    every credential does when another run holds its target. Unless
    `requester_may_approve` (a server-side setting, never the runbook's), every
    gate is `distinct`: the requester of a run never approves its gates. Raises
    RunbookError if a distinct gate cannot pass for this requester: too few approvers
    are left once the requester is excluded.
    """
    _check_distinct_gates(runbook, requested_by, every_gate=not requester_may_approve)
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
        tiers=[_tier(runbook, tiers[tier_id], run_id, on_locked, not requester_may_approve)
               for tier_id in order],
        notify=[
            NotifyPlan(url_env=n.url_env, url=n.url, events=list(dict.fromkeys(n.events)))
            for n in runbook.spec.notify
        ],
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
    on_locked: OnLocked | None = None,
    requester_may_approve: bool = False,
) -> ExecutionPlan:
    """Load, validate and plan the runbook at `path`; `run_id` defaults to `new_run_id`."""
    data = read_bytes(path)
    runbook = validate(loads(decode(data, str(path)), filename=str(path)), known_providers)
    return plan(
        runbook,
        run_id=run_id or new_run_id(runbook.metadata.name, now),
        requested_by=requested_by,
        source_sha256=hashlib.sha256(data).hexdigest(),
        on_locked=on_locked,
        requester_may_approve=requester_may_approve,
    )


def _tier(runbook: Runbook, tier: Tier, run_id: str, on_locked: OnLocked | None,
          distinct: bool) -> TierPlan:
    return TierPlan(
        id=tier.id,
        name=tier.name,
        after=tier.after,
        gate=_gate(runbook, tier.gate, "tier", distinct) if tier.gate else None,
        concurrency=tier.concurrency,
        credentials=[_credential(runbook, tier.id, cred, run_id, on_locked, distinct)
                     for cred in tier.credentials],
    )


def _credential(runbook: Runbook, tier_id: str, cred: Credential, run_id: str,
                on_locked: OnLocked | None, distinct: bool) -> CredentialPlan:
    defaults = runbook.spec.defaults
    deliver = [Location(store=target.store, path=target.path, fields=target.fields)
               for target in cred.deliver]
    staging_store = deliver[0].store if deliver else next(iter(runbook.spec.stores))
    family, supplied, step_timeout, target_model = _provider_traits(cred.provider)
    return CredentialPlan(
        id=cred.id,
        tier=tier_id,
        provider=cred.provider,
        target=cred.target,
        family=family,
        supplied=supplied,
        step_timeout=step_timeout,
        strategy=cred.strategy or defaults.strategy,
        grace_period=cred.grace_period if cred.grace_period is not None else defaults.grace_period,
        gates=[_gate(runbook, cred.gate, cred.gate.before, distinct)] if cred.gate else [],
        depends_on=cred.depends_on,
        deliver=deliver,
        staging=Location(store=staging_store, path=f"keyturn/staging/{run_id}/{cred.id}"),
        lock_key=lock_key(cred.provider, cred.target, target_model),
        on_locked=on_locked or cred.on_locked or defaults.on_locked,
    )


def _provider_traits(name: str) -> tuple[str, bool, timedelta | None, type[BaseModel] | None]:
    """(family, supplied, step_timeout, target_model) of an installed provider;
    ("", False, None, None) if absent.

    A plan can be made where a provider is not installed (validation decides
    whether that is acceptable); its activities then run on the run's own queue.
    """
    from keyturn.providers.registry import ProviderLoadError, provider_class

    try:
        cls = provider_class(name)
    except ProviderLoadError:
        return "", False, None, None
    return cls.family, cls.supplied, cls.step_timeout, cls.target_model


def _check_distinct_gates(runbook: Runbook, requested_by: str, *, every_gate: bool) -> None:
    """Refuse a run whose distinct gate (`every_gate`: any gate) its requester would leave
    without enough approvers."""
    for i, tier in enumerate(runbook.spec.tiers):
        gates = [(("spec", "tiers", i, "gate"), tier.gate)]
        gates += [(("spec", "tiers", i, "credentials", j, "gate"), cred.gate)
                  for j, cred in enumerate(tier.credentials)]
        for path, gate in gates:
            if gate is None or not (gate.distinct or every_gate):
                continue
            groups = runbook.spec.approvers
            others = {p for g in gate.from_ for p in groups.get(g, [])} - {requested_by}
            if gate.approvals > len(others):
                raise runbook.source.error(
                    (*path, "approvals"),
                    f"the gate needs {gate.approvals} distinct approvals but, without "
                    f"{requested_by!r} who requests this run, its groups "
                    f"({', '.join(gate.from_)}) have only {len(others)} "
                    + ("principal" if len(others) == 1 else "principals"),
                )


def _gate(runbook: Runbook, gate: TierGate, before: GatePoint, distinct: bool) -> GatePlan:
    groups = list(dict.fromkeys(gate.from_))
    principals = {p for group in groups for p in runbook.spec.approvers.get(group, [])}
    return GatePlan(
        before=before,
        approvals=gate.approvals,
        groups=groups,
        approvers=sorted(principals),
        distinct=gate.distinct or distinct,
        timeout=gate.timeout,
        on_timeout=gate.on_timeout,
    )
