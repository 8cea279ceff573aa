"""A tiny local webhook receiver for notification tests: records every POST, answers a status.

    with receiver({"/down": 500}) as hooks:
        url = hooks.url("/ok")      # http://127.0.0.1:<free port>/ok, answers 200
        ...
        hooks.bodies("/ok")         # the JSON bodies posted to /ok, in arrival order
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Receiver:
    port: int
    statuses: Mapping[str, int]
    posts: list[tuple[str, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[dict]:
        with self.lock:
            return [body for p, body in self.posts if p == path]


@contextlib.contextmanager
def receiver(statuses: Mapping[str, int] | None = None) -> Iterator[Receiver]:
    """Serve on a free loopback port in a thread; paths not in `statuses` answer 200."""
    state: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"null")
            with state.lock:
                state.posts.append((self.path, body))
            self.send_response(state.statuses.get(self.path, 200))
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Receiver(port=server.server_address[1], statuses=dict(statuses or {}))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
