"""What a provider's conformance harness gives the shared suite.

Each provider's harness (tests/conformance/harness_<module>.py) exposes a
pytest fixture named `harness_<provider name with dots as underscores>` that
returns an object of this shape, bound to that provider's real or faithful
server. The suite in test_provider_conformance.py drives the provider through
the real rotation activities with it and checks the server's state directly.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from keyturn.providers.base import Provider
from keyturn.secret import Secret

FaultKind = Literal["permanent", "transient"]

PROVIDERS = [
    "aws.iam_access_key",
    "aws.kms_key",
    "gcp.service_account_key",
    "azure.app_secret",
    "github.deploy_key",
    "github.webhook_secret",
    "github.pat",
    "npm.token",
    "signing.vault_pki_cert",
    "postgres.password",
    "mysql.password",
    "http.webhook",
]
WITH_QUOTA = ["aws.iam_access_key", "gcp.service_account_key", "http.webhook"]
WITH_ID_FIELD = ["aws.iam_access_key", "http.webhook"]
"""Providers whose secret names its credential id: precheck can tell a stale store."""


def fixture_name(provider: str) -> str:
    """The harness fixture of `provider`: harness_<name with dots as underscores>."""
    return "harness_" + provider.replace(".", "_")


@dataclass
class Subject:
    """A fresh target with one working credential: what a rotation will replace.

    target: the runbook `target` (plain data, no secret).
    initial: the working credential's secret; the suite delivers it to the store
        before the rotation, as an earlier rotation or an operator would have.
    initial_id: its credential id, as `list_credential_ids` names it.
    extra: anything the harness wants to remember about the subject.
    """

    target: dict[str, Any]
    initial: Secret
    initial_id: str
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderHarness(Protocol):
    provider_name: str
    quota: int | None
    """Credentials a target may hold at most, when the service has such a limit."""
    public_fields: frozenset[str]
    """Secret fields that are identifiers, not secrets (an access key id, a client id)."""

    def provider(self) -> Provider:
        """The provider, configured against the test server."""

    def new_subject(self) -> Subject:
        """A fresh target (unique names) holding exactly one working credential."""

    def works(self, subject: Subject, secret: Secret) -> bool:
        """Ask the server directly, not through the provider: is `secret` accepted now?"""

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        """Only when `quota` is set: add credentials until the target is at its quota.

        active=False: the added ones are disabled/inactive (precheck may remove one).
        active=True: all are active (precheck must refuse with QuotaExceeded).
        Returns the ids added.
        """

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        """While inside: every request the provider makes to its server fails.

        permanent: access denied (403) or not found (404); transient: 429 or 503.
        """

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        """A value of the same shape as `secret` that the service rejects (verify must fail)."""

    def supply(self, subject: Subject) -> Secret:
        """Only for `supplied` providers: mint a replacement as an operator would by hand."""
