"""A real npm registry for tests: Verdaccio from tests/node, started on a free loopback port.

Verdaccio implements the npm token API (`/-/npm/v1/tokens` create/list/delete,
`/-/whoami`) and rejects a revoked token with 403, so the npm provider is tested
against the real wire protocol. Each server gets its own storage and htpasswd
file in a state directory, allows registrations (tests create a user per case
with PUT /-/user/org.couchdb.user:NAME), has no uplinks (nothing leaves the
machine), and logs at warn level to `<state_dir>/verdaccio.log`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from keyturn.devstack.servers import DevServer, DevServerError, http_status

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
VERDACCIO_BIN = NODE_DIR / "node_modules" / "verdaccio" / "bin" / "verdaccio"
INSTALL_HINT = "run `npm ci --prefix tests/node` (make venv does it)"


class VerdaccioServer(DevServer):
    """Verdaccio 6 with htpasswd auth; `.url` is the registry URL."""

    name = "verdaccio"
    binary = "node"
    install_hint = INSTALL_HINT

    @property
    def config_path(self) -> Path:
        return self.state_dir / "config.yaml"

    def command(self) -> list[str]:
        if not VERDACCIO_BIN.is_file():
            raise DevServerError(f"Verdaccio is not installed under {NODE_DIR}: {INSTALL_HINT}")
        node = shutil.which("node")
        if node is None:
            raise DevServerError(
                f"`node` not found on PATH: install Node.js 20+, then {INSTALL_HINT}"
            )
        self._write_config()
        return [node, str(VERDACCIO_BIN), "--config", str(self.config_path)]

    def _write_config(self) -> None:
        """YAML is a superset of JSON: Verdaccio reads this JSON file as its YAML config."""
        config = {
            "storage": str(self.state_dir / "storage"),
            "auth": {
                "htpasswd": {
                    "file": str(self.state_dir / "htpasswd"),
                    "max_users": 1_000_000,
                    # Legacy tokens carry the password, so every request checks it: bcrypt's
                    # minimum cost keeps that at a millisecond (the default 10 rounds: 100 ms).
                    "rounds": 4,
                }
            },
            "uplinks": {},
            "packages": {"**": {"access": "$authenticated", "publish": "$authenticated"}},
            "listen": self.address,
            "web": {"enable": False},
            # Tests create many users and tokens: lift the per-IP limit of the user endpoints.
            "userRateLimit": {"windowMs": 1000, "max": 1_000_000},
            "log": {"type": "stdout", "format": "pretty", "level": "warn"},
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(config, indent=2))

    def is_ready(self) -> bool:
        return http_status(f"{self.url}/-/ping")[0] == 200
