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

from keyturn import awserrors
from keyturn.awserrors import error_code, error_detail
from keyturn.providers.base import ProviderDefaults
from keyturn.providers.errors import ERRORS, ProviderError
from keyturn.providers.propagation import Propagation

__all__ = ["AwsProviderBase", "classify", "error_code", "error_detail"]

ClientFactory = Callable[..., Any]
"""callable(service_name, **client_kwargs) -> boto3 client."""


def default_client_factory(service_name: str, **kwargs: Any) -> Any:
    """A boto3 client configured from the standard AWS environment and config files."""
    return boto3.session.Session().client(service_name, **kwargs)


def classify(exc: Exception, codes: Mapping[str, type[ProviderError]]) -> type[ProviderError]:
    """The provider error class for a boto3/botocore exception, given a service's table of
    error codes (keyturn.awserrors, the one AWS classifier)."""
    return awserrors.classify(exc, codes, ERRORS)


class AwsProviderBase(ProviderDefaults):
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
