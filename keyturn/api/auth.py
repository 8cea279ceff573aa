"""Who is calling: bearer tokens mapped to principals and roles by a token file.

The file (KEYTURN_API_TOKENS, default .keyturn/api-tokens.yaml) stores only the
SHA-256 of each token:

    principals:
      alice: {roles: [operator, approver], token_sha256: "<hex>"}
      bob: {roles: [approver], token_sha256: "<hex>", expires: "2026-12-31T00:00:00+00:00"}

Roles: operator (start, cancel, supply), approver (decide gates; the runbook's
groups still decide who may approve which gate), auditor (read runs and audit).
The file is re-read when it changes, so `keyturn api token add` and `revoke` need no
restart; a token past its `expires` is refused like an unknown one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from keyturn.api.errors import forbidden, too_many_failures, unauthenticated
from keyturn.config import ConfigError
from keyturn.runbook.models import RESERVED_PRINCIPALS

TOKENS_ENV = "KEYTURN_API_TOKENS"
DEFAULT_TOKENS = Path(".keyturn/api-tokens.yaml")
SESSION_COOKIE = "keyturn_session"
OPERATOR, APPROVER, AUDITOR = "operator", "approver", "auditor"
ROLES = (OPERATOR, APPROVER, AUDITOR)
TOKEN_PREFIX = "kt_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class TokenFileError(ConfigError):
    """The token file is malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    token_sha256: str
    expires: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.expires is None or now < self.expires


def tokens_path() -> Path:
    return Path(os.environ.get(TOKENS_ENV) or DEFAULT_TOKENS)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TokenFileError(f"{path}: cannot read the token file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("principals", {}) or {}, dict):
        raise TokenFileError(f"{path}: expected a mapping `principals: {{name: {{roles, token_sha256}}}}`")
    return data


def _entries(path: Path, data: dict) -> list[_Entry]:
    entries = []
    for name, spec in (data.get("principals") or {}).items():
        if not isinstance(spec, dict) or not _NAME.match(str(name)):
            raise TokenFileError(f"{path}: principal {name!r} needs {{roles, token_sha256}}")
        digest = str(spec.get("token_sha256", "")).lower()
        roles = spec.get("roles") or []
        unknown = [r for r in roles if r not in ROLES] if isinstance(roles, list) else [roles]
        if not _HEX64.match(digest) or unknown:
            raise TokenFileError(f"{path}: principal {name!r}: token_sha256 must be 64 hex digits "
                                 f"and roles among {', '.join(ROLES)}")
        entries.append(_Entry(Principal(str(name), frozenset(roles)), digest,
                              _expiry(path, name, spec.get("expires"))))
    return entries


def _expiry(path: Path, name: object, value: object) -> datetime | None:
    if value is None:
        return None
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise TokenFileError(f"{path}: principal {name!r}: expires must be an ISO 8601 time "
                             f"(got {value!r})") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class TokenFile:
    """Looks up tokens in the token file, re-reading it whenever it changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: list[_Entry] = []

    def _current(self) -> list[_Entry]:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or stamp is None:
                self._entries = _entries(self.path, _read(self.path)) if stamp else []
                self._stamp = stamp
            return self._entries

    def lookup(self, token: str) -> Principal | None:
        """The principal whose live token this is; every entry is compared in constant time."""
        return self.lookup_hash(hash_token(token))

    def lookup_hash(self, digest: str) -> Principal | None:
        """The principal whose live (unexpired) token has this SHA-256."""
        found = None
        now = datetime.now(UTC)
        for entry in self._current():
            if hmac.compare_digest(digest, entry.token_sha256) and entry.live(now):
                found = entry.principal
        return found

    def principals(self) -> list[Principal]:
        return [e.principal for e in self._current()]


def add_token(path: str | os.PathLike[str], name: str, roles: Iterable[str],
              expires_in: timedelta | None = None) -> str:
    """Create a token for `name` with `roles` (replacing any previous one), valid for
    `expires_in` (None: until revoked or replaced); return it.

    Only its hash is written; the file is replaced atomically with mode 0600.
    """
    path = Path(path)
    roles = sorted(set(roles))
    if not _NAME.match(name):
        raise TokenFileError(f"principal name {name!r}: letters, digits and . _ @ - only")
    if name in RESERVED_PRINCIPALS:
        raise TokenFileError(f"principal name {name!r} is reserved: the audit log uses it for "
                             "what no person did")
    if not roles or any(r not in ROLES for r in roles):
        raise TokenFileError(f"roles must be among {', '.join(ROLES)} (got {', '.join(roles) or 'none'})")
    if expires_in is not None and expires_in <= timedelta(0):
        raise TokenFileError("a token's lifetime must be positive")
    data = _read(path)
    _entries(path, data)  # refuse to rewrite a file we could not read back
    token = new_token()
    entry: dict[str, object] = {"roles": roles, "token_sha256": hash_token(token)}
    if expires_in is not None:
        entry["expires"] = (datetime.now(UTC) + expires_in).isoformat(timespec="seconds")
    principals = dict(data.get("principals") or {})
    principals[name] = entry
    data["principals"] = principals
    _write(path, data)
    return token


def revoke_token(path: str | os.PathLike[str], name: str) -> None:
    """Remove `name`'s token: requests and page sessions with it are refused at once."""
    path = Path(path)
    data = _read(path)
    _entries(path, data)
    principals = dict(data.get("principals") or {})
    if name not in principals:
        raise TokenFileError(f"{path}: no principal {name!r}")
    del principals[name]
    data["principals"] = principals
    _write(path, data)


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(data, f, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


bearer = HTTPBearer(auto_error=False, description="an API token: `Authorization: Bearer kt_...`")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    header = authorization or ""
    return header[7:].strip() or None if header.lower().startswith("bearer ") else None


def authenticate(request: Request, token: str | None) -> Principal:
    """The principal of bearer `token`; 401 if none, 429 after too many unknown tokens from
    the client (each logged with its address, never the token)."""
    if not token:
        raise unauthenticated()
    ctx = request.app.state.keyturn
    client = request.client.host if request.client else "unknown"
    if (wait := ctx.logins.wait(client)) > 0:
        raise too_many_failures(wait)
    principal = ctx.tokens.lookup(token)
    if principal is None:
        ctx.logins.failed(client, "unknown, revoked or expired API token")
        raise unauthenticated("unknown or revoked token")
    return principal


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """Dependency: the authenticated principal of a /v1 request (bearer token only)."""
    return authenticate(request, credentials.credentials if credentials else None)


def check_role(principal: Principal, *roles: str) -> Principal:
    """403 unless `principal` has one of `roles`."""
    if not any(principal.has(role) for role in roles):
        raise forbidden(f"{principal.name!r} lacks the {' or '.join(roles)} role")
    return principal


def require(*roles: str) -> Callable:
    """Dependency factory: the authenticated principal, 403 unless it has one of `roles`."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        return check_role(principal, *roles)

    dependency.__name__ = f"require_{'_or_'.join(roles)}"
    return dependency
