"""Google Cloud service account keys: the `gcp.service_account_key` provider.

Knows user-managed keys of one IAM service account and nothing else (Google's
own system-managed keys are never listed, counted or touched). The IAM admin
API is reached with google-cloud-iam's `IAMClient`: by default with Application
Default Credentials at iam.googleapis.com; with `endpoint` (or
KEYTURN_GCP_IAM_ENDPOINT) over a plaintext gRPC channel to a local fake; or from
an injected `client_factory`. The SDK's own retries are off: transient errors
surface at once, classified, and the activity's retry policy repeats them.

The secret is one field, `private_key_json`: the JSON key file exactly as
Google returned it (`type`, `project_id`, `private_key_id`, `private_key`,
`client_email`, `token_uri`, ...), what GOOGLE_APPLICATION_CREDENTIALS points
at. One field, because the file's public parts (the account's email, the key
id) appear in audit records and must not be mistaken for secret values. The
credential id is the key id (`private_key_id`, the last segment of the key's
resource name).

Proof of life and death is an OAuth2 JWT-bearer token exchange (RFC 7523) with
the key itself at the key file's `token_uri` (google-auth's
`service_account.Credentials.refresh`): Google grants a token only for an
enabled, existing key. Key changes take up to a minute to reach the token
endpoint, so both checks retry a bounded number of times.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import grpc
import requests
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request
from google.cloud.iam_admin_v1 import IAMClient, types
from google.cloud.iam_admin_v1.services.iam.transports import IAMGrpcTransport
from google.oauth2 import service_account
from pydantic import BaseModel, ConfigDict, Field

from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    ProviderDefaults,
    SecretShape,
)
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    ProviderError,
    QuotaExceeded,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.probing import Answer, Probing, accepted, refused
from keyturn.providers.propagation import Propagation
from keyturn.providers.targets import parse_target
from keyturn.secret import Secret, redact

ENDPOINT_ENV = "KEYTURN_GCP_IAM_ENDPOINT"
MAX_KEYS_PER_ACCOUNT = 10  # user-managed keys per service account, GCP's limit
TOKEN_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
KEY_JSON = "private_key_json"
KEY_FILE_FIELDS = ("type", "private_key_id", "private_key", "client_email", "token_uri")
USER_MANAGED = types.ListServiceAccountKeysRequest.KeyType.USER_MANAGED
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")

ClientFactory = Callable[[], IAMClient]
KeyFile = dict[str, Any]
"""A parsed JSON key file."""

# The one table from gRPC status codes to provider errors. Codes not listed are
# permanent. Quota-of-keys is FAILED_PRECONDITION on GCP; RESOURCE_EXHAUSTED is
# its rate limiting.
GRPC_ERRORS: dict[grpc.StatusCode, type[ProviderError]] = {
    grpc.StatusCode.PERMISSION_DENIED: AccessDenied,
    grpc.StatusCode.UNAUTHENTICATED: AccessDenied,
    grpc.StatusCode.NOT_FOUND: CredentialNotFound,
    grpc.StatusCode.FAILED_PRECONDITION: QuotaExceeded,
    grpc.StatusCode.INVALID_ARGUMENT: PermanentProviderError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TransientProviderError,
    grpc.StatusCode.UNAVAILABLE: TransientProviderError,
    grpc.StatusCode.DEADLINE_EXCEEDED: TransientProviderError,
    grpc.StatusCode.INTERNAL: TransientProviderError,
    grpc.StatusCode.ABORTED: TransientProviderError,
}


class GcpServiceAccountTarget(BaseModel):
    """Which service account's key to rotate.

    project: the project id in resource names; by default the one in a
    NAME@PROJECT.iam.gserviceaccount.com address, else `-` (GCP infers it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    service_account: str = Field(pattern=r"^[^@/\s]+@[^@/\s]+$", max_length=254)
    project: str | None = Field(default=None, pattern=r"^[^/\s]+$", max_length=100)

    @property
    def resource(self) -> str:
        """projects/PROJECT/serviceAccounts/EMAIL."""
        domain = self.service_account.rsplit("@", 1)[1]
        derived = domain.removesuffix(".iam.gserviceaccount.com")
        project = self.project or (derived if derived != domain else "-")
        return f"projects/{project}/serviceAccounts/{self.service_account}"


def classify(exc: Exception) -> type[ProviderError]:
    """The provider error class for an exception of the IAM client or google-auth."""
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return GRPC_ERRORS.get(exc.grpc_status_code, PermanentProviderError)
    if isinstance(exc, api_exceptions.RetryError | auth_exceptions.TransportError):
        return TransientProviderError
    if isinstance(exc, auth_exceptions.RefreshError):
        return TransientProviderError if exc.retryable else AccessDenied
    if isinstance(exc, auth_exceptions.DefaultCredentialsError):
        return AccessDenied
    return PermanentProviderError


def map_gcp_error(
    exc: Exception, operation: str, email: str, key_file: KeyFile | None = None
) -> ProviderError:
    """Classify `exc`; the message names the operation and account, never a secret value."""
    if isinstance(exc, api_exceptions.GoogleAPICallError) and exc.grpc_status_code is not None:
        detail = f"{exc.grpc_status_code.name}: {exc.message}"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return classify(exc)(
        f"{operation} for service account {email!r} failed: {_redact(detail, key_file)}"
    )


class GcpServiceAccountKeyProvider(Probing, ProviderDefaults):
    """Rotates a service account's user-managed key: at most 10 per account."""

    name: ClassVar[str] = "gcp.service_account_key"
    target_model: ClassVar[type[BaseModel]] = GcpServiceAccountTarget
    family: ClassVar[str] = "gcp"
    step_timeout: ClassVar[timedelta] = timedelta(seconds=120)  # propagation retries

    def __init__(
        self,
        *,
        client_factory: ClientFactory | None = None,
        endpoint: str | None = None,
        propagation_attempts: int = 12,
        propagation_delay: float = 5.0,
        timeout: float = 30.0,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._client_factory = client_factory
        self._endpoint = endpoint
        self._propagation = Propagation(propagation_attempts, propagation_delay)
        self._timeout = timeout
        self._client: IAMClient | None = None

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        return SecretShape(fields=(KEY_JSON,))

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        keys = self._list_keys(t)
        enabled = [_key_id(k) for k in keys if not k.disabled]
        disabled = [_key_id(k) for k in keys if k.disabled]
        if not enabled:
            found = f" (disabled: {', '.join(disabled)})" if disabled else ""
            raise CredentialNotFound(
                f"service account {t.service_account!r} has no enabled user-managed key{found}; "
                "nothing to rotate"
            )
        removed: list[str] = []
        if len(keys) >= MAX_KEYS_PER_ACCOUNT:
            if not disabled:
                # Every key may be in use somewhere; only a human can say which one to drop.
                raise QuotaExceeded(
                    f"service account {t.service_account!r} already has {len(keys)} enabled "
                    f"user-managed keys, GCP's limit ({', '.join(enabled)}); disable or delete "
                    "one no longer in use, then run again"
                )
            # Quota room: a disabled key is nobody's working credential.
            if not ctx.dry_run:
                self.delete(t, disabled[0])
            removed.append(disabled[0])
        return Precheck(old_credential_ids=enabled, removed_inactive=removed)

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        return [_key_id(k) for k in self._list_keys(_target(target))]

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        request = types.CreateServiceAccountKeyRequest(
            name=t.resource,
            private_key_type=types.ServiceAccountPrivateKeyType.TYPE_GOOGLE_CREDENTIALS_FILE,
        )
        key = self._call("CreateServiceAccountKey", t, "create_service_account_key", request)
        key_id = _key_id(key)
        secret = {KEY_JSON: key.private_key_data.decode(errors="replace")}
        try:
            if _key_file(secret, t)["private_key_id"] == key_id:
                return NewCredential(credential_id=key_id, secret=secret)
            problem = "is for another key"
        except PermanentProviderError as exc:
            problem = str(exc)
        # Unusable to anyone: remove it rather than leave an orphan holding quota.
        self.delete(t, key_id)
        raise PermanentProviderError(
            f"CreateServiceAccountKey for service account {t.service_account!r} returned "
            f"key {key_id} whose key file is unusable ({problem}); the key was deleted again"
        )

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        key_file = _key_file(secret, t)
        key_id = key_file["private_key_id"]
        if key_file["client_email"].lower() != t.service_account.lower():
            raise VerificationFailed(
                f"verify: key {key_id} belongs to service account {key_file['client_email']!r}, "
                f"not {t.service_account!r}"
            )
        self.expect_accepted(
            t, key_file,
            f"the token endpoint rejected key {key_id} of service account {t.service_account!r}",
        )

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        request = types.DisableServiceAccountKeyRequest(name=_key_name(t, credential_id))
        self._call(
            f"DisableServiceAccountKey {credential_id}", t, "disable_service_account_key", request
        )

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        request = types.EnableServiceAccountKeyRequest(name=_key_name(t, credential_id))
        self._call(
            f"EnableServiceAccountKey {credential_id}", t, "enable_service_account_key", request
        )

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        request = types.DeleteServiceAccountKeyRequest(name=_key_name(t, credential_id))
        try:
            self._call(
                f"DeleteServiceAccountKey {credential_id}", t, "delete_service_account_key", request
            )
        except CredentialNotFound:
            return  # already gone (or the account with it): the goal of delete

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        try:
            keys = self._list_keys(t)
        except CredentialNotFound:
            keys = []  # the service account itself is gone, and every key with it
        for key in keys:
            if _key_id(key) == credential_id:
                raise StillValid(
                    f"key {credential_id} still exists for service account "
                    f"{t.service_account!r} ({'disabled' if key.disabled else 'enabled'})"
                )
        if ctx.old_secret is None:
            return
        # Every old key was deleted before this check, so the old key file must be
        # refused whichever of them it is.
        old = _key_file(ctx.old_secret, t)
        old_id = old["private_key_id"]
        if old["client_email"].lower() != t.service_account.lower():
            raise PermanentProviderError(
                f"confirm_revoked: the old secret (key {old_id}) is for service account "
                f"{old['client_email']!r}, not {t.service_account!r}"
            )
        self.expect_refused(
            t, old,
            f"key {credential_id} of service account {t.service_account!r} is deleted but "
            f"the token endpoint still accepted the old key file (key {old_id})",
        )

    # -- IAM calls ----------------------------------------------------------------

    @property
    def _iam(self) -> IAMClient:
        if self._client is None:
            endpoint = self._endpoint or os.environ.get(ENDPOINT_ENV)
            if self._client_factory is not None:
                self._client = self._client_factory()
            elif endpoint:  # plaintext gRPC, no credentials: a local fake
                channel = grpc.insecure_channel(endpoint)
                self._client = IAMClient(transport=IAMGrpcTransport(channel=channel))
            else:  # iam.googleapis.com with Application Default Credentials
                self._client = IAMClient()
        return self._client

    def _call(self, operation: str, t: GcpServiceAccountTarget, method: str, request: Any) -> Any:
        try:
            return getattr(self._iam, method)(request=request, retry=None, timeout=self._timeout)
        except (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError) as exc:
            raise map_gcp_error(exc, operation, t.service_account) from exc

    def _list_keys(self, t: GcpServiceAccountTarget) -> list[types.ServiceAccountKey]:
        request = types.ListServiceAccountKeysRequest(name=t.resource, key_types=[USER_MANAGED])
        response = self._call("ListServiceAccountKeys", t, "list_service_account_keys", request)
        return list(response.keys)

    # -- token exchange -------------------------------------------------------------

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """Exchange the key file `secret` for a token: accepted, or refused and why.

        A throttled or failing endpoint (after google-auth's own retries) or an
        unreachable one is transient: it says nothing about the key.
        """
        try:
            credentials = service_account.Credentials.from_service_account_info(
                secret, scopes=[TOKEN_SCOPE]
            )
        except ValueError:
            credentials = None
        if credentials is None:  # raised outside the except block: no context quoting the key
            raise PermanentProviderError(
                f"the key file for service account {target.service_account!r} (key "
                f"{secret['private_key_id']}) has a private key google-auth cannot load"
            )
        with requests.Session() as session:
            request = functools.partial(Request(session), timeout=self._timeout)
            try:
                credentials.refresh(request)
            except auth_exceptions.RefreshError as exc:
                if exc.retryable:
                    raise map_gcp_error(exc, "token exchange", target.service_account, secret) from exc
                return refused(_redact(str(exc.args[0]) if exc.args else "refused", secret))
            except auth_exceptions.TransportError as exc:
                raise map_gcp_error(exc, "token exchange", target.service_account, secret) from exc
        return accepted()


def _target(target: Any) -> GcpServiceAccountTarget:
    return parse_target(GcpServiceAccountTarget, "gcp.service_account_key", target)


def _key_id(key: types.ServiceAccountKey) -> str:
    return str(key.name).rsplit("/", 1)[-1]


def _key_name(t: GcpServiceAccountTarget, credential_id: str) -> str:
    if not KEY_ID_PATTERN.match(credential_id):
        raise PermanentProviderError(
            f"{credential_id!r} is not a key id of service account {t.service_account!r}"
        )
    return f"{t.resource}/keys/{credential_id}"


def _key_file(secret: Secret, t: GcpServiceAccountTarget) -> KeyFile:
    """The parsed key file in `secret`; PermanentProviderError if it holds none."""
    try:
        key_file = json.loads(secret.get(KEY_JSON) or "null")
    except ValueError:
        key_file = None
    # Raised outside the except block so the error carries no context quoting the key.
    if not isinstance(key_file, dict):
        raise PermanentProviderError(
            f"secret for service account {t.service_account!r} has no JSON key file "
            f"in field {KEY_JSON}"
        )
    missing = [name for name in KEY_FILE_FIELDS if not isinstance(key_file.get(name), str)]
    if missing:
        raise PermanentProviderError(
            f"the key file for service account {t.service_account!r} lacks field(s) "
            f"{', '.join(missing)}"
        )
    if key_file["type"] != "service_account":
        raise PermanentProviderError(
            f"the key file for service account {t.service_account!r} holds a "
            f"{key_file['type']!r} credential, not a service account key"
        )
    return key_file


def _redact(text: str, key_file: KeyFile | None) -> str:
    """`text` without any line of the key file's private key, should a server echo it."""
    lines = str((key_file or {}).get("private_key", "")).splitlines()
    return redact(text, (line for line in lines if len(line) >= 16))
