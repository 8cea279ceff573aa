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
OnTimeout = Literal["fail", "reject"]
OnLocked = Literal["refuse", "wait"]
NotifyEventName = Literal["gate_opened", "credential_failed", "tier_ended", "run_ended"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatePlan(_Frozen):
    """An approval gate: `approvals` distinct principals out of `approvers` must approve.

    on_timeout: what a `timeout` without a decision does: "fail" closes the gate
        as timed_out, "reject" as a rejection by principal "timeout" (plans made
        before the field existed mean "fail").
    """

    before: GatePoint
    approvals: int = 1
    groups: list[str]
    approvers: list[str]
    distinct: bool = False
    timeout: timedelta | None = None
    on_timeout: OnTimeout = "fail"


class NotifyPlan(_Frozen):
    """A webhook target: the worker reads the URL from env var `url_env`, or uses `url`.

    Only the variable's name travels through history when `url_env` is used.
    """

    url_env: str | None = None
    url: str | None = None
    events: list[NotifyEventName]


class StorePlan(_Frozen):
    """A secret store the runbook delivers to; `config` holds addresses, never tokens."""

    name: str
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class Location(_Frozen):
    """A path inside a named store; `fields` maps provider field names to the stored ones."""

    store: str
    path: str
    fields: dict[str, str] = Field(default_factory=dict)


class CredentialPlan(_Frozen):
    """One credential's rotation.

    family: the provider family; its activities run on the `<task queue>.<family>`
        queue (empty: the run's own queue, as plans made before families had).
    supplied: the replacement is supplied by an operator (`keyturn supply`), not created.
    step_timeout: how long one step may take, for providers slower than the default
        (a new GCP key may take a minute to work); None: the default.
    lock_key: the target's identity (keyturn.runbook.identity): one rotation of a
        target at a time, across runs; empty (plans made before locks): no lock.
    on_locked: what the rotation does when another run holds the target: "refuse"
        (fail at the `lock` step) or "wait" until it is released.
    """

    id: str
    tier: str
    provider: str
    target: dict[str, Any]
    family: str = ""
    supplied: bool = False
    step_timeout: timedelta | None = None
    strategy: Strategy = "rotate"
    grace_period: timedelta = timedelta(0)
    gates: list[GatePlan] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    deliver: list[Location] = Field(default_factory=list)
    staging: Location
    lock_key: str = ""
    on_locked: OnLocked = "refuse"

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
    notify: list[NotifyPlan] = Field(default_factory=list)  # empty in plans made before notify
    preflight: str = ""
    """How the run was let start: "passed", "skipped by <principal>" (break-glass), or
    "" where no face ran preflight (plans started by code, plans made before preflight)."""
    policy: str = ""
    """The SHA-256 of the approval policy file the gates were drawn from; "" under the
    built-in default (no policy file) and in plans made before policy files."""

    def credential(self, credential_id: str) -> CredentialPlan | None:
        for tier in self.tiers:
            for cred in tier.credentials:
                if cred.id == credential_id:
                    return cred
        return None

    def tier(self, tier_id: str) -> TierPlan | None:
        return next((t for t in self.tiers if t.id == tier_id), None)
