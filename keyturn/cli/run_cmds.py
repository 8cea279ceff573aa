"""`keyturn run | status | wait | approve | reject | cancel | supply | worker`: operating runs.

They talk to Temporal directly, or, when KEYTURN_API_URL and KEYTURN_TOKEN are both set,
to keyturn's HTTP API, which then takes the acting principal from the token (no --as).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from keyturn import locks
from keyturn.cli import api_client
from keyturn.cli.api_client import ApiClient, ApiRequestError
from keyturn.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    OutputFormat,
    console,
    err_console,
    fail,
    print_json,
)
from keyturn.cli.preflight_cmds import show
from keyturn.cli.progress import watch
from keyturn.cli.render import locks_table, open_gates, run_table, runs_table
from keyturn.config import ConfigError, Settings
from keyturn.errors import KeyturnError
from keyturn.operations import cancel as cancel_ops
from keyturn.operations import gates, runs
from keyturn.operations.connect import connect
from keyturn.operations.errors import InvalidRunbook
from keyturn.operations.errors import PreflightRefused as _Refused
from keyturn.operations.plans import RunbookSource, compile_plan
from keyturn.operations.preflight import PreflightReport, preflight
from keyturn.runbook.plan_model import OnLocked
from keyturn.workflows.models import GateState

Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json")]
As = Annotated[str | None, typer.Option("--as", help="principal acting (default: $KEYTURN_PRINCIPAL or $USER)")]
GateKind = Enum("GateKind", {k: k for k in gates.GATE_KINDS}, type=str)
Kind = Annotated[GateKind | None, typer.Option(
    "--kind", help="which gate TARGET names, tier or credential (refused if it is not)")]
POLL_SECONDS = 1.0
OUTAGE_SECONDS = 300.0
"""How long `wait` over the API keeps polling through an outage of the API or Temporal."""
TRANSIENT_API_CODES = frozenset({"api_unreachable", "temporal_unavailable"})
AS_REFUSED = ("--as cannot be used with KEYTURN_API_URL: the API takes your identity "
              "from KEYTURN_TOKEN")
ENDED = ("succeeded", "failed", "cancelled")


class PreflightRefused(_Refused):
    """Preflight's refusal, with the output format to show its report in."""

    def __init__(self, report: PreflightReport, output: OutputFormat) -> None:
        super().__init__(report)
        self.output = output


def interrupted(run_id: str | None) -> NoReturn:
    """Ctrl-C while following a run: it goes on without us; say how to find it again."""
    if run_id is None:
        err_console.print("interrupted before the run started: nothing was started",
                          highlight=False)
    else:
        err_console.print(Text(
            f"interrupted: run {run_id} goes on; follow it again with `keyturn wait {run_id}`, "
            f"see it with `keyturn status {run_id}`, stop it with `keyturn cancel {run_id}`"),
            highlight=False)
    raise SystemExit(130)


def _count(plan) -> int:
    return sum(len(tier.credentials) for tier in plan.tiers)


class OnLockedChoice(str, Enum):
    refuse = "refuse"
    wait = "wait"


OnLockedOption = Annotated[OnLockedChoice | None, typer.Option(
    "--on-locked", help="when another run holds a credential's target: refuse (the credential "
    "fails at step lock, naming that run) or wait for it; default: as the runbook says")]


def run_async(coro):
    try:
        return asyncio.run(coro)
    except PreflightRefused as exc:
        show(exc.report, exc.output, refused=True)
        fail(str(exc), EXIT_FAILED)
    except (ConfigError, KeyturnError) as exc:
        fail(str(exc))


def read_runbook(runbook: Path) -> str:
    """The runbook's text for the API; an unreadable file is a usage error."""
    try:
        return runbook.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{runbook}: cannot read the runbook ({exc})")


