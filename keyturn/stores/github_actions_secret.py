"""GitHub Actions secrets: the `github_actions_secret` store, a deliver-only target.

Paths name one secret of a repository, of one of its environments, or of an
organization (GitHub's secret names: letters, digits and `_`, not starting with
a digit or `GITHUB_`; an environment name may contain `/`):

    repos/{owner}/{repo}/{SECRET_NAME}
    repos/{owner}/{repo}/environments/{environment}/{SECRET_NAME}
    orgs/{org}/{SECRET_NAME}

A write seals the value with the public key of the repository, environment or
organization (libsodium sealed box, base64) and PUTs it; organization secrets
get the configured `visibility` (default `private`; `selected` with
`selected_repositories`, names of the organization's repositories).

A GitHub secret holds one string, a keyturn secret a dict of fields: a secret
with one field stores that field's value; with several, config `field` picks
one, otherwise the secret's canonical JSON (sorted keys, compact) is stored.

GitHub secrets are write-only, so this store cannot be read back: `read()`
always returns None without a request, and the class says `readable = False`
(never use it for staging). Every promote therefore writes again, which is a
harmless PUT. GitHub keeps neither versions nor metadata beside a secret: the
metadata passed to `write()` is dropped (the audit log keeps it), and the
version `write()` returns is the secret's `updated_at` after the write, in Unix
seconds (two writes in the same second share a number). `destroy()` deletes the
secret; a missing one (404) is fine.

The API is reached through PyGithub's requester at config `api_url`, else
KEYTURN_GITHUB_API_URL, else https://api.github.com, with the token in
KEYTURN_GITHUB_TOKEN (never in the config: runbooks are not secret), the same
variables as the GitHub providers. PyGithub's own retries and pacing are off:
transient failures (5xx, rate limits, connection errors) surface at once as
TransientStoreError for the activity's retry policy.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, NoReturn

import requests
from github import Auth, Github, GithubException, RateLimitExceededException
from nacl.public import PublicKey, SealedBox
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from keyturn.fingerprint import canonical_json
from keyturn.httpstatus import github_rate_limited
from keyturn.secret import redact
from keyturn.stores.base import StoreDefaults, StoredVersion
from keyturn.stores.errors import (
    PermanentStoreError,
    StoreConfigError,
    StoreError,
    StoreInvalidRequest,
    StoreNotFound,
    TransientStoreError,
    for_status,
)
from keyturn.stores.fields import Data

API_URL_ENV = "KEYTURN_GITHUB_API_URL"
TOKEN_ENV = "KEYTURN_GITHUB_TOKEN"
DEFAULT_API_URL = "https://api.github.com"
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Failures to store errors: PyGithub's RateLimitExceededException and
# connection failures and timeouts are transient; HTTP statuses go through
# keyturn's one table (keyturn.httpstatus), where a 403 or 429 that GitHub marks
# as a rate limit is transient too.
TRANSIENT_EXCEPTIONS = (RateLimitExceededException, requests.ConnectionError, requests.Timeout)


class GitHubActionsSecretConfig(BaseModel):
    """A `github_actions_secret` store as configured in a runbook's `stores:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_url: str | None = Field(default=None, min_length=1)
    field: str | None = Field(default=None, min_length=1)
    visibility: Literal["all", "private", "selected"] = "private"
    selected_repositories: tuple[str, ...] = ()
    timeout: int = Field(default=30, gt=0)  # seconds per request

    @model_validator(mode="after")
    def _selection_matches_visibility(self) -> GitHubActionsSecretConfig:
        if (self.visibility == "selected") != bool(self.selected_repositories):
            raise ValueError("selected_repositories is required with, and only with, "
                             "visibility: selected")
        return self


@dataclass(frozen=True)
class SecretLocation:
    """Where a path's secret lives: the API prefix of its scope and the secret's name."""

    scope: str  # e.g. "/repos/acme/app/actions", "/repos/acme/app/environments/prod"
    name: str
    org: str | None  # set for organization secrets

    @property
    def url(self) -> str:
        return f"{self.scope}/secrets/{self.name}"


def parse_path(path: str) -> SecretLocation:
    """The location a store path names; ValueError (without any value) if it names none."""
    parts = path.strip("/").split("/")
    if not all(parts):
        raise ValueError("empty path segment")
    segment = [urllib.parse.quote(part, safe="") for part in parts]
    if len(parts) == 3 and parts[0] == "orgs":
        location = SecretLocation(f"/orgs/{segment[1]}/actions", parts[2], parts[1])
    elif len(parts) == 4 and parts[0] == "repos":
        location = SecretLocation(f"/repos/{segment[1]}/{segment[2]}/actions", parts[3], None)
    elif len(parts) >= 6 and parts[0] == "repos" and parts[3] == "environments":
        environment = urllib.parse.quote("/".join(parts[4:-1]), safe="")
        location = SecretLocation(
            f"/repos/{segment[1]}/{segment[2]}/environments/{environment}", parts[-1], None
        )
    else:
        raise ValueError(
            "expected repos/{owner}/{repo}/{SECRET_NAME}, "
            "repos/{owner}/{repo}/environments/{environment}/{SECRET_NAME} "
            "or orgs/{org}/{SECRET_NAME}"
        )
    if not SECRET_NAME.fullmatch(location.name) or location.name.upper().startswith("GITHUB_"):
        raise ValueError(
            f"{location.name!r} is not a GitHub secret name (letters, digits and _, "
            "not starting with a digit or GITHUB_)"
        )
    return location


