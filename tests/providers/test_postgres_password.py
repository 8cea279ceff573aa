"""`postgres.password` against a throwaway PostgreSQL 15 with scram-sha-256 logins.

The shared scenarios (both modes, rollback, revocation proof, faults, secrecy)
come from sql_password_scenarios; below them what only PostgreSQL has: trust
authentication, client-side password hashing, libpq connection strings and
SQLSTATE classification.
"""

from __future__ import annotations

import psycopg
import pytest
from conformance.harness_sql import SqlPasswordHarness
from sql_password_scenarios import SqlPasswordScenarios, assert_clean, ctx

from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    TransientProviderError,
)
from keyturn.providers.postgres_password import (
    ADMIN_DSN_ENV,
    PostgresPasswordProvider,
    classify,
    map_pg_error,
)


@pytest.fixture
def single(harness_postgres_password_single: SqlPasswordHarness) -> SqlPasswordHarness:
    return harness_postgres_password_single


@pytest.fixture
def alternating(harness_postgres_password: SqlPasswordHarness) -> SqlPasswordHarness:
    return harness_postgres_password


class TestPostgresPassword(SqlPasswordScenarios):
    pass


def test_a_server_that_asks_no_password_proves_nothing(single: SqlPasswordHarness) -> None:
    provider, subject = single.provider(), single.new_subject()
    server = single.server
    over_socket = {**subject.target, "host": str(server.state_dir), "port": server.port}  # trust
    with pytest.raises(PermanentProviderError, match="without asking for a password"):
        provider.verify(over_socket, single.broken(subject, subject.initial))
    with pytest.raises(PermanentProviderError, match="without asking for a password"):
        provider.confirm_revoked(over_socket, subject.initial_id, ctx(subject.initial))


def test_the_plain_password_never_reaches_the_server(single: SqlPasswordHarness) -> None:
    server = single.server
    with server.connect() as conn:
        conn.execute("ALTER ROLE keyturn_admin SET log_statement = 'ddl'")
    try:
        subject = single.new_subject()
        new = single.provider().create(subject.target, ctx(subject.initial))
    finally:
        with server.connect() as conn:
            conn.execute("ALTER ROLE keyturn_admin RESET log_statement")
    log = server.log_path.read_text()
    assert "ALTER ROLE" in log and "SCRAM-SHA-256$" in log
    assert new.secret["password"] not in log


def test_admin_dsn_comes_from_the_environment(
    single: SqlPasswordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = single.new_subject()
    monkeypatch.setenv(ADMIN_DSN_ENV, single.server.admin_dsn(single.proxy.port))
    provider = PostgresPasswordProvider()
    assert provider.precheck(subject.target, ctx(subject.initial)).old_credential_ids == [
        subject.initial_id
    ]
    # Host and port default to the target's: a DSN with only the identity works too.
    monkeypatch.setenv(
        ADMIN_DSN_ENV,
        f"dbname=postgres user=keyturn_admin password={single.server.admin_password}",
    )
    assert PostgresPasswordProvider().list_credential_ids(subject.target, ctx(subject.initial))


def test_a_malformed_admin_dsn_is_not_quoted(single: SqlPasswordHarness) -> None:
    subject = single.new_subject()
    provider = PostgresPasswordProvider(admin_dsn="host=x password=hunter2-secret oops")
    with pytest.raises(PermanentProviderError, match="not a valid libpq") as failure:
        provider.precheck(subject.target, ctx(subject.initial))
    assert_clean(failure.value, "hunter2-secret")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (psycopg.errors.SerializationFailure(), TransientProviderError),
        (psycopg.errors.TooManyConnections(), TransientProviderError),
        (psycopg.errors.AdminShutdown(), TransientProviderError),
        (psycopg.errors.InsufficientPrivilege(), AccessDenied),
        (psycopg.errors.UndefinedObject(), CredentialNotFound),
        (psycopg.errors.SyntaxError(), PermanentProviderError),
        (psycopg.OperationalError("connection failed: Connection refused"), TransientProviderError),
        (psycopg.OperationalError("server closed the connection unexpectedly"),
         TransientProviderError),
        (psycopg.OperationalError('failed: FATAL:  password authentication failed for user "a"'),
         AccessDenied),
        (psycopg.OperationalError("failed: FATAL:  sorry, too many clients already"),
         TransientProviderError),
        (psycopg.OperationalError('failed: FATAL:  database "x" does not exist'),
         CredentialNotFound),
        (psycopg.OperationalError("failed: FATAL:  something new"), PermanentProviderError),
    ],
)
def test_classification(error: psycopg.Error, expected: type) -> None:
    assert classify(error) is expected


def test_error_messages_are_redacted() -> None:
    error = psycopg.errors.SyntaxError('syntax error at or near "s3cret-value"')
    mapped = map_pg_error(error, "ALTER ROLE app", "role 'app' on h:5432", ["s3cret-value"])
    assert isinstance(mapped, PermanentProviderError)
    assert "s3cret-value" not in str(mapped) and "ALTER ROLE app" in str(mapped)