def plan_or_fail(runbook: Path, principal: str, now: datetime, *, preflight: str = "",
                 on_locked: OnLocked | None = None):
    """The runbook planned for `principal`; an invalid runbook exits 2 naming file:line:col."""
    try:
        plan = compile_plan(settings_or_fail(), RunbookSource.read(runbook),
                            requested_by=principal, now=now, on_locked=on_locked)
    except InvalidRunbook as exc:
        fail(str(exc))
    return plan.model_copy(update={"preflight": preflight}) if preflight else plan


async def preflight_of(settings: Settings, plan) -> PreflightReport:
    return await preflight(await connect(settings), plan, settings.task_queue)


def settings_or_fail() -> Settings:
    """The settings from the environment; a malformed variable is a usage error, not a traceback."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        fail(str(exc))


def api_or_none(as_: str | None = None) -> ApiClient | None:
    """The API client when KEYTURN_API_URL and KEYTURN_TOKEN are set (then --as is refused),
    else None: talk to Temporal directly."""
    if not api_client.configured():
        return None
    if as_ is not None:
        fail(AS_REFUSED)
    return ApiClient.from_env()


def api_call(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except ApiRequestError as exc:
        fail(str(exc))


def _detail_json(detail: runs.RunDetail) -> dict:
    return {
        **detail.status.model_dump(mode="json"),
        "credential_details": {k: v.model_dump(mode="json") for k, v in detail.credentials.items()},
        "open_gates": list(open_gates(detail)),
    }


async def _follow(client, run_id: str, output: OutputFormat) -> int:
    """Show live progress until the run ends; exit code 0 if it succeeded, 1 otherwise."""
    if output == OutputFormat.json:
        final = await runs.wait(client, run_id)
        print_json(_detail_json(await runs.describe(client, run_id)))
        return EXIT_OK if final.state == "succeeded" else EXIT_FAILED

    async def how_to_approve(target: str, gate: GateState, out: Console) -> None:
        out.print(f"[yellow]gate open:[/] {target}; approve with "
                  f"`keyturn approve {run_id} {target} --as <principal>`")

    final = await watch(client, run_id, console, how_to_approve, POLL_SECONDS)
    console.print(f"run {run_id} [bold]{final.state}[/]")
    return EXIT_OK if final.state == "succeeded" else EXIT_FAILED


def _detail_patiently(api: ApiClient, run_id: str) -> runs.RunDetail:
    """The run's detail; an API or Temporal outage is waited out for up to OUTAGE_SECONDS."""
    deadline = time.monotonic() + OUTAGE_SECONDS
    while True:
        try:
            return api.detail(run_id)
        except ApiRequestError as exc:
            if exc.code not in TRANSIENT_API_CODES or time.monotonic() > deadline:
                fail(str(exc))
            err_console.print(f"[yellow]still waiting; the API is unavailable:[/] {escape(str(exc))}")
            time.sleep(POLL_SECONDS)


def _follow_api(api: ApiClient, run_id: str, output: OutputFormat) -> int:
    """`_follow` over the API: poll GET /v1/runs/{id} until the run ends."""
    seen: set[str] = set()

    def poll(live: Live | None) -> runs.RunDetail:
        while True:
            detail = _detail_patiently(api, run_id)
            if live is not None:
                live.update(run_table(detail))
                for target in open_gates(detail):
                    if target not in seen:
                        seen.add(target)
                        live.console.print(f"[yellow]gate open:[/] {target}; approve with "
                                           f"`keyturn approve {run_id} {target}`")
            if detail.status.state in ENDED:
                return detail
            time.sleep(POLL_SECONDS)

    if output == OutputFormat.json:
        final = poll(None)
        print_json(_detail_json(final))
    else:
        with Live(console=console, refresh_per_second=4) as live:
            final = poll(live)
        console.print(f"run {run_id} [bold]{final.status.state}[/]")
    return EXIT_OK if final.status.state == "succeeded" else EXIT_FAILED


