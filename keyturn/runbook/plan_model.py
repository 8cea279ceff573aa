"""The ExecutionPlan: a runbook compiled into the typed input the workflows take.

Everything here is plain data that travels through Temporal history, so it holds
references only (store names, paths, principals), never a secret value.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["rotate", "revoke-first"]
GatePoint = Literal["tier", "create", "promote", "revoke"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatePlan(_Frozen):
    """An approval gate: `approvals` distinct principals out of `approvers` must approve."""

    before: GatePoint
    approvals: int = 1
    groups: list[str]
    approvers: list[str]
    distinct: bool = False
    timeout: timedelta | None = None


class StorePlan(_Frozen):
    """A secret store the runbook delivers to; `config` holds addresses, never tokens."""

    name: str
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class Location(_Frozen):
    """A path inside a named store."""

    store: str
    path: str


class CredentialPlan(_Frozen):
    id: str
    tier: str
    provider: str
    target: dict[str, Any]
    strategy: Strategy = "rotate"
    grace_period: timedelta = timedelta(0)
    gates: list[GatePlan] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    deliver: list[Location] = Field(default_factory=list)
    staging: Location

    def gate(self, before: GatePoint) -> GatePlan | None:
        return next((g for g in self.gates if g.before == before), None)


class TierPlan(_Frozen):
    id: str
    name: str = ""
    after: list[str] = Field(default_factory=list)
    gate: GatePlan | None = None
    concurrency: int = 10
    credentials: list[CredentialPlan]


class ExecutionPlan(_Frozen):
    """One run of one runbook. Tiers are in a topological order of `after`."""

    run_id: str
    runbook: str
    incident: str | None = None
    requested_by: str
    source_sha256: str
    stores: dict[str, StorePlan]
    tiers: list[TierPlan]

    def credential(self, credential_id: str) -> CredentialPlan | None:
        for tier in self.tiers:
            for cred in tier.credentials:
                if cred.id == credential_id:
                    return cred
        return None

    def tier(self, tier_id: str) -> TierPlan | None:
        return next((t for t in self.tiers if t.id == tier_id), None)
