"""The API's outer guard, as pure ASGI middleware: nothing a request sends is read before
the sender has proved who it is, and no body larger than the configured limit is read at all.

- A request to /v1 or /codec, or a form posted to /ui (except the login form, whose body is the
  proof), whose bearer token or session does not check out is handed on with an *empty*
  body: the route answers as it does to any unauthenticated request (401, or back to
  the login form) and not one byte of what was sent has been read or parsed.
- A body declared (Content-Length) or found (while streaming) to be larger than
  `max_body` is answered 413 `body_too_large` before the app sees it.
- Every response carries `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

NOSNIFF = (b"x-content-type-options", b"nosniff")
LOGIN_PATH = "/ui/login"


def needs_identity(method: str, path: str) -> bool:
    """Whether a request's body may be read only once its sender is known."""
    if path == "/v1" or path.startswith(("/v1/", "/codec/")):
        return True
    return method != "GET" and path.startswith("/ui/") and path != LOGIN_PATH


async def _empty() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class RequestGuard:
    """Authenticate before reading, cap what is read, add nosniff (see the module doc).

    `identified(path, headers)` says whether the request's bearer token (or, under /ui,
    session cookie) names a principal; it sees the headers only, never the body.
    """

    def __init__(self, app: ASGIApp, *, max_body: int,
                 identified: Callable[[str, Headers], bool]) -> None:
        self.app = app
        self.max_body = max_body
        self.identified = identified

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), NOSNIFF]
            await send(message)

        headers = Headers(scope=scope)
        path = scope["path"][len(scope.get("root_path", "")):] if scope.get("root_path") \
            and scope["path"].startswith(scope["root_path"]) else scope["path"]
        if needs_identity(scope["method"], path) and not self.identified(path, headers):
            await self.app(scope, _empty, send_nosniff)
            return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await self._too_large(send_nosniff)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([message]), send_nosniff)
                return
            size += len(message.get("body", b""))
            if size > self.max_body:
                await self._too_large(send_nosniff)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await self.app(scope, _replay([{"type": "http.request", "body": body,
                                        "more_body": False}], after=receive), send_nosniff)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"code": "body_too_large",
                           "message": f"the request body is larger than {self.max_body} bytes"}
                          ).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], after: Receive | None = None) -> Receive:
    """A receive() that gives `messages` first, then (for disconnects) `after`'s."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if after is None:
            return {"type": "http.disconnect"}
        return await after()

    return receive
