"""The root of keyturn's exceptions: every failure keyturn raises on purpose is a KeyturnError.

Two branches say whether repeating the request can help: a `PermanentError`
(bad input, permission denied, not found, a refused operation) is not retried;
a `TransientError` (throttling, a 5xx, an unreachable server) is left to the
retry policy. `retryable` says the same for code that holds only the instance.
Each layer (providers, stores, runs, configuration, the audit log) subclasses
one of these; messages never contain secret values.
"""

from __future__ import annotations

from typing import Any


class KeyturnError(Exception):
    """Base for every failure keyturn raises on purpose. `code` names the kind in machine
    output (the API's error bodies, the CLI's `-o json` errors)."""

    retryable = False
    code = "error"

    def details(self) -> dict[str, Any]:
        """Fields a face may show beside the message (file and line, a refusal's reason)."""
        return {}


class PermanentError(KeyturnError):
    """The request cannot succeed by repeating it."""


class TransientError(KeyturnError):
    """Throttling, a 5xx, a timeout or an unreachable server: worth retrying."""

    retryable = True
