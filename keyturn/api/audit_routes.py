"""/v1 audit routes (auditor role): one run's audit records, and the log's verification.

The log is the worker's: the PostgreSQL one when KEYTURN_AUDIT_DSN is set, else the
JSONL file. Errors name a database by its DSN without the password."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends

from keyturn.api.auth import AUDITOR, Principal, require
from keyturn.api.context import ApiContext, get_context
from keyturn.api.errors import ApiError, not_found, responses
from keyturn.api.models import AuditRecords, AuditRecordView, AuditVerification
from keyturn.api.runs_routes import RunId
from keyturn.audit import AuditError, AuditLogMissing, JsonlAuditLog, open_log, verify_log
from keyturn.config import Settings
from keyturn.operations.runs import run_plan

if TYPE_CHECKING:
    from keyturn.audit.postgres import PostgresAuditLog

router = APIRouter(prefix="/v1", tags=["audit"])


def _unreadable(exc: Exception) -> ApiError:
    return ApiError(500, "audit_unreadable", f"the audit log cannot be read: {exc}")


def audit_log_of(settings: Settings) -> JsonlAuditLog | PostgresAuditLog:
    """The audit log the worker of these settings writes, opened for reading only (the
    API never loads the checkpoint signing key)."""
    return open_log(settings.audit_log, dsn=settings.audit_dsn, signing=False)


def read_run_records(settings: Settings, run_id: str) -> list[AuditRecordView]:
    """The records of `run_id`, in seq order (none if the log does not exist yet)."""
    return [AuditRecordView(**r.model_dump())
            for r in audit_log_of(settings).records_for_run(run_id)]


async def run_records(ctx: ApiContext, run_id: str) -> AuditRecords:
    """The run's records; 404 if the log has none and Temporal knows no such run."""
    try:
        records = await asyncio.to_thread(read_run_records, ctx.settings.keyturn, run_id)
    except (AuditError, OSError) as exc:
        raise _unreadable(exc) from None
    if not records:
        await run_plan(await ctx.client(), run_id)
    return AuditRecords(run=run_id, records=records)


@router.get("/runs/{run_id}/audit", response_model=AuditRecords,
            responses=responses(401, 403, 404, 503), summary="A run's audit records")
async def get_run_audit(
    run_id: RunId,
    principal: Annotated[Principal, Depends(require(AUDITOR))],
    ctx: Annotated[ApiContext, Depends(get_context)],
) -> AuditRecords:
    """Every audit record of the run, in order: steps, gates, approvals with their reasons."""
    return await run_records(ctx, run_id)


async def verification(ctx: ApiContext) -> AuditVerification:
    try:
        result = await asyncio.to_thread(
            lambda: verify_log(audit_log_of(ctx.settings.keyturn)))
    except AuditLogMissing as exc:
        raise not_found(str(exc)) from None
    except (AuditError, OSError) as exc:
        raise _unreadable(exc) from None
    return AuditVerification.model_validate(result.to_dict())


@router.get("/audit/verify", response_model=AuditVerification,
            responses=responses(401, 403, 404), summary="Verify the audit log")
async def get_verify(
    principal: Annotated[Principal, Depends(require(AUDITOR))],
    ctx: Annotated[ApiContext, Depends(get_context)],
) -> AuditVerification:
    """Check every record, the hash chain and the signed checkpoints; `ok` false names the
    first bad record (`first_bad_seq`, `reason`)."""
    return await verification(ctx)


__all__ = ["audit_log_of", "read_run_records", "router", "run_records", "verification"]
