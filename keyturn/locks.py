"""Who holds which target: client-side reads of the holds (keyturn.workflows.lock).

`holder_of(client, lock_key)` says which run holds one target, for a refused
rotation, for preflight and for people; `held_targets(client)` lists every hold
for `keyturn status`. Both read the hold workflows' memo (encrypted like every
payload) and talk to Temporal only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.common.v1 import Payload
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from keyturn.config import ConfigError
from keyturn.workflows.lock import (
    HOLDER_MEMO,
    LOCK_ID_PREFIX,
    TargetLockWorkflow,
    lock_workflow_id,
)
from keyturn.workflows.models import LockHold

__all__ = ["LockHolder", "held_targets", "holder_of", "lock_workflow_id"]

LIST_LIMIT = 500
"""At most this many holds are listed (one page of visibility)."""


@dataclass(frozen=True)
class LockHolder:
    """The rotation holding a target: its run and credential, the provider, the target.

    target: a short description as the holder's runbook names it ("user_name=ci").
    since: when the hold began; None when the server did not say.
    """

    run_id: str
    credential: str
    provider: str
    target: str
    since: datetime | None = None
    lock_key: str = ""

    def to_json(self) -> dict:
        return {
            "run_id": self.run_id,
            "credential": self.credential,
            "provider": self.provider,
            "target": self.target,
            "since": self.since.isoformat() if self.since else None,
            "lock_key": self.lock_key,
        }


async def _holder(client: Client, workflow_id: str, payload: Payload | None,
                  since: datetime | None) -> LockHolder:
    """The holder a hold's memo names; a memo this client cannot read (written under
    another codec key) still makes a hold, named by its workflow id only."""
    lock_key = workflow_id.removeprefix(LOCK_ID_PREFIX)
    try:
        (hold,) = await client.data_converter.decode([payload], [LockHold]) if payload else [None]
    except (ConfigError, KeyError, ValueError):
        hold = None
    if hold is None:
        return LockHolder(run_id=f"unknown (hold {workflow_id})", credential="", provider="",
                          target="", since=since, lock_key=lock_key)
    return LockHolder(run_id=hold.run_id, credential=hold.credential, provider=hold.provider,
                      target=hold.target, since=since, lock_key=lock_key)


async def holder_of(client: Client, lock_key: str) -> LockHolder | None:
    """The rotation holding the target whose lock key is `lock_key`, or None if it is free."""
    if not lock_key:
        return None
    try:
        desc = await client.get_workflow_handle(lock_workflow_id(lock_key)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if desc.status != WorkflowExecutionStatus.RUNNING:
        return None
    return await _holder(client, desc.id, desc.raw_info.memo.fields.get(HOLDER_MEMO),
                         desc.start_time)


async def held_targets(client: Client) -> list[LockHolder]:
    """Every target held now, oldest hold first (needs visibility, as listing runs does).

    One page through the raw service call, as keyturn.operations.listing.list_runs does: the
    SDK's `list_workflows` iterator can crash the interpreter at exit (temporalio 1.35).
    """
    query = (f"WorkflowType = '{TargetLockWorkflow.__name__}' "
             "AND ExecutionStatus = 'Running'")
    response = await client.workflow_service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace=client.namespace, query=query,
                                      page_size=LIST_LIMIT))
    found = []
    for execution in response.executions:
        since = (execution.start_time.ToDatetime(UTC)
                 if execution.HasField("start_time") else None)
        found.append(await _holder(client, execution.execution.workflow_id,
                                   execution.memo.fields.get(HOLDER_MEMO), since))
    return sorted(found, key=lambda h: h.since or datetime.min.replace(tzinfo=UTC))