def _run_over_api(api: ApiClient, runbook: Path, wait: bool, output: OutputFormat,
                  skip_preflight: bool, on_locked: OnLocked | None) -> int:
    text = read_runbook(runbook)
    try:
        started = api.start_run(text, skip_preflight=skip_preflight, on_locked=on_locked)
    except ApiRequestError as exc:
        if exc.code == "invalid_runbook" and exc.body.get("line"):  # positions in the local file
            fail(f"{runbook}:{exc.body['line']}:{exc.body.get('column') or 1}: "
                        f"{_reason(exc.body)}")
        if exc.code == "preflight_failed" and "report" in exc.body:
            show(PreflightReport.model_validate(exc.body["report"]), output, refused=True)
            fail(str(exc), EXIT_FAILED)
        fail(str(exc))
    run_id = started["run_id"]
    if output == OutputFormat.json and not wait:
        print_json(started)
    elif output == OutputFormat.text:
        console.print(f"started run [bold]{escape(run_id)}[/] ({escape(started['runbook'])}, "
                      f"requested by {escape(started['requested_by'])})")
    try:
        return _follow_api(api, run_id, output) if wait else EXIT_OK
    except KeyboardInterrupt:
        interrupted(run_id)


def _print_listing(listed: list[dict], held: list[dict], output: OutputFormat) -> None:
    """`status` without a run: the runs, then the targets held now (JSON: runs, locks)."""
    if output == OutputFormat.json:
        print_json({"runs": listed, "locks": held})
        return
    console.print(runs_table(listed) if listed else "no runs")
    console.print(locks_table(held) if held else "no targets held")


