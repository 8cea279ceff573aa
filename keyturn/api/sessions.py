"""Server-side sessions of the approvals page.

Logging in with a token opens a session: a random id (the cookie's value; it is not
the token and says nothing about it) mapped, in this process's memory, to the
principal and the hash of the token it was opened with. A session ends at logout,
after `max_age` from login, after `idle` without a request, and as soon as its token
is revoked, replaced or expires in the token file. Ids are kept only as SHA-256, so
even a dump of this process's memory holds no usable cookie.

One process holds the sessions: `keyturn serve` runs one; a restart logs everyone out.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

DEFAULT_MAX_AGE = timedelta(hours=12)
DEFAULT_IDLE = timedelta(minutes=30)
SESSION_ID_MAX = 128


@dataclass
class Session:
    principal: str
    token_sha256: str
    opened: float
    seen: float


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Open, look up and end sessions; `clock` is seconds on a monotonic scale."""

    def __init__(self, max_age: timedelta = DEFAULT_MAX_AGE, idle: timedelta = DEFAULT_IDLE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age.total_seconds()
        self.idle = idle.total_seconds()
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, Session] = {}

    def open(self, principal: str, token_sha256: str) -> str:
        """A new session of `principal`, logged in with the token of that hash; its id."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._prune(now)
            self._open[_key(session_id)] = Session(principal, token_sha256, now, now)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id (and mark it used now), or None."""
        if not session_id or len(session_id) > SESSION_ID_MAX:
            return None
        now = self._clock()
        with self._lock:
            key = _key(session_id)
            session = self._open.get(key)
            if session is None:
                return None
            if self._expired(session, now):
                del self._open[key]
                return None
            session.seen = now
            return session

    def end(self, session_id: str | None) -> None:
        """End the session (logout); ending an unknown one is a no-op."""
        if session_id:
            with self._lock:
                self._open.pop(_key(session_id), None)

    def __len__(self) -> int:
        return len(self._open)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.opened >= self.max_age or now - session.seen >= self.idle

    def _prune(self, now: float) -> None:
        for key in [k for k, s in self._open.items() if self._expired(s, now)]:
            del self._open[key]
