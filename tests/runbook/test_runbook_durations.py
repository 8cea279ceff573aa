"""Duration parsing and formatting for grace periods and gate timeouts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyturn.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h", 3600),
        ("1h30m", 5400),
        ("0s", 0),
        ("2d", 172800),
        ("1d2h3m4s", 93784),
        ("120", 120),
        (0, 0),
        (45, 45),
        (timedelta(minutes=2), 120),
    ],
)
def test_accepted(text: object, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    ["", "10 minutes", "1.5h", "1m1h", "5S", "h", "-5s", "ten", 1.5, True, None, [5]],
)
def test_rejected(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_absurdly_long_duration_rejected() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999d")


def test_negative_seconds_rejected() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(-5)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (5, "5s"), (5400, "1h30m"), (90061, "1d1h1m1s")]
)
def test_format(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text) == timedelta(seconds=seconds)
