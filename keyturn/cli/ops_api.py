"""RunOperations over keyturn's HTTP API: the server runs the operations core as the token's principal.

Refusals are the API's (ApiRequestError, with its stable code), except where the CLI
knows better: an invalid runbook is named by the local file's path. Following a run
polls GET /v1/runs/{id} and waits out an outage of the API or Temporal for up to
OUTAGE_SECONDS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.markup import escape
from rich.text import Text

from keyturn.cli.api_client import ApiClient, ApiRequestError
from keyturn.cli.common import console, err_console, fail
from keyturn.cli.progress import changes
from keyturn.cli.render import open_gates, run_table
from keyturn.cli.run_ops import Decided, Followed, Started
from keyturn.operations.errors import InvalidRunbook, RunNotFound
from keyturn.operations.preflight import PreflightReport
from keyturn.operations.runs import RunSnapshot
from keyturn.operations.supply import check_waiting
from keyturn.runbook.plan_model import ExecutionPlan, OnLocked
from keyturn.runbook.source import RunbookError
from keyturn.workflows.models import CredentialStatus

POLL_SECONDS = 1.0
OUTAGE_SECONDS = 300.0
"""How long following a run keeps polling through an outage of the API or Temporal."""
TRANSIENT_API_CODES = frozenset({"api_unreachable", "temporal_unavailable"})
ENDED = ("succeeded", "failed", "cancelled")


def read_runbook(runbook: Path) -> str:
    """The runbook's text for the API; an unreadable file is a usage error."""
    try:
        return runbook.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{runbook}: cannot read the runbook ({exc})")


def _reason(body: dict) -> str:
    """The API's invalid_runbook message without its own `file:line:column: ` prefix."""
    message = str(body.get("message", ""))
    prefix = f"{body.get('file')}:{body.get('line')}:{body.get('column')}: "
    return message.removeprefix(prefix)


class ApiRuns:
    """The HTTP API's /v1 routes as RunOperations."""

    gate_hint = ""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self._said = ""  # the no-worker message last printed while following

    def close(self) -> None:
        self.api.close()

    async def start(self, runbook: Path, *, skip_preflight: bool, on_locked: OnLocked | None,
                    on_preflight: Callable[[ExecutionPlan], None]) -> Started:
        text = read_runbook(runbook)
        try:
            started = self.api.start_run(text, skip_preflight=skip_preflight,
                                         on_locked=on_locked)
        except ApiRequestError as exc:
            if exc.code == "invalid_runbook" and exc.body.get("line"):  # the local file's position
                raise InvalidRunbook(RunbookError(str(runbook), exc.body["line"],
                                                  exc.body.get("column") or 1,
                                                  _reason(exc.body))) from exc
            raise
        return Started(run_id=started["run_id"], runbook=started["runbook"],
                       requested_by=started["requested_by"], shown=started)

    async def preflight(self, runbook: Path) -> PreflightReport:
        return PreflightReport.model_validate(self.api.preflight(read_runbook(runbook)))

    async def listing(self) -> tuple[list[dict], list[dict]]:
        listed = self.api.list_runs()
        return listed["runs"], listed.get("locks", [])

    async def detail(self, run_id: str) -> RunSnapshot:
        return self.api.detail(run_id)

    async def _detail_patiently(self, run_id: str) -> RunSnapshot:
        """The run's detail; an API or Temporal outage is waited out for up to OUTAGE_SECONDS,
        a run no worker serves until one starts (said once)."""
        deadline = time.monotonic() + OUTAGE_SECONDS
        while True:
            try:
                return self.api.detail(run_id)
            except ApiRequestError as exc:
                if exc.code == "no_worker":
                    if str(exc) != self._said:
                        self._said = str(exc)
                        err_console.print(Text(f"waiting: {exc}", style="yellow"),
                                          soft_wrap=True)
                elif exc.code not in TRANSIENT_API_CODES or time.monotonic() > deadline:
                    raise
                else:
                    err_console.print("[yellow]still waiting; the API is unavailable:[/] "
                                      f"{escape(str(exc))}")
                await asyncio.sleep(POLL_SECONDS)

    async def follow(self, run_id: str, *, live: bool) -> Followed:
        """Poll the run until it ends: `live` on a terminal redraws its table, into a pipe
        prints one line per change; not `live` (JSON) prints nothing until the end."""
        seen: set[str] = set()
        shown: dict[str, str] = {}
        log = live and not console.is_terminal

        async def poll(view: Live | None) -> RunSnapshot:
            while True:
                detail = await self._detail_patiently(run_id)
                if view is not None:
                    view.update(run_table(detail))
                for line in changes(detail, shown) if log else ():
                    console.print(line, soft_wrap=True, markup=False, highlight=False, emoji=False)
                for target in open_gates(detail) if live else ():
                    if target not in seen:
                        seen.add(target)
                        (view.console if view else console).print(
                            f"[yellow]gate open:[/] {target}; approve with "
                            f"`keyturn approve {run_id} {target}{self.gate_hint}`")
                if detail.status.state in ENDED:
                    return detail
                await asyncio.sleep(POLL_SECONDS)

        if not live:
            final = await poll(None)
            return Followed(final.status.state, final)
        if log:
            return Followed((await poll(None)).status.state, None)
        with Live(console=console, refresh_per_second=4) as view:
            final = await poll(view)
        return Followed(final.status.state, None)

    async def decide(self, run_id: str, target: str, reason: str, *, approve: bool,
                     kind: str | None) -> Decided:
        decided = self.api.decide(run_id, target, reason, approve=approve, kind=kind)
        return Decided(decided["principal"], decided)

    async def cancel(self, run_id: str, reason: str) -> None:
        self.api.cancel(run_id, reason)

    async def awaiting_supply(self, run_id: str, credential: str) -> str:
        payload = self.api.run(run_id)
        found = next((c for c in payload.get("credentials", []) if c["credential"] == credential),
                     None)
        if found is None:
            raise RunNotFound(f"run {run_id} has no credential {credential!r}")
        check_waiting(credential, CredentialStatus.model_validate(found))
        return "its staging store"

    async def supply(self, run_id: str, credential: str, value: str,
                     field: str | None) -> dict[str, Any]:
        return self.api.supply(run_id, credential, value, field)
