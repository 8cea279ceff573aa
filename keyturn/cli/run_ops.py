"""The one interface the run commands talk to, RunOperations, and which implementation serves it.

Two implementations: TemporalRuns (keyturn.cli.ops_temporal) calls the operations core
over a direct Temporal connection as `--as` or $KEYTURN_PRINCIPAL; ApiRuns
(keyturn.cli.ops_api) calls keyturn's HTTP API, which takes the acting principal from
KEYTURN_TOKEN. `operations()` picks ApiRuns when KEYTURN_API_URL and KEYTURN_TOKEN are
both set. `run_with` runs a command's coroutine and turns every refusal into the
message and exit code the command promises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from keyturn.cli import api_client
from keyturn.cli.api_client import ApiClient, ApiRequestError
from keyturn.cli.common import EXIT_FAILED, OutputFormat, fail, refuse
from keyturn.cli.preflight_cmds import show
from keyturn.config import ConfigError, Settings
from keyturn.errors import KeyturnError
from keyturn.operations.errors import PreflightRefused
from keyturn.operations.preflight import PreflightReport
from keyturn.operations.runs import RunSnapshot
from keyturn.runbook.plan_model import ExecutionPlan, OnLocked

T = TypeVar("T")
AS_REFUSED = ("--as cannot be used with KEYTURN_API_URL: the API takes your identity "
              "from KEYTURN_TOKEN")


@dataclass(frozen=True)
class Started:
    """A run just started; `shown` is what `-o json` prints for it."""

    run_id: str
    runbook: str
    requested_by: str
    shown: dict[str, Any]


@dataclass(frozen=True)
class Decided:
    """A gate decision: the gate's state after it (`shown`: gate, status, approvals, needed)
    and who decided."""

    principal: str
    shown: dict[str, Any]


@dataclass(frozen=True)
class Followed:
    """How a followed run ended, and its detail when it was followed without a live view."""

    state: str
    detail: RunSnapshot | None


class RunOperations(Protocol):
    """What the run commands can do, whether through Temporal or through the HTTP API."""

    gate_hint: str
    """Appended to `keyturn approve RUN TARGET` in the hint printed when a gate opens."""

    def close(self) -> None: ...

    async def start(self, runbook: Path, *, skip_preflight: bool, on_locked: OnLocked | None,
                    on_preflight: Callable[[ExecutionPlan], None]) -> Started: ...

    async def preflight(self, runbook: Path) -> PreflightReport: ...

    async def listing(self) -> tuple[list[dict], list[dict]]:
        """(recent runs, targets held now)."""
        ...

    async def detail(self, run_id: str) -> RunSnapshot: ...

    async def follow(self, run_id: str, *, live: bool) -> Followed:
        """Until the run ends; with `live`, its table refreshed on the console meanwhile."""
        ...

    async def decide(self, run_id: str, target: str, reason: str, *, approve: bool,
                     kind: str | None) -> Decided: ...

    async def cancel(self, run_id: str, reason: str) -> None: ...

    async def awaiting_supply(self, run_id: str, credential: str) -> str:
        """Where a supplied value for `credential` goes ("its staging store" if unknown);
        RunNotFound or NotAwaitingSupply unless the credential waits for one now."""
        ...

    async def supply(self, run_id: str, credential: str, value: str,
                     field: str | None) -> dict[str, Any]:
        """Hand the value over; what `-o json` prints (fingerprint, staging_version, ...)."""
        ...


def settings_or_fail() -> Settings:
    """The settings from the environment; a malformed variable is a usage error, not a traceback."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        fail(str(exc))


def operations(as_: str | None = None) -> RunOperations:
    """ApiRuns when KEYTURN_API_URL and KEYTURN_TOKEN are set (then --as is refused), else
    TemporalRuns acting as `as_` (default: $KEYTURN_PRINCIPAL or $USER)."""
    if api_client.configured():
        if as_ is not None:
            fail(AS_REFUSED)
        from keyturn.cli.ops_api import ApiRuns

        return ApiRuns(ApiClient.from_env())
    from keyturn.cli.ops_temporal import TemporalRuns

    settings = settings_or_fail()
    return TemporalRuns(settings, as_ or settings.principal)


def run_with(ops: RunOperations, work: Callable[[RunOperations], Coroutine[Any, Any, T]],
             output: OutputFormat = OutputFormat.text) -> T:
    """Run `work(ops)`, then close `ops`. A preflight refusal prints its report and exits 1;
    any other refusal prints its message and exits 2."""
    try:
        return asyncio.run(work(ops))
    except PreflightRefused as exc:
        show(exc.report, output, refused=True)
        fail(str(exc), EXIT_FAILED)
    except ApiRequestError as exc:
        if exc.code == "preflight_failed" and "report" in exc.body:
            show(PreflightReport.model_validate(exc.body["report"]), output, refused=True)
            fail(str(exc), EXIT_FAILED)
        refuse(exc, output)
    except KeyturnError as exc:
        refuse(exc, output)
    finally:
        ops.close()
