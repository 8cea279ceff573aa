"""Request and response bodies of the HTTP API (documented in /openapi.json).

Run state reuses the workflow models (TierStatus, CredentialStatus, GateState):
they carry references only (ids, fingerprints, store paths), never a secret.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from keyturn.workflows.models import CredentialStatus, GateStatus, Outcome, TierStatus

RUNBOOK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
"""A runbook name resolves to `<runbook_dir>/<name>.yaml`; no path separators, no `..`."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WhoAmI(BaseModel):
    principal: str
    roles: list[str]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class StartRunRequest(_Strict):
    """Exactly one of `runbook_yaml` (the runbook itself) or `runbook` (a name on the server)."""

    runbook_yaml: str | None = Field(default=None, min_length=1, max_length=2_000_000)
    runbook: str | None = Field(default=None, pattern=RUNBOOK_NAME_PATTERN)
    wait: bool = Field(default=False, description="answer only once the run has ended")
    skip_preflight: bool = Field(
        default=False, description="BREAK-GLASS: start without preflight's checks (audited)")
    on_locked: Literal["refuse", "wait"] | None = Field(
        default=None, description="when another run holds a credential's target: refuse "
        "(the credential fails at step lock) or wait; default: as the runbook says")

    @model_validator(mode="after")
    def _exactly_one(self) -> StartRunRequest:
        if (self.runbook_yaml is None) == (self.runbook is None):
            raise ValueError("give exactly one of runbook_yaml or runbook")
        return self


class StartRunResponse(BaseModel):
    run_id: str
    runbook: str
    incident: str | None
    requested_by: str
    state: Outcome | None = Field(default=None, description="the final state, with wait: true")


class RunSummary(BaseModel):
    run_id: str
    runbook: str | None
    incident: str | None
    requested_by: str | None = None
    state: str
    started_at: str | None
    workflow_status: str


class HeldTarget(BaseModel):
    """A target held by the rotation of one run's credential (one rotation per target)."""

    run_id: str
    credential: str
    provider: str
    target: str = Field(description="the target as the holder's runbook names it")
    since: str | None = None
    lock_key: str


class RunList(BaseModel):
    runs: list[RunSummary]
    locks: list[HeldTarget] = Field(default_factory=list,
                                    description="targets held now, oldest hold first")


class OpenGate(BaseModel):
    """A gate waiting for approvals, and what approving it will do."""

    target: str = Field(description="tier id or credential id, as the approve route takes it")
    kind: Literal["tier", "credential"]
    tier: str
    before: str
    approvals: int
    needed: int
    approvers: list[str]
    groups: list[str]
    distinct: bool
    timeout: timedelta | None
    approved_by: list[str]
    effect: str


class RunDetail(BaseModel):
    run_id: str
    runbook: str
    incident: str | None
    requested_by: str
    state: Outcome
    started_at: datetime
    ended_at: datetime | None
    tiers: list[TierStatus]
    credentials: list[CredentialStatus] = Field(
        description="every credential of the run; steps and gates once it has started")
    open_gates: list[OpenGate]


GateKind = Literal["tier", "credential"]
KIND_DESCRIPTION = "which gate `target` names: refused unless it is this kind"


class ApproveRequest(_Strict):
    reason: str = Field(default="", max_length=2000)
    kind: GateKind | None = Field(default=None, description=KIND_DESCRIPTION)


class RejectRequest(_Strict):
    reason: str = Field(default="", max_length=2000, description="required: why")
    kind: GateKind | None = Field(default=None, description=KIND_DESCRIPTION)


class DecisionResult(BaseModel):
    target: str
    gate: str
    status: GateStatus
    approvals: int
    needed: int
    principal: str


class CancelRequest(_Strict):
    reason: str = Field(default="", max_length=2000, description="why (in the audit log)")


class CancelResult(BaseModel):
    run_id: str
    status: Literal["cancel_requested"] = "cancel_requested"


class SupplyRequest(_Strict):
    """The replacement value; it goes straight to the store and is never echoed."""

    value: SecretStr = Field(min_length=1, max_length=65_536)
    field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                              description="secret field (default: what the provider expects)")


class SupplyResult(BaseModel):
    credential: str
    fingerprint: str
    staging_version: int


class AuditRecordView(BaseModel):
    seq: int
    ts: str
    run: str
    event_id: str
    tier: str | None
    credential: str | None
    provider: str | None
    step: str
    outcome: str
    actor: str
    details: dict[str, Any]
    prev: str
    hash: str


class AuditRecords(BaseModel):
    run: str
    records: list[AuditRecordView]


class AuditHead(BaseModel):
    seq: int
    hash: str


class AuditProblem(BaseModel):
    reason: str
    seq: int | None = None
    line: int | None = None
    source: str = "log"


class AuditVerification(BaseModel):
    path: str
    ok: bool
    records: int
    head: AuditHead
    checkpoints: int
    first_bad_seq: int | None
    first_bad_line: int | None
    reason: str | None
    problems: list[AuditProblem]
    warnings: list[str]


class PreflightRequest(_Strict):
    """Exactly one of `runbook_yaml` or `runbook`, as for starting a run."""

    runbook_yaml: str | None = Field(default=None, min_length=1, max_length=2_000_000)
    runbook: str | None = Field(default=None, pattern=RUNBOOK_NAME_PATTERN)
    on_locked: Literal["refuse", "wait"] | None = Field(
        default=None, description="as for starting a run: a held target is a problem "
        "(refuse) or only a note (wait); default: as the runbook says")

    @model_validator(mode="after")
    def _exactly_one(self) -> PreflightRequest:
        if (self.runbook_yaml is None) == (self.runbook is None):
            raise ValueError("give exactly one of runbook_yaml or runbook")
        return self
