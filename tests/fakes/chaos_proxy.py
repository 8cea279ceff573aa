"""A loopback HTTP reverse proxy that makes a share of requests fail at random, for drills.

In front of moto, OpenBao, Verdaccio or the GitHub fake, `ChaosProxy` forwards requests
like `FaultProxy` but, at `rate`, answers one of the faults a real service or network
gives (in the AWS query protocol's shape with `aws=True`, else JSON): HTTP 500, 503, 429 with `Retry-After`, a connection reset with no answer, or a
stall (`stall` seconds, then forwarded). The choices come from a seeded random generator,
so a drill that fails can be replayed. `deny(*parts)` answers 403 (the service's
AccessDenied shape) to every request whose path and body contain all `parts`: a
permanent error on one credential.
"""

from __future__ import annotations

import io
import random
import socket
import struct
import threading
import time
from collections import Counter

from fakes.fault_proxy import FaultProxy
from fakes.http_server import LoopbackRequestHandler

KINDS = ("500", "503", "429", "reset", "stall")
DENIED = (b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>"
          b"denied by the drill</Message></Error><RequestId>drill</RequestId></ErrorResponse>")
JSON_BODIES = {  # Vault's and npm's error shape
    500: b'{"errors": ["internal error (drill)"]}',
    503: b'{"errors": ["service unavailable (drill)"]}',
    429: b'{"errors": ["rate limited (drill)"]}',
}
_AWS = ("<ErrorResponse><Error><Type>{}</Type><Code>{}</Code><Message>drill</Message></Error>"
        "<RequestId>drill</RequestId></ErrorResponse>")
AWS_BODIES = {  # the AWS query protocol's error shape
    500: _AWS.format("Receiver", "InternalFailure").encode(),
    503: _AWS.format("Receiver", "ServiceUnavailable").encode(),
    429: _AWS.format("Sender", "Throttling").encode(),
}


class ChaosProxy(FaultProxy):
    """`FaultProxy` to `upstream` with random faults at `rate` (0 until `chaos` is set)."""

    def __init__(self, upstream: str, *, seed: int = 0, stall: float = 5.0,
                 aws: bool = False) -> None:
        super().__init__(upstream)
        self._bodies, self._type = (AWS_BODIES, "text/xml") if aws else \
            (JSON_BODIES, "application/json")
        self.rate = 0.0
        self.kinds: tuple[str, ...] = KINDS
        self.stall = stall
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._denied: list[tuple[bytes, ...]] = []
        self.injected: Counter[str] = Counter()

    def chaos(self, rate: float, kinds: tuple[str, ...] = KINDS) -> ChaosProxy:
        self.rate, self.kinds = rate, kinds
        return self

    def deny(self, *parts: str) -> None:
        self._denied.append(tuple(p.encode() for p in parts))

    def _draw(self) -> str | None:
        with self._rng_lock:
            if self._rng.random() >= self.rate:
                return None
            return self._rng.choice(self.kinds)

    def _handle(self, request: LoopbackRequestHandler) -> None:
        body = request.read_body()
        seen = request.path.encode() + b" " + body
        if any(all(p in seen for p in parts) for parts in self._denied):
            self.injected["403"] += 1
            request.respond(403, [("Content-Type", "text/xml")], DENIED)
            return
        kind = self._draw()
        if kind is not None:
            self.injected[kind] += 1
        if kind == "reset":
            request.close_connection = True
            request.wfile = io.BytesIO()  # nothing more goes out on this connection
            linger = struct.pack("ii", 1, 0)  # close with linger 0: the client gets a RST
            request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            request.connection.close()
            return
        if kind == "stall":
            time.sleep(self.stall)
        elif kind is not None:
            status = int(kind)
            headers = [("Content-Type", self._type)]
            if status == 429:
                headers.append(("Retry-After", "1"))
            request.respond(status, headers, self._bodies[status])
            return
        self._forward(request, body)
