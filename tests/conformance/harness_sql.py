"""Throwaway SQL servers and the conformance harnesses of `postgres.password` and `mysql.password`.

Fixtures (all session-wide):
- `postgres_server`, `mariadb_server`: servers with password authentication
  (fakes.sql_servers), stopped at the end of the session.
- `harness_postgres_password`, `harness_mysql_password`: alternating-users mode,
  the make-before-break one. Each subject is a fresh pair of users: the first
  logs in with the initial password, the second has login off and a password
  nobody knows.
- `harness_postgres_password_single`, `harness_mysql_password_single`:
  single-user mode. Each subject is one fresh user with the initial password.

The provider reaches the server through a TcpProxy: fault("transient") closes
every new connection at once; fault("permanent") turns the provider's admin
account's login off (access denied). works() logs in to the server directly.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import pytest
from conformance.harness import FaultKind, Subject
from fakes.sql_servers import MariaDbServer, PostgresServer
from fakes.tcp_proxy import TcpProxy

from keyturn.devstack.servers import HOST, DevServerError
from keyturn.providers.mysql_password import MySqlPasswordProvider
from keyturn.providers.postgres_password import PostgresPasswordProvider
from keyturn.providers.sql_password import SqlPasswordProvider, credential_id
from keyturn.secret import Secret

S = TypeVar("S", PostgresServer, MariaDbServer)
Server = PostgresServer | MariaDbServer


def _running(server: S) -> Iterator[S]:
    try:
        try:
            server.start()
        except DevServerError as err:
            pytest.fail(str(err), pytrace=False)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """PostgreSQL with scram-sha-256 over TCP; an admin role with CREATEROLE (`admin_dsn()`)."""
    yield from _running(PostgresServer())


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDbServer]:
    """MariaDB with password logins over TCP; an admin user with CREATE USER (`admin_dsn()`)."""
    yield from _running(MariaDbServer(tmp_path_factory.mktemp("mariadb")))


class SqlPasswordHarness:
    """ProviderHarness for a SQL password provider in one mode, behind a TcpProxy."""

    quota = None  # a user has one password slot; nothing to fill
    public_fields = frozenset({"username", "host", "port", "dbname", "database"})

    def __init__(
        self,
        provider_cls: type[SqlPasswordProvider],
        server: Server,
        proxy: TcpProxy,
        single: bool,
        database: dict[str, str],
    ) -> None:
        self.provider_name = provider_cls.name
        self._cls = provider_cls
        self.server = server
        self.proxy = proxy
        self.single = single
        self.database = database

    def provider(self) -> SqlPasswordProvider:
        return self._cls(admin_dsn=self.server.admin_dsn(self.proxy.port))  # type: ignore[call-arg]

    def new_subject(self) -> Subject:
        name = f"kt_{uuid.uuid4().hex[:12]}"
        password = secrets.token_urlsafe(18)
        target: dict[str, Any] = {"host": HOST, "port": self.proxy.port, **self.database}
        if self.single:
            self.server.create_user(name, password)
            target[self._cls.target_model.single_field] = user = name
            initial_id = credential_id(name, password)
        else:
            user, spare = f"{name}_blue", f"{name}_green"
            self.server.create_user(user, password)
            self.server.create_user(spare, secrets.token_urlsafe(18), login=False)
            target["users"] = [user, spare]
            initial_id = user
        initial = {
            "username": user,
            "password": password,
            "host": HOST,
            "port": str(self.proxy.port),
            **self.database,
        }
        return Subject(target=target, initial=initial, initial_id=initial_id)

    def works(self, subject: Subject, secret: Secret) -> bool:
        return self.server.works(secret["username"], secret["password"])

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        raise NotImplementedError("a database user has no credential quota")

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        return self.proxy.refusing() if kind == "transient" else self._admin_locked_out()

    @contextmanager
    def _admin_locked_out(self) -> Iterator[None]:
        self.server.admin_login(False)
        try:
            yield
        finally:
            self.server.admin_login(True)

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        return {**secret, "password": secret["password"] + "-wrong"}

    def supply(self, subject: Subject) -> Secret:
        raise NotImplementedError(f"{self.provider_name} creates its replacement itself")


def _harness(
    provider_cls: type[SqlPasswordProvider], server: Server, single: bool,
    database: dict[str, str],
) -> Iterator[SqlPasswordHarness]:
    proxy = TcpProxy(server.port).start()
    try:
        yield SqlPasswordHarness(provider_cls, server, proxy, single, database)
    finally:
        proxy.stop()


PG_DATABASE = {"dbname": "postgres"}


@pytest.fixture(scope="session")
def harness_postgres_password(postgres_server: PostgresServer) -> Iterator[SqlPasswordHarness]:
    yield from _harness(PostgresPasswordProvider, postgres_server, False, PG_DATABASE)


@pytest.fixture(scope="session")
def harness_postgres_password_single(
    postgres_server: PostgresServer,
) -> Iterator[SqlPasswordHarness]:
    yield from _harness(PostgresPasswordProvider, postgres_server, True, PG_DATABASE)


@pytest.fixture(scope="session")
def harness_mysql_password(mariadb_server: MariaDbServer) -> Iterator[SqlPasswordHarness]:
    yield from _harness(MySqlPasswordProvider, mariadb_server, False, {})


@pytest.fixture(scope="session")
def harness_mysql_password_single(mariadb_server: MariaDbServer) -> Iterator[SqlPasswordHarness]:
    yield from _harness(MySqlPasswordProvider, mariadb_server, True, {})
