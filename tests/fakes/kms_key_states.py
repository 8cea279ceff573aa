"""A loopback proxy in front of moto that refuses what AWS KMS refuses for a key's state.

moto (5.2) signs, encrypts and decrypts with disabled keys and with keys pending
deletion, enables and re-schedules keys pending deletion, and accepts a
deletion window under 7 days. AWS does none of that (the "key states" table of
the KMS Developer Guide), and the `aws.kms_key` provider's proof of revocation
relies on it. This proxy answers those requests as AWS does, in the KMS JSON
protocol (through a FaultProxy's refuse hook), and forwards everything else to
moto unchanged; it reads a key's
state from moto with the admin credentials.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import boto3
from botocore.exceptions import ClientError
from fakes.fault_proxy import Fault, FaultProxy

CRYPTO_OPERATIONS = frozenset(
    {
        "Sign", "Verify", "Encrypt", "Decrypt", "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "GetPublicKey",
        "RotateKeyOnDemand",
    }
)
"""Refused for a Disabled key (DisabledException) and one PendingDeletion (KMSInvalidState)."""

STATE_CHANGES = frozenset({"EnableKey", "DisableKey", "ScheduleKeyDeletion"})
"""Refused for a key PendingDeletion (KMSInvalidStateException)."""

REGION = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/kms/")


class KmsKeyStateProxy:
    """Forwards to moto at `upstream`; `.url` is the proxy's own address."""

    def __init__(self, upstream: str, admin_credentials: dict[str, str]) -> None:
        self._admin = dict(admin_credentials, endpoint_url=upstream)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._proxy = FaultProxy(upstream, refuse=self._refusal)

    @property
    def url(self) -> str:
        return self._proxy.url

    def start(self) -> KmsKeyStateProxy:
        self._proxy.start()
        return self

    def stop(self) -> None:
        self._proxy.stop()

    def _refusal(self, headers: dict[str, str], body: bytes) -> Fault | None:
        """AWS's answer to a request KMS would refuse, or None to forward it."""
        target = headers.get("X-Amz-Target", "")
        operation = target.removeprefix("TrentService.")
        if operation == target or operation not in CRYPTO_OPERATIONS | STATE_CHANGES:
            return None
        request: dict[str, Any] = json.loads(body or b"{}")
        window = request.get("PendingWindowInDays", 30)
        if operation == "ScheduleKeyDeletion" and not 7 <= window <= 30:
            return _error("ValidationException", "PendingWindowInDays must be between 7 and 30")
        region = REGION.search(headers.get("Authorization", ""))
        if "KeyId" not in request or region is None:
            return None
        key = self._describe(request["KeyId"], region.group(1))
        if key is None:
            return None  # moto answers NotFoundException itself
        state, arn = key["KeyState"], key["Arn"]
        if state == "PendingDeletion":
            return _error("KMSInvalidStateException", f"{arn} is pending deletion.")
        if state == "Disabled" and operation in CRYPTO_OPERATIONS:
            return _error("DisabledException", f"{arn} is disabled.")
        return None

    def _describe(self, key_id: str, region: str) -> dict[str, Any] | None:
        with self._lock:  # creating boto3 clients is not thread-safe
            if region not in self._clients:
                self._clients[region] = boto3.client("kms", region_name=region, **self._admin)
        try:
            return self._clients[region].describe_key(KeyId=key_id)["KeyMetadata"]
        except ClientError:
            return None


def _error(code: str, message: str) -> Fault:
    body = json.dumps({"__type": code, "message": message}).encode()
    return Fault(400, body, "application/x-amz-json-1.1")
