"""The API's trust boundaries as an attacker tries them: a large body sent without a token
is answered before a byte of it is read, no body over the limit is read at all, no
third-party script is served on the page's origin, and every response says nosniff."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from keyturn.api import create_app
from keyturn.api.context import DEFAULT_MAX_BODY

HUGE = 18 * 1024 * 1024


def _headers_only(url: str, method: str, path: str, headers: dict[str, str]) -> bytes:
    """Send a request's headers (declaring a HUGE body) but none of its body; return what
    the server answers. A server that waited for the body would time out here."""
    where = urlsplit(url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {where.netloc}",
             "Content-Type: application/json", f"Content-Length: {HUGE}",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode())
        answer = b""
        while not _complete(answer):
            chunk = sock.recv(65536)
            assert chunk, f"the server closed without answering: {answer!r}"
            answer += chunk
    return answer


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return bool(sep) and len(body) >= (int(length.group(1)) if length else 0)


async def test_an_unauthenticated_huge_body_is_refused_before_it_is_sent(live_api):
    answer = _headers_only(live_api.url, "POST", "/v1/runs", {})
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b"x-content-type-options: nosniff" in answer.lower()


async def test_a_huge_declared_body_is_413_before_it_is_read_even_with_a_token(live_api):
    token = live_api.stack.tokens["alice"]
    answer = _headers_only(live_api.url, "POST", "/v1/runs", {"Authorization": f"Bearer {token}"})
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"code": "body_too_large"' in answer


async def test_a_form_posted_to_the_page_without_a_session_is_not_read(live_api):
    answer = _headers_only(live_api.url, "POST", "/ui/runs/r1/gates/t1/approve", {})
    assert answer.startswith(b"HTTP/1.1 303 "), answer[:200]
    assert b"location: /ui/login" in answer.lower()


class Counted:
    """A streamed request body (no Content-Length) that counts the chunks read from it."""

    def __init__(self, chunks: int, size: int = 64 * 1024) -> None:
        self.chunks, self.size, self.read = chunks, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.read += 1
            yield b" " * self.size


async def test_no_byte_of_an_unauthenticated_stream_is_read(api_stack):
    body = Counted(HUGE // (64 * 1024))
    response = await api_stack.http.post("/v1/runs", content=body)
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    assert body.read == 0


async def test_a_streamed_body_over_the_limit_is_413_and_read_no_further(api_stack):
    body = Counted(HUGE // (64 * 1024))
    response = await api_stack.http.post("/v1/runs", content=body,
                                         headers=api_stack.auth("alice"))
    assert response.status_code == 413
    assert response.json() == {"code": "body_too_large", "message":
                               f"the request body is larger than {DEFAULT_MAX_BODY} bytes"}
    assert body.read == DEFAULT_MAX_BODY // (64 * 1024) + 1


async def test_the_limit_is_configurable_and_a_body_under_it_is_served(api_stack):
    from dataclasses import replace

    small = create_app(replace(api_stack.settings, max_body=100), client=api_stack.client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=small),
                                 base_url="http://api") as http:
        over = await http.post("/v1/preflight", json={"runbook": "x" * 100},
                               headers=api_stack.auth("alice"))
        assert over.status_code == 413
        under = await http.post("/v1/preflight", json={"runbook": "nope"},
                                headers=api_stack.auth("alice"))
        assert under.status_code == 404 and under.json()["code"] == "not_found"


@pytest.mark.parametrize("path", ["/v1/whoami", "/v1/runs", "/healthz", "/openapi.json"])
async def test_every_response_says_nosniff(api_stack, path):
    for who in (None, "dave"):
        response = await api_stack.get(path, who)
        assert response.headers["x-content-type-options"] == "nosniff"


SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc=[\"']?([^\"' >]+)", re.IGNORECASE)


async def test_no_page_on_the_origin_loads_a_third_party_script(api_stack):
    pages = ["/docs", "/redoc", "/ui/login", "/docs/oauth2-redirect"]
    served = []
    for path in pages:
        response = await api_stack.http.get(path)
        if response.status_code == 200:
            served.append(path)
            for src in SCRIPT_SRC.findall(response.text):
                assert not urlsplit(src).netloc, f"{path} loads {src}"
    assert served == ["/ui/login"]
    assert (await api_stack.http.get("/openapi.json")).status_code == 200


async def test_interactive_docs_are_an_explicit_option(api_stack):
    from dataclasses import replace

    app = create_app(replace(api_stack.settings, interactive_docs=True), client=api_stack.client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api") as http:
        assert (await http.get("/docs")).status_code == 200
        assert (await http.get("/redoc")).status_code == 200
