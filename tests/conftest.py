"""Shared fixtures: real local servers (Temporal dev, OpenBao, moto) on free loopback ports.

The servers are session-scoped and started once in a temporary directory; a
missing binary fails the test with the install command, never skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from importlib.metadata import EntryPoint
from typing import TypeVar

import boto3
import hvac
import pytest
from fakes.sql_servers import PostgresDatabase, PostgresServer

from keyturn import plugins
from keyturn.devstack.servers import (
    MOTO_REGION,
    DevServer,
    DevServerError,
    MotoServer,
    OpenBaoServer,
    TemporalDevServer,
)

S = TypeVar("S", bound=DevServer)

# Fixtures of the conformance harnesses (tests/conformance): each binds a provider
# or store to its server; provider and store tests elsewhere use the same servers.
pytest_plugins = [
    "conformance.harness_vault_kv",
    "conformance.harness_azure_app_secret",
    "conformance.harness_gcp_service_account",
    "conformance.harness_npm",
    "conformance.harness_vault_pki",
    "conformance.harness_http_webhook",
    "conformance.harness_github",
    "conformance.harness_github_actions_secret",
    "conformance.harness_aws_kms",
    "conformance.harness_aws_iam",
    "conformance.harness_aws_secrets_manager",
    "conformance.harness_sql",
]


def _run(server: S) -> Iterator[S]:
    try:
        server.start()
    except DevServerError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def temporal_dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """Temporal dev server with keyturn's search attributes; use `.address`."""
    yield from _run(TemporalDevServer(tmp_path_factory.mktemp("temporal")))


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBaoServer]:
    """OpenBao dev server (KV v2 at `secret/`); use `.url` and `.root_token`."""
    yield from _run(OpenBaoServer(tmp_path_factory.mktemp("openbao")))


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto with access-key checking on; `.admin_credentials` holds a working admin key."""
    yield from _run(MotoServer(tmp_path_factory.mktemp("moto"), auth=True))


@pytest.fixture
def audit_database(postgres_server: PostgresServer) -> PostgresDatabase:
    """A fresh database of the session's PostgreSQL server (conformance.harness_sql),
    owned by a fresh role, for a PostgreSQL audit log: `.dsn`, `.superuser()`."""
    return postgres_server.create_database()


@pytest.fixture
def vault_client(openbao: OpenBaoServer) -> hvac.Client:
    return hvac.Client(url=openbao.url, token=openbao.root_token)


@pytest.fixture
def aws_env(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 (and anything reading AWS_* variables) at moto as the admin user."""
    assert moto.admin_credentials is not None
    env = {
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": moto.admin_credentials["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": moto.admin_credentials["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": MOTO_REGION,
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def iam_client(moto: MotoServer):
    assert moto.admin_credentials is not None
    return boto3.client(
        "iam", endpoint_url=moto.url, region_name=MOTO_REGION, **moto.admin_credentials
    )


@pytest.fixture
def plugin_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[plugins.PluginRegistry], Callable[..., None]]]:
    """`plugin_registry(REGISTRY)` empties REGISTRY's in-process state for this test (restored
    after) and returns `install(*pairs)`, which replaces the installed entry points with the
    given `(name, "module:Class")` pairs in REGISTRY's group."""
    with ExitStack() as stack:

        def isolate(registry: plugins.PluginRegistry) -> Callable[..., None]:
            stack.enter_context(registry.isolated())

            def install(*pairs: tuple[str, str]) -> None:
                eps = [EntryPoint(name=n, value=v, group=registry.group) for n, v in pairs]
                monkeypatch.setattr(
                    plugins, "entry_points", lambda group: [ep for ep in eps if ep.group == group]
                )

            return install

        yield isolate
