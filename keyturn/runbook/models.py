"""The runbook format v1 as pydantic models: field names and aliases are a contract.

These models check shape and single values (types, slugs, durations, ranges).
Checks that need the whole runbook (references, cycles, duplicates) live in
`validate.py`. Unknown keys are errors everywhere except inside a credential's
`target` and a store's configuration, which belong to providers and stores.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    model_validator,
)

from keyturn.durations import Duration
from keyturn.runbook.source import SourceMap

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_PROVIDER = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)+")
_STORE_TYPE = re.compile(r"[a-z][a-z0-9_]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a slug: use lowercase letters, digits and single "
            "dashes, e.g. 'ci-deployer'"
        )
    return value


def _name_like(pattern: re.Pattern[str], example: str) -> Any:
    """A string type matching `pattern`, whose error shows `example`."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not valid here, expected a name like {example!r}")
        return value

    return Annotated[
        str,
        AfterValidator(check),
        WithJsonSchema({"type": "string", "pattern": f"^{pattern.pattern}$"}),
    ]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Slug = Annotated[
    str,
    AfterValidator(_slug),
    WithJsonSchema({"type": "string", "pattern": f"^{_SLUG.pattern}$"}),
]
GroupNames = Annotated[
    list[Slug],
    BeforeValidator(_as_list),
    Field(min_length=1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        }
    ),
]
ProviderName = _name_like(_PROVIDER, "aws.iam_access_key")
StoreType = _name_like(_STORE_TYPE, "vault_kv")
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _plain_text(value: str) -> str:
    """Refuse control and bidi-override characters: this text is shown to approvers and
    written to logs, and must read as it is (no forged lines, no reversed words)."""
    found = _UNSAFE_TEXT.search(value)
    if found:
        raise ValueError(f"contains the control or bidi character U+{ord(found.group()):04X} "
                         f"at offset {found.start()}; use plain text")
    return value


PlainText = Annotated[str, AfterValidator(_plain_text)]
RESERVED_PRINCIPALS = frozenset({"timeout", "worker"})
"""Actors keyturn writes itself (a gate's timeout, the worker); no person may be one."""

Principal = Annotated[str, Field(min_length=1), AfterValidator(_plain_text)]
Strategy = Literal["rotate", "revoke-first"]
OnTimeout = Literal["fail", "reject"]
OnLocked = Literal["refuse", "wait"]
NotifyEventName = Literal["gate_opened", "credential_failed", "tier_ended", "run_ended"]
NOTIFY_EVENTS: tuple[str, ...] = get_args(NotifyEventName)
EnvName = _name_like(_ENV_NAME, "SLACK_WEBHOOK_URL")


def webhook_url_problem(url: str) -> str | None:
    """Why `url` may not receive notifications, or None: https, or http to a loopback host only.

    Webhook bodies name runs, credentials and approvers, so they do not cross a
    network in the clear; plain http is for a receiver on the same machine.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL"
    if parts.scheme == "http" and not _loopback(host):
        return "must use https (plain http only to localhost, 127.0.0.1 or ::1)"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _webhook_url(value: str) -> str:
    problem = webhook_url_problem(value)
    if problem:
        raise ValueError(f"the webhook URL {problem}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


WebhookUrl = Annotated[
    str,
    AfterValidator(_webhook_url),
    WithJsonSchema({"type": "string", "pattern": "^https?://"}),
]


class TierGate(_Strict):
    """Approvals needed before a tier starts.

    `approvals` distinct principals out of the union of the `from` groups must
    approve; with `distinct` the run's requester may not be one of them. With a
    `timeout`, `on_timeout` says what happens when no decision came in time:
    `fail` (the default) closes the gate as timed out, `reject` closes it as a
    rejection by the principal "timeout". Either way the tier or credential does
    not go ahead (a credential rolls back if it is before promote); the audit
    log tells them apart (outcome `timed_out` versus `rejected`).
    """

    approvals: int = Field(1, ge=1)
    from_: GroupNames = Field(alias="from")
    distinct: bool = False
    timeout: Annotated[Duration, AfterValidator(_positive)] | None = None
    on_timeout: OnTimeout = "fail"


class CredentialGate(TierGate):
    """Approvals needed before one step of one credential's rotation."""

    before: Literal["create", "promote", "revoke"]


