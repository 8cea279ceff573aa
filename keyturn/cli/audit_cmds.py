"""`keyturn audit ...`: verify the hash chain, replay a run's timeline, export records.

Every command reads the JSONL file (`--log`) or the PostgreSQL log (`--dsn`); with
neither, $KEYTURN_AUDIT_DSN when it is set, else $KEYTURN_AUDIT_LOG or the default file.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.text import Text

from keyturn.audit import (
    INVARIANTS,
    REPAIR_RUN,
    AuditError,
    AuditRecord,
    JsonlAuditLog,
    Replay,
    VerifyResult,
    export_run,
    generate_signing_key,
    open_log,
    replay,
    verify_log,
)
from keyturn.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OutputFormat,
    console,
    fail,
    print_json,
    show_view,
)
from keyturn.cli.layout import Sheet

if TYPE_CHECKING:
    from keyturn.audit.postgres import PostgresAuditLog

app = typer.Typer(
    help="Verify, replay and export the append-only, hash-chained audit log.",
    no_args_is_help=True,
)

LogOption = Annotated[
    Path | None,
    typer.Option(
        "--log", help="Audit log file (default: $KEYTURN_AUDIT_LOG, else .keyturn/audit.jsonl)."
    ),
]
DsnOption = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        help="PostgreSQL audit log: a libpq URI or key=value string (default: "
        "$KEYTURN_AUDIT_DSN). Not with --log. Prefer the variable or ~/.pgpass to a "
        "password on the command line.",
        show_default=False,
    ),
]
OutputOption = Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json.")]


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


def _open(
    log: Path | None, dsn: str | None, *, signing: bool = False
) -> JsonlAuditLog | PostgresAuditLog:
    """The log `--log` or `--dsn` names, else the environment's (see the module docstring);
    with the checkpoint signing key only when `signing` (the one command that signs)."""
    if log is not None and dsn is not None:
        fail("--log and --dsn are mutually exclusive: give the file or the database", EXIT_USAGE)
    try:
        return open_log(log, dsn=dsn, signing=signing)
    except (AuditError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)


def _run_records(
    source: JsonlAuditLog | PostgresAuditLog, run: str, *, repairs: bool = False
) -> list[AuditRecord]:
    """The records of `run` in seq order (with `repairs`, also the file's repair records);
    exits if the log does not exist or cannot be read."""
    try:
        if not source.exists():
            fail(
                f"no audit log at {source.where} "
                "(set --log, --dsn, KEYTURN_AUDIT_LOG or KEYTURN_AUDIT_DSN)",
                EXIT_USAGE,
            )
        if repairs and isinstance(source, JsonlAuditLog):
            return [r for r in source.records() if r.run in (run, REPAIR_RUN)]
        return list(source.records_for_run(run))
    except (AuditError, OSError) as exc:
        fail(str(exc), EXIT_FAILED)


def _print_verify(result: VerifyResult) -> None:
    first = result.first_problem
    if first is None:
        console.print(f"[green]✓ audit log intact:[/] {escape(result.path)}", highlight=False)
        console.print(
            f"  {result.records} records, head seq {result.head_seq} "
            f"(hash {result.head_hash[:16]}…), {result.checkpoints} signed checkpoints",
            highlight=False,
        )
    else:
        where = f"seq {first.seq}" if first.seq is not None else "checkpoints"
        line = f" ({first.source} line {first.line})" if first.line is not None else ""
        console.print(
            f"[bold red]✗ audit log BROKEN at {where}{line}:[/] {escape(first.reason)}",
            highlight=False,
        )
        console.print(f"  log: {escape(result.path)}", highlight=False)
        for other in result.problems:
            if other is not first:
                console.print(f"  also: {escape(other.reason)}", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


@app.command("verify")
def verify_cmd(
    log: LogOption = None,
    dsn: DsnOption = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="Ed25519 public key that signed the checkpoints."),
    ] = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Check every record, the chain and the signed checkpoints; name the first bad record.

    Example: keyturn audit verify --public-key .keyturn/checkpoint-key.pub
    """
    try:
        result = verify_log(_open(log, dsn), public_key)
    except (AuditError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)
    if output is OutputFormat.json:
        print_json(result.to_dict())
    else:
        _print_verify(result)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


def _replay_dict(result: Replay) -> dict:
    return {
        "run": result.run,
        "ok": result.ok,
        "records": [r.model_dump() for r in result.records],
        "by_credential": {
            (cred or ""): [r.seq for r in recs] for cred, recs in result.by_credential.items()
        },
        "invariants": {
            name: {
                "ok": not result.violations_of(name),
                "violations": [vars(v) for v in result.violations_of(name)],
            }
            for name in INVARIANTS
        },
        "warnings": list(result.warnings),
    }


def _print_replay(result: Replay) -> None:
    sheet = Sheet(["seq", "time", "tier", "credential", "step", "outcome", "actor", "details"],
                  title=f"run {result.run} (times UTC)", table={"title_justify": "left"},
                  column_options={c: {"no_wrap": True} for c in ("seq", "time", "step", "outcome")})
    flagged = {v.seq for v in result.violations}
    day = None
    for r in result.records:
        # Show the date only when it changes: runs wait on approvals for hours or days.
        time = r.ts[11:19] if r.ts[:10] == day else f"{r.ts[:10]} {r.ts[11:19]}"
        day = r.ts[:10]
        details = json.dumps(r.details, sort_keys=True, ensure_ascii=False) if r.details else ""
        sheet.add_row(str(r.seq), time, r.tier or "", r.credential or "", r.step, r.outcome,
                      r.actor, details, style="red" if r.seq in flagged else None)
    show_view(sheet)
    for name in INVARIANTS:
        violations = result.violations_of(name)
        mark = "[green]✓[/]" if not violations else "[bold red]✗[/]"
        console.print(f"{mark} {name}", highlight=False)
        for v in violations:
            who = f" {escape(v.credential)}" if v.credential else ""
            console.print(f"    seq {v.seq}{who}: {escape(v.message)}", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


@app.command("replay")
def replay_cmd(
    run: Annotated[str, typer.Argument(help="Run id.")],
    log: LogOption = None,
    dsn: DsnOption = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Rebuild a run's timeline and check its invariants (exit 1 if one fails).

    Example: keyturn audit replay $RUN -o json
    """
    source = _open(log, dsn)
    result = replay(_run_records(source, run, repairs=True), run)
    if not result.records:
        fail(f"no records for run {run!r} in {source.where}", EXIT_USAGE)
    if output is OutputFormat.json:
        print_json(_replay_dict(result))
    else:
        _print_replay(result)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@app.command("export")
def export_cmd(
    run: Annotated[str, typer.Option("--run", help="Run id.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")],
    log: LogOption = None,
    dsn: DsnOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: stdout).")
    ] = None,
    output: OutputOption = OutputFormat.text,
) -> None:
    """Export one run's records (JSONL lines are the log's own bytes).

    Example: keyturn audit export --run $RUN --format csv --out $RUN.csv
    """
    if output is OutputFormat.json and out is None:
        fail("-o json reports what was written: give --out FILE (without it the records "
             "themselves go to stdout)")
    source = _open(log, dsn)
    selected = _run_records(source, run)
    if not selected:
        fail(f"no records for run {run!r} in {source.where}", EXIT_USAGE)
    if out is None:
        export_run(selected, run, fmt.value, sys.stdout)
        return
    try:
        with out.open("w", encoding="utf-8", newline="") as handle:
            count = export_run(selected, run, fmt.value, handle)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}", EXIT_FAILED)
    if output is OutputFormat.json:
        print_json({"run": run, "format": fmt.value, "records": count, "out": str(out)})
    else:
        console.print(Text(f"wrote {count} records to {out}"))


@app.command("repair")
def repair_cmd(log: LogOption = None) -> None:
    """Cut back a torn last line (an append that never completed) and record a `repair`.

    The repair record names what was cut (its length and SHA-256), after which seq and
    who repaired it. Only an unterminated last line is cut; other damage is left for
    `keyturn audit verify` to name. Workers do the same on their next append.

    Example: keyturn audit repair --log .keyturn/audit.jsonl
    """
    source = _open(log, None)
    if not isinstance(source, JsonlAuditLog):
        fail("only a JSONL log can have a torn line; PostgreSQL appends are transactions",
             EXIT_USAGE)
    try:
        record = source.repair(actor=_operator())
    except (AuditError, OSError) as exc:
        fail(str(exc), EXIT_FAILED)
    if record is None:
        console.print(f"nothing to repair: {escape(source.where)} ends with a whole line",
                      highlight=False)
        return
    d = record.details
    console.print(
        f"repaired {escape(source.where)}: cut {d['cut_bytes']} torn bytes after seq "
        f"{d['after_seq']} (sha256 {d['cut_sha256']}); repair record seq {record.seq}",
        highlight=False,
    )


def _operator() -> str:
    """Who `audit repair` names as the repairer: $KEYTURN_PRINCIPAL, else user@host."""
    import getpass
    import os
    import socket

    principal = os.environ.get("KEYTURN_PRINCIPAL")
    return principal or f"{getpass.getuser()}@{socket.gethostname()}"


@app.command("keygen")
def keygen_cmd(
    path: Annotated[
        Path, typer.Argument(help="Private key file to create (public key: PATH.pub).")
    ],
) -> None:
    """Create an Ed25519 checkpoint signing key; point KEYTURN_AUDIT_SIGNING_KEY at it.

    Example: keyturn audit keygen .keyturn/checkpoint-key
    """
    try:
        kid = generate_signing_key(path)
    except (AuditError, OSError) as exc:
        fail(str(exc), EXIT_USAGE)
    console.print(f"key {kid}: private {escape(str(path))}, public {escape(str(path))}.pub")


@app.command("checkpoint")
def checkpoint_cmd(log: LogOption = None, dsn: DsnOption = None,
                   output: OutputOption = OutputFormat.text) -> None:
    """Sign the current head now (needs KEYTURN_AUDIT_SIGNING_KEY).

    Example: keyturn audit checkpoint -o json
    """
    source = _open(log, dsn, signing=True)
    try:
        checkpoint = source.checkpoint()
    except (AuditError, OSError) as exc:
        fail(str(exc), EXIT_FAILED)
    if checkpoint is None:
        fail("nothing signed: KEYTURN_AUDIT_SIGNING_KEY is not set or the log is empty")
    if output is OutputFormat.json:
        print_json({"seq": checkpoint.seq, "hash": checkpoint.hash})
    else:
        console.print(f"signed seq {checkpoint.seq} (hash {checkpoint.hash[:16]}…)",
                      highlight=False)


@app.command("init")
def init_cmd(dsn: DsnOption = None) -> None:
    """Create the PostgreSQL audit tables and their insert-only triggers (idempotent).

    Run it once as the role that should own the tables, then grant the workers' role
    only INSERT, SELECT on them: an owner could disable the triggers.

    Example: keyturn audit init --dsn "host=db.internal dbname=keyturn user=keyturn_owner"
    """
    source = _open(None, dsn)
    if isinstance(source, JsonlAuditLog):
        fail("init is for the PostgreSQL log: give --dsn or set KEYTURN_AUDIT_DSN", EXIT_USAGE)
    try:
        source.create_schema()
    except AuditError as exc:
        fail(str(exc), EXIT_FAILED)
    console.print(f"audit tables ready in {escape(source.where)}", highlight=False)
