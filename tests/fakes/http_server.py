"""The loopback HTTP server the test fakes share: socket, serving thread and response writing.

A fake subclasses `LoopbackHttpServer`, names the HTTP methods it answers in
`methods` and implements `_handle(request)`, which gets every such request. The
request is a `LoopbackRequestHandler` (the standard library's handler, quiet and
HTTP/1.1): `read_body()` reads the request body and `respond(status, headers,
body)` writes the whole answer with its Content-Length. The server listens on
127.0.0.1 on a free port (`url`), serves each connection in a daemon thread and
runs from `start()` to `stop()`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Self


class LoopbackRequestHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 request to a fake, with helpers to read its body and write the answer."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write, and nothing waits for an ACK (Nagle): without
    # these a keep-alive client can stall ~40 ms on every request.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output (and any secret in a URL) out of stderr

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def respond(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        """Send `status`, `headers`, a Content-Length and `body` (the caller sends no length)."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LoopbackHttpServer:
    """A threading HTTP server on 127.0.0.1 (free port) that sends `methods` to `_handle`."""

    methods: ClassVar[tuple[str, ...]] = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def __init__(self) -> None:
        def dispatch(request: LoopbackRequestHandler) -> None:
            self._handle(request)

        handler = type(
            f"{type(self).__name__}Handler",
            (LoopbackRequestHandler,),
            {f"do_{method}": dispatch for method in self.methods},
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, request: LoopbackRequestHandler) -> None:
        """Answer one request (any method in `methods`); runs in the connection's thread."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
