"""JSON errors of the HTTP API: one shape, stable codes, never a secret.

Every error body is `{"code": "<stable code>", "message": "...", ...}`:

  unauthenticated 401 | forbidden 403 | not_found 404 | method_not_allowed 405
  invalid_runbook 422 (+ file, line, column) | invalid_request 422 (+ errors)
  gate_refused 403/409/422 (+ reason: not_an_approver | self_approval |
  already_approved | gate_closed | reason_required) | conflict 409
  preflight_failed 409 (+ report: what preflight found; nothing was changed)
  body_too_large 413 (keyturn.api.guard) | too_many_failures 429 (keyturn.api.throttle)
  store_error 502 | temporal_unavailable 503 | no_worker 503 | server_error 500

Request validation errors never echo what was sent (a supplied value could be in it).
The operations core's typed errors become these bodies through one table,
OPERATION_ERRORS, so a route only calls the core.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from keyturn.errors import KeyturnError
from keyturn.operations.errors import (
    AmbiguousTarget,
    CancelForbidden,
    GateRefused,
    InvalidFilter,
    InvalidRunbook,
    NoWorker,
    PreflightRefused,
    RunConflict,
    RunNotFound,
    StoreRefused,
    TemporalUnavailable,
)
from keyturn.workflows import gates

log = logging.getLogger("keyturn.api")

GATE_REFUSAL_STATUS = {
    gates.NOT_AN_APPROVER: 403,
    gates.SELF_APPROVAL: 403,
    gates.ALREADY_APPROVED: 409,
    gates.GATE_CLOSED: 409,
    gates.REASON_REQUIRED: 422,
}

OPERATION_ERRORS: dict[type[KeyturnError], int] = {
    RunNotFound: 404,
    AmbiguousTarget: 409,
    CancelForbidden: 403,
    RunConflict: 409,  # RunEnded, NotAwaitingSupply
    GateRefused: 409,  # the status by reason: GATE_REFUSAL_STATUS
    PreflightRefused: 409,
    InvalidRunbook: 422,
    InvalidFilter: 422,
    StoreRefused: 502,
    TemporalUnavailable: 503,
    NoWorker: 503,
}
"""The operations core's errors -> HTTP status (the body's `code` is the error's own); a
subclass answers as its nearest listed base."""

_HTTP_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 422: "invalid_request"}


class ErrorBody(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    reason: str | None = None
    errors: list[dict[str, Any]] | None = None


class ApiError(KeyturnError):
    """Raise from a route to answer with `status` and an ErrorBody."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def unauthenticated(message: str = "a bearer token is required") -> ApiError:
    return ApiError(401, "unauthenticated", message)


def too_many_failures(wait: float) -> ApiError:
    return ApiError(429, "too_many_failures", f"too many failed logins or unknown tokens from "
                    f"this address; try again in {int(wait) + 1} s")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def invalid_request(message: str, **extra: Any) -> ApiError:
    return ApiError(422, "invalid_request", message, **extra)


def temporal_unavailable(message: str) -> ApiError:
    return ApiError(503, "temporal_unavailable", message)


def from_operation(exc: KeyturnError) -> ApiError | None:
    """The answer to an operations error, by OPERATION_ERRORS; None for one it does not list."""
    status = next((OPERATION_ERRORS[cls] for cls in type(exc).__mro__ if cls in OPERATION_ERRORS),
                  None)
    if status is None:
        return None
    if isinstance(exc, GateRefused):
        status = GATE_REFUSAL_STATUS.get(exc.reason, status)
    return ApiError(status, exc.code, str(exc), **exc.details())


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: each status documented with ErrorBody."""
    described = {400: "Bad request", 401: "No or unknown bearer token",
                 403: "Role or gate refusal", 404: "No such run, gate or runbook",
                 409: "Conflicting state (gate closed, already approved, run ended)",
                 413: "The request body is over the server's limit (body_too_large)",
                 429: "Too many unknown tokens from this address (too_many_failures)",
                 422: "Invalid request or runbook", 502: "The secret store refused",
                 503: "Temporal unavailable"}
    statuses = tuple(dict.fromkeys((*statuses, 413, *((429,) if 401 in statuses else ()))))
    return {s: {"model": ErrorBody, "description": described.get(s, "Error")} for s in statuses}


def _clean(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without `input`/`ctx`/`url`: what was sent is never echoed."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in errors]


def install(app: FastAPI) -> None:
    """Answer every error the app raises with an ErrorBody."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(KeyturnError)
    async def _operation_error(request: Request, exc: KeyturnError) -> JSONResponse:
        answer = from_operation(exc)
        if answer is None:
            return await _unexpected(request, exc)
        return await _api_error(request, answer)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean(list(exc.errors()))
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"])
        message = f"{where}: {first['msg']}" if where else first["msg"]
        body = {"code": "invalid_request", "message": message, "errors": errors}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that is not even JSON: a request error like others
            return JSONResponse({"code": "invalid_request", "message": "the body is not valid "
                                 "JSON"}, status_code=422)
        code = _HTTP_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "server_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse({"code": code, "message": message}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The type only: an exception's text could carry anything the request held.
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return JSONResponse({"code": "server_error", "message": f"internal error ({type(exc).__name__})"},
                            status_code=500)
