"""Store conformance harness for `aws_secrets_manager` on moto (key checking on), behind a FaultProxy.

The store takes its credentials from the standard AWS environment, which the
harness sets to moto's admin key only while it builds a store (boto3 resolves
credentials and the retry budget when the client is made), so the rest of the
session's environment is left alone. Faults are answered in the Secrets
Manager JSON protocol.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager

import boto3
import pytest
from botocore.exceptions import ClientError
from fakes.fault_proxy import FaultProxy

from keyturn.devstack.servers import MOTO_REGION, MotoServer
from keyturn.secret import Secret
from keyturn.stores.aws_secrets_manager import AwsSecretsManagerStore

JSON = "application/x-amz-json-1.1"
FAULTS = {
    "permanent": (400, b'{"__type":"AccessDeniedException","Message":"not authorized"}'),
    "transient": (500, b'{"__type":"InternalServiceError","Message":"try again"}'),
}


def admin_env(moto: MotoServer) -> dict[str, str]:
    """The AWS environment of moto's admin, without botocore's own retries."""
    assert moto.admin_credentials is not None
    return {
        "AWS_ACCESS_KEY_ID": moto.admin_credentials["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": moto.admin_credentials["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": MOTO_REGION,
        "AWS_MAX_ATTEMPTS": "1",
    }


def build_store(env: dict[str, str], name: str = "aws", **config: str) -> AwsSecretsManagerStore:
    """An AwsSecretsManagerStore made while `env` is the AWS environment."""
    with pytest.MonkeyPatch.context() as patch:
        for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            patch.delenv(variable, raising=False)
        for variable, value in env.items():
            patch.setenv(variable, value)
        return AwsSecretsManagerStore(name, config)


class AwsSecretsManagerHarness:
    store_type = "aws_secrets_manager"
    readable = True

    def __init__(self, moto: MotoServer, proxy: FaultProxy) -> None:
        self.env = admin_env(moto)
        self.proxy = proxy
        assert moto.admin_credentials is not None
        self.client = boto3.client(
            "secretsmanager", endpoint_url=moto.url, region_name=MOTO_REGION,
            **moto.admin_credentials,
        )

    def store(self) -> AwsSecretsManagerStore:
        return build_store(self.env, endpoint_url=self.proxy.url)

    def new_path(self) -> str:
        return f"conformance/{uuid.uuid4().hex[:12]}"

    def server_value(self, path: str) -> Secret | None:
        try:
            answer = self.client.get_secret_value(SecretId=path, VersionStage="AWSCURRENT")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        return json.loads(answer["SecretString"])

    def fault(self, kind: str) -> AbstractContextManager[None]:
        status, body = FAULTS[kind]
        return self.proxy.failing(status, body, JSON)


@pytest.fixture(scope="session")
def store_harness_aws_secrets_manager(moto: MotoServer) -> Iterator[AwsSecretsManagerHarness]:
    proxy = FaultProxy(moto.url).start()
    try:
        yield AwsSecretsManagerHarness(moto, proxy)
    finally:
        proxy.stop()
