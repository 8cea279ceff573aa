"""The conformance harness of `aws.iam_access_key`: moto (key checking on) behind a FaultProxy.

Each subject is a fresh IAM user with one active access key. The provider's
IAM and STS requests go through the fault proxy, which answers faults in the
IAM query protocol (XML error documents). `works` asks STS directly, signed
with the key, and also requires the key to be Active: moto accepts an Inactive
key, real AWS does not.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager

import boto3
import pytest
from botocore.exceptions import ClientError
from conformance.harness import FaultKind, Subject
from conformance.harness_aws_kms import client_factory
from fakes.fault_proxy import FaultProxy

from keyturn.devstack.servers import MOTO_REGION, MotoServer
from keyturn.providers.aws_iam import KEY_ID, SECRET_KEY, AwsIamAccessKeyProvider
from keyturn.secret import Secret

XML = "text/xml"


def _error(status: int, kind: str, code: str, message: str) -> tuple[int, bytes]:
    """An IAM query-protocol error document."""
    body = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}"
        "</Message></Error><RequestId>keyturn-fault</RequestId></ErrorResponse>"
    )
    return status, body.encode()


FAULTS = {
    "permanent": _error(403, "Sender", "AccessDenied", "not authorized"),
    "transient": _error(503, "Receiver", "ServiceUnavailable", "try again"),
}
QUOTA = 2  # access keys per IAM user


class AwsIamAccessKeyHarness:
    """ProviderHarness for `aws.iam_access_key` against moto."""

    provider_name = "aws.iam_access_key"
    quota = QUOTA
    public_fields = frozenset({KEY_ID})

    def __init__(self, moto: MotoServer, proxy: FaultProxy) -> None:
        assert moto.admin_credentials is not None
        self.moto = moto
        self.proxy = proxy
        self.admin = moto.admin_credentials
        self.iam = client_factory(moto.url, self.admin)("iam")

    def provider(self) -> AwsIamAccessKeyProvider:
        return AwsIamAccessKeyProvider(
            client_factory=client_factory(self.proxy.url, self.admin),
            propagation_attempts=2,
            propagation_delay=0.05,
        )

    def new_subject(self) -> Subject:
        user = f"kt-{uuid.uuid4().hex[:12]}"
        self.iam.create_user(UserName=user)
        key = self._new_key(user)
        return Subject(target={"user_name": user}, initial=key, initial_id=key[KEY_ID])

    def works(self, subject: Subject, secret: Secret) -> bool:
        sts = boto3.client(
            "sts",
            endpoint_url=self.moto.url,
            region_name=MOTO_REGION,
            aws_access_key_id=secret[KEY_ID],
            aws_secret_access_key=secret[SECRET_KEY],
        )
        try:
            arn = sts.get_caller_identity()["Arn"]
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            assert code in {"InvalidClientTokenId", "SignatureDoesNotMatch"}, code
            return False
        user = subject.target["user_name"]
        return arn.endswith(f":user/{user}") and self._status(user, secret[KEY_ID]) == "Active"

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        user = subject.target["user_name"]
        added = []
        while len(self.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]) < QUOTA:
            key_id = self._new_key(user)[KEY_ID]
            if not active:
                self.iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")
            added.append(key_id)
        return added

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        status, body = FAULTS[kind]
        return self.proxy.failing(status, body, XML)

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        """The same access key id with a wrong secret key: STS answers SignatureDoesNotMatch."""
        return {KEY_ID: secret[KEY_ID], SECRET_KEY: secret[SECRET_KEY][::-1]}

    def supply(self, subject: Subject) -> Secret:
        raise NotImplementedError("aws.iam_access_key creates its replacement through IAM")

    def _new_key(self, user: str) -> Secret:
        key = self.iam.create_access_key(UserName=user)["AccessKey"]
        return {KEY_ID: key["AccessKeyId"], SECRET_KEY: key["SecretAccessKey"]}

    def _status(self, user: str, key_id: str) -> str | None:
        for key in self.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
            if key["AccessKeyId"] == key_id:
                return str(key["Status"])
        return None


@pytest.fixture(scope="session")
def harness_aws_iam_access_key(moto: MotoServer) -> Iterator[AwsIamAccessKeyHarness]:
    proxy = FaultProxy(moto.url).start()
    try:
        yield AwsIamAccessKeyHarness(moto, proxy)
    finally:
        proxy.stop()
