"""MySQL/MariaDB user passwords: the `mysql.password` provider (PyMySQL).

Modes, ids and revocation rules are those of keyturn.providers.sql_password:
target {host, port (3306), database, user, user_host ('%')} rotates one
account's password in place; {host, port, database, users: [app_blue,
app_green], user_host} alternates between two accounts with the same grants
(MariaDB 10.11 has no dual passwords). "Login off" is ACCOUNT LOCK. `database`
is optional: verify logs in to it when given, and it goes into the secret.

The admin connection: a URL `mysql://USER:PASSWORD@HOST:PORT` (user and
password percent-encoded; host and port default to the target's) given to the
constructor as `admin_dsn`, else the environment variable
KEYTURN_MYSQL_ADMIN_DSN (read at each use). The admin account needs
`CREATE USER ON *.*` (ALTER USER) and `SELECT ON mysql.*` (SHOW CREATE USER).

Proof of life and death is a fresh login to the target's host and port. MariaDB
tells a locked account with the right password (4151) from a wrong password
(1045), which single-user mode relies on to know which password a locked user
has.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import pymysql
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

ADMIN_DSN_ENV = "KEYTURN_MYSQL_ADMIN_DSN"
ACCESS_DENIED = 1045
ACCOUNT_LOCKED = frozenset({4151, 3118})  # MariaDB, MySQL
LOCK_CLAUSE = {True: " ACCOUNT UNLOCK", False: " ACCOUNT LOCK", None: ""}

# The one table from MySQL/MariaDB error numbers to provider errors. Unlisted
# client errors (2000-2999: connecting, connection lost) are transient, other
# unlisted errors permanent.
ERROR_CODES: dict[int, type[ProviderError]] = {
    1044: AccessDenied,  # ER_DBACCESS_DENIED_ERROR
    1045: AccessDenied,  # ER_ACCESS_DENIED_ERROR: the admin's password
    1142: AccessDenied,  # ER_TABLEACCESS_DENIED_ERROR
    1227: AccessDenied,  # ER_SPECIFIC_ACCESS_DENIED_ERROR: no CREATE USER privilege
    4151: AccessDenied,  # MariaDB: the admin account is locked
    3118: AccessDenied,  # MySQL: ER_ACCOUNT_HAS_BEEN_LOCKED
    1133: CredentialNotFound,  # ER_PASSWORD_NO_MATCH: no such user (SHOW CREATE USER)
    1396: CredentialNotFound,  # ER_CANNOT_USER: ALTER USER of a missing user
    1049: CredentialNotFound,  # ER_BAD_DB_ERROR: no such database
    1040: TransientProviderError,  # ER_CON_COUNT_ERROR: too many connections
    1203: TransientProviderError,  # ER_TOO_MANY_USER_CONNECTIONS
    1205: TransientProviderError,  # ER_LOCK_WAIT_TIMEOUT
    1213: TransientProviderError,  # ER_LOCK_DEADLOCK
    1053: TransientProviderError,  # ER_SERVER_SHUTDOWN
}


def error_code(exc: pymysql.MySQLError) -> int:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0


def classify(exc: pymysql.MySQLError) -> type[ProviderError]:
    """The provider error class for a PyMySQL exception."""
    code = error_code(exc)
    if (mapped := ERROR_CODES.get(code)) is not None:
        return mapped
    return TransientProviderError if 2000 <= code < 3000 else PermanentProviderError


def map_mysql_error(
    exc: pymysql.MySQLError, operation: str, where: str, secrets: list[str | None]
) -> ProviderError:
    """Classify `exc`; the message names the operation and target, never a secret value."""
    message = exc.args[1] if len(exc.args) > 1 else str(exc)
    detail = redact(f"{error_code(exc)}: {message}", secrets)
    return classify(exc)(f"{operation} for {where} failed: {detail}")


class MySqlTarget(SqlTarget):
    """One account (`user`) or two alternating accounts (`users`), all at host `user_host`."""

    single_field: ClassVar[str] = "user"

    port: int = Field(default=3306, ge=1, le=65535)
    database: str | None = Field(default=None, min_length=1)
    user: Name | None = None
    user_host: str = Field(default="%", min_length=1, max_length=255)


class MySqlPasswordProvider(SqlPasswordProvider):
    """Rotates MySQL/MariaDB account passwords: in place, or between two alternating accounts."""

    name: ClassVar[str] = "mysql.password"
    family: ClassVar[str] = "mysql"
    target_model: ClassVar[type[SqlTarget]] = MySqlTarget
    account_kind: ClassVar[str] = "user"
    default_connection_fields: ClassVar[tuple[str, ...]] = ("host", "port", "database")

    def __init__(self, *, admin_dsn: str | None = None, timeout: float = 10.0) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._admin_dsn = admin_dsn
        self._timeout = timeout

    # -- dialect --------------------------------------------------------------------

    def account(self, t: MySqlTarget, user: str) -> bool | None:
        try:
            with self._admin(t, f"SHOW CREATE USER {user}") as cursor:
                cursor.execute("SHOW CREATE USER %s@%s", (user, t.user_host))
                row = cursor.fetchone()
        except CredentialNotFound:
            return None
        return row is not None and " ACCOUNT LOCK" not in row[0]

    def set_password(
        self, t: MySqlTarget, user: str, new_password: str, login: bool | None
    ) -> None:
        with self._admin(t, f"ALTER USER {user} IDENTIFIED BY", new_password) as cursor:
            cursor.execute(
                "ALTER USER %s@%s IDENTIFIED BY %s" + LOCK_CLAUSE[login],
                (user, t.user_host, new_password),
            )

    def set_login(self, t: MySqlTarget, user: str, allowed: bool) -> None:
        clause = LOCK_CLAUSE[allowed]
        with self._admin(t, f"ALTER USER {user}{clause}") as cursor:
            cursor.execute("ALTER USER %s@%s" + clause, (user, t.user_host))

    def login(self, t: MySqlTarget, user: str, user_password: str) -> Login:
        try:
            conn = pymysql.connect(
                host=t.host,
                port=t.port,
                user=user,
                password=user_password,
                database=t.database,
                connect_timeout=self._timeout,
                read_timeout=self._timeout,
                write_timeout=self._timeout,
            )
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT CURRENT_USER()")
                    row = cursor.fetchone()
            finally:
                conn.close()
        except pymysql.MySQLError as exc:
            if error_code(exc) == ACCESS_DENIED:
                return Login.REFUSED
            if error_code(exc) in ACCOUNT_LOCKED:
                return Login.DISABLED
            raise map_mysql_error(
                exc, f"login as {user!r}", self.describe(t), [user_password]
            ) from None
        return Login.ACCEPTED if row and row[0] == f"{user}@{t.user_host}" else Login.REFUSED

    @staticmethod
    def connection_fields(t: MySqlTarget) -> dict[str, str]:
        fields = {"host": t.host, "port": str(t.port)}
        if t.database:
            fields["database"] = t.database
        return fields

    # -- admin connection -----------------------------------------------------------

    @contextmanager
    def _admin(self, t: MySqlTarget, operation: str, *secrets: str) -> Iterator[Any]:
        params = self._admin_params(t)
        try:
            conn = pymysql.connect(
                **params,
                autocommit=True,
                connect_timeout=self._timeout,
                read_timeout=self._timeout,
                write_timeout=self._timeout,
            )
            try:
                with conn.cursor() as cursor:
                    yield cursor
            finally:
                conn.close()
        except pymysql.MySQLError as exc:
            error = map_mysql_error(
                exc, operation, self.describe(t), [params["password"], *secrets]
            )
            raise error from None  # the driver's message may quote the SQL it ran

    def _admin_params(self, t: MySqlTarget) -> dict[str, Any]:
        dsn = self._admin_dsn if self._admin_dsn is not None else os.environ.get(ADMIN_DSN_ENV)
        if not dsn:
            raise PermanentProviderError(
                f"no admin connection for {self.name}: set {ADMIN_DSN_ENV} to "
                "mysql://USER:PASSWORD@HOST:PORT"
            )
        try:
            parts = urlsplit(dsn)
            port = parts.port
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("mysql", "mariadb") or not parts.username:
            # Not quoted: the URL holds a password.
            raise PermanentProviderError(
                f"the admin connection ({ADMIN_DSN_ENV} or admin_dsn) is not a URL of the "
                "form mysql://USER:PASSWORD@HOST:PORT"
            )
        return {
            "host": parts.hostname or t.host,
            "port": port or t.port,
            "user": unquote(parts.username),
            "password": unquote(parts.password or ""),
        }
