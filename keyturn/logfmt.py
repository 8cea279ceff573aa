"""The worker's and the API's log formats: plain lines (the default) or one JSON object a line.

`--log-format json` (or KEYTURN_LOG_FORMAT=json) writes objects with time, level, logger
and message, plus run, tier, credential, provider, step, outcome and attempt when known:
the activity wrapper sets them for the duration of a step (`step_context`), a call may
pass them in `extra`. The message is escaped as in the plain format (keyturn.logsafe)
before it is JSON-encoded, so both formats say the same thing, one record per line.

    configure_logging("json", PLAIN_FORMAT)
    with step_context(run="r1", credential="deployer", step="create", attempt=1): ...
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from keyturn.logsafe import inert, inert_logs

LOG_FORMAT_ENV = "KEYTURN_LOG_FORMAT"
FORMATS = ("text", "json")
FIELDS = ("run", "tier", "credential", "provider", "step", "outcome", "attempt")

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "keyturn_log_context", default=None)


@contextlib.contextmanager
def step_context(**fields: Any) -> Iterator[None]:
    """Add `fields` (see FIELDS) to every record logged in this block by this thread or task."""
    known = {k: v for k, v in fields.items() if v is not None}
    token = _context.set({**(_context.get() or {}), **known})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the known FIELDS, and the
    traceback (`exc`) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        known = _context.get() or {}
        for name in FIELDS:
            value = getattr(record, name, known.get(name))
            if value is not None:
                entry[name] = value
        entry["message"] = inert(record.getMessage())
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_format(chosen: str | None = None) -> str:
    """`chosen` (a --log-format value), else KEYTURN_LOG_FORMAT, else "text"."""
    value = (chosen or os.environ.get(LOG_FORMAT_ENV) or "text").lower()
    if value not in FORMATS:
        raise ValueError(f"log format {value!r}: choose {' or '.join(FORMATS)} "
                         f"(--log-format or {LOG_FORMAT_ENV})")
    return value


def configure_logging(fmt: str, plain: str, level: int = logging.INFO) -> None:
    """Log at `level` to stderr in `fmt` ("text": the `plain` format string, escaped)."""
    logging.basicConfig(level=level, format=plain)
    if fmt != "json":
        inert_logs(plain)  # provider errors quote names from outside: no forged lines
        return
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())
