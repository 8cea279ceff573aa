"""Log lines that say only what happened: control and bidi characters in a message are
written as escapes, so text from outside (a provider's error quoting an IAM user name, a
runbook's incident) cannot start a forged log line or reorder the one it is in.

    logging.basicConfig(format=FORMAT); inert_logs(FORMAT)   # every root handler
"""

from __future__ import annotations

import logging
import re

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def inert(text: str) -> str:
    r"""`text` with every control or bidi character as an escape: "a\nb" -> "a\\nb"."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class InertFormatter(logging.Formatter):
    """A Formatter that escapes control and bidi characters in the message (tracebacks,
    appended after it, keep their lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = inert(record.message)
        return super().formatMessage(record)


def inert_logs(fmt: str, logger: logging.Logger | None = None) -> None:
    """Give every handler of `logger` (default: the root logger) an InertFormatter(fmt)."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(InertFormatter(fmt))
