"""The npm registry for tests (`verdaccio`) and the conformance harness of `npm.token`.

`verdaccio` is one session-wide Verdaccio (tests/node) on a free loopback port.
`harness_npm_token` puts a FaultProxy in front of it for the provider; each
subject is a fresh npm user with a random password and one listed token (made
with POST /-/npm/v1/tokens, as `npm token create` does: the token Verdaccio
returns at sign-up is a login session that the token list does not show).

The provider gets passwords through its `password_for(username)` constructor
argument: the harness keeps a username -> password map that every new subject
adds to, so one provider instance serves all subjects (a worker sets
KEYTURN_NPM_PASSWORD for its one npm user instead).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
import requests
from conformance.harness import FaultKind, Subject
from fakes.fault_proxy import FaultProxy
from fakes.verdaccio import VerdaccioServer

from keyturn.devstack.servers import DevServerError
from keyturn.providers.npm_token import NpmTokenProvider
from keyturn.secret import Secret

FAULTS: dict[str, tuple[int, bytes]] = {
    "permanent": (403, b'{"error": "unauthorized access"}'),
    "transient": (503, b'{"error": "service unavailable"}'),
}


@pytest.fixture(scope="session")
def verdaccio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VerdaccioServer]:
    """A running Verdaccio 6 (htpasswd auth, sign-up open, no uplinks); use `.url`."""
    server = VerdaccioServer(tmp_path_factory.mktemp("verdaccio"))
    try:
        server.start()
    except DevServerError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


class NpmRegistryClient:
    """Direct calls to the registry, bypassing the provider: how tests set up and check state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def _call(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.request(method, self.url + path, headers=headers, timeout=10, **kw)
        response.raise_for_status()
        return response.json()

    def add_user(self) -> tuple[str, str, str]:
        """A new user: (username, password, its sign-up session token)."""
        name = f"kt-{uuid.uuid4().hex[:12]}"
        password = secrets.token_urlsafe(18)
        body = {"name": name, "password": password}
        answer = self._call("PUT", f"/-/user/org.couchdb.user:{name}", json=body)
        return name, password, answer["token"]

    def create_token(self, token: str, password: str, readonly: bool = False) -> tuple[str, str]:
        """(key, token) of a new token, as `npm token create` makes it."""
        body = {"password": password, "readonly": readonly, "cidr_whitelist": []}
        answer = self._call("POST", "/-/npm/v1/tokens", token, json=body)
        return answer["key"], answer["token"]

    def delete_token(self, token: str, key: str) -> None:
        self._call("DELETE", f"/-/npm/v1/tokens/token/{key}", token)

    def tokens(self, token: str) -> list[dict[str, Any]]:
        """The token list entries of the user `token` authenticates as."""
        return self._call("GET", "/-/npm/v1/tokens", token)["objects"]

    def token_keys(self, token: str) -> list[str]:
        return [entry["key"] for entry in self.tokens(token)]

    def whoami(self, token: str) -> str | None:
        """The username `token` authenticates as; None if rejected (or taken as anonymous)."""
        response = self.http.get(
            f"{self.url}/-/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        if response.status_code in (401, 403):
            return None
        response.raise_for_status()
        return response.json().get("username")


class NpmTokenHarness:
    """ProviderHarness for `npm.token` against Verdaccio behind a FaultProxy."""

    provider_name = "npm.token"
    quota = None  # npm has no per-user token limit

    def __init__(self, server: VerdaccioServer, proxy: FaultProxy) -> None:
        self.registry = NpmRegistryClient(server.url)
        self.proxy = proxy
        self.passwords: dict[str, str] = {}

    def provider(self) -> NpmTokenProvider:
        return NpmTokenProvider(
            registry=self.proxy.url, password_for=self.passwords.get, attempts=2, delay=0.05
        )

    def new_subject(self) -> Subject:
        name, password, session = self.registry.add_user()
        self.passwords[name] = password
        key, token = self.registry.create_token(session, password)
        return Subject(
            target={"username": name},
            initial={"token": token},
            initial_id=key,
            extra={"password": password, "session": session},
        )

    def works(self, subject: Subject, secret: Secret) -> bool:
        return self.registry.whoami(secret["token"]) == subject.target["username"]

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        raise NotImplementedError("npm has no token quota")

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        status, body = FAULTS[kind]
        return self.proxy.failing(status, body)

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        """A real token of the subject's user, already revoked (the registry answers 403)."""
        session, password = subject.extra["session"], subject.extra["password"]
        key, token = self.registry.create_token(session, password)
        self.registry.delete_token(session, key)
        return {"token": token}

    def supply(self, subject: Subject) -> Secret:
        raise NotImplementedError("npm.token creates its replacement through the token API")


@pytest.fixture(scope="session")
def harness_npm_token(verdaccio: VerdaccioServer) -> Iterator[NpmTokenHarness]:
    proxy = FaultProxy(verdaccio.url).start()
    try:
        yield NpmTokenHarness(verdaccio, proxy)
    finally:
        proxy.stop()
