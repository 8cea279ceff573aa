"""Bounded waits for a change to show in an eventually consistent service.

Providers change a credential through one API and prove it through another:
IAM and STS, Entra and its token endpoint, GCP IAM and its token endpoint,
GitHub's key and delivery lists, an npm registry's whoami, KMS, a vendor's
verify call. The second may not see the change for a few seconds, so its
check is asked again, a bounded number of times with a pause between, until
the answer is the one expected. `Propagation` is that bound and `settle` the
loop; the last answer comes back, and the caller decides what an answer that
never settled means (VerificationFailed, StillValid, a transient error).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Propagation:
    """Ask a check at most `attempts` times, `delay` seconds apart."""

    attempts: int
    delay: float

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"propagation attempts must be >= 1, got {self.attempts}")
        if self.delay < 0:
            raise ValueError(f"propagation delay must be >= 0 seconds, got {self.delay}")

    def settle(self, check: Callable[[], T], done: Callable[[T], bool]) -> T:
        """Call `check` until `done(answer)` holds, at most `attempts` times; the last answer.

        Sleeps `delay` seconds before every call but the first, never after the last.
        """
        answer = check()
        for _ in range(self.attempts - 1):
            if done(answer):
                break
            time.sleep(self.delay)
            answer = check()
        return answer
