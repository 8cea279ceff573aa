"""Unit tests of the aws.iam_access_key provider: error table, ARN matching, targets, retries."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from keyturn.providers.aws_common import classify
from keyturn.providers.aws_iam import (
    ERROR_CODES,
    AwsIamAccessKeyProvider,
    AwsIamTarget,
    is_user_arn,
    map_aws_error,
)
from keyturn.providers.base import ProviderContext
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    QuotaExceeded,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)


def client_error(code: str, status: int = 400, message: str = "boom") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "ListAccessKeys",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchEntity", 404, CredentialNotFound),
        ("AccessDenied", 403, AccessDenied),
        ("AccessDeniedException", 400, AccessDenied),
        ("UnauthorizedOperation", 403, AccessDenied),
        ("LimitExceeded", 409, QuotaExceeded),
        ("Throttling", 400, TransientProviderError),
        ("ThrottlingException", 400, TransientProviderError),
        ("RequestLimitExceeded", 503, TransientProviderError),
        ("ServiceUnavailable", 503, TransientProviderError),
        ("ServiceFailure", 500, TransientProviderError),
        ("SomethingNew", 502, TransientProviderError),
        ("SomethingNew", 429, TransientProviderError),  # a proxy's Too Many Requests
        ("ValidationError", 400, PermanentProviderError),
        ("EntityAlreadyExists", 409, PermanentProviderError),
    ],
)
def test_client_error_codes(code, status, expected):
    assert classify(client_error(code, status), ERROR_CODES) is expected
    err = map_aws_error(client_error(code, status), "ListAccessKeys", "ci-deployer")
    assert type(err) is expected
    assert err.retryable is (expected is TransientProviderError)


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_connection_failures_are_transient(exc):
    assert classify(exc, ERROR_CODES) is TransientProviderError


@pytest.mark.parametrize(
    "exc", [NoCredentialsError(), ParamValidationError(report="bad"), RuntimeError("x")]
)
def test_other_failures_are_permanent(exc):
    assert classify(exc, ERROR_CODES) is PermanentProviderError


def test_message_names_operation_user_and_aws_reason():
    err = map_aws_error(
        client_error("NoSuchEntity", 404, "The user with name ghost cannot be found."),
        "ListAccessKeys",
        "ghost",
    )
    assert str(err) == (
        "ListAccessKeys for IAM user 'ghost' failed: "
        "NoSuchEntity: The user with name ghost cannot be found."
    )


def test_message_redacts_secret_values_even_if_aws_echoes_them():
    secret = {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG"}
    exc = client_error("SignatureDoesNotMatch", 403, "bad signature for wJalrXUtnFEMI/K7MDENG")
    err = map_aws_error(exc, "GetCallerIdentity", "ci", secret)
    assert "wJalrXUtnFEMI/K7MDENG" not in str(err)
    assert "[redacted]" in str(err)


@pytest.mark.parametrize(
    ("arn", "user", "expected"),
    [
        ("arn:aws:iam::123456789012:user/ci-deployer", "ci-deployer", True),
        ("arn:aws:iam::123456789012:user/ci/deploy/ci-deployer", "ci-deployer", True),
        ("arn:aws-us-gov:iam::123456789012:user/ci-deployer", "ci-deployer", True),
        ("arn:aws:iam::123456789012:user/ci-deployer2", "ci-deployer", False),
        ("arn:aws:iam::123456789012:user/ci-deployer/other", "ci-deployer", False),
        ("arn:aws:sts::123456789012:assumed-role/ci-deployer/s", "ci-deployer", False),
        ("arn:aws:iam::123456789012:role/ci-deployer", "ci-deployer", False),
        ("not-an-arn", "ci-deployer", False),
    ],
)
def test_is_user_arn(arn, user, expected):
    assert is_user_arn(arn, user) is expected


def test_target_model_forbids_extra_keys():
    assert AwsIamTarget(user_name="u").user_name == "u"
    with pytest.raises(ValueError):
        AwsIamTarget.model_validate({"user_name": "u", "username": "typo"})


def test_bad_target_is_a_permanent_provider_error_without_calling_aws():
    def no_clients(*args, **kwargs):
        raise AssertionError("no AWS client should be made for a bad target")

    provider = AwsIamAccessKeyProvider(client_factory=no_clients)
    with pytest.raises(PermanentProviderError, match="user_name"):
        provider.precheck({"user": "ci"})


def test_provider_accepts_dict_or_model_targets():
    calls = []

    class FakeIam:
        def list_access_keys(self, UserName):
            calls.append(UserName)
            return {"AccessKeyMetadata": [{"AccessKeyId": "AKIA1", "Status": "Active"}]}

    provider = AwsIamAccessKeyProvider(client_factory=lambda service, **kw: FakeIam())
    assert provider.list_credential_ids({"user_name": "a"}) == ["AKIA1"]
    assert provider.list_credential_ids(AwsIamTarget(user_name="b")) == ["AKIA1"]
    assert calls == ["a", "b"]


def test_propagation_settings_are_bounded():
    with pytest.raises(ValueError):
        AwsIamAccessKeyProvider(propagation_attempts=0)
    with pytest.raises(ValueError):
        AwsIamAccessKeyProvider(propagation_delay=-1)


class FakeSts:
    """Answers GetCallerIdentity from a script: an ARN, or a ClientError to raise."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = 0

    def get_caller_identity(self):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"Arn": answer}


