"""What a doctor check is, what it finds, and what every check shares.

A check is a named coroutine over a `Context` returning a `Finding`: ok, failed
(with the fix) or skipped (nothing configured to check). Checks only read: they
connect, ask and look, and never write to a log, a store or a provider. The
Context holds the settings and one Temporal connection the Temporal checks
share, so a server that is down is waited for once.

Whatever a check says passes through `Context.scrub`, which blanks every secret
keyturn could hold (the codec key, tokens, passwords in connection strings), so
a driver's error message that quotes one cannot print it.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from temporalio.client import Client

from keyturn.config import ConfigError, Settings
from keyturn.operations.connect import connect

Status = Literal["ok", "fail", "skip"]

SECRET_ENVS = ("KEYTURN_CODEC_KEY", "VAULT_TOKEN", "KEYTURN_GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "KEYTURN_NPM_PASSWORD", "KEYTURN_AUDIT_DSN",
               "KEYTURN_POSTGRES_ADMIN_DSN", "KEYTURN_MYSQL_ADMIN_DSN")
"""Variables whose values (and the passwords inside them) never appear in doctor's output."""
MIN_SECRET = 8
"""Shorter values (a dev server's token `root`) are words that occur in paths: left alone."""
_PASSWORD = re.compile(r"(?:password=|://[^:/@\s]*:)([^@\s]+)")


@dataclass(frozen=True)
class Finding:
    """One check's result: what was found, and for a failure what to do about it."""

    check: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail,
                "fix": self.fix}


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def failed(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "fail", detail, fix)


def skipped(check: str, detail: str) -> Finding:
    return Finding(check, "skip", detail)


@dataclass
class Context:
    """The settings under check and the one Temporal connection the checks share."""

    settings: Settings
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    _client: asyncio.Task[Client] | None = None

    async def client(self) -> Client:
        """The shared client; ConfigError (saying what to fix) when Temporal cannot be reached."""
        if self._client is None:
            self._client = asyncio.ensure_future(connect(self.settings))
        return await asyncio.shield(self._client)

    def secrets(self) -> list[str]:
        """The values to blank: each secret variable's value and any password inside it."""
        found = []
        for name in SECRET_ENVS:
            value = self.environ.get(name, "")
            if value:
                found.append(value)
                found += [m.group(1) for m in _PASSWORD.finditer(value)]
        return sorted(set(found), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets():
            if len(secret) >= MIN_SECRET:
                text = text.replace(secret, "***")
        return text


CheckFn = Callable[[Context], Awaitable[Finding]]


@dataclass(frozen=True)
class Check:
    """A named check, and the fix to offer when it does not answer in time."""

    name: str
    run: CheckFn
    slow_fix: str


async def needs_temporal(ctx: Context, name: str) -> Client | Finding:
    """The shared client, or a skip naming the `temporal` check, which reports the failure."""
    try:
        return await ctx.client()
    except ConfigError:
        return skipped(name, "Temporal cannot be reached (see the temporal check)")
