"""Vault clients ride out a flaky network within one call: a read answered 503 (or 429 with
Retry-After) is asked again, a write is not (the step's own retry is the safe one)."""

from __future__ import annotations

import http.server
import json
import threading
from typing import ClassVar

import pytest

from keyturn.providers.vault_pki_cert import default_client_factory


class FlakyVault(http.server.BaseHTTPRequestHandler):
    """Answers the first request of each method 503, then 200 with a small JSON body."""

    seen: ClassVar[dict[str, int]] = {}

    def _answer(self) -> None:
        self.seen[self.command] = self.seen.get(self.command, 0) + 1
        if self.seen[self.command] == 1:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        body = json.dumps({"data": {"keys": ["a"]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def flaky():
    FlakyVault.seen = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyVault)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_read_answered_503_is_asked_again_within_the_call(flaky) -> None:
    client = default_client_factory(flaky, "token", None)
    assert client.read("pki/certs")["data"]["keys"] == ["a"]
    assert FlakyVault.seen["GET"] == 2


def test_a_write_answered_503_is_not_repeated_by_the_session(flaky) -> None:
    client = default_client_factory(flaky, "token", None)
    with pytest.raises(Exception):  # noqa: B017 - hvac's VaultDown; the step retries it
        client.write_data("pki/issue/role", data={"common_name": "x"})
    assert FlakyVault.seen["POST"] == 1
