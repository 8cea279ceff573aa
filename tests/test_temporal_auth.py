"""TLS, mTLS and API key settings: `Settings.from_env` rejects each malformed or contradictory
combination with a ConfigError naming the variable, and the files are checked (readable, PEM,
matching, a one-line key) when connecting, without ever quoting a key."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from fakes.tls_certs import Issued, TestCa
from typer.testing import CliRunner

from keyturn.cli import app as keyturn_app
from keyturn.config import ConfigError, Settings
from keyturn.operations.connect import read_api_key, tls_config
from keyturn.temporal_auth import (
    API_KEY_ENV,
    API_KEY_FILE_ENV,
    CA_ENV,
    CERT_ENV,
    KEY_ENV,
    SERVER_NAME_ENV,
    TLS_ENV,
    TemporalAuth,
)

INCIDENT_RUNBOOK = Path(__file__).resolve().parents[1] / "runbooks" / "incident.yaml"
VARIABLES = (TLS_ENV, CA_ENV, CERT_ENV, KEY_ENV, SERVER_NAME_ENV, API_KEY_FILE_ENV, API_KEY_ENV)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    """Set these variables (and none of the other TLS ones) and read the settings."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def settings(**values: str | Path) -> Settings:
        for name, value in values.items():
            monkeypatch.setenv(name, str(value))
        return Settings.from_env()

    return settings


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def client_cert(ca: TestCa) -> Issued:
    return ca.client("keyturn-worker")


def refusal(settings_or_call) -> str:
    with pytest.raises(ConfigError) as caught:
        settings_or_call()
    return str(caught.value)


# -- Settings.from_env ------------------------------------------------------------------


def test_nothing_set_is_plaintext_without_a_key(env) -> None:
    auth = env().temporal_auth
    assert auth == TemporalAuth()
    assert not auth.tls and auth.describe() == "plaintext (no TLS)"
    assert tls_config(auth) is False and read_api_key(auth) is None


@pytest.mark.parametrize("value, tls", [("true", True), ("1", True), ("YES", True), ("on", True),
                                        ("false", False), ("0", False), ("no", False), ("", False)])
def test_the_tls_flag_reads_booleans(env, value: str, tls: bool) -> None:
    assert env(KEYTURN_TEMPORAL_TLS=value).temporal_auth.tls is tls


def test_a_tls_flag_that_is_no_boolean_is_refused(env) -> None:
    said = refusal(lambda: env(KEYTURN_TEMPORAL_TLS="maybe"))
    assert TLS_ENV in said and "'maybe'" in said and "true or false" in said


@pytest.mark.parametrize("name", [CA_ENV, SERVER_NAME_ENV, API_KEY_FILE_ENV])
def test_each_tls_setting_implies_tls(env, name: str) -> None:
    value = "localhost" if name == SERVER_NAME_ENV else "/etc/x.pem"
    auth = env(**{name: value}).temporal_auth
    assert auth.tls and value in auth.describe()


def test_a_client_pair_implies_tls(env) -> None:
    auth = env(KEYTURN_TEMPORAL_TLS_CERT="/c.pem", KEYTURN_TEMPORAL_TLS_KEY="/k.pem").temporal_auth
    assert auth.tls and (auth.cert, auth.key) == (Path("/c.pem"), Path("/k.pem"))
    assert "client certificate /c.pem" in auth.describe()


@pytest.mark.parametrize("have, missing", [(CERT_ENV, KEY_ENV), (KEY_ENV, CERT_ENV)])
def test_half_a_client_pair_is_refused(env, have: str, missing: str) -> None:
    said = refusal(lambda: env(**{have: "/some.pem"}))
    assert f"{have} is set but {missing} is not" in said and "both, or neither" in said


@pytest.mark.parametrize("name", [CA_ENV, API_KEY_FILE_ENV, SERVER_NAME_ENV])
def test_tls_off_with_a_tls_setting_is_refused(env, name: str) -> None:
    said = refusal(lambda: env(KEYTURN_TEMPORAL_TLS="false", **{name: "/x"}))
    assert f"{TLS_ENV}=false" in said and name in said and f"{TLS_ENV}=true" in said


def test_an_api_key_in_the_environment_is_refused_without_quoting_it(env) -> None:
    key = secrets.token_hex(20)
    said = refusal(lambda: env(KEYTURN_TEMPORAL_API_KEY=key))
    assert API_KEY_FILE_ENV in said and key not in said


