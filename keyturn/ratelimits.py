"""Activities-per-second limits of the provider families' task queues.

Each provider family's steps run on their own task queue, and the worker sets
that queue's `max_task_queue_activities_per_second`, which the Temporal server
enforces across every worker polling it. The defaults keep one incident's
rotations inside the services' published quotas, counting the few requests
one step makes; `KEYTURN_RATE_LIMITS=github=0.5,aws=4` overrides them.
"""

from __future__ import annotations

from collections.abc import Mapping

from keyturn.errors import PermanentError

DEFAULT_RATE_LIMITS: dict[str, float] = {
    # GitHub: secondary limit of 80 content-creating requests per minute (and
    # 900 points per minute, 5 per mutation); a step makes at most one mutation.
    "github": 1.0,
    # IAM and KMS control-plane calls: AWS throttles IAM mutations at a few per
    # second per account; STS and KMS crypto calls are far higher.
    "aws": 5.0,
    # GCP IAM: 600 writes per minute per project (service account key changes).
    "gcp": 5.0,
    # Microsoft Graph: applications writes share the identity service's
    # per-tenant budget (thousands of resource units per 10 s); stay modest.
    "azure": 5.0,
    # The public npm registry publishes no limit for the token API; be gentle.
    "npm": 1.0,
    # Vault/OpenBao: local to the deployment; limited by its own rate quotas.
    "vault": 20.0,
    # Databases: ALTER ROLE/USER and a login per step.
    "postgres": 10.0,
    "mysql": 10.0,
    # Third-party webhook APIs: unknown quotas; one step per second.
    "http": 1.0,
}
FALLBACK_RATE_LIMIT = 1.0
"""For a family no default knows (a provider installed from another package)."""


class RateLimitError(PermanentError, ValueError):
    """KEYTURN_RATE_LIMITS is malformed; the message says which entry."""


def parse_overrides(text: str) -> dict[str, float]:
    """`family=rate,family=rate` -> {family: rate}; rates are positive numbers."""
    limits: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        family, sep, rate = entry.partition("=")
        try:
            value = float(rate)
        except ValueError:
            value = -1.0
        if not sep or not family.strip() or value <= 0:
            raise RateLimitError(
                f"KEYTURN_RATE_LIMITS entry {entry!r} is not family=activities-per-second "
                "(e.g. github=0.5)"
            )
        limits[family.strip()] = value
    return limits


def rate_limit(family: str, overrides: Mapping[str, float] | None = None) -> float:
    """The activities-per-second limit of `family`'s task queue."""
    if overrides and family in overrides:
        return overrides[family]
    return DEFAULT_RATE_LIMITS.get(family, FALLBACK_RATE_LIMIT)
