"""The root of keyturn's exceptions: every failure keyturn raises on purpose is a KeyturnError.

Two branches say whether repeating the request can help: a `PermanentError`
(bad input, permission denied, not found, a refused operation) is not retried;
a `TransientError` (throttling, a 5xx, an unreachable server) is left to the
retry policy. `retryable` says the same for code that holds only the instance.
Each layer (providers, stores, runs, configuration, the audit log) subclasses
one of these; messages never contain secret values.
"""

from __future__ import annotations


class KeyturnError(Exception):
    """Base for every failure keyturn raises on purpose."""

    retryable = False


class PermanentError(KeyturnError):
    """The request cannot succeed by repeating it."""


class TransientError(KeyturnError):
    """Throttling, a 5xx, a timeout or an unreachable server: worth retrying."""

    retryable = True
