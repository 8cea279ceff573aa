"""The one table from an HTTP status to what it means for keyturn.

Every HTTP-speaking provider and store classifies a failed answer here, then
maps the kind to its own layer's error class through an `ErrorClasses`
(`keyturn.providers.errors.ERRORS`, `keyturn.stores.errors.ERRORS`), so `404` means "not found" for npm,
Graph, GitHub, a webhook target and the GitHub Actions secrets store alike.
The module is neutral: stores use it without importing providers.

Statuses not in the table: a 2xx is no failure, any other 5xx is transient,
anything else permanent. GitHub answers a rate limit with 403 or 429 and says
so in its headers or message (`github_rate_limited`); that answer is transient.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

E = TypeVar("E", bound=Exception)


class Kind(Enum):
    """What a failed HTTP answer means, whoever sent it."""

    ACCESS_DENIED = "access denied"  # the credential is unknown, revoked or not allowed
    NOT_FOUND = "not found"  # no such target or credential
    INVALID = "invalid request"  # the request itself was rejected; repeating it cannot help
    TRANSIENT = "transient"  # throttled, timed out, too early or a 5xx: worth retrying
    PERMANENT = "permanent"  # any other failure


STATUS_KINDS: dict[int, Kind] = {
    400: Kind.INVALID,
    401: Kind.ACCESS_DENIED,
    403: Kind.ACCESS_DENIED,
    404: Kind.NOT_FOUND,
    408: Kind.TRANSIENT,
    422: Kind.INVALID,
    425: Kind.TRANSIENT,
    429: Kind.TRANSIENT,
}

REJECTED = frozenset(s for s, k in STATUS_KINDS.items() if k is Kind.ACCESS_DENIED)
"""What a server answers when the presented credential is unknown, revoked or not allowed."""


def ok(status: int) -> bool:
    """A 2xx: the request succeeded."""
    return 200 <= status < 300


def kind(status: int) -> Kind:
    """The kind of a failed answer (any status that is not a 2xx)."""
    if status in STATUS_KINDS:
        return STATUS_KINDS[status]
    return Kind.TRANSIENT if status >= 500 else Kind.PERMANENT


@dataclass(frozen=True)
class ErrorClasses(Generic[E]):
    """One layer's error class for each kind of failure (the AWS classifier uses it too)."""

    access_denied: type[E]
    not_found: type[E]
    invalid: type[E]
    transient: type[E]
    permanent: type[E]

    def for_kind(self, failure: Kind) -> type[E]:
        return getattr(self, failure.name.lower())

    def for_status(self, status: int) -> type[E]:
        """The error class for a failed HTTP answer."""
        return self.for_kind(kind(status))


def github_rate_limited(status: int, headers: Mapping[str, Any] | None, message: str = "") -> bool:
    """GitHub's primary or secondary rate limit answer: a 403 or 429 with one of its signs."""
    lowered = {k.lower(): str(v) for k, v in (headers or {}).items()}
    return status in (403, 429) and (
        lowered.get("x-ratelimit-remaining") == "0"
        or "retry-after" in lowered
        or "rate limit" in message.lower()
    )