StoredField = Annotated[str, Field(min_length=1)]


class Deliver(_Strict):
    """Where a credential's new value goes: a path in a store named under spec.stores.

    fields: which stored field holds each of the provider's fields, e.g.
        {aws_access_key_id: ACCESS_KEY}; unmapped provider fields keep their own
        names. A new version is the current one with only these fields replaced.
    """

    store: Slug
    path: str = Field(min_length=1)
    fields: dict[StoredField, StoredField] = Field(default_factory=dict)


class Credential(_Strict):
    id: Slug
    provider: ProviderName
    target: dict[str, Any]
    deliver: list[Deliver] = Field(default_factory=list)
    strategy: Strategy | None = None
    grace_period: Duration | None = None
    gate: CredentialGate | None = None
    depends_on: list[Slug] = Field(default_factory=list)
    on_locked: OnLocked | None = None


class Tier(_Strict):
    id: Slug
    name: PlainText = ""
    after: list[Slug] = Field(default_factory=list)
    gate: TierGate | None = None
    concurrency: int = Field(10, ge=1)
    credentials: list[Credential] = Field(default_factory=list)


class Store(BaseModel):
    """A secret store: `type` picks the implementation, other keys are its configuration."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: StoreType

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Notify(_Strict):
    """A webhook told about the run (Slack-compatible JSON), by `url_env` or `url`.

    url_env: the name of an environment variable of the worker that holds the
        URL; use it for secret URLs (Slack webhooks), since a runbook travels
        through workflow history and the URL then never does.
    url: the URL itself, https (plain http only to a loopback address).
    events: which of gate_opened, credential_failed, tier_ended, run_ended to
        send; all of them by default.
    """

    model_config = ConfigDict(
        **_Strict.model_config,
        json_schema_extra={"oneOf": [{"required": ["url_env"]}, {"required": ["url"]}]},
    )

    url_env: EnvName | None = None
    url: WebhookUrl | None = None
    events: list[NotifyEventName] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS), min_length=1
    )

    @model_validator(mode="after")
    def _one_destination(self) -> Notify:
        if (self.url_env is None) == (self.url is None):
            raise ValueError("give exactly one of 'url_env' (preferred: the URL is a secret) "
                             "or 'url'")
        return self


class Defaults(_Strict):
    """What a credential does unless it says otherwise.

    on_locked: when another run is rotating the same target, `refuse` (fail the
        credential at its `lock` step, naming that run, before anything changes)
        or `wait` until that run lets go of it.
    """

    strategy: Strategy = "rotate"
    grace_period: Duration = timedelta(0)
    on_locked: OnLocked = "refuse"


class Spec(_Strict):
    approvers: dict[Slug, list[Principal]] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    stores: dict[Slug, Store] = Field(default_factory=dict)
    tiers: list[Tier] = Field(default_factory=list)
    notify: list[Notify] = Field(default_factory=list)


class Metadata(_Strict):
    name: Slug
    incident: PlainText | None = None
    description: str | None = None


class Runbook(_Strict):
    """A whole runbook file. `source` says where each value came from (for error positions)."""

    api_version: Literal["keyturn/v1"] = Field(alias="apiVersion")
    kind: Literal["Runbook"]
    metadata: Metadata
    spec: Spec

    _source: SourceMap | None = PrivateAttr(default=None)

    @property
    def source(self) -> SourceMap:
        return self._source or SourceMap("<runbook>")

    def credentials(self) -> list[Credential]:
        return [cred for tier in self.spec.tiers for cred in tier.credentials]
