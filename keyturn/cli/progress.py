"""Progress of one run until it ends, and a hook per opened gate.

On a terminal: its table, refreshed in place. Into a pipe or a CI log: one line
per change (a tier or credential reaching a new state or step), so the log
shows what happened when, without redrawing. `keyturn run --wait` and
`keyturn wait` print how to approve; the demo approves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live
from rich.text import Text
from temporalio.client import Client

from keyturn.cli.render import open_gates, run_table, step_text
from keyturn.operations import runs
from keyturn.operations.errors import NoWorker
from keyturn.operations.runs import RunSnapshot
from keyturn.workflows.models import GateState, RunStatus

GateHook = Callable[[str, GateState, Console], Awaitable[None]]
"""Called once per gate as it opens: (target, gate, console to print above the table)."""


async def watch(client: Client, run_id: str, console: Console, on_gate: GateHook,
                poll_seconds: float = 1.0) -> RunStatus:
    """Show the run until it ends; return its final status. While no worker serves the run,
    say so (once per reason) and keep waiting: the run goes on when one starts."""
    waiter = asyncio.ensure_future(runs.wait(client, run_id))
    seen: set[str] = set()
    said: set[str] = set()

    async def poll(out: Console) -> RunSnapshot | None:
        try:
            detail = await runs.describe(client, run_id)
        except NoWorker as exc:
            if str(exc) not in said:
                said.add(str(exc))
                out.print(Text(f"waiting: {exc}", style="yellow"), soft_wrap=True)
            return None
        for target, gate in open_gates(detail).items():
            if target not in seen:
                seen.add(target)
                await on_gate(target, gate, out)
        return detail

    if not console.is_terminal:  # a pipe or a CI log: one line per change
        shown: dict[str, str] = {}
        while True:
            ended = waiter.done()
            if detail := await poll(console):
                for line in changes(detail, shown):
                    console.print(line, soft_wrap=True, highlight=False, emoji=False, markup=False)
            if ended:
                return waiter.result()
            await asyncio.wait([waiter], timeout=poll_seconds)
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            ended = waiter.done()
            if detail := await poll(live.console):
                live.update(run_table(detail))
            if ended:
                return waiter.result()
            await asyncio.wait([waiter], timeout=poll_seconds)


def changes(detail: RunSnapshot, shown: dict[str, str]) -> list[str]:
    """One line per tier or credential whose state or step differs from `shown` (updated)."""
    now = datetime.now(UTC).strftime("%H:%M:%S")
    lines = []
    for tier in detail.status.tiers:
        current = {f"tier {tier.tier}": tier.state}
        for cid, outcome in tier.credentials.items():
            cs = detail.credentials.get(cid)
            current[cid] = f"{cs.state} {step_text(cs).plain}".strip() if cs else outcome
        for name, value in current.items():
            if shown.get(name) != value:
                shown[name] = value
                lines.append(f"{now} {name}: {value}")
    return lines
