"""Compile a validated Runbook into the ExecutionPlan the workflows run.

`plan` is pure: tiers in a topological order of `after` (file order among
equals), defaults applied, gates resolved to principals, a staging location per
credential. Reading a runbook and planning one run under the server's settings and
approval policy is keyturn.operations.plans.compile_plan.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel

from keyturn.runbook.graph import topological_order
from keyturn.runbook.identity import lock_key
from keyturn.runbook.models import Credential, Runbook, TierGate
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

if TYPE_CHECKING:  # keyturn.policy imports the runbook models: imported where used
    from keyturn.policy.model import Policy


Groups = dict[str, list[str]]


def plan(runbook: Runbook, *, run_id: str, requested_by: str, source_sha256: str,
         on_locked: OnLocked | None = None, policy: Policy | None = None) -> ExecutionPlan:
    """The ExecutionPlan for one run of a runbook that passed `validate` (under `policy`).

    `on_locked` (from `keyturn run --on-locked`) overrides what the runbook says
    every credential does when another run holds its target. The approval
    `policy` (default: the built-in one) gives the approver groups and the
    minimum gates; unless it lets requesters approve, every gate is `distinct`:
    the requester of a run never approves its gates. Raises RunbookError if a
    gate cannot pass: too few approvers, once the requester is excluded.
    """
    from keyturn.policy import gates as policy_gates
    from keyturn.policy.model import Policy

    policy = policy or Policy.default()
    groups = policy_gates.approver_groups(policy, runbook)
    distinct = not policy.requesters_may_approve
    index = {tier.id: i for i, tier in enumerate(runbook.spec.tiers)}
    order = topological_order({tier.id: tier.after for tier in runbook.spec.tiers})
    tiers = [_tier(runbook, policy, groups, index[tier_id], run_id, on_locked, distinct)
             for tier_id in order]
    _check_passable(runbook, tiers, index, requested_by)
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
        tiers=tiers,
        notify=[
            NotifyPlan(url_env=n.url_env, url=n.url, events=list(dict.fromkeys(n.events)))
            for n in runbook.spec.notify
        ],
        policy=policy.sha256,
    )


def new_run_id(runbook_name: str, now: datetime) -> str:
    """A unique, sortable run id such as "npm-axios-compromise-20261122t061500z-3fa9".

    A naive `now` is taken to be UTC.
    """
    utc = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return f"{runbook_name}-{utc:%Y%m%dt%H%M%Sz}-{secrets.token_hex(2)}"


def _tier(runbook: Runbook, policy: Policy, groups: Groups, i: int, run_id: str,
          on_locked: OnLocked | None, distinct: bool) -> TierPlan:
    from keyturn.policy import gates as policy_gates

    tier = runbook.spec.tiers[i]
    gate = policy_gates.tier_gate(policy, runbook, i)
    return TierPlan(
        id=tier.id,
        name=tier.name,
        after=tier.after,
        gate=_gate(groups, gate, "tier", distinct) if gate else None,
        concurrency=tier.concurrency,
        credentials=[
            _credential(runbook, tier.id, cred, run_id, on_locked,
                        [_gate(groups, g, g.before, distinct)
                         for g in policy_gates.credential_gates(policy, runbook, i, j)])
            for j, cred in enumerate(tier.credentials)
        ],
    )


def _credential(runbook: Runbook, tier_id: str, cred: Credential, run_id: str,
                on_locked: OnLocked | None, gates: list[GatePlan]) -> CredentialPlan:
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
        gates=gates,
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


def _check_passable(runbook: Runbook, tiers: list[TierPlan], index: dict[str, int],
                    requested_by: str) -> None:
    """Refuse a run with a gate its approvers cannot pass: too few of them, once the
    requester is left out of a distinct gate."""
    for tier in tiers:
        i = index[tier.id]
        gates = [(("spec", "tiers", i, "gate"), tier.gate)]
        gates += [(("spec", "tiers", i, "credentials", j, "gate"), gate)
                  for j, cred in enumerate(tier.credentials) for gate in cred.gates]
        for path, gate in gates:
            if gate is None:
                continue
            others = set(gate.approvers) - ({requested_by} if gate.distinct else set())
            if gate.approvals <= len(others):
                continue
            count = "principal" if len(others) == 1 else "principals"
            if gate.distinct:
                reason = (f"the gate needs {gate.approvals} distinct approvals but, without "
                          f"{requested_by!r} who requests this run, its groups "
                          f"({', '.join(gate.groups)}) have only {len(others)} {count}")
            else:
                reason = (f"the gate needs {gate.approvals} approvals but its groups "
                          f"({', '.join(gate.groups)}) have only {len(others)} {count}")
            raise runbook.source.error((*path, "approvals"), reason)


def _gate(groups: Groups, gate: TierGate, before: GatePoint, distinct: bool) -> GatePlan:
    names = list(dict.fromkeys(gate.from_))
    principals = {p for group in names for p in groups.get(group, [])}
    return GatePlan(
        before=before,
        approvals=gate.approvals,
        groups=names,
        approvers=sorted(principals),
        distinct=gate.distinct or distinct,
        timeout=gate.timeout,
        on_timeout=gate.on_timeout,
    )