def classify(exc: Exception) -> type[StoreError]:
    if isinstance(exc, TRANSIENT_EXCEPTIONS):
        return TransientStoreError
    if isinstance(exc, GithubException):
        data = exc.data if isinstance(exc.data, dict) else {}
        if github_rate_limited(exc.status, exc.headers, str(data.get("message") or "")):
            return TransientStoreError
        return for_status(exc.status)
    return PermanentStoreError


class GitHubActionsSecretStore(StoreDefaults):
    """Delivers values to GitHub Actions secrets; write-only, so never readable."""

    type: ClassVar[str] = "github_actions_secret"
    readable: ClassVar[bool] = False

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self._cfg = _parse_config(name, config)
        token = os.environ.get(TOKEN_ENV)
        if not token:
            raise StoreConfigError(f"github_actions_secret store {name!r}: no token; set {TOKEN_ENV}")
        self._github = Github(
            auth=Auth.Token(token),
            base_url=self._cfg.api_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL,
            timeout=self._cfg.timeout,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        self._repository_ids: dict[str, int] = {}

    def read(self, path: str, version: int | None = None) -> StoredVersion | None:
        """Always None: GitHub never returns a secret's value (the path is still checked)."""
        self._locate(path)
        return None

    def write(
        self, path: str, secret: Data, metadata: dict[str, str], cas: int | None = None
    ) -> int:
        """Seal and PUT the value; returns the secret's updated_at in Unix seconds.

        `cas` is not checked: GitHub keeps no versions to compare with.
        """
        location = self._locate(path)
        value = self._value(path, secret)
        try:
            _, key = self._call("GET", f"{location.scope}/secrets/public-key")
            sealed = SealedBox(PublicKey(base64.b64decode(key["key"]))).encrypt(value.encode())
            body: dict[str, Any] = {
                "encrypted_value": base64.b64encode(sealed).decode(),
                "key_id": key["key_id"],
            }
            if location.org is not None:
                body["visibility"] = self._cfg.visibility
                if self._cfg.visibility == "selected":
                    body["selected_repository_ids"] = self._selected_ids(location.org)
            self._call("PUT", location.url, body)
            _, written = self._call("GET", location.url)
        except (GithubException, requests.RequestException) as exc:
            self._fail(exc, "write", path, value)
        return int(datetime.fromisoformat(written["updated_at"]).timestamp())

    def write_problem(self, path: str) -> str | None:
        """Why a write would fail, as far as fetching the scope's public key tells."""
        location = self._locate(path)
        try:
            self._call("GET", f"{location.scope}/secrets/public-key")
        except (GithubException, requests.RequestException) as exc:
            status = getattr(exc, "status", None)
            return (f"{self._where(path)}: the token cannot read the public key of "
                    f"{location.scope} (HTTP {status or type(exc).__name__}), so it cannot "
                    "write the secret")
        return None

    def destroy(self, path: str) -> None:
        location = self._locate(path)
        try:
            self._call("DELETE", location.url)
        except (GithubException, requests.RequestException) as exc:
            if classify(exc) is not StoreNotFound:
                self._fail(exc, "destroy", path)

    # -- helpers ------------------------------------------------------------------

    def _call(self, verb: str, url: str, body: dict[str, Any] | None = None) -> tuple[dict, Any]:
        return self._github.requester.requestJsonAndCheck(verb, url, input=body)

    def _where(self, path: str) -> str:
        return f"github_actions_secret store {self.name!r} path {path}"

    def _locate(self, path: str) -> SecretLocation:
        try:
            return parse_path(path)
        except ValueError as exc:
            raise StoreInvalidRequest(f"{self._where(path)}: bad path: {exc}") from None

    def _value(self, path: str, secret: Data) -> str:
        """The one string GitHub keeps for `secret` (see the module docstring)."""
        field = self._cfg.field
        if field is not None:
            if field not in secret:
                raise StoreInvalidRequest(
                    f"{self._where(path)}: the secret has no field {field!r} "
                    f"(fields: {', '.join(sorted(secret)) or 'none'})")
            return secret[field]
        if not secret:
            raise StoreInvalidRequest(f"{self._where(path)}: the secret has no fields")
        if len(secret) == 1:
            return next(iter(secret.values()))
        return canonical_json(secret).decode()

    def _selected_ids(self, org: str) -> list[int]:
        """Ids of the configured repositories of `org` (looked up once per store)."""
        for repository in self._cfg.selected_repositories:
            if repository not in self._repository_ids:
                owner, name = (urllib.parse.quote(part, safe="") for part in (org, repository))
                _, data = self._call("GET", f"/repos/{owner}/{name}")
                self._repository_ids[repository] = data["id"]
        return [self._repository_ids[r] for r in self._cfg.selected_repositories]

    def _fail(self, exc: Exception, operation: str, path: str, value: str = "") -> NoReturn:
        """Raise `exc` classified; the message keeps GitHub's status and message, never a value.

        The cause is chained (Temporal records it) unless its text holds the value.
        """
        if isinstance(exc, GithubException):
            message = exc.data.get("message") if isinstance(exc.data, dict) else None
            detail = f"{exc.status} {message or 'no error message'}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        leaks = bool(value) and value in f"{exc}{exc!r}"
        detail = redact(detail, [value])
        error = classify(exc)(f"{operation} {self._where(path)} failed: {detail}")
        raise error from (None if leaks else exc)


def _parse_config(name: str, config: Mapping[str, Any]) -> GitHubActionsSecretConfig:
    if "token" in config:
        raise StoreConfigError(f"github_actions_secret store {name!r}: a token never goes in "
                               f"the config (runbooks are not secret); set {TOKEN_ENV}")
    try:
        return GitHubActionsSecretConfig.model_validate(dict(config))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
        )
    raise StoreConfigError(f"github_actions_secret store {name!r}: bad config: {problems}")
