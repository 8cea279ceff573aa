"""What the AWS providers share: how boto3 clients are built, the constructor, and how
boto3 errors become provider errors.

`aws.iam_access_key` and `aws.kms_key` take the same settings: a client
factory (default: a boto3 session configured by the standard AWS environment
and config files, AWS_ENDPOINT_URL and AWS_DEFAULT_REGION included), so tests
point them at a local moto server, and how long to wait for IAM/STS or KMS to
show a change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import boto3
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from keyturn.providers.errors import (
    AccessDenied,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from keyturn.providers.propagation import Propagation

ClientFactory = Callable[..., Any]
"""callable(service_name, **client_kwargs) -> boto3 client."""


def default_client_factory(service_name: str, **kwargs: Any) -> Any:
    """A boto3 client configured from the standard AWS environment and config files."""
    return boto3.session.Session().client(service_name, **kwargs)


THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
    "RequestThrottled", "SlowDown",
})  # fmt: skip


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_detail(exc: Exception) -> str:
    """An AWS error answer's code and message, else the exception's type and text."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'unknown error')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def classify(exc: Exception, codes: Mapping[str, type[ProviderError]]) -> type[ProviderError]:
    """The provider error class for a boto3/botocore exception, given a service's table of
    error codes. Codes not in it are permanent unless the HTTP status is 5xx or 429 or the
    code is a throttling one (a bare 403 is an IAM policy denial); connection failures are
    transient."""
    if isinstance(exc, ClientError):
        if (mapped := codes.get(error_code(exc))) is not None:
            return mapped
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status == 403:
            return AccessDenied
        if status == 429 or status >= 500 or error_code(exc) in THROTTLING_CODES:
            return TransientProviderError  # 429: slow down and try again, never permanent
        return PermanentProviderError
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return TransientProviderError
    return PermanentProviderError


class AwsProviderBase:
    """What every AWS provider is built from: a client factory, and its propagation retries.

    Subclasses set `default_attempts` to how many checks their service usually
    needs before a change shows; `propagation_attempts` overrides it.
    """

    family: ClassVar[str] = "aws"
    default_attempts: ClassVar[int] = 5

    def __init__(
        self,
        client_factory: ClientFactory = default_client_factory,
        *,
        propagation_attempts: int | None = None,
        propagation_delay: float = 2.0,
    ) -> None:
        if propagation_attempts is None:
            propagation_attempts = self.default_attempts
        self._client_factory = client_factory
        self._propagation = Propagation(propagation_attempts, propagation_delay)
