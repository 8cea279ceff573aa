"""Unit tests of Propagation: the bounded wait providers use for eventually consistent services."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from keyturn.providers import propagation
from keyturn.providers.propagation import Propagation


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every delay `settle` sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(propagation.time, "sleep", slept.append)
    return slept


def answers(*values: int) -> tuple[Callable[[], int], list[int]]:
    """A check that gives `values` in turn, and the list of answers it has given."""
    given: list[int] = []
    source: Iterator[int] = iter(values)

    def check() -> int:
        given.append(next(source))
        return given[-1]

    return check, given


def test_stops_at_the_first_done_answer_and_returns_it(sleeps):
    check, given = answers(1, 2, 3, 4, 5)
    assert Propagation(attempts=5, delay=0.5).settle(check, lambda n: n >= 3) == 3
    assert given == [1, 2, 3]
    assert sleeps == [0.5, 0.5]


def test_a_first_answer_that_is_done_needs_no_sleep(sleeps):
    check, given = answers(7)
    assert Propagation(attempts=3, delay=1.0).settle(check, lambda n: n == 7) == 7
    assert given == [7]
    assert sleeps == []


def test_returns_the_last_answer_after_exhausting_the_attempts(sleeps):
    check, given = answers(1, 2, 3, 4, 5)
    assert Propagation(attempts=4, delay=2.0).settle(check, lambda n: n > 100) == 4
    assert given == [1, 2, 3, 4]


@pytest.mark.parametrize("attempts", [1, 2, 6])
def test_calls_check_attempts_times_and_sleeps_between_them(sleeps, attempts):
    check, given = answers(*range(10))
    Propagation(attempts=attempts, delay=0.25).settle(check, lambda n: False)
    assert len(given) == attempts
    assert sleeps == [0.25] * (attempts - 1)


def test_a_zero_delay_is_allowed(sleeps):
    check, given = answers(0, 0, 1)
    assert Propagation(attempts=3, delay=0).settle(check, bool) == 1
    assert given == [0, 0, 1]
    assert sleeps == [0, 0]


@pytest.mark.parametrize(
    ("attempts", "delay", "message"),
    [
        (0, 1.0, "attempts must be >= 1, got 0"),
        (-2, 1.0, "attempts must be >= 1, got -2"),
        (3, -0.5, "delay must be >= 0 seconds, got -0.5"),
    ],
)
def test_rejects_unbounded_or_negative_settings(attempts, delay, message):
    with pytest.raises(ValueError, match=message):
        Propagation(attempts=attempts, delay=delay)


def test_is_frozen():
    settings = Propagation(attempts=2, delay=1.0)
    with pytest.raises(AttributeError):
        settings.attempts = 5  # type: ignore[misc]
