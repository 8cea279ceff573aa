"""PostgreSQL role passwords: the `postgres.password` provider (psycopg 3).

Modes, ids and revocation rules are those of keyturn.providers.sql_password:
target {host, port (5432), dbname, role} rotates one role's password in place;
{host, port, dbname, users: [app_blue, app_green]} alternates between two
roles with the same grants. "Login off" is NOLOGIN.

The admin connection: the libpq connection string (key=value or URI) given to
the constructor as `admin_dsn`, else the environment variable
KEYTURN_POSTGRES_ADMIN_DSN (read at each use); libpq's own PG* variables and
~/.pgpass fill in what it leaves out. Its host and port default to the
target's. The admin role needs CREATEROLE (PostgreSQL 16+: with ADMIN OPTION on
the rotated roles) or superuser. Passwords are hashed on the client
(PQencryptPasswordConn, the server's password_encryption), so ALTER ROLE never
carries them in plain text to the server or its statement log.

Proof of life and death is a fresh login to the target's host, port and dbname.
A server that lets the role in without asking for a password (trust, peer)
cannot prove anything about a password: that is an error, not a success.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field

from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from keyturn.providers.sql_password import Login, Name, SqlPasswordProvider, SqlTarget
from keyturn.secret import redact

ADMIN_DSN_ENV = "KEYTURN_POSTGRES_ADMIN_DSN"
INVALID_PASSWORD = "28P01"
NOT_PERMITTED = "is not permitted to log in"
LOGIN_CLAUSE = {True: "LOGIN ", False: "NOLOGIN ", None: ""}

# The one table from SQLSTATE (exact code, else its two-character class) to
# provider errors. Unlisted codes are permanent; a failure without SQLSTATE is a
# connection that could not be made or was lost: transient.
SQLSTATE_ERRORS: dict[str, type[ProviderError]] = {
    "28P01": AccessDenied,  # invalid_password (the admin's)
    "28000": AccessDenied,  # invalid_authorization_specification: pg_hba, NOLOGIN
    "42501": AccessDenied,  # insufficient_privilege: no CREATEROLE, superuser target
    "42704": CredentialNotFound,  # undefined_object: no such role
    "3D000": CredentialNotFound,  # invalid_catalog_name: no such database
    "40001": TransientProviderError,  # serialization_failure
    "40P01": TransientProviderError,  # deadlock_detected
    "55P03": TransientProviderError,  # lock_not_available
    "08": TransientProviderError,  # connection_exception
    "53": TransientProviderError,  # insufficient_resources: too_many_connections
    "57": TransientProviderError,  # operator_intervention: shutdown, starting up, timeout
}

# libpq reports no SQLSTATE for a refusal during connection start-up; its
# (English) message says which one it was.
STARTUP_MESSAGES = {
    "password authentication failed": INVALID_PASSWORD,
    NOT_PERMITTED: "28000",
    "no pg_hba.conf entry": "28000",
    "does not exist": "3D000",  # database "x" (or, under trust, role "x")
    "too many clients already": "53300",
    "remaining connection slots are reserved": "53300",
    "the database system is": "57P03",  # starting up, shutting down, in recovery
}


def sqlstate(exc: psycopg.Error) -> str | None:
    if exc.sqlstate:
        return exc.sqlstate
    text = str(exc)
    return next((state for part, state in STARTUP_MESSAGES.items() if part in text), None)


def classify(exc: psycopg.Error) -> type[ProviderError]:
    """The provider error class for a psycopg exception."""
    state = sqlstate(exc)
    if state is not None:
        return SQLSTATE_ERRORS.get(state) or SQLSTATE_ERRORS.get(state[:2], PermanentProviderError)
    if isinstance(exc, psycopg.OperationalError) and "FATAL:" not in str(exc):
        return TransientProviderError
    return PermanentProviderError


def map_pg_error(
    exc: psycopg.Error, operation: str, where: str, secrets: list[str | None]
) -> ProviderError:
    """Classify `exc`; the message names the operation and target, never a secret value."""
    detail = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "", secrets)
    state = sqlstate(exc) or type(exc).__name__
    return classify(exc)(f"{operation} for {where} failed: {state}: {detail}".rstrip(": "))


class PostgresTarget(SqlTarget):
    """One role (`role`) or two alternating roles (`users`) on a PostgreSQL server."""

    single_field: ClassVar[str] = "role"

    port: int = Field(default=5432, ge=1, le=65535)
    dbname: str = Field(min_length=1)
    role: Name | None = None


class PostgresPasswordProvider(SqlPasswordProvider):
    """Rotates PostgreSQL role passwords: in place, or between two alternating roles."""

    name: ClassVar[str] = "postgres.password"
    family: ClassVar[str] = "postgres"
    target_model: ClassVar[type[SqlTarget]] = PostgresTarget
    account_kind: ClassVar[str] = "role"
    default_connection_fields: ClassVar[tuple[str, ...]] = ("host", "port", "dbname")

    def __init__(self, *, admin_dsn: str | None = None, connect_timeout: int = 10) -> None:
        if connect_timeout < 1:
            raise ValueError("connect_timeout must be at least 1 second")
        self._admin_dsn = admin_dsn
        self._timeout = connect_timeout

    # -- dialect --------------------------------------------------------------------

    def account(self, t: PostgresTarget, user: str) -> bool | None:
        with self._admin(t, "SELECT pg_roles") as conn:
            row = conn.execute(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (user,)
            ).fetchone()
        return None if row is None else bool(row[0])

    def set_password(
        self, t: PostgresTarget, user: str, new_password: str, login: bool | None
    ) -> None:
        with self._admin(t, f"ALTER ROLE {user} PASSWORD", new_password) as conn:
            # Named explicitly: libpq would otherwise ask the server in a blocking call.
            row = conn.execute("SHOW password_encryption").fetchone()
            algorithm = row[0].encode() if row else None
            verifier = conn.pgconn.encrypt_password(new_password.encode(), user.encode(), algorithm)
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH {}PASSWORD {}").format(
                    sql.Identifier(user),
                    sql.SQL(LOGIN_CLAUSE[login]),
                    sql.Literal(verifier.decode()),
                )
            )

    def set_login(self, t: PostgresTarget, user: str, allowed: bool) -> None:
        with self._admin(t, f"ALTER ROLE {user} {LOGIN_CLAUSE[allowed].strip()}") as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH {}").format(
                    sql.Identifier(user), sql.SQL(LOGIN_CLAUSE[allowed])
                )
            )

    def login(self, t: PostgresTarget, user: str, user_password: str) -> Login:
        try:
            with psycopg.connect(
                host=t.host,
                port=t.port,
                dbname=t.dbname,
                user=user,
                password=user_password,
                connect_timeout=self._timeout,
                autocommit=True,
            ) as conn:
                if not conn.pgconn.used_password:
                    raise PermanentProviderError(
                        f"login as {user!r} on {t.host}:{t.port}: the server let the role in "
                        "without asking for a password (trust or peer authentication), so no "
                        "password can be verified or proven revoked there"
                    )
                row = conn.execute("SELECT current_user").fetchone()
        except psycopg.Error as exc:
            if sqlstate(exc) == INVALID_PASSWORD:
                return Login.REFUSED
            if NOT_PERMITTED in str(exc):
                return Login.DISABLED
            error = map_pg_error(exc, f"login as {user!r}", self.describe(t), [user_password])
            raise error from None
        return Login.ACCEPTED if row is not None and row[0] == user else Login.REFUSED

    @staticmethod
    def connection_fields(t: PostgresTarget) -> dict[str, str]:
        return {"host": t.host, "port": str(t.port), "dbname": t.dbname}

    # -- admin connection -----------------------------------------------------------

    @contextmanager
    def _admin(
        self, t: PostgresTarget, operation: str, *secrets: str
    ) -> Iterator[psycopg.Connection[Any]]:
        params = self._admin_params(t)
        try:
            with psycopg.connect(
                **params, connect_timeout=self._timeout, autocommit=True
            ) as conn:
                yield conn
        except psycopg.Error as exc:
            error = map_pg_error(
                exc, operation, self.describe(t), [params.get("password"), *secrets]
            )
            # `from None`: psycopg's exception holds the connection parameters.
            raise error from None

    def _admin_params(self, t: PostgresTarget) -> dict[str, Any]:
        dsn = self._admin_dsn if self._admin_dsn is not None else os.environ.get(ADMIN_DSN_ENV, "")
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            params = None
        if params is None:  # the parser's message may quote the DSN, password and all
            raise PermanentProviderError(
                f"the admin connection string ({ADMIN_DSN_ENV} or admin_dsn) is not a valid "
                "libpq connection string"
            )
        params.setdefault("host", t.host)
        params.setdefault("port", t.port)
        return params
