"""Shared CLI conventions: exit codes, output formats, and printing."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

EXIT_OK = 0
EXIT_FAILED = 1  # the operation ran and failed (run failed, audit broken)
EXIT_USAGE = 2  # bad usage or invalid input

# Emoji codes are never interpreted: names, reasons, errors and serials from outside are
# data, and a certificate serial such as 01:34:32:ab:fd must not turn into a picture.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


LogFormat = Annotated[OutputFormat | None, typer.Option(
    "--log-format", help="text or json: one JSON object a line (default: $KEYTURN_LOG_FORMAT "
    "or text)")]


def chosen_log_format(chosen: OutputFormat | None) -> str:
    """--log-format, else KEYTURN_LOG_FORMAT, else text; an unknown value fails (exit 2)."""
    from keyturn.logfmt import log_format

    try:
        return log_format(chosen.value if chosen else None)
    except ValueError as exc:
        fail(str(exc))


def show_view(renderable: Any) -> None:
    """Print a view (a `Sheet`, or a group holding one): into a pipe or a CI log each row is
    one line, however long, so ids are whole and `grep` finds a row on one line."""
    console.print(renderable, soft_wrap=not console.is_terminal, highlight=False)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def refuse(error: BaseException, output: OutputFormat = OutputFormat.text,
           code: int = EXIT_USAGE) -> NoReturn:
    """`fail` with `error`'s message; under `-o json` also a JSON error object on stdout,
    {"error": {"code", "message", ...details}}, so a script reads why as well as the
    exit code."""
    if output == OutputFormat.json:
        print_json({"error": {"code": getattr(error, "code", "error"), "message": str(error),
                              **_details(error)}})
    fail(str(error), code)


def _details(error: BaseException) -> dict[str, Any]:
    details = getattr(error, "details", None)
    found = details() if callable(details) else {}
    body = getattr(error, "body", None)  # an API refusal: the server's error body
    if isinstance(body, dict):
        found = {**{k: v for k, v in body.items() if k not in ("code", "message")}, **found}
    return found


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print an error that says what to fix and exit with `code`.

    The message is printed literally: names, paths and error text from outside
    (a runbook, a server's answer) may hold `[...]` or `:name:` and are data.
    """
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False,
                      emoji=False, soft_wrap=not err_console.is_terminal)  # one line in logs
    raise SystemExit(code)