def _reason(body: dict) -> str:
    """The API's invalid_runbook message without its own `file:line:column: ` prefix."""
    message = str(body.get("message", ""))
    prefix = f"{body.get('file')}:{body.get('line')}:{body.get('column')}: "
    return message.removeprefix(prefix)


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        queue: Annotated[list[str] | None, typer.Option(
            "--queue", help="serve only this queue: `workflows` or a provider family "
            "(repeatable; default: all)")] = None,
    ) -> None:
        """Run a worker (same as `python worker.py`): workflows and every provider family's queue."""
        from keyturn.worker import main

        main(queue or ())

    @app.command()
    def run(
        runbook: Annotated[Path, typer.Argument(help="runbook YAML file")],
        as_: As = None,
        wait: Annotated[bool, typer.Option("--wait", help="follow progress until the run ends")] = False,
        skip_preflight: Annotated[bool, typer.Option(
            "--skip-preflight", help="BREAK-GLASS: start without preflight's checks (audited)")] = False,
        output: Output = OutputFormat.text,
        on_locked: OnLockedOption = None,
    ) -> None:
        """Run preflight, then start a rotation run; prints the run id.

        A preflight problem refuses the run with the report (exit 1) before anything changes.
        Example: keyturn run runbooks/incident.yaml --wait
        """
        chosen: OnLocked | None = on_locked.value if on_locked else None
        api = api_or_none(as_)
        if skip_preflight:
            err_console.print("[bold red]warning:[/] --skip-preflight: the run starts without "
                              "preflight's checks; the audit log records who skipped them")
        if api is not None:
            with api:
                raise typer.Exit(_run_over_api(api, runbook, wait, output, skip_preflight,
                                               chosen))
        settings = settings_or_fail()
        principal = as_ or settings.principal
        plan = plan_or_fail(runbook, principal, datetime.now(UTC), on_locked=chosen,
                            preflight=f"skipped by {principal}" if skip_preflight else "passed")

        started: list[str] = []

        async def go() -> int:
            client = await connect(settings)
            if not skip_preflight:
                if output == OutputFormat.text:
                    err_console.print(f"preflight: checking {_count(plan)} credential(s)…",
                                      highlight=False)
                report = await preflight(client, plan, settings.task_queue)
                if not report.ready:
                    raise PreflightRefused(report, output)
            run_id = await runs.start(client, plan, settings.task_queue)
            started.append(run_id)
            if output == OutputFormat.json and not wait:
                print_json({"run_id": run_id, "runbook": plan.runbook, "incident": plan.incident})
            elif output == OutputFormat.text:
                console.print(f"started run [bold]{escape(run_id)}[/] ({escape(plan.runbook)}, "
                              f"requested by {escape(principal)})")
            return await _follow(client, run_id, output) if wait else EXIT_OK

        try:
            raise typer.Exit(run_async(go()))
        except KeyboardInterrupt:
            interrupted(started[0] if started else None)

    @app.command()
    def status(
        run_id: Annotated[str | None, typer.Argument(help="a run id; omit to list runs")] = None,
        output: Output = OutputFormat.text,
    ) -> None:
        """List runs and the targets they hold, or show one run's tiers, credentials, steps
        and open gates."""
        api = api_or_none()
        if api is not None:
            with api:
                if run_id is None:
                    listed = api_call(api.list_runs)
                    _print_listing(listed["runs"], listed.get("locks", []), output)
                    return
                detail = api_call(api.detail, run_id)
            if output == OutputFormat.json:
                print_json(_detail_json(detail))
            else:
                console.print(run_table(detail))
            return
        settings = settings_or_fail()

        async def go() -> None:
            client = await connect(settings)
            if run_id is None:
                listed = await runs.list_runs(client)
                held = [h.to_json() for h in await locks.held_targets(client)]
                _print_listing(listed, held, output)
                return
            detail = await runs.describe(client, run_id)
            if output == OutputFormat.json:
                print_json(_detail_json(detail))
            else:
                console.print(run_table(detail))

        run_async(go())

    @app.command()
    def wait(run_id: str, output: Output = OutputFormat.text) -> None:
        """Block until the run ends; exit 0 if it succeeded, 1 if it failed or was cancelled."""
        api = api_or_none()
        if api is not None:
            with api:
                try:
                    raise typer.Exit(_follow_api(api, run_id, output))
                except KeyboardInterrupt:
                    interrupted(run_id)
        settings = settings_or_fail()

        async def go() -> int:
            client = await connect(settings)
            await runs.describe(client, run_id)
            return await _follow(client, run_id, output)

        try:
            raise typer.Exit(run_async(go()))
        except KeyboardInterrupt:
            interrupted(run_id)

    def _decide(run_id: str, target: str, as_: str | None, reason: str, approve: bool,
                output: OutputFormat, kind: GateKind | None = None) -> None:
        verb = "approved" if approve else "rejected"
        kind_name = kind.value if kind else None
        api = api_or_none(as_)
        if api is not None:
            with api:
                decided = api_call(api.decide, run_id, target, reason, approve=approve,
                                   kind=kind_name)
            if output == OutputFormat.json:
                print_json(decided)
            else:
                console.print(f"{verb} {target} (gate before {decided['gate']}) as "
                              f"{decided['principal']}: gate {decided['status']}, "
                              f"{decided['approvals']}/{decided['needed']} approvals")
            return
        settings = settings_or_fail()
        principal = as_ or settings.principal

        async def go() -> None:
            client = await connect(settings)
            result = await gates.decide(client, run_id, target, principal, reason, approve=approve,
                                       kind=kind_name)
            if output == OutputFormat.json:
                print_json(result.model_dump(mode="json"))
            else:
                console.print(f"{verb} {target} (gate before {result.gate}) as {principal}: "
                              f"gate {result.status}, {result.approvals}/{result.needed} approvals")

        run_async(go())

    @app.command()
    def approve(
        run_id: str,
        target: Annotated[str, typer.Argument(help="credential id or tier id with an open gate")],
        as_: As = None,
        reason: Annotated[str, typer.Option("--reason", help="why")] = "",
        kind: Kind = None,
        output: Output = OutputFormat.text,
    ) -> None:
        """Approve an open gate."""
        _decide(run_id, target, as_, reason, True, output, kind)

    @app.command()
    def reject(
        run_id: str,
        target: Annotated[str, typer.Argument(help="credential id or tier id with an open gate")],
        reason: Annotated[str, typer.Option("--reason", help="why (required)")],
        as_: As = None,
        kind: Kind = None,
        output: Output = OutputFormat.text,
    ) -> None:
        """Reject an open gate.

        Before promote the credential rolls back (old one left working); at a revoke
        gate the new credential stays delivered and the old one is not deleted; a
        rejected tier gate keeps the tier from starting.
        """
        _decide(run_id, target, as_, reason, False, output, kind)

    @app.command()
    def cancel(
        run_id: str,
        as_: As = None,
        reason: Annotated[str, typer.Option("--reason", help="why (in the audit log)")] = "",
    ) -> None:
        """Cancel a run; credentials not yet promoted roll back. The audit log names who."""
        api = api_or_none(as_)
        if api is not None:
            with api:
                api_call(api.cancel, run_id, reason)
            console.print(f"cancellation requested for {run_id}")
            return
        settings = settings_or_fail()

        async def go() -> None:
            client = await connect(settings)
            await cancel_ops.cancel(client, run_id, as_ or settings.principal, reason)
            console.print(f"cancellation requested for {run_id}")

        run_async(go())

    @app.command()
    def supply(
        run_id: str,
        credential: Annotated[str, typer.Argument(help="the supplied credential waiting (e.g. a github.pat)")],
        as_: As = None,
        field: Annotated[str | None, typer.Option(
            "--field", help="secret field name (default: what the provider expects, e.g. token)")] = None,
        output: Output = OutputFormat.text,
    ) -> None:
        """Put an operator-made replacement into the store (read from a hidden prompt or stdin).

        The value goes straight to the credential's staging location; the run is
        told only its fingerprint, then verifies it and revokes the old credential.
        """
        from keyturn.operations.supply import awaiting_credential, supplied_field
        from keyturn.operations.supply import supply as supply_value

        api = api_or_none(as_)
        if api is not None:
            with api:
                _supply_over_api(api, run_id, credential, field, output)
            return
        settings = settings_or_fail()
        principal = as_ or settings.principal

        async def go() -> None:
            client = await connect(settings)
            cred = await awaiting_credential(client, run_id, credential)
            value = _read_supplied_value(cred.id)
            name = field or supplied_field(cred.provider)
            notice = await supply_value(client, run_id, credential, {name: value}, principal)
            if output == OutputFormat.json:
                print_json(notice.model_dump(mode="json"))
            else:
                console.print(f"{credential}: supplied value {notice.fingerprint} written to "
                              f"{cred.staging.store} (version {notice.staging_version}); the run "
                              "now verifies it")

        run_async(go())


