"""Store conformance harness for `github_actions_secret` on the GitHub fake (Actions routes).

The harness runs its own GitHubFake with fakes.github_actions installed, so the
Actions state it reads back is the one the routes write. New paths are
repository secrets of one repository the token's user administers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fakes.github import GitHubFake
from fakes.github_actions import ActionsSecrets, install

from keyturn.secret import Secret
from keyturn.stores.github_actions_secret import API_URL_ENV, TOKEN_ENV, GitHubActionsSecretStore

FAULTS = {
    "permanent": (403, "Resource not accessible by personal access token"),
    "transient": (503, "Service Unavailable"),
}


class GitHubActionsSecretHarness:
    store_type = "github_actions_secret"
    readable = False

    def __init__(self, fake: GitHubFake, actions: ActionsSecrets) -> None:
        self._fake = fake
        self._actions = actions
        login = f"admin-{uuid.uuid4().hex[:8]}"
        self._token = fake.add_user(login)
        self._repo = f"{login}/app"
        fake.add_repo(self._repo, login)

    def store(self) -> GitHubActionsSecretStore:
        with pytest.MonkeyPatch.context() as patch:  # the token is read when the store opens
            patch.setenv(TOKEN_ENV, self._token)
            return GitHubActionsSecretStore("github", {"api_url": self._fake.url})

    def store_env(self) -> dict[str, str]:
        """What a worker needs to open this store from a runbook: the fake's URL and a token."""
        return {TOKEN_ENV: self._token, API_URL_ENV: self._fake.url}

    def new_path(self) -> str:
        return f"repos/{self._repo}/S_{uuid.uuid4().hex[:12].upper()}"

    def server_value(self, path: str) -> Secret | None:
        """The opened value; the JSON of a multi-field secret decoded, else {"value": text}."""
        text = self._actions.plaintext(path)
        if text is None:
            return None
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        return decoded if isinstance(decoded, dict) else {"value": text}

    @contextmanager
    def fault(self, kind: str) -> Iterator[None]:
        status, message = FAULTS[kind]
        with self._fake.failing(status, message):
            yield


@pytest.fixture(scope="session")
def store_harness_github_actions_secret() -> Iterator[GitHubActionsSecretHarness]:
    fake = GitHubFake().start()
    yield GitHubActionsSecretHarness(fake, install(fake))
    fake.stop()
