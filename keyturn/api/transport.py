"""How `keyturn serve` listens: TLS, the plain-HTTP refusal, and which proxies are trusted.

A bearer token or session cookie sent over plain HTTP can be read by anyone on the
path, so a bind to anything but loopback needs TLS (`--tls-cert`/`--tls-key`), or a
loud, logged `--insecure-http` (e.g. behind a TLS-terminating proxy on a private
network). `X-Forwarded-Proto`/`X-Forwarded-For` are believed only from the proxies
named with `--trusted-proxy`; without one they are ignored.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyturn.config import ConfigError

log = logging.getLogger("keyturn.api")
INSECURE_WARNING = ("serving plain HTTP on {host}, a non-loopback address (--insecure-http): "
                    "tokens and session cookies cross the network readable by anyone on the path")


class TransportRefused(ConfigError):
    """The listen options are unsafe or incomplete; the message says what to pass."""


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True)
class Listen:
    """Where and how to serve; `uvicorn()` gives uvicorn.run's keyword arguments."""

    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    trusted_proxies: tuple[str, ...] = ()

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    @property
    def insecure(self) -> bool:
        """Plain HTTP on a non-loopback address (allowed only with insecure_http)."""
        return self.tls_cert is None and not is_loopback(self.host)

    def check(self) -> None:
        """Raise TransportRefused unless these options are safe to serve with."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise TransportRefused("--tls-cert and --tls-key go together")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not path.is_file():
                raise TransportRefused(f"{path}: no such file")
        if self.insecure and not self.insecure_http:
            raise TransportRefused(
                f"refusing to serve plain HTTP on {self.host}, a non-loopback address: pass "
                "--tls-cert and --tls-key, or --insecure-http if a TLS proxy fronts this "
                "server on a private network")

    def uvicorn(self) -> dict[str, Any]:
        options: dict[str, Any] = {"host": self.host, "port": self.port,
                                   "proxy_headers": bool(self.trusted_proxies)}
        if self.trusted_proxies:
            options["forwarded_allow_ips"] = ",".join(self.trusted_proxies)
        if self.tls_cert is not None:
            options["ssl_certfile"] = str(self.tls_cert)
            options["ssl_keyfile"] = str(self.tls_key)
        return options

    def warn_if_insecure(self) -> str | None:
        """Log (and return, for the console) the insecure-HTTP warning when it applies."""
        if not self.insecure:
            return None
        message = INSECURE_WARNING.format(host=self.host)
        log.warning(message)
        return message
