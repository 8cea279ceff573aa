"""Listing recent runs from Temporal's visibility store: no worker takes part.

`keyturn status` (without a run id), `GET /v1/runs` and the approvals page list
runs with their runbook, incident, requester (from the encrypted memo), state
and start time; a near-miss run id is matched against the same list.
"""

from __future__ import annotations

import re
from datetime import UTC

from temporalio.api.common.v1 import Memo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.converter import decode_typed_search_attributes
from temporalio.service import RPCError

from keyturn.config import ConfigError
from keyturn.operations.errors import InvalidFilter, temporal_error
from keyturn.workflows.runbook import INCIDENT_KEY, RUNBOOK_KEY, STATE_KEY, RunbookWorkflow

REQUESTED_BY_MEMO = "requested_by"
STATE_FILTER = re.compile(r"^(pending|running|waiting|succeeded|failed|skipped|cancelled)$")
INCIDENT_FILTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


async def list_runs(client: Client, state: str | None = None, incident: str | None = None,
                    limit: int = 50) -> list[dict]:
    """Recent runs, newest first, optionally of one state or incident (needs visibility).

    Each has its runbook, incident, requester, state and start time. One page
    through the raw service call: the SDK's `list_workflows` iterator can crash
    the interpreter at exit (temporalio 1.35). The filters are checked against
    strict patterns, so nothing in the visibility query needs quoting.
    """
    clauses = [f"WorkflowType = '{RunbookWorkflow.__name__}'"]
    if state:
        if not STATE_FILTER.match(state):
            raise InvalidFilter(f"unknown run state {state!r}")
        clauses.append(f"{STATE_KEY.name} = '{state}'")
    if incident:
        if not INCIDENT_FILTER.match(incident):
            raise InvalidFilter(f"incident {incident!r} is not a valid incident id")
        clauses.append(f"{INCIDENT_KEY.name} = '{incident}'")
    try:
        response = await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(
                namespace=client.namespace, query=" AND ".join(clauses), page_size=limit
            )
        )
    except RPCError as exc:
        raise temporal_error(exc, "cannot list runs") from exc
    found = []
    for execution in response.executions:
        attrs = decode_typed_search_attributes(execution.search_attributes)
        status = WorkflowExecutionStatus(execution.status).name.lower()
        recorded = attrs.get(STATE_KEY)
        if status != "running" and recorded in (None, "running"):  # cancelled, terminated
            recorded = "cancelled" if status == "canceled" else status
        found.append({
            "run_id": execution.execution.workflow_id,
            "runbook": attrs.get(RUNBOOK_KEY),
            "incident": attrs.get(INCIDENT_KEY),
            "requested_by": await _requested_by(client, execution.memo),
            "state": recorded or status,
            "started_at": execution.start_time.ToDatetime(UTC).isoformat()
            if execution.HasField("start_time") else None,
            "workflow_status": status,
        })
    return found[:limit]


async def _requested_by(client: Client, memo: Memo) -> str | None:
    """The requester `start` put in the run's memo (encrypted like every payload)."""
    payload = memo.fields.get(REQUESTED_BY_MEMO)
    if payload is None:
        return None
    try:
        (decoded,) = await client.data_converter.decode([payload], [str])
    except (ConfigError, KeyError, ValueError):
        # written under another codec key (or with one this client lacks): listed without it
        return None
    return decoded
