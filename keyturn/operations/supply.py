"""Supplying a replacement that no API can create (GitHub PATs): straight into the store.

The operator's value is written to the credential's staging location by this
process (the CLI or the API server) and never enters Temporal: the waiting
workflow is told only the value's fingerprint and staging version, and its
create step then checks that staging holds exactly that value.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from keyturn.fingerprint import fingerprint
from keyturn.operations.errors import (
    NotAwaitingSupply,
    RunConflict,
    RunNotFound,
    StoreRefused,
    temporal_error,
)
from keyturn.operations.runs import run_plan
from keyturn.runbook.plan_model import CredentialPlan, ExecutionPlan, StorePlan
from keyturn.secret import Secret
from keyturn.stores.base import Store
from keyturn.stores.errors import StoreError
from keyturn.stores.registry import open_store
from keyturn.workflows.models import CredentialStatus, SupplyNotice
from keyturn.workflows.rotation import CredentialRotationWorkflow
from keyturn.workflows.tier import credential_workflow_id

StoreFor = Callable[[StorePlan], Store]


def _open(plan: StorePlan) -> Store:
    return open_store(plan.name, plan.type, plan.config)


def supplied_field(provider: str) -> str:
    """The secret field a supplied provider expects (`supplied_field`, default "token")."""
    from keyturn.providers.registry import provider_class

    return provider_class(provider).supplied_field


def supplied_credential(plan: ExecutionPlan, credential_id: str) -> CredentialPlan:
    """The plan of `credential_id`, if the run has it and it takes a supplied value."""
    cred = plan.credential(credential_id)
    if cred is None:
        raise RunNotFound(f"run {plan.run_id} has no credential {credential_id!r}")
    if not cred.supplied:
        raise NotAwaitingSupply(
            f"credential {credential_id} ({cred.provider}) is created by its provider; "
            "only supplied credentials (e.g. github.pat) take a value (`keyturn supply`)"
        )
    return cred


async def awaiting_credential(client: Client, run_id: str, credential_id: str) -> CredentialPlan:
    """The plan of `credential_id` in `run_id`, if it is a supplied credential waiting now."""
    return await _awaiting(client, await run_plan(client, run_id), credential_id)


async def _awaiting(client: Client, plan: ExecutionPlan, credential_id: str) -> CredentialPlan:
    cred = supplied_credential(plan, credential_id)
    handle = client.get_workflow_handle(credential_workflow_id(plan.run_id, credential_id))
    try:
        status = await handle.query(CredentialRotationWorkflow.status)
    except RPCError as exc:
        raise NotAwaitingSupply(
            f"credential {credential_id} has not started yet ({exc.message})") from exc
    check_waiting(credential_id, status)
    return cred


def check_waiting(credential_id: str, status: CredentialStatus) -> None:
    """NotAwaitingSupply unless the credential's latest step is `supply`, waiting."""
    last = status.steps[-1] if status.steps else None
    if last is None or (last.step, last.outcome) != ("supply", "waiting"):
        where = f"{last.step} {last.outcome}" if last else "not started"
        raise NotAwaitingSupply(
            f"credential {credential_id} is not waiting for a supplied value ({where})")


async def supply(
    client: Client,
    run_id: str,
    credential_id: str,
    secret: Secret,
    principal: str,
    store_for: StoreFor = _open,
) -> SupplyNotice:
    """Write `secret` to the credential's staging location and tell its workflow the
    fingerprint. The value is in no error."""
    plan = await run_plan(client, run_id)
    cred = await _awaiting(client, plan, credential_id)
    fp = fingerprint(secret)
    metadata = {"keyturn_run": run_id, "credential": cred.id, "fingerprint": fp,
                "supplied_by": principal}
    try:
        version = store_for(plan.stores[cred.staging.store]).write(cred.staging.path, secret,
                                                                   metadata)
    except StoreError as exc:
        raise StoreRefused(f"the store refused the value: {exc}") from exc
    notice = SupplyNotice(
        credential=cred.id, principal=principal, fingerprint=fp, staging_version=version
    )
    handle = client.get_workflow_handle(credential_workflow_id(run_id, credential_id))
    try:
        await handle.execute_update(CredentialRotationWorkflow.supply, notice)
    except WorkflowUpdateFailedError as exc:
        message = getattr(exc.cause, "message", None) or str(exc.cause or exc)
        raise RunConflict(f"supply refused: {message}") from exc
    except RPCError as exc:
        raise temporal_error(exc, "supply failed") from exc
    return notice