def test_paths_expand_the_home_directory(env, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert env(KEYTURN_TEMPORAL_TLS_CA="~/ca.pem").temporal_auth.ca == tmp_path / "ca.pem"


def test_settings_hold_paths_only(env, tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(key := secrets.token_urlsafe(32))
    settings = env(KEYTURN_TEMPORAL_API_KEY_FILE=key_file)
    assert key not in repr(settings) and str(key_file) in repr(settings)
    assert settings.temporal_auth.describe() == f"TLS with the system's root CAs, API key from {key_file}"


@pytest.mark.parametrize("command", [["status"], ["plan", str(INCIDENT_RUNBOOK)]])
def test_the_cli_reports_a_bad_variable_as_a_usage_error(env, command: list[str]) -> None:
    result = CliRunner().invoke(keyturn_app, command, env={CERT_ENV: "/c.pem", "KEYTURN_API_URL": ""})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit | None)  # said, not a traceback
    assert f"{CERT_ENV} is set but {KEY_ENV} is not" in " ".join(result.stderr.split())


# -- the files, read when connecting -----------------------------------------------------


def test_a_full_tls_setup_loads(env, ca: TestCa, client_cert: Issued, tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("  tc-key.abc/123=\n")  # surrounding whitespace (an editor's newline) goes
    auth = env(KEYTURN_TEMPORAL_TLS_CA=ca.ca_pem, KEYTURN_TEMPORAL_TLS_CERT=client_cert.cert,
               KEYTURN_TEMPORAL_TLS_KEY=client_cert.key, KEYTURN_TEMPORAL_TLS_SERVER_NAME="localhost",
               KEYTURN_TEMPORAL_API_KEY_FILE=key_file).temporal_auth
    tls = tls_config(auth)
    assert tls.server_root_ca_cert == ca.ca_pem.read_bytes()
    assert tls.client_cert == client_cert.cert.read_bytes()
    assert tls.client_private_key == client_cert.key.read_bytes()
    assert tls.domain == "localhost"
    assert read_api_key(auth) == "tc-key.abc/123="


def test_tls_without_a_ca_uses_the_system_roots(env) -> None:
    tls = tls_config(env(KEYTURN_TEMPORAL_TLS="true").temporal_auth)
    assert tls.server_root_ca_cert is None and tls.client_cert is None


@pytest.mark.parametrize("name", [CA_ENV, CERT_ENV, KEY_ENV])
def test_a_missing_file_is_named(env, ca: TestCa, client_cert: Issued, tmp_path: Path,
                                 name: str) -> None:
    files = {CA_ENV: ca.ca_pem, CERT_ENV: client_cert.cert, KEY_ENV: client_cert.key,
             name: tmp_path / "nowhere.pem"}
    said = refusal(lambda: tls_config(env(**files).temporal_auth))
    assert said.startswith(f"{name}: cannot read {tmp_path / 'nowhere.pem'}")
    assert "No such file" in said


def test_an_unreadable_file_is_named(env, tmp_path: Path) -> None:
    said = refusal(lambda: tls_config(env(KEYTURN_TEMPORAL_TLS_CA=tmp_path).temporal_auth))
    assert said.startswith(f"{CA_ENV}: cannot read {tmp_path}") and "Is a directory" in said


@pytest.mark.parametrize("name", [CA_ENV, CERT_ENV])
def test_a_certificate_file_that_is_not_pem_is_refused(env, ca: TestCa, client_cert: Issued,
                                                       tmp_path: Path, name: str) -> None:
    der = tmp_path / "cert.der"
    der.write_bytes(b"0\x82\x01\x00not pem")
    files = {CA_ENV: ca.ca_pem, CERT_ENV: client_cert.cert, KEY_ENV: client_cert.key, name: der}
    said = refusal(lambda: tls_config(env(**files).temporal_auth))
    assert said.startswith(f"{name}: {der} holds no PEM certificate") and "openssl x509" in said


def test_a_key_file_that_is_not_pem_is_refused_without_quoting_it(
        env, client_cert: Issued, tmp_path: Path) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text(body := f"-----BEGIN PRIVATE KEY-----\n{secrets.token_hex(24)}\n")
    said = refusal(lambda: tls_config(env(KEYTURN_TEMPORAL_TLS_CERT=client_cert.cert,
                                          KEYTURN_TEMPORAL_TLS_KEY=bad).temporal_auth))
    assert said.startswith(f"{KEY_ENV}: {bad} holds no PEM private key")
    assert body.splitlines()[1] not in said


def test_an_encrypted_key_is_refused(env, client_cert: Issued, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(client_cert.key.read_bytes(), password=None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"pw")))
    said = refusal(lambda: tls_config(env(KEYTURN_TEMPORAL_TLS_CERT=client_cert.cert,
                                          KEYTURN_TEMPORAL_TLS_KEY=locked).temporal_auth))
    assert said.startswith(f"{KEY_ENV}: {locked} is encrypted") and "openssl pkey" in said


def test_a_key_of_another_certificate_is_refused(env, ca: TestCa, client_cert: Issued) -> None:
    other = ca.client("someone-else")
    said = refusal(lambda: tls_config(env(KEYTURN_TEMPORAL_TLS_CERT=client_cert.cert,
                                          KEYTURN_TEMPORAL_TLS_KEY=other.key).temporal_auth))
    assert f"{KEY_ENV}: {other.key} is not the key of the certificate in {CERT_ENV}" in said
    assert all(line not in said for line in other.key.read_text().splitlines()[1:-1])


def test_an_empty_api_key_file_is_refused(env, tmp_path: Path) -> None:
    empty = tmp_path / "api-key"
    empty.write_text("\n")
    said = refusal(lambda: read_api_key(env(KEYTURN_TEMPORAL_API_KEY_FILE=empty).temporal_auth))
    assert said == f"{API_KEY_FILE_ENV}: {empty} is empty; put the Temporal API key in it"


@pytest.mark.parametrize("content", ["two keys", "line one\nline two", "clé"])
def test_an_api_key_file_with_more_than_a_key_is_refused_without_quoting_it(
        env, tmp_path: Path, content: str) -> None:
    path = tmp_path / "api-key"
    path.write_text(content)
    said = refusal(lambda: read_api_key(env(KEYTURN_TEMPORAL_API_KEY_FILE=path).temporal_auth))
    assert said.startswith(f"{API_KEY_FILE_ENV}: {path} does not hold just an API key")
    assert content not in said


def test_a_missing_api_key_file_is_named(env, tmp_path: Path) -> None:
    said = refusal(lambda: read_api_key(
        env(KEYTURN_TEMPORAL_API_KEY_FILE=tmp_path / "gone").temporal_auth))
    assert said.startswith(f"{API_KEY_FILE_ENV}: cannot read {tmp_path / 'gone'}")
