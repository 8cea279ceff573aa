"""Settings read from the environment (the variables `keyturn dev up` writes to .keyturn/dev.env)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from keyturn.durations import parse_duration
from keyturn.errors import PermanentError
from keyturn.ratelimits import RateLimitError, parse_overrides
from keyturn.temporal_auth import TemporalAuth, TemporalAuthError

DEFAULT_TASK_QUEUE = "keyturn"
DEFAULT_SHUTDOWN_GRACE = timedelta(minutes=2)
"""How long a stopping worker lets in-flight activities finish: longer than any step's
timeout (GCP's 120 s is the longest), so a step is not cut off half-way."""


class ConfigError(PermanentError):
    """A required setting is missing or malformed; the message says which variable to set."""

    code = "config_error"


REQUESTER_MAY_APPROVE_ENV = "KEYTURN_REQUESTER_MAY_APPROVE"


@dataclass(frozen=True)
class Settings:
    temporal_address: str
    namespace: str
    task_queue: str
    audit_log: Path
    codec_key: str | None = field(repr=False)  # the payload encryption key
    principal: str
    rate_limits: dict[str, float] = field(default_factory=dict)
    # The PostgreSQL audit log, used instead of audit_log when set; holds a password,
    # so it stays out of repr().
    audit_dsn: str | None = field(default=None, repr=False)
    temporal_auth: TemporalAuth = field(default_factory=TemporalAuth)  # TLS, mTLS, API key
    shutdown_grace: timedelta = DEFAULT_SHUTDOWN_GRACE
    # Policy: may a run's requester approve its own gates? Never, unless the operators of
    # the server (or CLI) say so; a runbook cannot.
    requester_may_approve: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            temporal_address=env.get("KEYTURN_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
            namespace=env.get("KEYTURN_NAMESPACE", "default"),
            task_queue=env.get("KEYTURN_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            audit_log=Path(env.get("KEYTURN_AUDIT_LOG", ".keyturn/audit.jsonl")),
            codec_key=env.get("KEYTURN_CODEC_KEY") or None,
            principal=env.get("KEYTURN_PRINCIPAL") or env.get("USER") or "operator",
            rate_limits=_rate_limits(env.get("KEYTURN_RATE_LIMITS", "")),
            audit_dsn=env.get("KEYTURN_AUDIT_DSN") or None,
            temporal_auth=_temporal_auth(),
            shutdown_grace=_duration("KEYTURN_WORKER_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE),
            requester_may_approve=_yes_no(REQUESTER_MAY_APPROVE_ENV),
        )


def _duration(name: str, default: timedelta) -> timedelta:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{name}={text!r}: {exc} (e.g. 90s, 2m)") from None


def _yes_no(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={value!r}: use true or false")


def _rate_limits(text: str) -> dict[str, float]:
    try:
        return parse_overrides(text)
    except RateLimitError as exc:
        raise ConfigError(str(exc)) from None


def _temporal_auth() -> TemporalAuth:
    try:
        return TemporalAuth.from_env(os.environ)
    except TemporalAuthError as exc:
        raise ConfigError(str(exc)) from None