def sts_only(sts):
    def factory(service, **kwargs):
        assert service == "sts"
        assert kwargs["aws_session_token"] is None  # never the ambient session token
        return sts

    return factory


class EmptyIam:
    """An IAM client for a user whose keys are all gone."""

    def list_access_keys(self, UserName):
        return {"AccessKeyMetadata": []}


SECRET = {"aws_access_key_id": "AKIANEW", "aws_secret_access_key": "new-secret-value"}
ARN = "arn:aws:iam::123456789012:user/ci"


def test_verify_retries_while_a_new_key_propagates():
    sts = FakeSts([client_error("InvalidClientTokenId", 403)] * 2 + [ARN])
    provider = AwsIamAccessKeyProvider(sts_only(sts), propagation_attempts=3, propagation_delay=0)
    provider.verify({"user_name": "ci"}, SECRET)
    assert sts.calls == 3


def test_verify_gives_up_after_the_bounded_attempts():
    sts = FakeSts([client_error("InvalidClientTokenId", 403)] * 3)
    provider = AwsIamAccessKeyProvider(sts_only(sts), propagation_attempts=3, propagation_delay=0)
    with pytest.raises(VerificationFailed, match="on all 3 attempts") as info:
        provider.verify({"user_name": "ci"}, SECRET)
    assert "new-secret-value" not in str(info.value)
    assert sts.calls == 3


def test_verify_does_not_retry_throttling_itself():
    sts = FakeSts([client_error("Throttling", 400), ARN])
    provider = AwsIamAccessKeyProvider(sts_only(sts), propagation_attempts=3, propagation_delay=0)
    with pytest.raises(TransientProviderError, match="GetCallerIdentity for IAM user 'ci'"):
        provider.verify({"user_name": "ci"}, SECRET)
    assert sts.calls == 1


def test_confirm_revoked_waits_for_a_deleted_key_to_stop_working():
    sts = FakeSts([ARN, client_error("InvalidClientTokenId", 403)])
    provider = AwsIamAccessKeyProvider(
        lambda service, **kw: EmptyIam() if service == "iam" else sts,
        propagation_attempts=3,
        propagation_delay=0,
    )
    provider.confirm_revoked({"user_name": "ci"}, "AKIANEW", ProviderContext(old_secret=SECRET))
    assert sts.calls == 2


def test_confirm_revoked_raises_still_valid_if_sts_keeps_accepting_a_deleted_key():
    sts = FakeSts([ARN] * 3)
    provider = AwsIamAccessKeyProvider(
        lambda service, **kw: EmptyIam() if service == "iam" else sts,
        propagation_attempts=3,
        propagation_delay=0,
    )
    with pytest.raises(StillValid, match="STS still accepted it") as info:
        provider.confirm_revoked({"user_name": "ci"}, "AKIANEW", ProviderContext(old_secret=SECRET))
    assert "new-secret-value" not in str(info.value)
