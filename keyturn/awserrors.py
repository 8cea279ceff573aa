"""The one classifier of boto3/botocore failures, for AWS providers and stores alike.

Each AWS service has its own table of error codes (IAM's `NoSuchEntity`,
KMS's `NotFoundException`, Secrets Manager's `ResourceNotFoundException`);
the caller passes it, with its layer's error classes
(`keyturn.httpstatus.ErrorClasses`). A code not in the table is judged by the
answer's HTTP status and code: a bare 403 is an IAM policy denial; a 5xx, a 429
or a throttling code is transient (slow down and try again, never permanent);
anything else permanent. Connection failures are transient. The module is
neutral: stores use it without importing providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from keyturn.httpstatus import ErrorClasses, Kind

E = TypeVar("E", bound=Exception)

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
    "RequestThrottled", "SlowDown",
})  # fmt: skip
"""Throttling codes of AWS services, transient even where a service's own table lacks them."""


def error_code(exc: ClientError) -> str:
    """The error code of an AWS error answer ("" when it has none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_detail(exc: Exception) -> str:
    """An AWS error answer's code and message, else the exception's type and text."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'unknown error')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def classify(exc: Exception, codes: Mapping[str, type[E]], classes: ErrorClasses[E]) -> type[E]:
    """The error class for a boto3/botocore exception, given a service's table of error codes."""
    if isinstance(exc, ClientError):
        if (mapped := codes.get(error_code(exc))) is not None:
            return mapped
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status == 403:
            return classes.for_kind(Kind.ACCESS_DENIED)
        throttled = status == 429 or error_code(exc) in THROTTLING_CODES
        return classes.for_kind(Kind.TRANSIENT if throttled or status >= 500 else Kind.PERMANENT)
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return classes.transient
    return classes.permanent
