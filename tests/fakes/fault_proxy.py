"""A loopback HTTP reverse proxy that can make every request fail, for fault-injection tests.

Real servers (moto, OpenBao, Verdaccio) cannot be told to answer 403 or 503 on
demand, so a harness points the provider at this proxy instead: requests are
forwarded unchanged until `failing(...)` is entered, and then answered with the
given status and body without reaching the server. A `refuse` hook answers
chosen requests itself (e.g. what an emulator allows but the real service
refuses) and lets the rest through.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
)


@dataclass(frozen=True)
class Fault:
    status: int
    body: bytes
    content_type: str


Refuse = Callable[[dict[str, str], bytes], "Fault | None"]
"""refuse(request headers, request body) -> the answer to give instead of forwarding, or None."""


class FaultProxy:
    """Forwards to `upstream` (http://host:port); `.url` is the proxy's own address."""

    def __init__(self, upstream: str, refuse: Refuse | None = None) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._refuse = refuse
        self._fault: Fault | None = None
        self.failed_requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # headers and body in one write: no Nagle delay per request

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output (and any secret in a URL) out of stderr

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._fault
                if fault is None and proxy._refuse is not None:
                    fault = proxy._refuse(dict(self.headers.items()), body)
                if fault is not None:
                    proxy.failed_requests += 1
                    self._answer(fault.status, [("Content-Type", fault.content_type)], fault.body)
                    return
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    kept = [
                        (k, v) for k, v in response.getheaders()
                        if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
                    ]
                    self._answer(response.status, kept, data)
                finally:
                    conn.close()

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_LIST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @contextmanager
    def failing(
        self, status: int, body: bytes = b"{}", content_type: str = "application/json"
    ) -> Iterator[None]:
        """Answer every request with `status` and `body` while inside."""
        self._fault = Fault(status, body, content_type)
        try:
            yield
        finally:
            self._fault = None
