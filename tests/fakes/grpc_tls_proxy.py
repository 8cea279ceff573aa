"""A TLS front for the plaintext Temporal dev server: what a Temporal Cloud or a
self-hosted cluster with TLS, mTLS or API keys looks like to a client.

`GrpcTlsProxy` serves gRPC over TLS on a free loopback port and forwards every
unary call's raw bytes, with its metadata, to the dev server over an insecure
channel; the answer (or the error status with its details) comes back the same
way. With `client_ca` it requires a client certificate signed by that CA (mTLS);
with `api_key` it refuses calls whose `authorization` metadata is not
`Bearer <api_key>` with UNAUTHENTICATED, as Temporal Cloud does. Temporal's
WorkflowService is all unary calls, so streaming methods are not forwarded.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self

import grpc
from fakes.tls_certs import Issued

MAX_MESSAGE = 64 * 1024 * 1024
_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE)]
_WORKERS = 128  # every worker poller holds one thread for a long poll


def _forwarded(metadata: tuple[tuple[str, str | bytes], ...]) -> list[tuple[str, str | bytes]]:
    """Metadata the proxy passes on: everything but HTTP/2 pseudo-headers and the user agent."""
    return [(k, v) for k, v in metadata if not k.startswith(":") and k != "user-agent"]


class _Forward(grpc.GenericRpcHandler):
    """Answers every unary-unary method by forwarding it (after the API key check)."""

    def __init__(self, proxy: GrpcTlsProxy) -> None:
        self._proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            functools.partial(self._proxy.forward, handler_call_details.method)
        )


class GrpcTlsProxy:
    """TLS (optionally mTLS and API key) on 127.0.0.1:`port`, plaintext to `upstream`."""

    def __init__(self, upstream: str, server_cert: Issued, *, client_ca: Path | None = None,
                 api_key: str | None = None) -> None:
        self._upstream = grpc.insecure_channel(upstream, options=_OPTIONS)
        self._api_key = api_key
        self._server = grpc.server(ThreadPoolExecutor(max_workers=_WORKERS), options=_OPTIONS)
        self._server.add_generic_rpc_handlers((_Forward(self),))
        credentials = grpc.ssl_server_credentials(
            [(server_cert.key.read_bytes(), server_cert.cert.read_bytes())],
            root_certificates=client_ca.read_bytes() if client_ca else None,
            require_client_auth=client_ca is not None,
        )
        self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        self._lock = threading.Lock()
        self.methods: set[str] = set()  # every method forwarded
        self.refused = 0  # calls refused for a missing or wrong API key

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None).wait()
        self._upstream.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        """One call: check the API key, then relay it upstream and relay the outcome back."""
        self._authorize(context)
        with self._lock:
            self.methods.add(method)
        call = self._upstream.unary_unary(method).future(
            request,
            metadata=_forwarded(context.invocation_metadata()),
            timeout=context.time_remaining(),
        )
        context.add_callback(call.cancel)  # the client gave up: so does the upstream call
        try:
            return call.result()
        except grpc.FutureCancelledError:
            context.abort(grpc.StatusCode.CANCELLED, "client cancelled")
        except grpc.RpcError as err:
            context.set_trailing_metadata(err.trailing_metadata() or ())
            context.abort(err.code(), err.details() or "")

    def _authorize(self, context: grpc.ServicerContext) -> None:
        if self._api_key is None:
            return
        sent = dict(context.invocation_metadata()).get("authorization")
        if sent != f"Bearer {self._api_key}":
            with self._lock:
                self.refused += 1
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key")
