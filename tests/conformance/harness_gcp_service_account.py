"""The conformance harness of `gcp.service_account_key`, against the local GCP IAM fake.

One session-wide FakeGcpIam (tests/fakes/gcp_iam.py) serves the IAM gRPC API
and the OAuth2 token endpoint. Each subject is a fresh service account holding
one user-managed key (plus the system-managed key the fake gives every account).
A key file works when the fake's token endpoint grants a token for it, asked
directly with google-auth; faults use the fake's switch that aborts every RPC
(and makes the token endpoint answer the matching HTTP error).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager

import grpc
import pytest
from conformance.harness import FaultKind, Subject
from fakes.gcp_iam import MAX_USER_MANAGED_KEYS, FakeGcpIam, forged, token_granted

from keyturn.providers.gcp_service_account import KEY_JSON, GcpServiceAccountKeyProvider
from keyturn.secret import Secret

FAULTS: dict[FaultKind, grpc.StatusCode] = {
    "permanent": grpc.StatusCode.PERMISSION_DENIED,
    "transient": grpc.StatusCode.UNAVAILABLE,
}


class GcpServiceAccountKeyHarness:
    """ProviderHarness for `gcp.service_account_key` against FakeGcpIam."""

    provider_name = "gcp.service_account_key"
    quota = MAX_USER_MANAGED_KEYS

    def __init__(self, fake: FakeGcpIam) -> None:
        self.fake = fake

    def provider(self) -> GcpServiceAccountKeyProvider:
        return GcpServiceAccountKeyProvider(
            endpoint=self.fake.address, propagation_attempts=2, propagation_delay=0.05, timeout=5
        )

    def new_subject(self) -> Subject:
        email = f"kt-{uuid.uuid4().hex[:12]}@conformance.iam.gserviceaccount.com"
        self.fake.add_service_account(email)
        key_json = self.fake.create_key(email)
        return Subject(
            target={"service_account": email},
            initial={KEY_JSON: key_json},
            initial_id=json.loads(key_json)["private_key_id"],
        )

    def works(self, subject: Subject, secret: Secret) -> bool:
        key_json = secret[KEY_JSON]
        email = json.loads(key_json)["client_email"]
        return email == subject.target["service_account"] and token_granted(key_json)

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        email = subject.target["service_account"]
        room = MAX_USER_MANAGED_KEYS - len(self.fake.key_states(email))
        return [
            json.loads(self.fake.create_key(email, disabled=not active))["private_key_id"]
            for _ in range(room)
        ]

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        return self.fake.failing(FAULTS[kind])

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        return {KEY_JSON: forged(secret[KEY_JSON])}

    def supply(self, subject: Subject) -> Secret:
        raise NotImplementedError("gcp.service_account_key creates its replacement by API")


@pytest.fixture(scope="session")
def harness_gcp_service_account_key() -> Iterator[GcpServiceAccountKeyHarness]:
    with FakeGcpIam() as fake:
        yield GcpServiceAccountKeyHarness(fake)
