"""A loopback HTTP reverse proxy that can make every request fail, for fault-injection tests.

Real servers (moto, OpenBao, Verdaccio) cannot be told to answer 403 or 503 on
demand, so a harness points the provider at this proxy instead: requests are
forwarded unchanged until `failing(...)` is entered, and then answered with the
given status and body without reaching the server.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from fakes.http_server import LoopbackHttpServer, LoopbackRequestHandler

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
)


@dataclass(frozen=True)
class Fault:
    status: int
    body: bytes
    content_type: str


class FaultProxy(LoopbackHttpServer):
    """Forwards to `upstream` (http://host:port); `.url` is the proxy's own address."""

    methods = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "LIST")

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._fault: Fault | None = None
        self.failed_requests = 0
        super().__init__()

    def _handle(self, request: LoopbackRequestHandler) -> None:
        body = request.read_body()
        fault = self._fault
        if fault is not None:
            self.failed_requests += 1
            request.respond(fault.status, [("Content-Type", fault.content_type)], fault.body)
            return
        self._forward(request, body)

    def _forward(self, request: LoopbackRequestHandler, body: bytes) -> None:
        """Send the request to the upstream server and its answer back, unchanged."""
        conn = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(request.command, request.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            kept = [
                (k, v) for k, v in response.getheaders()
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
            ]
            request.respond(response.status, kept, data)
        finally:
            conn.close()

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