def _supply_over_api(api: ApiClient, run_id: str, credential: str, field: str | None,
                     output: OutputFormat) -> None:
    """Check the credential waits for a value (before asking for it), then POST it."""
    payload = api_call(api.run, run_id)
    found = next((c for c in payload.get("credentials", []) if c["credential"] == credential),
                 None)
    if found is None:
        fail(f"run {run_id} has no credential {credential!r}")
    last = found["steps"][-1] if found.get("steps") else None
    if last is None or (last["step"], last["outcome"]) != ("supply", "waiting"):
        where = f"{last['step']} {last['outcome']}" if last else "not started"
        fail(f"credential {credential} is not waiting for a supplied value ({where})")
    value = _read_supplied_value(credential)
    result = api_call(api.supply, run_id, credential, value, field)
    if output == OutputFormat.json:
        print_json(result)
    else:
        console.print(f"{credential}: supplied value {result['fingerprint']} written to its "
                      f"staging store (version {result['staging_version']}); the run now "
                      "verifies it")


def _read_supplied_value(credential: str) -> str:
    """One line from stdin when piped, else a hidden prompt asked twice."""
    import sys

    if sys.stdin.isatty():
        value = typer.prompt(f"new value for {credential}", hide_input=True,
                             confirmation_prompt=True, err=True)
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        fail(f"no value given for {credential}: pipe it on stdin or type it at the prompt")
    return value
