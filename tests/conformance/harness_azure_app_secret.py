"""The conformance harness of `azure.app_secret`, against the local Entra fake.

`harness_azure_app_secret` starts one EntraFake (Graph over http, the token
endpoint over https) with a tenant and a privileged admin app; each subject is
a fresh application with one client secret. `works` asks the fake's token
endpoint directly (a client_credentials request), never the provider. Faults
hit Graph, the service the provider changes; the token endpoint keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest
from conformance.harness import FaultKind, Subject
from fakes.azure_graph import EntraFake

from keyturn.providers.azure_app_secret import (
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT_ID,
    AzureAppSecretProvider,
)
from keyturn.secret import Secret

FAULTS: dict[str, int] = {"permanent": 403, "transient": 503}


class AzureAppSecretHarness:
    """ProviderHarness for `azure.app_secret`; Entra allows many secrets per app."""

    provider_name = "azure.app_secret"
    quota = None
    public_fields = frozenset({TENANT_ID, CLIENT_ID})  # ids the runbook's target names too

    def __init__(self, entra: EntraFake) -> None:
        self.entra = entra
        self.tenant_id = entra.add_tenant()
        self.admin = entra.admin(self.tenant_id)

    def provider(self) -> AzureAppSecretProvider:
        return AzureAppSecretProvider(
            client_id=self.admin[0],
            client_secret=self.admin[1],
            authority=self.entra.authority,
            graph_url=self.entra.graph_url,
            connection_verify=self.entra.ca_file,
            token_retries=0,
            propagation_attempts=2,
            propagation_delay=0,
        )

    def new_subject(self) -> Subject:
        app = self.entra.add_application(self.tenant_id, "conformance-app")
        key_id, text = self.entra.add_password(app)
        return Subject(
            target={"tenant_id": self.tenant_id, "client_id": app.app_id, "application_id": app.id},
            initial={TENANT_ID: self.tenant_id, CLIENT_ID: app.app_id, CLIENT_SECRET: text},
            initial_id=key_id,
            extra={"app": app},
        )

    def works(self, subject: Subject, secret: Secret) -> bool:
        return self.entra.token_accepted(secret[TENANT_ID], secret[CLIENT_ID], secret[CLIENT_SECRET])

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        raise NotImplementedError("Entra has no client secret quota")

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        return self.entra.failing(FAULTS[kind])

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        """The same shape with a secret text the app never had (AADSTS7000215)."""
        text = secret[CLIENT_SECRET]
        return {**secret, CLIENT_SECRET: text[:6] + "".join(reversed(text[6:])) + "x"}

    def supply(self, subject: Subject) -> Secret:
        raise NotImplementedError("azure.app_secret creates its replacement with addPassword")


@pytest.fixture(scope="session")
def harness_azure_app_secret() -> Iterator[AzureAppSecretHarness]:
    entra = EntraFake().start()
    try:
        yield AzureAppSecretHarness(entra)
    finally:
        entra.stop()
