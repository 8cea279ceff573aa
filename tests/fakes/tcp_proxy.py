"""A loopback TCP proxy that can refuse new connections, for fault-injection tests.

Database servers cannot be told to drop connections on demand, so a harness
points the provider at this proxy: bytes are relayed unchanged until
`refusing()` is entered, and then every new connection is closed as soon as it
is accepted, which a database driver reports as a lost connection (transient);
`down()` also cuts the open ones, as a server restart or a network outage would.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TcpProxy:
    """Relays 127.0.0.1:`port` to `upstream_host`:`upstream_port`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._refusing = False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.refused = 0

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def stop(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for sock in self._open:
                sock.close()
            self._open.clear()

    @contextmanager
    def refusing(self) -> Iterator[None]:
        """Close every new connection at once while inside (open ones carry on)."""
        self._refusing = True
        try:
            yield
        finally:
            self._refusing = False

    @contextmanager
    def down(self) -> Iterator[None]:
        """While inside, the server is gone: open connections are cut and new ones closed
        at once (what clients see while a server restarts or the network is down)."""
        self._refusing = True
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        try:
            yield
        finally:
            self._refusing = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # stopped
            if self._refusing:
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                for sock in (source, sink):
                    if sock in self._open:
                        self._open.discard(sock)
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        sock.close()
