"""Applying a policy to a runbook: whose approvals count and which gates each tier and
credential must pass. Pure functions; errors are RunbookErrors at the runbook's place.

A runbook may narrow a policy group (list fewer of its members under the same
name under `spec.approvers`), add gates, and make a required gate stricter
(more approvals, `distinct`, fewer groups out of the rule's). It may not name a
group or principal the policy lacks, nor let a group outside a rule's `from`
approve at a point the rule guards: that would loosen the policy.
"""

from __future__ import annotations

from collections.abc import Iterator

from keyturn.policy.model import GateRule, Policy
from keyturn.runbook.models import Credential, CredentialGate, Runbook, Tier, TierGate
from keyturn.runbook.plan_model import GatePoint
from keyturn.runbook.source import Path, RunbookError

CREDENTIAL_POINTS: tuple[GatePoint, ...] = ("create", "promote", "revoke")


def approver_groups(policy: Policy, runbook: Runbook) -> dict[str, list[str]]:
    """The approver groups a run of `runbook` uses: the policy's, narrowed by the runbook."""
    if policy.groups is None:
        return dict(runbook.spec.approvers)
    groups = {name: list(members) for name, members in policy.groups.items()}
    for name, members in runbook.spec.approvers.items():
        if name in groups:
            groups[name] = [m for m in members if m in groups[name]]
    return groups


def problems(policy: Policy, runbook: Runbook) -> Iterator[RunbookError]:
    """Where `runbook` would loosen `policy`, each at its place in the runbook."""
    if policy.groups is not None:
        for name, members in runbook.spec.approvers.items():
            if name not in policy.groups:
                yield runbook.source.error(
                    ("spec", "approvers", name),
                    f"group '{name}' is not in the approval policy (its groups: "
                    f"{', '.join(policy.groups) or 'none'}); a runbook may only narrow them",
                    key=True)
                continue
            for k, member in enumerate(members):
                if member not in policy.groups[name]:
                    yield runbook.source.error(
                        ("spec", "approvers", name, k),
                        f"'{member}' is not in the policy's group '{name}'; a runbook may "
                        "only narrow a group, not add to it")
    for i, tier in enumerate(runbook.spec.tiers):
        try:
            tier_gate(policy, runbook, i)
            for j in range(len(tier.credentials)):
                credential_gates(policy, runbook, i, j)
        except RunbookError as exc:
            yield exc


def tier_gate(policy: Policy, runbook: Runbook, i: int) -> TierGate | None:
    """The gate tier `i` must pass before it starts: the runbook's, tightened by the policy."""
    tier = runbook.spec.tiers[i]
    providers = [cred.provider for cred in tier.credentials]
    rules = [r for r in policy.gates if r.before == "tier" and _covers(r, runbook, tier, providers)]
    return _tightened(runbook, tier.gate, rules, ("spec", "tiers", i, "gate"), "tier")


def credential_gates(policy: Policy, runbook: Runbook, i: int, j: int) -> list[CredentialGate]:
    """The gates credential `j` of tier `i` must pass, in the order the rotation meets them."""
    tier = runbook.spec.tiers[i]
    cred: Credential = tier.credentials[j]
    path: Path = ("spec", "tiers", i, "credentials", j, "gate")
    found = []
    for point in CREDENTIAL_POINTS:
        own = cred.gate if cred.gate is not None and cred.gate.before == point else None
        rules = [r for r in policy.gates
                 if r.before == point and _covers(r, runbook, tier, [cred.provider])]
        gate = _tightened(runbook, own, rules, path, point)
        if isinstance(gate, CredentialGate):
            found.append(gate)
    return found


def _covers(rule: GateRule, runbook: Runbook, tier: Tier, providers: list[str]) -> bool:
    return rule.applies(runbook.metadata.name, tier.id, providers)


def _tightened(runbook: Runbook, gate: TierGate | None, rules: list[GateRule], path: Path,
               point: str) -> TierGate | None:
    """`gate` made at least as strict as every rule in `rules` (None: neither asks for one)."""
    if not rules:
        return gate
    allowed = [g for g in rules[0].from_ if all(g in r.from_ for r in rules[1:])]
    if not allowed:
        raise runbook.source.error(path, f"the approval policy's rules for the gate before "
                                         f"{point} name no group in common; fix the policy")
    approvals = max(r.approvals for r in rules)
    distinct = any(r.distinct for r in rules)
    if gate is None:
        required = {"from": allowed, "approvals": approvals, "distinct": distinct}
        if point == "tier":
            return TierGate.model_validate(required)
        return CredentialGate.model_validate({**required, "before": point})
    for k, group in enumerate(gate.from_):
        if group not in allowed:
            raise runbook.source.error(
                (*path, "from", k),
                f"the approval policy lets only {', '.join(allowed)} approve before {point} "
                f"here; group '{group}' would loosen it")
    return gate.model_copy(update={"approvals": max(gate.approvals, approvals),
                                   "distinct": gate.distinct or distinct})
