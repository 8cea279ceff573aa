"""The API's Prometheus metrics: requests by route template, method and status, their
durations, and the unauthenticated `/metrics` route that serves them.

Labels are route templates (`/v1/runs/{run_id}`), never paths: a run id or a gate target
in a URL is not a label. Requests that match no route count as route "unmatched".
/metrics needs no token: it holds counts by route, method and status and the process's
own figures, nothing about runs, so a Prometheus server scrapes it as it scrapes
anything else (docs/operating.md).
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("keyturn.api.metrics")

REQUESTS = Counter("keyturn_api_requests", "API requests answered",
                   ["route", "method", "status"])
REQUEST_SECONDS = Histogram("keyturn_api_request_duration_seconds", "API request handling",
                            ["route", "method"])


class RequestMetrics:
    """Pure ASGI middleware: count and time every HTTP request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception before the response started

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            _record(scope, status, time.perf_counter() - started)


def _record(scope: Scope, status: int, seconds: float) -> None:
    try:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = scope["method"]
        REQUESTS.labels(route, method, str(status)).inc()
        REQUEST_SECONDS.labels(route, method).observe(seconds)
    except Exception:  # a metric must never fail a request
        log.exception("metrics: request not counted")


async def metrics_endpoint(request: Request) -> Response:
    """The process's metrics in Prometheus's text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
