"""What every route of one API app shares: settings, the token file, the Temporal
client (one per app, connected on first use) and how supplied values reach stores."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from fastapi import Request
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from temporalio.client import Client

from keyturn.api.auth import SESSION_COOKIE, TokenFile, TokenFileError, bearer_token, tokens_path
from keyturn.api.errors import ApiError, invalid_request, not_found, temporal_unavailable
from keyturn.api.sessions import DEFAULT_IDLE, DEFAULT_MAX_AGE, Sessions
from keyturn.api.throttle import LoginThrottle
from keyturn.config import ConfigError, Settings
from keyturn.policy.load import PolicyError, load_policy
from keyturn.policy.model import Policy
from keyturn.runbook.plan_model import StorePlan
from keyturn.stores.base import Store

RUNBOOK_VARS_ENV = "KEYTURN_API_RUNBOOK_VARS"
RUNBOOK_DIR_ENV = "KEYTURN_RUNBOOK_DIR"
UI_URL_ENV = "KEYTURN_UI_URL"
UI_ORIGIN_ENV = "KEYTURN_UI_ORIGIN"  # Temporal's Web UI, calling the codec endpoint
MAX_BODY_ENV = "KEYTURN_API_MAX_BODY"
DOCS_ENV = "KEYTURN_API_DOCS"
NOTIFY_HOSTS_ENV = "KEYTURN_API_NOTIFY_HOSTS"
DEFAULT_MAX_BODY = 4 * 1024 * 1024
_RUNBOOK_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
log = logging.getLogger(__name__)


def open_plan_store(plan: StorePlan) -> Store:
    """The store a runbook names (the default `store_for` of supply)."""
    from keyturn.stores.registry import open_store

    return open_store(plan.name, plan.type, plan.config)


@dataclass(frozen=True)
class ApiSettings:
    """The API's settings: keyturn's own (Temporal, task queue, codec, audit log) plus
    the token file, where named runbooks live, and the UI's public address."""

    keyturn: Settings
    tokens: Path = field(default_factory=tokens_path)
    runbook_dir: Path = Path("runbooks")
    ui_url: str | None = None
    temporal_ui_origin: str | None = None  # gets CORS headers from the codec endpoint
    search_attributes: bool = True  # False only for servers without keyturn's (tests)
    known_providers: Collection[str] | None = None  # None: the installed providers
    runbook_vars: tuple[str, ...] = ("VAULT_ADDR",)  # ${VAR}s runbook YAML sent to the API may use
    max_body: int = DEFAULT_MAX_BODY  # bytes; a larger request body is 413 before it is read
    interactive_docs: bool = False  # /docs and /redoc load Swagger UI and ReDoc from a CDN
    notify_hosts: tuple[str, ...] = ()  # webhook hosts a runbook posted to the API may name
    session_max_age: timedelta = DEFAULT_MAX_AGE  # a page session ends this long after login
    session_idle: timedelta = DEFAULT_IDLE  # ... or after this long without a request

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls(
            keyturn=Settings.from_env(),
            tokens=tokens_path(),
            runbook_dir=Path(os.environ.get(RUNBOOK_DIR_ENV) or "runbooks"),
            ui_url=os.environ.get(UI_URL_ENV) or None,
            temporal_ui_origin=os.environ.get(UI_ORIGIN_ENV, "").rstrip("/") or None,
            runbook_vars=tuple(
                v.strip() for v in os.environ.get(RUNBOOK_VARS_ENV, "VAULT_ADDR").split(",")
                if v.strip()
            ),
            max_body=_positive_int(MAX_BODY_ENV, DEFAULT_MAX_BODY),
            interactive_docs=os.environ.get(DOCS_ENV, "").lower() in ("1", "true", "yes"),
            notify_hosts=tuple(h.strip() for h in os.environ.get(NOTIFY_HOSTS_ENV, "").split(",")
                               if h.strip()),
        )

    def runbook_environ(self) -> dict[str, str]:
        """The only environment variables `${VAR}` in runbook YAML sent to the API may read."""
        return {name: os.environ[name] for name in self.runbook_vars if name in os.environ}

    def runbook_path(self, name: str) -> Path:
        """`<runbook_dir>/<name>.yaml`; a name that could leave the directory is refused."""
        import re

        if not re.match(_RUNBOOK_NAME, name) or ".." in name:
            raise invalid_request(f"runbook name {name!r}: letters, digits, '.', '_' and '-' only")
        base = self.runbook_dir.resolve()
        path = (base / f"{name}.yaml").resolve()
        if path.parent != base:
            raise invalid_request(f"runbook name {name!r} leaves the runbook directory")
        if not path.is_file():
            raise not_found(f"no runbook {name!r} in {self.runbook_dir}")
        return path


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r}: expected a positive number of bytes")
    return int(raw)


class ApiContext:
    """Per-app state, reachable from a request as `request.app.state.keyturn`."""

    def __init__(
        self,
        settings: ApiSettings,
        client: Client | None = None,
        store_for: Callable[[StorePlan], Store] | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = TokenFile(settings.tokens)
        self.sessions = Sessions(settings.session_max_age, settings.session_idle)
        self.logins = LoginThrottle()
        self.secret = secrets.token_bytes(32)  # signs the page's flash cookie; dies with the app
        self.store_for = store_for or open_plan_store
        self._client = client
        self._owns_client = client is None
        self._lock = asyncio.Lock()

    def identified(self, path: str, headers: Headers) -> bool:
        """Whether the request's bearer token (or, for /ui, session cookie) names a
        principal; an unreadable token file counts as yes, for the route to report."""
        token = bearer_token(headers.get("authorization"))
        try:
            if token:
                return self.tokens.lookup(token) is not None
            if path.startswith(("/v1", "/codec")):  # bearer tokens only
                return False
            session = self.sessions.get(cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE))
            return session is not None and self.tokens.lookup_hash(session.token_sha256) is not None
        except TokenFileError:
            return True

    def policy(self) -> Policy:
        """The approval policy in force, read afresh (an edit applies to the next request);
        an invalid policy file refuses what needs it (500 policy_invalid)."""
        try:
            return load_policy(requester_may_approve=self.settings.keyturn.requester_may_approve,
                               tokens=self.settings.tokens)
        except PolicyError as exc:
            log.error("%s", exc)
            raise ApiError(500, "policy_invalid", str(exc)) from None

    @property
    def task_queue(self) -> str:
        return self.settings.keyturn.task_queue

    async def client(self) -> Client:
        """The app's Temporal client, connected on first use; 503 while Temporal is away."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                from keyturn.operations.connect import connect

                try:
                    self._client = await connect(self.settings.keyturn)
                except ConfigError as exc:
                    raise temporal_unavailable(str(exc)) from None
        return self._client


def get_context(request: Request) -> ApiContext:
    """Dependency: the ApiContext of the app serving `request`."""
    return request.app.state.keyturn


async def get_client(request: Request) -> Client:
    """Dependency: the app's Temporal client."""
    return await get_context(request).client()
