"""Page sessions: the session cookie is a server-side session id, not the token; a cookie
reused after logout, revocation or expiry opens nothing; sessions end when idle or old;
the flash cookie cannot be forged; failed logins are logged and limited per client."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import yaml
from typer.testing import CliRunner

from keyturn.api.sessions import Sessions
from keyturn.api.throttle import LoginThrottle
from keyturn.cli import app as cli


async def _log_in(stack, name: str) -> str:
    response = await stack.http.post("/ui/login", data={"token": stack.tokens[name],
                                                        "next": "/ui"})
    assert response.status_code == 303, response.text
    return response.cookies["keyturn_session"]


async def _opens(stack, session_id: str) -> tuple[int, int, int]:
    """(/ui with the cookie, /v1/whoami with the cookie, /v1/whoami with it as a bearer)."""
    stack.http.cookies.clear()
    cookie = {"Cookie": f"keyturn_session={session_id}"}
    page = await stack.http.get("/ui/login", headers=cookie)  # a GET any viewer may make
    ui = await stack.http.get("/ui/runs/nope", headers=cookie)
    assert page.status_code == 200
    who_cookie = await stack.http.get("/v1/whoami", headers=cookie)
    who_bearer = await stack.http.get("/v1/whoami",
                                      headers={"Authorization": f"Bearer {session_id}"})
    return ui.status_code, who_cookie.status_code, who_bearer.status_code


async def test_the_cookie_is_a_session_id_not_the_token(api_stack):
    session_id = await _log_in(api_stack, "dave")
    assert session_id != api_stack.tokens["dave"]
    assert api_stack.tokens["dave"] not in session_id and len(session_id) >= 40
    status, *_ = await _opens(api_stack, session_id)
    assert status == 404  # logged in: the page looked for the run


async def test_a_cookie_reused_after_logout_opens_nothing(api_stack):
    session_id = await _log_in(api_stack, "dave")
    page = await api_stack.http.get("/ui")
    csrf = page.text.split('name="csrf_token" value="')[1][:64]
    out = await api_stack.http.post("/ui/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    ui, who_cookie, who_bearer = await _opens(api_stack, session_id)
    assert ui == 303 and who_cookie == 401 and who_bearer == 401


async def test_revoking_a_token_ends_its_sessions_at_once(api_stack):
    session_id = await _log_in(api_stack, "dave")
    result = CliRunner().invoke(cli, ["api", "token", "revoke", "dave",
                                      "--tokens", str(api_stack.settings.tokens)])
    assert result.exit_code == 0, result.output
    assert (await _opens(api_stack, session_id))[0] == 303
    assert (await api_stack.get("/v1/whoami", "dave")).status_code == 401


async def test_an_expired_token_is_refused_and_ends_its_sessions(api_stack):
    session_id = await _log_in(api_stack, "dave")
    path = api_stack.settings.tokens
    data = yaml.safe_load(path.read_text())
    data["principals"]["dave"]["expires"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    path.write_text(yaml.safe_dump(data))
    assert (await api_stack.get("/v1/whoami", "dave")).status_code == 401
    assert (await _opens(api_stack, session_id))[0] == 303
    assert (await api_stack.get("/v1/whoami", "carol")).status_code == 200


def test_sessions_end_after_their_idle_time_and_their_maximum_age():
    now = [0.0]
    sessions = Sessions(max_age=timedelta(hours=1), idle=timedelta(minutes=10),
                        clock=lambda: now[0])
    busy, idle = sessions.open("bob", "a" * 64), sessions.open("carol", "b" * 64)
    for _ in range(5):  # bob keeps using his session: each request restarts its idle time
        now[0] += 9 * 60
        assert sessions.get(busy).principal == "bob"
    assert sessions.get(idle) is None  # carol's went 45 minutes without a request
    now[0] = 3600.0
    assert sessions.get(busy) is None  # an hour after login, however busy
    assert sessions.get("not-a-session") is None and sessions.get("x" * 1000) is None
    sessions.end(busy)  # ending an ended session is harmless
    assert len(sessions) == 0


async def test_a_forged_flash_cookie_is_not_shown(api_stack):
    await _log_in(api_stack, "dave")
    forged = base64.urlsafe_b64encode(json.dumps(
        {"kind": "ok", "text": "Approved by security: go ahead"}).encode()).decode()
    for value in (forged, f"{forged}.{'0' * 64}"):
        api_stack.http.cookies.set("keyturn_flash", value, path="/ui")
        page = await api_stack.http.get("/ui/login")
        assert page.status_code == 200 and "go ahead" not in page.text
    api_stack.http.cookies.clear()


async def test_failed_logins_are_logged_and_limited_per_client(api_stack, caplog):
    caplog.set_level("WARNING", logger="keyturn.api")
    guesses = [f"kt_guess-{n}" for n in range(10)]
    for guess in guesses:
        response = await api_stack.http.post("/ui/login", data={"token": guess})
        assert response.status_code == 401
    blocked = await api_stack.http.post("/ui/login", data={"token": api_stack.tokens["dave"]})
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.text
    assert "set-cookie" not in blocked.headers
    failures = [r.getMessage() for r in caplog.records if "failed login" in r.getMessage()]
    assert len(failures) == 10 and all("127.0.0.1" in m for m in failures)
    assert not any(guess in caplog.text for guess in guesses)

    other = httpx.ASGITransport(app=api_stack.make_app(), client=("192.0.2.9", 4000))
    async with httpx.AsyncClient(transport=other, base_url="http://api") as http:
        assert (await http.post("/ui/login", data={"token": api_stack.tokens["dave"]})
                ).status_code == 303


def test_the_limit_lifts_as_failures_leave_the_window():
    now = [0.0]
    throttle = LoginThrottle(limit=3, window=60, clock=lambda: now[0])
    for at in (0.0, 10.0, 20.0):
        now[0] = at
        assert throttle.wait("c") == 0
        throttle.failed("c", "test")
    assert throttle.wait("c") == 40.0 and throttle.wait("d") == 0
    now[0] = 60.0
    assert throttle.wait("c") == 0


async def test_unknown_api_tokens_are_logged_and_limited_per_client(api_stack, caplog):
    caplog.set_level("WARNING", logger="keyturn.api")
    guesses = [f"kt_guess-{n}" for n in range(10)]
    for guess in guesses:
        response = await api_stack.http.get("/v1/runs", headers={"Authorization": f"Bearer {guess}"})
        assert response.status_code == 401
    blocked = await api_stack.get("/v1/whoami", "dave")
    assert blocked.status_code == 429 and blocked.json()["code"] == "too_many_failures"
    assert sum("failed login from 127.0.0.1" in r.getMessage() for r in caplog.records) == 10
    assert not any(guess in caplog.text for guess in guesses)
    assert (await api_stack.http.get("/healthz")).status_code == 200
