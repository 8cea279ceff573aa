"""Failed logins (the page's form, unknown API tokens): logged (client address only, never
what was typed) and limited per client.

A client with `limit` failed logins within `window` is refused (429) until the oldest
of them leaves the window; a successful login does not reset the count, so guessing
between one's own valid logins gains nothing. Tokens are 256-bit random, so this is
about noise and early warning more than about the odds of a guess.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("keyturn.api")
DEFAULT_LIMIT = 10
DEFAULT_WINDOW = 300.0
MAX_CLIENTS = 10_000


class LoginThrottle:
    def __init__(self, limit: int = DEFAULT_LIMIT, window: float = DEFAULT_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def wait(self, client: str) -> float:
        """Seconds until `client` may try again; 0 if it may now."""
        now = self._clock()
        with self._lock:
            recent = self._recent(client, now)
            if len(recent) < self.limit:
                return 0.0
            return max(recent[0] + self.window - now, 0.0)

    def failed(self, client: str, why: str) -> None:
        """Count and log one failed login of `client`."""
        now = self._clock()
        with self._lock:
            if client not in self._failures and len(self._failures) >= MAX_CLIENTS:
                self._failures = {c: d for c, d in self._failures.items()
                                  if d and d[-1] > now - self.window}
            self._recent(client, now).append(now)
        log.warning("failed login from %s: %s", client, why)

    def _recent(self, client: str, now: float) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent
