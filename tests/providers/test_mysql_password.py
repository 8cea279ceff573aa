"""`mysql.password` against a throwaway MariaDB 10.11 with password logins.

The shared scenarios (both modes, rollback, revocation proof, faults, secrecy)
come from sql_password_scenarios; below them what only MySQL/MariaDB has:
account host patterns, the admin URL and error-number classification.
"""

from __future__ import annotations

import secrets

import pymysql
import pytest
from conformance.harness_sql import SqlPasswordHarness
from sql_password_scenarios import SqlPasswordScenarios, assert_clean, ctx

from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    TransientProviderError,
)
from keyturn.providers.mysql_password import (
    ADMIN_DSN_ENV,
    MySqlPasswordProvider,
    classify,
    map_mysql_error,
)
from keyturn.providers.sql_password import credential_id


@pytest.fixture
def single(harness_mysql_password_single: SqlPasswordHarness) -> SqlPasswordHarness:
    return harness_mysql_password_single


@pytest.fixture
def alternating(harness_mysql_password: SqlPasswordHarness) -> SqlPasswordHarness:
    return harness_mysql_password


class TestMySqlPassword(SqlPasswordScenarios):
    pass


def test_an_account_with_its_own_host_pattern(single: SqlPasswordHarness) -> None:
    server, provider = single.server, single.provider()
    name, password = f"kt_{secrets.token_hex(5)}", secrets.token_urlsafe(16)
    server.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", name, password)
    server.execute("CREATE DATABASE kt_app")  # a database the account may log in to
    server.execute("GRANT SELECT ON kt_app.* TO %s@'127.0.0.1'", name)
    target = {"host": "127.0.0.1", "port": single.proxy.port, "user": name,
              "user_host": "127.0.0.1", "database": "kt_app"}
    old = {"username": name, "password": password}
    assert provider.precheck(target, ctx(old)).old_credential_ids == [credential_id(name, password)]
    new = provider.create(target, ctx(old))
    assert new.secret["database"] == "kt_app"
    provider.verify(target, new.secret)
    provider.confirm_revoked(target, credential_id(name, password), ctx(old, new.secret))
    with pytest.raises(CredentialNotFound):  # the same name at '%' does not exist
        provider.create({**target, "user_host": "%"}, ctx(old))


def test_admin_dsn_comes_from_the_environment(
    single: SqlPasswordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = single.new_subject()
    monkeypatch.delenv(ADMIN_DSN_ENV, raising=False)
    with pytest.raises(PermanentProviderError, match=ADMIN_DSN_ENV):
        MySqlPasswordProvider().precheck(subject.target, ctx(subject.initial))
    # Host and port default to the target's.
    monkeypatch.setenv(ADMIN_DSN_ENV, f"mysql://keyturn_admin:{single.server.admin_password}@")
    assert MySqlPasswordProvider().precheck(subject.target, ctx(subject.initial))


@pytest.mark.parametrize(
    "dsn",
    ["postgresql://u:hunter2-secret@h", "mysql://u:hunter2-secret@h:notaport", "hunter2-secret"],
)
def test_a_malformed_admin_dsn_is_not_quoted(single: SqlPasswordHarness, dsn: str) -> None:
    subject = single.new_subject()
    with pytest.raises(PermanentProviderError, match="not a URL") as failure:
        MySqlPasswordProvider(admin_dsn=dsn).precheck(subject.target, ctx(subject.initial))
    assert_clean(failure.value, "hunter2-secret")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1045, AccessDenied),
        (1227, AccessDenied),
        (4151, AccessDenied),
        (1396, CredentialNotFound),
        (1133, CredentialNotFound),
        (1040, TransientProviderError),
        (1213, TransientProviderError),
        (2003, TransientProviderError),
        (2013, TransientProviderError),
        (2055, TransientProviderError),
        (1064, PermanentProviderError),
    ],
)
def test_classification(code: int, expected: type) -> None:
    assert classify(pymysql.err.OperationalError(code, "message")) is expected


def test_error_messages_are_redacted() -> None:
    error = pymysql.err.ProgrammingError(1064, "syntax error near 's3cret-value' at line 1")
    mapped = map_mysql_error(error, "ALTER USER app", "user 'app' on h:3306", ["s3cret-value"])
    assert isinstance(mapped, PermanentProviderError)
    assert "s3cret-value" not in str(mapped) and "1064" in str(mapped)
