"""Durations as runbooks write them: "90s", "10m", "1h30m", "2d", "0s" or plain seconds.

Parsing is strict (a typo in a grace period must not silently become zero) and
`format_duration` writes the same compact form back for display. `Duration` is
the pydantic field type for one; it lives here, outside the runbook package, so
that providers (whose targets take durations) and configuration can use it
without importing the runbook model.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PATTERN = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
HINT = 'a duration like "90s", "10m", "1h30m", "2d" or a whole number of seconds'


def parse_duration(value: object) -> timedelta:
    """Turn a runbook duration into a timedelta; raise ValueError saying what is accepted."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value.strip())
    elif isinstance(value, str) and value.strip():
        match = _PATTERN.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not {HINT}")
        seconds = sum(int(n) * _UNITS[unit] for unit, n in match.groupdict().items() if n)
    else:
        raise ValueError(f"expected {HINT}, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{value!r} is too long for a duration") from None


def format_duration(value: timedelta) -> str:
    """Write a timedelta back in runbook form: 5400 seconds -> "1h30m", zero -> "0s"."""
    remaining = int(value.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$|^\d+$"},
                {"type": "integer", "minimum": 0},
            ]
        }
    ),
]
"""A duration field: a runbook duration string or whole seconds, parsed to a timedelta."""
