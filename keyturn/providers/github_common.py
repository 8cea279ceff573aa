"""What the GitHub providers share: where the API is, how clients are built, one error table.

All GitHub providers (`github.deploy_key`, `github.webhook_secret`,
`github.pat`) talk to the REST API through PyGithub. The API root and the
admin token come from the constructor or, at first use, from the environment:

  KEYTURN_GITHUB_API_URL  API root (default https://api.github.com; GHES: https://HOST/api/v3)
  KEYTURN_GITHUB_TOKEN    token of the rotating identity (repo admin / org owner)

Clients are built without PyGithub's own retries and request pacing: a
transient failure surfaces at once as TransientProviderError and the activity's
retry policy (and the family's rate-limited task queue) decide what happens next.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import requests
from github import Auth, Github, GithubException

from keyturn.httpstatus import github_rate_limited
from keyturn.providers.base import ProviderDefaults
from keyturn.providers.errors import (
    AccessDenied,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    for_status,
)
from keyturn.providers.propagation import Propagation
from keyturn.secret import redact

ENV_API_URL = "KEYTURN_GITHUB_API_URL"
ENV_TOKEN = "KEYTURN_GITHUB_TOKEN"
DEFAULT_API_URL = "https://api.github.com"
TIMEOUT_SECONDS = 30

ClientFactory = Callable[[str | None, str], Github]
"""callable(token or None for anonymous, base_url) -> Github client."""

# HTTP statuses are classified by keyturn's one table (keyturn.httpstatus); a
# 403/429 that is a rate limit is transient (httpstatus.github_rate_limited).


def default_client_factory(token: str | None, base_url: str) -> Github:
    """A PyGithub client with no client-side retries or pacing (see the module docstring)."""
    return Github(
        auth=Auth.Token(token) if token else None,
        base_url=base_url,
        timeout=TIMEOUT_SECONDS,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def classify(exc: Exception) -> type[ProviderError]:
    """The provider error class for a PyGithub / requests exception."""
    if isinstance(exc, GithubException):
        if github_rate_limited(exc.status, exc.headers, error_message(exc)):
            return TransientProviderError
        return for_status(exc.status)
    if isinstance(exc, requests.RequestException | ConnectionError | TimeoutError):
        return TransientProviderError
    return PermanentProviderError


def error_message(exc: GithubException) -> str:
    data = exc.data
    message = data.get("message") if isinstance(data, dict) else None
    return str(message or exc.message or "")


def map_github_error(exc: Exception, operation: str, secrets: tuple[str, ...] = ()) -> ProviderError:
    """Classify `exc`; the message names the operation (and target), never a secret value."""
    if isinstance(exc, GithubException):
        detail = f"{exc.status} {error_message(exc)}".strip()
    else:
        detail = type(exc).__name__
    detail = redact(detail, secrets)
    return classify(exc)(f"{operation} failed: {detail}")


@contextmanager
def github_errors(operation: str, *secrets: str) -> Iterator[None]:
    """Turn PyGithub/requests failures inside into classified provider errors.

    The original exception is not chained: its text may quote a request body.
    """
    try:
        yield
    except ProviderError:
        raise
    except (GithubException, requests.RequestException, ConnectionError, TimeoutError) as exc:
        error = map_github_error(exc, operation, secrets)
    else:
        return
    raise error


class GitHubApi:
    """The API root, the admin token and the client factory, resolved at first use."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        client_factory: ClientFactory | None = None,
    ) -> None:
        self._base_url = base_url
        self._token = token
        self._factory = client_factory or default_client_factory
        self._admin: Github | None = None

    @property
    def base_url(self) -> str:
        return (self._base_url or os.environ.get(ENV_API_URL) or DEFAULT_API_URL).rstrip("/")

    def admin(self) -> Github:
        """A client authenticated as the rotating identity."""
        if self._admin is None:
            token = self._token or os.environ.get(ENV_TOKEN)
            if not token:
                raise AccessDenied(
                    f"no GitHub admin token: pass token= or set {ENV_TOKEN}"
                )
            self._admin = self._factory(token, self.base_url)
        return self._admin

    def as_token(self, token: str | None) -> Github:
        """A client authenticated with `token` (anonymous for None)."""
        return self._factory(token, self.base_url)



def call(
    gh: Github, verb: str, path: str, body: Any = None, params: dict[str, Any] | None = None
) -> tuple[dict[str, Any], Any]:
    """One REST call (path relative to the API root): (lower-cased headers, parsed JSON)."""
    return gh.requester.requestJsonAndCheck(verb, path, parameters=params, input=body)


def list_all(gh: Github, path: str, params: dict[str, Any] | None = None) -> list[Any]:
    """Every item of a paginated GET, following the Link header's rel="next"."""
    items: list[Any] = []
    url: str | None = path
    query: dict[str, Any] | None = {"per_page": 100, **(params or {})}
    while url:
        headers, page = call(gh, "GET", url, params=query)
        items.extend(page or [])
        url, query = next_link(headers.get("link", "")), None
    return items


def next_link(link: str) -> str | None:
    for part in link.split(","):
        target, _, rel = part.partition(";")
        if 'rel="next"' in rel:
            return target.strip().strip("<>")
    return None


class GitHubProviderBase(ProviderDefaults):
    """What every GitHub provider is built from: the API, and its propagation retries.

    Subclasses set `default_attempts` when GitHub needs longer to show a change
    (webhook deliveries arrive later than keys are listed).
    """

    family: ClassVar[str] = "github"
    default_attempts: ClassVar[int] = 5

    def __init__(
        self,
        *,
        base_url: str | None = None,
        token: str | None = None,
        client_factory: ClientFactory | None = None,
        attempts: int | None = None,
        delay: float = 1.0,
    ) -> None:
        attempts = self.default_attempts if attempts is None else attempts
        self._api = GitHubApi(base_url=base_url, token=token, client_factory=client_factory)
        self._propagation = Propagation(attempts, delay)
