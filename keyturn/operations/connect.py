"""Connecting to Temporal with keyturn's data converter, over TLS, mTLS and an API key if set.

The certificate, key and API key files named by the settings are read and
checked here, at every connection, so each problem is a ConfigError naming the
variable and the fix; their contents never appear in a message.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from temporalio.client import Client
from temporalio.service import TLSConfig

from keyturn.codec import data_converter, key_id, parse_key
from keyturn.config import ConfigError, Settings
from keyturn.temporal_auth import (
    API_KEY_FILE_ENV,
    CA_ENV,
    CERT_ENV,
    KEY_ENV,
    SERVER_NAME_ENV,
    TLS_ENV,
    TemporalAuth,
)

_API_KEY = re.compile(r"[!-~]+")  # printable ASCII without spaces: what gRPC metadata can carry

# Markers in the SDK's connection errors -> what to do about them (the first match wins).
_TLS_HINTS = [
    (("UnknownIssuer",), (
        f"the server's certificate is not signed by a CA keyturn trusts: set {CA_ENV} to the "
        "PEM file of the CA that signed it (unset, the system's root CAs are used)"
    )),
    (("NotValidForName",), (
        "the server's certificate is not issued for the name connected to: use that name in "
        f"KEYTURN_TEMPORAL_ADDRESS or set {SERVER_NAME_ENV}"
    )),
    (("InvalidContentType",), (
        f"the server does not speak TLS: for a plaintext server unset {TLS_ENV} and the other "
        "KEYTURN_TEMPORAL_TLS_* variables"
    )),
    (("Unauthenticated",), (
        f"the server refused keyturn's credentials: check the API key in {API_KEY_FILE_ENV} "
        f"or the client certificate in {CERT_ENV}"
    )),
    (("PermissionDenied",), (
        "the server accepted keyturn's credentials but they may not use this namespace: check "
        "KEYTURN_NAMESPACE and the API key's or certificate's permissions"
    )),
    (("Connection refused",), "nothing listens there: check KEYTURN_TEMPORAL_ADDRESS"),
    (("connection closed", "close_notify", "connection was not ready", "AlertReceived"), (
        "the server ended the connection during or right after the TLS handshake, as servers "
        f"that require a client certificate do without a trusted one: set {CERT_ENV} and "
        f"{KEY_ENV} to a certificate the server accepts"
    )),
]
_TLS_CHECKLIST = (
    f"check {CA_ENV} (the CA that signed the server's certificate), {SERVER_NAME_ENV} and, if "
    f"the server requires a client certificate, {CERT_ENV} and {KEY_ENV}"
)


async def connect(settings: Settings) -> Client:
    """A client for `settings.temporal_address`; says what to set or run when it fails."""
    auth = settings.temporal_auth
    tls, api_key = tls_config(auth), read_api_key(auth)
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.namespace,
            data_converter=data_converter(settings.codec_key),
            tls=tls,
            api_key=api_key,
            identity=identity(settings.codec_key),
        )
    except RuntimeError as exc:
        raise ConfigError(_connect_error(settings, exc)) from exc


CODEC_MARK = " codec:"
"""Where a client's (and so its workers') identity names its codec key's id; `keyturn
doctor` compares the ids the polling workers report with its own."""


def identity(codec_key: str | None) -> str:
    """The SDK's default identity (pid@host) and the codec key's id, or `codec:none`."""
    named = key_id(parse_key(codec_key)) if codec_key else "none"
    return f"{os.getpid()}@{socket.gethostname()}{CODEC_MARK}{named}"


def _connect_error(settings: Settings, exc: RuntimeError) -> str:
    auth = settings.temporal_auth
    if not auth.tls:
        return (
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); "
            "start the local stack with `keyturn dev up` and `source .keyturn/dev.env`, "
            f"or set KEYTURN_TEMPORAL_ADDRESS (and {TLS_ENV}=true if the server requires TLS)"
        )
    text = str(exc)
    hint = next((hint for markers, hint in _TLS_HINTS if any(m in text for m in markers)),
                _TLS_CHECKLIST)
    return (f"TLS connection to Temporal at {settings.temporal_address} failed ({exc}): {hint}; "
            f"in use: {auth.describe()}")


def tls_config(auth: TemporalAuth) -> TLSConfig | bool:
    """The SDK's TLS setting: False for plaintext, else the CA, server name and client pair."""
    if not auth.tls:
        return False
    cert, key = _client_pair(auth)
    return TLSConfig(
        server_root_ca_cert=_certificates(CA_ENV, auth.ca) if auth.ca else None,
        domain=auth.server_name,
        client_cert=cert,
        client_private_key=key,
    )


def read_api_key(auth: TemporalAuth) -> str | None:
    """The API key in `auth.api_key_file` (surrounding whitespace dropped), or None."""
    if auth.api_key_file is None:
        return None
    key = _read(API_KEY_FILE_ENV, auth.api_key_file).decode("utf-8", "replace").strip()
    if not key:
        raise ConfigError(f"{API_KEY_FILE_ENV}: {auth.api_key_file} is empty; put the Temporal "
                          "API key in it")
    if not _API_KEY.fullmatch(key):
        raise ConfigError(f"{API_KEY_FILE_ENV}: {auth.api_key_file} does not hold just an API "
                          "key (it has spaces, several lines or non-ASCII characters); put only "
                          "the key in it")
    return key


def _client_pair(auth: TemporalAuth) -> tuple[bytes | None, bytes | None]:
    """The client certificate and key for mTLS, checked to belong together; (None, None) if unset."""
    if auth.cert is None or auth.key is None:
        return None, None
    cert_pem = _certificates(CERT_ENV, auth.cert)
    key_pem = _read(KEY_ENV, auth.key)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:  # the key is encrypted
        raise ConfigError(f"{KEY_ENV}: {auth.key} is encrypted; Temporal's client needs it "
                          "unencrypted (e.g. `openssl pkey -in KEY -out KEY.plain`), readable "
                          "only by keyturn") from None
    except (ValueError, UnsupportedAlgorithm):  # the message could quote the file
        raise ConfigError(f"{KEY_ENV}: {auth.key} holds no PEM private key (a file starting "
                          "'-----BEGIN PRIVATE KEY-----'); set it to the client certificate's key"
                          ) from None
    leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    if leaf.public_key() != key.public_key():
        raise ConfigError(f"{KEY_ENV}: {auth.key} is not the key of the certificate in {CERT_ENV} "
                          f"({auth.cert}); set both to the same client certificate's files")
    return cert_pem, key_pem


def _certificates(variable: str, path: Path) -> bytes:
    """A PEM file of one or more certificates, checked to parse."""
    data = _read(variable, path)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{variable}: {path} holds no PEM certificate (a file starting "
                          "'-----BEGIN CERTIFICATE-----'); convert a DER file with "
                          "`openssl x509 -inform der -in FILE -out FILE.pem`") from None
    return data


def _read(variable: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc.strerror or exc}); set "
                          f"{variable} to a file keyturn can read") from None
