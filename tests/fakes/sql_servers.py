"""Throwaway PostgreSQL and MariaDB servers with password authentication, for tests.

The machine's own servers trust local logins, so a wrong password would still
get in there. These start fresh ones (initdb + postgres, mariadb-install-db +
mariadbd) in a temporary directory on a free loopback port, in about a second:
TCP logins need a password (scram-sha-256 / mysql_native_password), while the
test itself administers the server as superuser over a Unix socket.

PostgreSQL refuses to run as root. Run as root (as in CI containers), the
server runs as the OS user `postgres` through `runuser -u postgres --`, with
its directory made by `tempfile.mkdtemp` and given to that user (pytest's own
temporary directories are private to root). MariaDB runs as root with
`--user=root`.

Each server has an admin account for the provider under test (CREATEROLE /
CREATE USER, not a superuser) whose login `admin_login(False)` turns off: the
"access denied" fault of the conformance harness.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from keyturn.devstack.servers import HOST, DevServer, DevServerError, find_binary

POSTGRES_INSTALL = "apt-get install postgresql (Debian package `postgresql`)"
MARIADB_INSTALL = "apt-get install mariadb-server (Debian package `mariadb-server`)"
ADMIN = "keyturn_admin"
MARIADB_FAST = [  # a throwaway server: small, and no durability to pay for
    "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
    "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
]


def postgres_bindir() -> Path:
    """The directory of initdb/postgres: `pg_config --bindir`, else the newest Debian one."""
    candidates = []
    if pg_config := shutil.which("pg_config"):
        bindir = subprocess.run(
            [pg_config, "--bindir"], check=False, capture_output=True, text=True
        ).stdout.strip()
        candidates.append(bindir)
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "postgres").is_file():
            return Path(candidate)
    raise DevServerError(f"PostgreSQL server binaries not found: {POSTGRES_INSTALL}")


def run(command: list[str], what: str) -> None:
    answer = subprocess.run(command, check=False, capture_output=True, text=True)
    if answer.returncode:
        raise DevServerError(f"{what} failed ({answer.returncode}): {answer.stderr[-2000:]}")


class PostgresServer(DevServer):
    """PostgreSQL on 127.0.0.1:`port`; `connect()` is the superuser over the Unix socket."""

    name = "postgres"
    install_hint = POSTGRES_INSTALL
    os_user = "postgres"

    def __init__(self) -> None:
        super().__init__(tempfile.mkdtemp(prefix="keyturn-pg-"))
        self.data_dir = self.state_dir / "data"
        self.admin_password = secrets.token_urlsafe(18)
        self._as_user = ["runuser", "-u", self.os_user, "--"] if os.geteuid() == 0 else []

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.state_dir),
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "max_connections": "100",
        }
        options = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        postgres = str(postgres_bindir() / "postgres")
        return [*self._as_user, postgres, "-D", str(self.data_dir), "-p", str(self.port), *options]

    def start(self, timeout: float = 30.0) -> PostgresServer:
        initdb = str(postgres_bindir() / "initdb")
        if self._as_user:
            shutil.chown(self.state_dir, self.os_user)
        run(
            [*self._as_user, initdb, "-D", str(self.data_dir), "-U", "postgres", "-N", "-E",
             "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256"],
            "initdb",
        )
        return super().start(timeout)

    def is_ready(self) -> bool:
        try:
            self.connect().close()
        except psycopg.Error:
            return False
        return True

    def after_ready(self) -> None:
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                    sql.Identifier(ADMIN), sql.Literal(self.admin_password)
                )
            )

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # fast shutdown: no waiting for clients
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        super().stop(timeout)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=str(self.state_dir), port=self.port, user="postgres", dbname=dbname,
            autocommit=True, connect_timeout=2, **kwargs,
        )

    def admin_dsn(self, port: int | None = None) -> str:
        """The provider's admin connection (to `port`, e.g. a proxy's, default the server's)."""
        return self.dsn(ADMIN, self.admin_password, port)

    def dsn(self, user: str, password: str, port: int | None = None,
            dbname: str = "postgres") -> str:
        port = port or self.port
        return f"host={HOST} port={port} dbname={dbname} user={user} password={password}"

    def create_database(self) -> PostgresDatabase:
        """A fresh database owned by a fresh login role with a password."""
        name = f"kt_{uuid.uuid4().hex[:12]}"
        database = PostgresDatabase(self, name, name, secrets.token_urlsafe(18))
        self.create_user(name, database.password)
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)))
        return database

    def admin_login(self, allowed: bool) -> None:
        self.set_login(ADMIN, allowed)

    def create_user(self, name: str, password: str, login: bool = True) -> None:
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} {} PASSWORD {}").format(
                    sql.Identifier(name), sql.SQL("LOGIN" if login else "NOLOGIN"),
                    sql.Literal(password),
                )
            )

    def set_login(self, name: str, allowed: bool) -> None:
        with self.connect() as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} {}").format(
                    sql.Identifier(name), sql.SQL("LOGIN" if allowed else "NOLOGIN")
                )
            )

    def can_login(self, name: str) -> bool | None:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (name,)
            ).fetchone()
        return None if row is None else row[0]

    def works(self, user: str, password: str, port: int | None = None) -> bool:
        """A fresh password login over TCP as `user` succeeds (and really checked the password)."""
        try:
            with psycopg.connect(
                host=HOST, port=port or self.port, user=user, password=password,
                dbname="postgres", connect_timeout=2,
            ) as conn:
                row = conn.execute("SELECT current_user").fetchone()
                return conn.pgconn.used_password and row is not None and row[0] == user
        except psycopg.OperationalError:
            return False


