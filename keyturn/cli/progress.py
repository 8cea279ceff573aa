"""Live progress of one run: its table, refreshed until the run ends, and a hook per opened gate.

`keyturn run --wait` and `keyturn wait` print how to approve; the demo approves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.live import Live
from temporalio.client import Client

from keyturn.cli.render import open_gates, run_table
from keyturn.operations import runs
from keyturn.workflows.models import GateState, RunStatus

GateHook = Callable[[str, GateState, Console], Awaitable[None]]
"""Called once per gate as it opens: (target, gate, console to print above the table)."""


async def watch(client: Client, run_id: str, console: Console, on_gate: GateHook,
                poll_seconds: float = 1.0) -> RunStatus:
    """Show the run live until it ends; return its final status."""
    waiter = asyncio.ensure_future(runs.wait(client, run_id))
    seen: set[str] = set()
    with Live(console=console, refresh_per_second=4) as live:
        while not waiter.done():
            detail = await runs.describe(client, run_id)
            live.update(run_table(detail))
            for target, gate in open_gates(detail).items():
                if target not in seen:
                    seen.add(target)
                    await on_gate(target, gate, live.console)
            await asyncio.wait([waiter], timeout=poll_seconds)
        live.update(run_table(await runs.describe(client, run_id)))
    return waiter.result()
