"""The embedded local stack behind `keyturn dev up|down|status`.

State lives in one directory (default `.keyturn/`): `stack.json` records the
detached servers (pid, ports, command line), `codec.key` the payload codec key,
`dev.env` the variables that point keyturn at the stack. `up` is idempotent and
restarts only what is dead; `down` stops only processes this stack started.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from keyturn.audit.checkpoint import generate_signing_key
from keyturn.codec import new_key
from keyturn.devstack.servers import (
    MOTO_REGION,
    DevServer,
    MotoServer,
    OpenBaoServer,
    TemporalDevServer,
    free_port,
    pid_alive,
    port_open,
    terminate,
)

DEFAULT_STATE_DIR = Path(".keyturn")
SERVER_NAMES = ("temporal", "openbao", "moto")
IN_MEMORY_NOTE = "in memory: a restart loses its data (secrets, users, keys)"


@dataclass
class ServerStatus:
    name: str
    state: str  # up | down | unresponsive
    pid: int | None = None
    address: str | None = None
    url: str | None = None
    log: str | None = None
    action: str | None = None  # what up/down just did: started, restarted, kept, stopped, ...
    ui: str | None = None  # Temporal's Web UI, while it is up
    notes: list[str] = field(default_factory=list)


@dataclass
class StackReport:
    state_dir: str
    env_file: str
    servers: list[ServerStatus]

    @property
    def all_up(self) -> bool:
        return all(server.state == "up" for server in self.servers)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "all_up": self.all_up}


def _write_private(path: Path, text: str) -> None:
    """Write `text` atomically to a file only the owner can read."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class DevStack:
    def __init__(self, state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.stack_file = self.state_dir / "stack.json"
        self.codec_key_file = self.state_dir / "codec.key"
        self.signing_key_file = self.state_dir / "audit-signing.key"
        self.env_file = self.state_dir / "dev.env"
        self.audit_log = self.state_dir / "audit.jsonl"
        self._lock = FileLock(self.state_dir / "stack.lock")

    # -- records ---------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.stack_file.read_text())["servers"]
        except FileNotFoundError:
            return {}

    def _save(self, records: dict[str, dict[str, Any]]) -> None:
        _write_private(self.stack_file, json.dumps({"servers": records}, indent=2) + "\n")

    def _server(self, name: str, record: dict[str, Any] | None) -> DevServer:
        """A server object for `name`, on the recorded ports when they are free or ours."""
        record = record or {}
        port = record.get("port")
        if name == "temporal":
            # A new server gets its Web UI; one recorded without it (older) stays headless.
            return TemporalDevServer(self.state_dir, port=port, http_port=record.get("http_port"),
                                     ui_port=record.get("ui_port") if record else free_port())
        if name == "openbao":
            return OpenBaoServer(
                self.state_dir, port=port, root_token=record.get("root_token", "root")
            )
        return MotoServer(self.state_dir, port=port, auth=True)

    @staticmethod
    def _owns(record: dict[str, Any]) -> bool:
        """True if the recorded pid is alive and still runs the recorded command."""
        pid, args = record.get("pid"), record.get("args", [])
        if not pid or not pid_alive(pid):
            return False
        cmdline = _cmdline(pid)
        return bool(args) and cmdline[-len(args) :] == args

    def _status(self, name: str, record: dict[str, Any] | None) -> ServerStatus:
        if not record:
            return ServerStatus(name, "down")
        server = self._server(name, record)
        owned = self._owns(record)
        state = ("up" if server.is_ready() else "unresponsive") if owned else "down"
        notes = [IN_MEMORY_NOTE] if server.in_memory else []
        return ServerStatus(
            name,
            state,
            pid=record["pid"] if owned else None,
            address=server.address,
            url=server.url,
            log=str(server.log_path),
            notes=notes,
            ui=server.ui_url if isinstance(server, TemporalDevServer) and state == "up" else None,
        )

    # -- operations ------------------------------------------------------------

    def status(self) -> StackReport:
        records = self._load()
        return self._report([self._status(name, records.get(name)) for name in SERVER_NAMES])

    def up(self, progress: Callable[[str], None] = lambda name: None) -> StackReport:
        """Start every server that is not running; keep the ones that are."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock:
            self._ensure_keys()
            records = self._load()
            statuses = []
            for name in SERVER_NAMES:
                progress(name)
                statuses.append(self._up_one(name, records))
                self._save(records)
            self._write_env(records)
            return self._report(statuses)

    def _up_one(self, name: str, records: dict[str, dict[str, Any]]) -> ServerStatus:
        previous = records.get(name)
        current = self._status(name, previous)
        if current.state == "up":
            current.action = "kept"
            return current
        if current.state == "unresponsive":
            terminate(previous["pid"])  # ours but not answering: replace it
        server = self._server(name, previous)
        if any(port_open(port) for port in server.ports):  # recorded ports taken meanwhile
            server = self._server(name, None)
        records.pop(name, None)
        server.start()
        records[name] = self._record(server)
        status = self._status(name, records[name])
        status.action = "restarted" if previous else "started"
        if previous and server.in_memory:
            status.notes.append("restarted empty: earlier data in it is gone")
        return status

    @staticmethod
    def _record(server: DevServer) -> dict[str, Any]:
        record: dict[str, Any] = {
            "pid": server.pid,
            "port": server.port,
            "args": server.args(),
            "log": str(server.log_path),
            "started_at": time.time(),
        }
        if isinstance(server, TemporalDevServer):
            record["http_port"] = server.http_port
            record["ui_port"] = server.ui_port
        if isinstance(server, OpenBaoServer):
            record["root_token"] = server.root_token
        if isinstance(server, MotoServer):
            record["admin_credentials"] = server.admin_credentials
        return record

    def down(self) -> StackReport:
        """Stop the servers this stack started (checked by pid and command line)."""
        if not self.state_dir.is_dir():
            return self.status()
        with self._lock:
            records = self._load()
            statuses = []
            for name in SERVER_NAMES:
                record = records.pop(name, None)
                status = ServerStatus(name, "down")
                if record and self._owns(record):
                    terminate(record["pid"])
                    status.action = "stopped"
                elif record:
                    status.action = "already stopped"
                    status.notes.append(f"pid {record.get('pid')} no longer runs it: left alone")
                statuses.append(status)
            self._save(records)
            return self._report(statuses)

    # -- files -----------------------------------------------------------------

    def codec_key(self) -> str:
        return self.codec_key_file.read_text().strip()

    def _ensure_keys(self) -> None:
        """The payload codec key and the audit checkpoint signing key, made once and kept."""
        if not self.codec_key_file.exists():
            _write_private(self.codec_key_file, new_key() + "\n")
        if not self.signing_key_file.exists():
            generate_signing_key(self.signing_key_file)

    def env(self, records: dict[str, dict[str, Any]]) -> dict[str, str]:
        """The variables that point keyturn, hvac, boto3 and the CLIs at this stack."""
        temporal, openbao, moto = (records[name] for name in SERVER_NAMES)
        return {
            "KEYTURN_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal['port']}",
            "KEYTURN_NAMESPACE": "default",
            "KEYTURN_AUDIT_LOG": str(self.audit_log),
            "KEYTURN_CODEC_KEY": self.codec_key(),
            "KEYTURN_AUDIT_SIGNING_KEY": str(self.signing_key_file),
            "VAULT_ADDR": f"http://127.0.0.1:{openbao['port']}",
            "VAULT_TOKEN": openbao["root_token"],
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto['port']}",
            "AWS_ACCESS_KEY_ID": moto["admin_credentials"]["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": moto["admin_credentials"]["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": MOTO_REGION,
        }

    def read_env_file(self) -> dict[str, str]:
        """The variables in dev.env as written by the last `up`."""
        values = {}
        for line in self.env_file.read_text().splitlines():
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                values[name] = shlex.split(value)[0] if value else ""
        return values

    def _write_env(self, records: dict[str, dict[str, Any]]) -> None:
        lines = [f"# written by `keyturn dev up`; load it with: . {self.env_file}"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.env(records).items()]
        _write_private(self.env_file, "\n".join(lines) + "\n")

    def _report(self, statuses: list[ServerStatus]) -> StackReport:
        return StackReport(str(self.state_dir), str(self.env_file), statuses)
