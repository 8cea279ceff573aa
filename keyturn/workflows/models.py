"""Typed inputs, results and queryable state of the workflows and activities.

These travel through Temporal history (encrypted by the codec), so they carry
references only: ids, store paths, versions and `sha256:` fingerprints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from keyturn.runbook.plan_model import (
    CredentialPlan,
    GatePlan,
    NotifyEventName,
    NotifyPlan,
    StorePlan,
    TierPlan,
)

Outcome = Literal["pending", "running", "waiting", "succeeded", "failed", "skipped", "cancelled"]
GateStatus = Literal["pending", "open", "passed", "rejected", "timed_out"]


class RunContext(BaseModel):
    """What every child and activity needs to know about the run it belongs to."""

    run_id: str
    runbook: str
    incident: str | None = None
    requested_by: str
    stores: dict[str, StorePlan]
    notify: list[NotifyPlan] = Field(default_factory=list)  # absent in histories before notify


class Decision(BaseModel):
    principal: str
    reason: str = ""
    at: datetime


class GateState(BaseModel):
    plan: GatePlan
    status: GateStatus = "pending"
    approvals: list[Decision] = Field(default_factory=list)
    rejection: Decision | None = None


class ApprovalRequest(BaseModel):
    """An approve or reject Update: which gate (tier or credential id) and who says so."""

    target: str
    principal: str
    reason: str = ""


class CancelNotice(BaseModel):
    """The `cancel_requested` signal, sent just before a run is cancelled: who cancels it
    and why, for the audit record of the cancellation."""

    principal: str
    reason: str = ""


class SupplyNotice(BaseModel):
    """A `supply` Update: an operator put the replacement into the staging store.

    Only its fingerprint and staging version travel; the value stays in the store.
    """

    credential: str
    principal: str
    fingerprint: str
    staging_version: int


class ApprovalResult(BaseModel):
    target: str
    gate: str
    status: GateStatus
    approvals: int
    needed: int


class CredentialInput(BaseModel):
    context: RunContext
    credential: CredentialPlan


class StepRecord(BaseModel):
    step: str
    outcome: Outcome
    at: datetime
    detail: str = ""


class CredentialStatus(BaseModel):
    credential: str
    tier: str
    provider: str
    state: Outcome = "pending"
    step: str = ""
    old_credential_ids: list[str] = Field(default_factory=list)
    new_credential_id: str | None = None
    new_fingerprint: str | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    gates: list[GateState] = Field(default_factory=list)
    error: str | None = None


HISTORY_BUDGET = 8_000
"""Events a TierWorkflow history may reach before it drains and continues as new."""


class TierInput(BaseModel):
    context: RunContext
    tier: TierPlan
    finished: dict[str, Outcome] = Field(default_factory=dict)  # carried across continue-as-new
    errors: dict[str, str] = Field(default_factory=dict)
    history_budget: int = HISTORY_BUDGET


class TierResult(BaseModel):
    tier: str
    state: Outcome
    credentials: dict[str, Outcome]
    errors: dict[str, str] = Field(default_factory=dict)


class TierStatus(BaseModel):
    tier: str
    name: str
    after: list[str]
    state: Outcome = "pending"
    gate: GateState | None = None
    credentials: dict[str, Outcome] = Field(default_factory=dict)


class RunStatus(BaseModel):
    run_id: str
    runbook: str
    incident: str | None
    requested_by: str
    state: Outcome
    started_at: datetime
    ended_at: datetime | None = None
    tiers: list[TierStatus]


# ---- activity inputs and results -------------------------------------------------


class StepInput(BaseModel):
    """Input of every per-credential activity; fields are filled as the protocol advances."""

    context: RunContext
    credential: CredentialPlan
    old_credential_ids: list[str] = Field(default_factory=list)
    existing_credential_ids: list[str] = Field(default_factory=list)
    new_credential_id: str | None = None
    phase: str = ""
    promoted: bool = False
    previous_version: int | None = None
    supplied: SupplyNotice | None = None
    old_version: int | None = None  # the first deliver target's version precheck read


class PrecheckResult(BaseModel):
    """The credentials to replace, quota clean-up done, and every credential that existed.

    `existing_credential_ids` is the target's credentials after precheck: a
    retried create treats as its own orphans only credentials that appeared
    after it, never another pipeline's token of the same user. `old_version`
    is the first deliver target's version holding the old value: later steps
    read the old value from it even after other writers changed the path.
    """

    old_credential_ids: list[str]
    removed_inactive: list[str] = Field(default_factory=list)
    existing_credential_ids: list[str] = Field(default_factory=list)
    old_version: int | None = None


class CreateResult(BaseModel):
    credential_id: str
    fingerprint: str
    staging_version: int
    removed_orphans: list[str] = Field(default_factory=list)


class PromoteResult(BaseModel):
    """Per deliver target: the version written and the version it replaced."""

    versions: dict[str, int]
    previous_version: int | None = None


class Notification(BaseModel):
    """Something a webhook target hears about: references and states only, never a secret.

    gate: the gate point (tier, create, promote, revoke) of a gate_opened event.
    state: the final state of a tier or run (tier_ended, run_ended).
    detail: an error or a short explanation.
    """

    event: NotifyEventName
    run_id: str
    runbook: str
    incident: str | None = None
    requested_by: str = ""
    tier: str | None = None
    credential: str | None = None
    gate: str | None = None
    approvals: int = 0
    groups: list[str] = Field(default_factory=list)
    distinct: bool = False
    state: str = ""
    detail: str = ""


class NotifyInput(BaseModel):
    """The `notify` activity's input: one notification for target number `index`."""

    notification: Notification
    target: NotifyPlan
    index: int


class LockHold(BaseModel):
    """Who holds a target: the input and memo of its TargetLockWorkflow (keyturn.workflows.lock).

    References only: the holding run and credential, the provider, and a short
    description of the target as the runbook names it (e.g. "user_name=ci").
    """

    lock_key: str
    run_id: str
    credential: str
    provider: str
    target: str


class AuditInput(BaseModel):
    """A workflow-level audit record (gates, tiers, the run) written by an activity."""

    run: str
    key: list[str]
    step: str
    outcome: str
    tier: str | None = None
    credential: str | None = None
    provider: str | None = None
    actor: str = "worker"
    details: dict[str, Any] = Field(default_factory=dict)


# ---- preflight ----------------------------------------------------------------------


class PreflightInput(BaseModel):
    """Credentials of one provider family to check, as one `preflight` activity."""

    context: RunContext
    credentials: list[CredentialPlan]


class Problem(BaseModel):
    """Why a credential cannot be rotated now: which check, and what to do about it."""

    check: str
    message: str


class CredentialCheck(BaseModel):
    """What preflight found for one credential: ready, or its problems; notes say what a
    run would also do (quota clean-up)."""

    credential: str
    tier: str
    provider: str
    ready: bool
    problems: list[Problem] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