@dataclass(frozen=True)
class PostgresDatabase:
    """One database of a PostgresServer; `dsn` logs in over TCP as its owner, with a password."""

    server: PostgresServer
    name: str
    owner: str
    password: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.owner, self.password, dbname=self.name)

    def dsn_for(self, user: str, password: str) -> str:
        """Another role's password login to this database."""
        return self.server.dsn(user, password, dbname=self.name)

    def superuser(self) -> psycopg.Connection[Any]:
        """The superuser, over the Unix socket: may disable triggers, rewrite anything."""
        return self.server.connect(self.name)


class MariaDbServer(DevServer):
    """MariaDB on 127.0.0.1:`port`; `connect()` is root over the Unix socket."""

    name = "mariadb"
    binary = "mariadbd"
    install_hint = MARIADB_INSTALL

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        super().__init__(state_dir)
        self.data_dir = self.state_dir / "data"
        self.socket = self.state_dir / "mariadb.sock"
        self.admin_password = secrets.token_urlsafe(18)
        self._as_root = ["--user=root"] if os.geteuid() == 0 else []

    def args(self) -> list[str]:
        return [
            "--no-defaults", *self._as_root, f"--datadir={self.data_dir}",
            f"--port={self.port}", f"--bind-address={HOST}", f"--socket={self.socket}",
            f"--pid-file={self.state_dir / 'mariadb.pid'}", "--skip-name-resolve",
            "--skip-log-bin", *MARIADB_FAST, f"--log-error={self.log_path}",
        ]

    def start(self, timeout: float = 30.0) -> MariaDbServer:
        install = find_binary("mariadb-install-db", self.install_hint)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        run(
            [install, "--no-defaults", *self._as_root, f"--datadir={self.data_dir}",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve", *MARIADB_FAST],
            "mariadb-install-db",
        )
        return super().start(timeout)

    def is_ready(self) -> bool:
        try:
            self.connect().close()
        except pymysql.MySQLError:
            return False
        return True

    def after_ready(self) -> None:
        self.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", ADMIN, self.admin_password)
        self.execute("GRANT CREATE USER ON *.* TO %s@'%%'", ADMIN)
        self.execute("GRANT SELECT ON mysql.* TO %s@'%%'", ADMIN)

    def connect(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True,
                               connect_timeout=2)

    def execute(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement, args)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def admin_dsn(self, port: int | None = None) -> str:
        """The provider's admin connection (to `port`, e.g. a proxy's, default the server's)."""
        return self.dsn(ADMIN, self.admin_password, port)

    def dsn(self, user: str, password: str, port: int | None = None) -> str:
        return f"mysql://{user}:{password}@{HOST}:{port or self.port}"

    def admin_login(self, allowed: bool) -> None:
        self.set_login(ADMIN, allowed)

    def create_user(self, name: str, password: str, login: bool = True) -> None:
        lock = "" if login else " ACCOUNT LOCK"
        self.execute("CREATE USER %s@'%%' IDENTIFIED BY %s" + lock, name, password)

    def set_login(self, name: str, allowed: bool) -> None:
        self.execute("ALTER USER %s@'%%' ACCOUNT " + ("UNLOCK" if allowed else "LOCK"), name)

    def can_login(self, name: str) -> bool | None:
        rows = self.execute(
            "SELECT JSON_VALUE(Priv, '$.account_locked') FROM mysql.global_priv "
            "WHERE User = %s AND Host = '%%'", name,
        )
        return None if not rows else rows[0][0] in (None, "0")  # 1 when locked

    def works(self, user: str, password: str, port: int | None = None) -> bool:
        """A fresh password login over TCP as `user` succeeds."""
        try:
            conn = pymysql.connect(host=HOST, port=port or self.port, user=user,
                                   password=password, connect_timeout=2)
        except pymysql.MySQLError:
            return False
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT CURRENT_USER()")
                row = cursor.fetchone()
        finally:
            conn.close()
        return row is not None and row[0] == f"{user}@%"
