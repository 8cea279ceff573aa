"""Identity and roles: the token file, `keyturn api token add`, 401 on every route without
a token, 403 for every role a route does not allow, `keyturn serve` over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from api_support import PRINCIPALS, free_port
from typer.testing import CliRunner

from keyturn.api.auth import TokenFile, TokenFileError, add_token, hash_token
from keyturn.cli import app as cli

ROUTES = [
    ("GET", "/v1/whoami", None),
    ("POST", "/v1/runs", {"runbook": "demo"}),
    ("POST", "/v1/preflight", {"runbook": "demo"}),
    ("GET", "/v1/runs", None),
    ("GET", "/v1/runs/r1", None),
    ("POST", "/v1/runs/r1/gates/t1/approve", {"reason": "ok"}),
    ("POST", "/v1/runs/r1/gates/t1/reject", {"reason": "no"}),
    ("POST", "/v1/runs/r1/cancel", None),
    ("POST", "/v1/runs/r1/credentials/c1/supply", {"value": "s3cret-never-echoed"}),
    ("GET", "/v1/runs/r1/audit", None),
    ("GET", "/v1/audit/verify", None),
    ("POST", "/codec/decode", {"payloads": []}),
    ("POST", "/codec/encode", {"payloads": []}),
]
ALLOWED = {  # route -> principals whose roles allow it (the rest get 403)
    "POST /v1/runs": {"alice", "erin"},
    "POST /v1/preflight": {"alice", "erin"},
    "GET /v1/runs": set(PRINCIPALS),
    "GET /v1/runs/r1": set(PRINCIPALS),
    "POST /v1/runs/r1/gates/t1/approve": {"bob", "carol", "erin"},
    "POST /v1/runs/r1/gates/t1/reject": {"bob", "carol", "erin"},
    "POST /v1/runs/r1/cancel": {"alice", "erin"},
    "POST /v1/runs/r1/credentials/c1/supply": {"alice", "erin"},
    "GET /v1/runs/r1/audit": {"dave"},
    "GET /v1/audit/verify": {"dave"},
    "POST /codec/decode": {"dave"},
    "POST /codec/encode": {"dave"},
}


def _template(path: str) -> str:
    return (path.replace("/r1", "/{run_id}").replace("/t1/", "/{target}/")
            .replace("/c1/", "/{credential_id}/"))


async def test_the_route_table_covers_every_route_of_the_api(api_stack):
    spec = (await api_stack.http.get("/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == {(m, _template(p)) for m, p, _ in ROUTES} | {("GET", "/healthz")}


async def test_healthz_needs_no_token(api_stack):
    response = await api_stack.http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_every_route_refuses_a_request_without_a_token(api_stack, method, path, body):
    response = await api_stack.call(method, path, None, json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "s3cret" not in response.text


@pytest.mark.parametrize("header", ["Bearer kt_not-a-token", "Bearer ", "Basic YWxpY2U6eA==",
                                    "kt_no-scheme"])
async def test_an_unknown_or_malformed_token_is_unauthenticated(api_stack, header):
    response = await api_stack.http.get("/v1/runs", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


async def test_the_session_cookie_is_not_accepted_by_the_json_api(api_stack):
    api_stack.http.cookies.set("keyturn_session", api_stack.tokens["dave"])
    try:
        response = await api_stack.http.get("/v1/whoami")
    finally:
        api_stack.http.cookies.clear()
    assert response.status_code == 401


@pytest.mark.parametrize("name", sorted(PRINCIPALS))
async def test_whoami_names_the_principal_and_roles_of_the_token(api_stack, name):
    response = await api_stack.get("/v1/whoami", name)
    assert response.status_code == 200
    assert response.json() == {"principal": name, "roles": sorted(PRINCIPALS[name])}


@pytest.mark.parametrize(("method", "path", "body"), ROUTES[1:])
@pytest.mark.parametrize("name", sorted(PRINCIPALS))
async def test_every_role_is_held_to_its_routes(api_stack, method, path, body, name):
    response = await api_stack.call(method, path, name, json=body)
    if name in ALLOWED[f"{method} {path}"]:
        # past the role check: it succeeds (a list) or finds no such run, runbook or log
        assert response.status_code in (200, 404), response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
        assert "role" in response.json()["message"]
    assert "s3cret" not in response.text


def test_the_token_file_holds_hashes_only_and_is_private(api_tokens, api_tokens_file):
    text = api_tokens_file.read_text()
    for token in api_tokens.values():
        assert token.startswith("kt_") and len(token) > 40
        assert token not in text
        assert hash_token(token) in text
    assert api_tokens_file.stat().st_mode & 0o777 == 0o600
    data = yaml.safe_load(text)
    assert data["principals"]["erin"]["roles"] == ["approver", "operator"]


def test_a_token_maps_to_its_principal_and_a_new_token_replaces_the_old(api_tokens,
                                                                         api_tokens_file):
    tokens = TokenFile(api_tokens_file)
    assert tokens.lookup(api_tokens["bob"]).name == "bob"
    assert tokens.lookup("kt_wrong") is None
    new = add_token(api_tokens_file, "bob", ["approver", "auditor"])
    bob = tokens.lookup(new)
    assert bob.name == "bob" and bob.roles == {"approver", "auditor"}
    assert tokens.lookup(api_tokens["bob"]) is None  # re-read: the old token is revoked


@pytest.mark.parametrize(("name", "roles"), [("bob", ["root"]), ("bob", []), ("../x", ["auditor"]),
                                             ("", ["auditor"])])
def test_add_token_refuses_unknown_roles_and_bad_names(tmp_path, name, roles):
    with pytest.raises(TokenFileError):
        add_token(tmp_path / "tokens.yaml", name, roles)
    assert not (tmp_path / "tokens.yaml").exists()


def test_a_malformed_token_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("principals:\n  bob: {roles: [approver], token_sha256: nothex}\n")
    with pytest.raises(TokenFileError, match="tokens.yaml"):
        TokenFile(path).lookup("kt_x")
    with pytest.raises(TokenFileError):
        add_token(path, "carol", ["approver"])


def test_cli_token_add_prints_the_token_once_and_stores_its_hash(tmp_path):
    path = tmp_path / "tokens.yaml"
    runner = CliRunner()
    result = runner.invoke(cli, ["api", "token", "add", "frank", "--role", "operator",
                                 "--role", "auditor", "--tokens", str(path), "-o", "json"])
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["principal"] == "frank" and printed["roles"] == ["auditor", "operator"]
    assert printed["token"] not in path.read_text()
    assert TokenFile(path).lookup(printed["token"]).roles == {"auditor", "operator"}

    result = runner.invoke(cli, ["api", "token", "add", "frank", "--role", "admin",
                                 "--tokens", str(path)])
    assert result.exit_code == 2
    assert "operator, approver, auditor" in result.output


def test_cli_token_add_uses_the_file_named_by_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "env-tokens.yaml"
    monkeypatch.setenv("KEYTURN_API_TOKENS", str(path))
    result = CliRunner().invoke(cli, ["api", "token", "add", "gina", "--role", "approver"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert TokenFile(path).lookup(token).name == "gina"


def test_keyturn_serve_answers_over_http_with_the_token_file_from_the_environment(
        tmp_path: Path, api_tokens, api_tokens_file):
    port = free_port()
    env = {**os.environ, "KEYTURN_API_TOKENS": str(api_tokens_file),
           "KEYTURN_TEMPORAL_ADDRESS": "127.0.0.1:1"}  # started without Temporal
    proc = subprocess.Popen([sys.executable, "-m", "keyturn", "serve", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
            time.sleep(0.1)
        who = httpx.get(f"{url}/v1/whoami",
                        headers={"Authorization": f"Bearer {api_tokens['carol']}"})
        assert who.json() == {"principal": "carol", "roles": ["approver"]}
        assert httpx.get(f"{url}/v1/runs").status_code == 401
        runs = httpx.get(f"{url}/v1/runs", headers={"Authorization": f"Bearer {api_tokens['dave']}"})
        assert runs.status_code == 503 and runs.json()["code"] == "temporal_unavailable"
        spec = httpx.get(f"{url}/openapi.json").json()
        assert "/v1/runs/{run_id}/gates/{target}/approve" in spec["paths"]
    finally:
        proc.terminate()
        proc.wait(10)
