"""`keyturn serve` over the network: a plain-HTTP public bind is refused unless
--insecure-http says so (loudly, logged); --tls-cert/--tls-key serve HTTPS (and the session
cookie is Secure); X-Forwarded-Proto is believed only from a --trusted-proxy."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from api_support import free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from keyturn.api.transport import Listen, TransportRefused, is_loopback
from keyturn.cli import app as cli


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "api.example.com"])
def test_a_plain_http_public_bind_is_refused(host):
    result = CliRunner().invoke(cli, ["serve", "--host", host, "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "--tls-cert" in result.output and "--insecure-http" in result.output


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.0.1", True),
                                                ("::1", True), ("localhost", True),
                                                ("0.0.0.0", False), ("10.0.0.1", False)])
def test_loopback_is_told_from_the_rest(host, loopback):
    assert is_loopback(host) is loopback


def test_tls_options_go_together_and_reach_uvicorn(tmp_path):
    cert, key = _self_signed(tmp_path)
    with pytest.raises(TransportRefused, match="go together"):
        Listen("0.0.0.0", 1, tls_cert=cert).check()
    listen = Listen("0.0.0.0", 8443, cert, key, trusted_proxies=("10.0.0.5",))
    listen.check()
    assert listen.uvicorn() == {"host": "0.0.0.0", "port": 8443, "proxy_headers": True,
                                "forwarded_allow_ips": "10.0.0.5",
                                "ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    assert Listen("127.0.0.1", 1).uvicorn()["proxy_headers"] is False


def test_insecure_http_is_allowed_only_by_name_and_logged(caplog):
    listen = Listen("0.0.0.0", 1, insecure_http=True)
    listen.check()
    with caplog.at_level("WARNING", logger="keyturn.api"):
        assert "plain HTTP on 0.0.0.0" in listen.warn_if_insecure()
    assert "--insecure-http" in caplog.text
    assert Listen("127.0.0.1", 1).warn_if_insecure() is None


def _self_signed(where: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@contextmanager
def _serve(tmp_path: Path, tokens_file: Path, *args: str,
           verify: ssl.SSLContext | bool = True) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    env = {**os.environ, "KEYTURN_API_TOKENS": str(tokens_file),
           "KEYTURN_TEMPORAL_ADDRESS": "127.0.0.1:1"}
    proc = subprocess.Popen([sys.executable, "-m", "keyturn", "serve", "--port", str(port), *args],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    scheme = "https" if "--tls-cert" in args else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", verify=verify).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)


def _login_cookie(url: str, token: str, verify: ssl.SSLContext | bool = True,
                  headers: dict[str, str] | None = None) -> str:
    response = httpx.post(f"{url}/ui/login", data={"token": token, "next": "/ui"},
                          verify=verify, headers=headers or {})
    assert response.status_code == 303, response.text
    return response.headers["set-cookie"].lower()


def test_serve_with_tls_answers_https_and_sets_a_secure_cookie(tmp_path, api_tokens,
                                                                 api_tokens_file):
    cert, key = _self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    with _serve(tmp_path, api_tokens_file, "--tls-cert", str(cert), "--tls-key", str(key),
                verify=trust) as (url, _):
        who = httpx.get(f"{url}/v1/whoami", verify=trust,
                        headers={"Authorization": f"Bearer {api_tokens['carol']}"})
        assert who.json()["principal"] == "carol"
        assert "; secure" in _login_cookie(url, api_tokens["carol"], trust)
        with pytest.raises(httpx.TransportError):
            httpx.get(url.replace("https:", "http:") + "/healthz")


def test_forwarded_proto_is_believed_only_from_a_trusted_proxy(tmp_path, api_tokens,
                                                                api_tokens_file):
    forwarded = {"X-Forwarded-Proto": "https"}
    with _serve(tmp_path, api_tokens_file) as (url, _):
        assert "; secure" not in _login_cookie(url, api_tokens["carol"], headers=forwarded)
    with _serve(tmp_path, api_tokens_file, "--trusted-proxy", "127.0.0.1") as (url, _):
        assert "; secure" in _login_cookie(url, api_tokens["carol"], headers=forwarded)
