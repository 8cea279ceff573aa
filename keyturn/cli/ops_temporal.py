"""RunOperations over a direct Temporal connection: the operations core, acting as one principal.

The principal is `--as` or $KEYTURN_PRINCIPAL; runbooks are compiled here, under the
CLI's settings, by keyturn.operations.plans.compile_plan. Temporal is connected to
once, at the first call that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text
from temporalio.client import Client

from keyturn.cli.common import console, err_console
from keyturn.cli.progress import watch
from keyturn.cli.run_ops import Decided, Followed, Started
from keyturn.config import Settings
from keyturn.operations import gates, listing, runs, supply
from keyturn.operations.connect import connect
from keyturn.operations.pickup import unserved
from keyturn.operations.plans import RunbookSource, compile_plan
from keyturn.operations.preflight import PreflightReport, preflight
from keyturn.policy.load import load_policy
from keyturn.runbook.plan_model import ExecutionPlan, OnLocked
from keyturn.workflows.models import GateState

POLL_SECONDS = 1.0


class TemporalRuns:
    """The operations core over Temporal, as `principal`."""

    def __init__(self, settings: Settings, principal: str) -> None:
        self.settings = settings
        self.principal = principal
        self.gate_hint = " --as <principal>"
        self._client: Client | None = None

    def close(self) -> None:
        """Nothing to release: the client's connection ends with the event loop."""

    async def client(self) -> Client:
        if self._client is None:
            self._client = await connect(self.settings)
        return self._client

    def plan(self, runbook: Path, on_locked: OnLocked | None = None) -> ExecutionPlan:
        return compile_plan(self.settings, RunbookSource.read(runbook),
                            requested_by=self.principal, now=datetime.now(UTC),
                            on_locked=on_locked)

    async def start(self, runbook: Path, *, skip_preflight: bool, on_locked: OnLocked | None,
                    on_preflight: Callable[[ExecutionPlan], None]) -> Started:
        plan = self.plan(runbook, on_locked)
        plan = await runs.start_checked(await self.client(), plan, self.settings.task_queue,
                                        skip_preflight=skip_preflight, on_preflight=on_preflight)
        return Started(run_id=plan.run_id, runbook=plan.runbook, requested_by=self.principal,
                       shown={"run_id": plan.run_id, "runbook": plan.runbook,
                              "incident": plan.incident})

    async def preflight(self, runbook: Path) -> PreflightReport:
        plan = self.plan(runbook)
        return await preflight(await self.client(), plan, self.settings.task_queue)

    async def listing(self) -> tuple[list[dict], list[dict]]:
        client = await self.client()
        listed = await listing.list_runs(client)
        return listed, [h.to_json() for h in await runs.held_targets(client)]

    async def detail(self, run_id: str) -> runs.RunSnapshot:
        return await runs.describe(await self.client(), run_id)

    async def follow(self, run_id: str, *, live: bool) -> Followed:
        client = await self.client()
        if reason := await unserved(client, run_id):  # no such run: RunNotFound, at once
            err_console.print(Text(f"waiting: {reason}", style="yellow"), soft_wrap=True)
        if not live:
            final = await runs.wait(client, run_id)
            return Followed(final.state, await runs.describe(client, run_id))

        async def how_to_approve(target: str, gate: GateState, out: Console) -> None:
            out.print(f"[yellow]gate open:[/] {target}; approve with "
                      f"`keyturn approve {run_id} {target}{self.gate_hint}`")

        final = await watch(client, run_id, console, how_to_approve, POLL_SECONDS)
        return Followed(final.state, None)

    async def decide(self, run_id: str, target: str, reason: str, *, approve: bool,
                     kind: str | None) -> Decided:
        result = await gates.decide(await self.client(), run_id, target, self.principal, reason,
                                    approve=approve, kind=kind)
        return Decided(self.principal, result.model_dump(mode="json"))

    async def cancel(self, run_id: str, reason: str) -> None:
        policy = load_policy(requester_may_approve=self.settings.requester_may_approve)
        await runs.cancel(await self.client(), run_id, self.principal, reason, policy)

    async def awaiting_supply(self, run_id: str, credential: str) -> str:
        cred = await supply.awaiting_credential(await self.client(), run_id, credential)
        return cred.staging.store

    async def supply(self, run_id: str, credential: str, value: str,
                     field: str | None) -> dict[str, Any]:
        client = await self.client()
        cred = supply.supplied_credential(await runs.run_plan(client, run_id), credential)
        name = field or supply.supplied_field(cred.provider)
        notice = await supply.supply(client, run_id, credential, {name: value}, self.principal)
        return notice.model_dump(mode="json")
