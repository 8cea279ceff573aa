"""How keyturn proves itself to Temporal and checks the server: TLS, mutual TLS and API keys.

`TemporalAuth` is the part of the settings that says where the material lives
(file paths and a server name), parsed from the KEYTURN_TEMPORAL_TLS* and
KEYTURN_TEMPORAL_API_KEY_FILE variables. The files themselves are read when
connecting (keyturn.operations.connect), so a command that never talks to Temporal is not
stopped by them and a renewed certificate is picked up by the next connection.
Only paths are kept here: no repr, log line or error message can carry a key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from keyturn.errors import PermanentError

TLS_ENV = "KEYTURN_TEMPORAL_TLS"
CA_ENV = "KEYTURN_TEMPORAL_TLS_CA"
CERT_ENV = "KEYTURN_TEMPORAL_TLS_CERT"
KEY_ENV = "KEYTURN_TEMPORAL_TLS_KEY"
SERVER_NAME_ENV = "KEYTURN_TEMPORAL_TLS_SERVER_NAME"
API_KEY_FILE_ENV = "KEYTURN_TEMPORAL_API_KEY_FILE"
API_KEY_ENV = "KEYTURN_TEMPORAL_API_KEY"  # refused: the key belongs in a file, not the environment

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class TemporalAuthError(PermanentError, ValueError):
    """A TLS or API key variable is malformed or contradicts another; the message names it."""


@dataclass(frozen=True)
class TemporalAuth:
    """TLS and API key settings for the Temporal connection; the default is plaintext, no key.

    `ca` None means the system's root CAs; `cert` and `key` (both or neither) are
    the client certificate for mutual TLS; `server_name` overrides the name the
    server's certificate is checked against (and the SNI sent).
    """

    tls: bool = False
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None
    api_key_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TemporalAuth:
        """The settings in `env`; TLS is on when asked for or when any other of them is set."""
        if env.get(API_KEY_ENV):
            raise TemporalAuthError(
                f"{API_KEY_ENV} is not read, so the key does not sit in the environment of every "
                f"process keyturn starts: put the key in a file readable only by keyturn, set "
                f"{API_KEY_FILE_ENV} to its path and unset {API_KEY_ENV}"
            )
        auth = cls(
            ca=_path(env, CA_ENV),
            cert=_path(env, CERT_ENV),
            key=_path(env, KEY_ENV),
            server_name=env.get(SERVER_NAME_ENV, "").strip() or None,
            api_key_file=_path(env, API_KEY_FILE_ENV),
        )
        _check_pair(auth)
        implied = _implying_tls(auth)
        asked = _flag(env.get(TLS_ENV, ""))
        if asked is False and implied:
            raise TemporalAuthError(
                f"{TLS_ENV}=false contradicts {', '.join(implied)}, which only apply over TLS "
                f"(an API key or client certificate is never sent in plaintext): set "
                f"{TLS_ENV}=true or unset them"
            )
        return dataclasses.replace(auth, tls=bool(asked or implied))

    def describe(self) -> str:
        """One line for logs and errors: what is used, by path, never by content."""
        if not self.tls:
            return "plaintext (no TLS)"
        parts = [f"TLS with CA {self.ca}" if self.ca else "TLS with the system's root CAs"]
        if self.cert:
            parts.append(f"client certificate {self.cert}")
        if self.server_name:
            parts.append(f"server name {self.server_name}")
        if self.api_key_file:
            parts.append(f"API key from {self.api_key_file}")
        return ", ".join(parts)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "").strip()
    return Path(value).expanduser() if value else None


def _flag(text: str) -> bool | None:
    value = text.strip().lower()
    if not value:
        return None
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise TemporalAuthError(f"{TLS_ENV}={text!r}: use true or false")


def _check_pair(auth: TemporalAuth) -> None:
    """A client certificate is useless without its key and the other way round."""
    if bool(auth.cert) != bool(auth.key):
        have, missing = (CERT_ENV, KEY_ENV) if auth.cert else (KEY_ENV, CERT_ENV)
        raise TemporalAuthError(
            f"{have} is set but {missing} is not: mutual TLS needs the client certificate "
            f"and its private key (PEM files); set both, or neither"
        )


def _implying_tls(auth: TemporalAuth) -> list[str]:
    """The variables set that only make sense over TLS."""
    values = {CA_ENV: auth.ca, CERT_ENV: auth.cert, KEY_ENV: auth.key,
              SERVER_NAME_ENV: auth.server_name, API_KEY_FILE_ENV: auth.api_key_file}
    return [name for name, value in values.items() if value]
