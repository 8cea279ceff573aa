"""The conformance harness of `aws.kms_key`: the stack's moto behind a FaultProxy.

Requests go provider -> FaultProxy -> moto, which refuses signing with disabled
keys and keys pending deletion as AWS does (keyturn.devstack.moto_kms); the
fault proxy injects errors in the KMS JSON protocol. Each subject is a fresh
ECC_NIST_P256 signing key behind a fresh alias, with a description, a tag and
moto's default key policy for the replacement to copy. `works` asks KMS
directly: is the key Enabled, and does it sign?
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conformance.harness import FaultKind, Subject
from cryptography.hazmat.primitives import serialization
from fakes.fault_proxy import FaultProxy

from keyturn.devstack.servers import MOTO_REGION, MotoServer
from keyturn.providers.aws_kms import AwsKmsKeyProvider
from keyturn.secret import Secret

JSON = "application/x-amz-json-1.1"
FAULTS: dict[str, tuple[int, bytes]] = {
    "permanent": (400, b'{"__type":"AccessDeniedException","message":"not authorized"}'),
    "transient": (400, b'{"__type":"ThrottlingException","message":"Rate exceeded"}'),
}
NO_RETRIES = Config(retries={"total_max_attempts": 1})


def client_factory(endpoint: str, credentials: dict[str, str]) -> Callable[..., Any]:
    """A provider client factory: boto3 clients for `endpoint`, without botocore retries."""

    def make(service_name: str, **kwargs: Any) -> Any:
        params: dict[str, Any] = {"region_name": MOTO_REGION, **credentials, **kwargs}
        return boto3.client(service_name, endpoint_url=endpoint, config=NO_RETRIES, **params)

    return make


class KmsDirect:
    """Direct KMS calls as the admin, bypassing the provider: how tests set up and check state."""

    def __init__(self, endpoint: str, credentials: dict[str, str]) -> None:
        self.kms = client_factory(endpoint, credentials)("kms")

    def new_key(self, alias: str, key_spec: str = "ECC_NIST_P256") -> dict[str, Any]:
        usage = "ENCRYPT_DECRYPT" if key_spec == "SYMMETRIC_DEFAULT" else "SIGN_VERIFY"
        key = self.kms.create_key(
            KeySpec=key_spec,
            KeyUsage=usage,
            Description=f"keyturn test key for {alias}",
            Tags=[{"TagKey": "team", "TagValue": "release"}],
        )["KeyMetadata"]
        self.kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
        return key

    def signing_secret(self, key_id: str, alias: str) -> Secret:
        """The reference secret the provider returns for a signing key, built independently."""
        key = self.describe(key_id)
        assert key is not None
        der = self.kms.get_public_key(KeyId=key_id)["PublicKey"]
        pem = serialization.load_der_public_key(der).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "credential_id": key_id,
            "key_id": key_id,
            "key_arn": key["Arn"],
            "alias": alias,
            "key_spec": key["KeySpec"],
            "signing_algorithm": key["SigningAlgorithms"][0],
            "public_key_pem": pem.decode(),
            "public_key_sha256": hashlib.sha256(der).hexdigest(),
        }

    def describe(self, key: str) -> dict[str, Any] | None:
        try:
            return self.kms.describe_key(KeyId=key)["KeyMetadata"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NotFoundException":
                return None
            raise

    def key_of(self, alias: str) -> str | None:
        key = self.describe(alias)
        return None if key is None else key["KeyId"]

    def state(self, key_id: str) -> str | None:
        key = self.describe(key_id)
        return None if key is None else key["KeyState"]

    def signs(self, key_id: str) -> bool:
        key = self.describe(key_id)
        if key is None:
            return False
        try:
            self.kms.sign(
                KeyId=key_id,
                Message=b"harness",
                MessageType="RAW",
                SigningAlgorithm=key["SigningAlgorithms"][0],
            )
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            assert code in {"DisabledException", "KMSInvalidStateException", "NotFoundException"}
            return False
        return True


class AwsKmsKeyHarness:
    """ProviderHarness for `aws.kms_key` (signing keys) against moto."""

    provider_name = "aws.kms_key"
    quota = None  # one key per alias; KMS's account-wide key quota is not in play
    public_fields = frozenset(  # KMS keys have no secret material: every field is a reference
        {"credential_id", "key_id", "key_arn", "alias", "key_spec", "signing_algorithm",
         "public_key_pem", "public_key_sha256"}
    )

    def __init__(self, moto: MotoServer, proxy: FaultProxy) -> None:
        assert moto.admin_credentials is not None
        self.admin = moto.admin_credentials
        self.direct = KmsDirect(moto.url, self.admin)
        self.proxy = proxy

    def provider(self) -> AwsKmsKeyProvider:
        return AwsKmsKeyProvider(
            client_factory=client_factory(self.proxy.url, self.admin),
            propagation_attempts=2,
            propagation_delay=0.05,
        )

    def new_subject(self) -> Subject:
        alias = f"alias/kt-{uuid.uuid4().hex[:12]}"
        key = self.direct.new_key(alias)
        return Subject(
            target={"alias": alias, "pending_window_days": 7},
            initial=self.direct.signing_secret(key["KeyId"], alias),
            initial_id=key["KeyId"],
        )

    def works(self, subject: Subject, secret: Secret) -> bool:
        return self.direct.state(secret["key_id"]) == "Enabled" and self.direct.signs(
            secret["key_id"]
        )

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        raise NotImplementedError("a KMS alias names one key; there is no quota to fill")

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        status, body = FAULTS[kind]
        return self.proxy.failing(status, body, JSON)

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        """The same references, but to a key id KMS does not know."""
        missing = str(uuid.uuid4())
        return {
            **secret,
            "credential_id": missing,
            "key_id": missing,
            "key_arn": secret["key_arn"].replace(secret["key_id"], missing),
        }

    def supply(self, subject: Subject) -> Secret:
        raise NotImplementedError("aws.kms_key creates its replacement through the KMS API")


@pytest.fixture(scope="session")
def harness_aws_kms_key(moto: MotoServer) -> Iterator[AwsKmsKeyHarness]:
    proxy = FaultProxy(moto.url).start()
    try:
        yield AwsKmsKeyHarness(moto, proxy)
    finally:
        proxy.stop()
