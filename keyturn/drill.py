"""Drill hook, for reliability tests only: SIGKILL this process at a named point.

Off unless KEYTURN_DRILL_KILL_AT is set. Its value is ``POINT`` or ``POINT#N``: the
process kills itself (SIGKILL, no cleanup, as a power cut or the OOM killer would)
the Nth time it reaches ``POINT`` (default the first). The points:

``<step>.started``       inside a protocol step's activity, before it touches anything
``<step>.before_audit``  after the step's change at the provider and stores, before its
                         ``succeeded`` audit record (``revoke_old`` has both phases)
``audit.mid_append``     half of an audit record written and fsync'd: a torn last line

The tests in tests/drills set it for the worker process they mean to kill; nothing
else reads it, and a production worker never has it set.
"""

from __future__ import annotations

import os
import signal
import threading

KILL_AT_ENV = "KEYTURN_DRILL_KILL_AT"

_hits: dict[str, int] = {}
_lock = threading.Lock()


def kill_point(name: str) -> None:
    """Die here if KEYTURN_DRILL_KILL_AT names this point and its count is reached."""
    spec = os.environ.get(KILL_AT_ENV)
    if not spec:
        return
    point, _, nth = spec.partition("#")
    if point != name:
        return
    with _lock:
        _hits[name] = count = _hits.get(name, 0) + 1
    if count >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
