"""Conformance harness for http.webhook, against the fake vendor API in fakes.webhook_service.

Each subject is a fresh webhook endpoint holding one active signing secret; the
target describes the vendor's API as templated calls (see `webhook_target`). The
service allows MAX_SECRETS secrets per endpoint and can be switched to answer
403 (permanent) or 503 (transient) to every request.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from conformance.harness import FaultKind, Subject
from fakes.webhook_service import MAX_SECRETS, SIGNATURE_PREFIX, WebhookService

from keyturn.providers.http_webhook import HttpWebhookProvider
from keyturn.secret import Secret

TOKEN_ENV = "HOOKBAY_API_TOKEN"
SECRET_FIELD = "signing_secret"
ID_FIELD = "secret_id"
FAULTS = {"permanent": 403, "transient": 503}


def webhook_target(service: WebhookService, endpoint: str, **overrides: Any) -> dict[str, Any]:
    """The runbook target describing the fake vendor's webhook-secret API."""
    secrets_path = "/v1/endpoints/{{ endpoint }}/secrets"
    one = secrets_path + "/{{ credential_id }}"
    target: dict[str, Any] = {
        "base_url": service.url,
        "vars": {"endpoint": endpoint},
        "auth": {"header": "Authorization", "scheme": "Bearer", "token_env": TOKEN_ENV},
        "secret_field": SECRET_FIELD,
        "id_field": ID_FIELD,
        "generate": {"format": "urlsafe", "size": 32, "prefix": "whsec_"},
        "max_credentials": MAX_SECRETS,
        "create": {
            "method": "POST",
            "path": secrets_path,
            "body": {"secret": "{{ secret }}", "description": "rotated by keyturn"},
            "id_from": "data.id",
        },
        "list": {
            "path": secrets_path,
            "items_from": "data",
            "id_from": "id",
            "active_from": "status",
            "active_value": "active",
        },
        "verify": {
            "method": "POST",
            "path": one + "/test",
            "hmac": {
                "message_from": "data.payload",
                "signature_from": "data.signature",
                "algorithm": "sha256",
                "encoding": "hex",
                "prefix": SIGNATURE_PREFIX,
            },
            "rejected_statuses": [404, 409],
        },
        "revoke": {"method": "DELETE", "path": one},
        "disable": {"method": "PATCH", "path": one, "body": {"status": "disabled"}},
        "enable": {"method": "PATCH", "path": one, "body": {"status": "active"}},
    }
    target.update(overrides)
    return target


class HttpWebhookHarness:
    provider_name = "http.webhook"
    quota = MAX_SECRETS
    public_fields = frozenset({ID_FIELD})  # the credential id

    def __init__(self, service: WebhookService) -> None:
        self.service = service

    def provider(self) -> HttpWebhookProvider:
        return HttpWebhookProvider(
            environ={TOKEN_ENV: self.service.admin_token}, verify_attempts=2, verify_delay=0
        )

    def new_subject(self) -> Subject:
        endpoint = self.service.add_endpoint()
        initial = self.service.add_secret(endpoint)
        return Subject(
            target=webhook_target(self.service, endpoint),
            initial={SECRET_FIELD: initial.value, ID_FIELD: initial.id},
            initial_id=initial.id,
            extra={"endpoint": endpoint},
        )

    def works(self, subject: Subject, secret: Secret) -> bool:
        return self.service.accepts(
            subject.extra["endpoint"], secret[ID_FIELD], secret[SECRET_FIELD]
        )

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        endpoint = subject.extra["endpoint"]
        status = "active" if active else "disabled"
        added = []
        while len(self.service.endpoints[endpoint]) < MAX_SECRETS:
            added.append(self.service.add_secret(endpoint, status=status).id)
        return added

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        return self.service.failing(FAULTS[kind])

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        return {**secret, SECRET_FIELD: "whsec_" + secrets.token_urlsafe(32)}

    def supply(self, subject: Subject) -> Secret:
        raise NotImplementedError("the vendor API creates secrets")


@pytest.fixture(scope="session")
def harness_http_webhook() -> Iterator[HttpWebhookHarness]:
    service = WebhookService().start()
    try:
        yield HttpWebhookHarness(service)
    finally:
        service.stop()
