"""Microsoft Entra client secrets: the `azure.app_secret` provider.

Rotates a client secret (a passwordCredential) of an Entra application, or of a
service principal, through Microsoft Graph v1.0: `addPassword`, `removePassword`
and `GET /{applications|servicePrincipals}/{id}?$select=passwordCredentials`,
called with `requests` and a bearer token the admin identity gets from
azure-identity for https://graph.microsoft.com/.default. The admin identity
needs Application.ReadWrite.All (or Application.ReadWrite.OwnedBy as an owner).

precheck names every unexpired secret of the target as one to replace (after a
breach, every secret of an exposed app is suspect); expired ones are left alone.

Proof of life and death is a client-credentials token request at the Entra
token endpoint with the app's client id and the secret (ClientSecretCredential).
A new secret can take a few seconds to work everywhere, a removed one to stop
working; both checks retry a bounded number of times.

Entra has no way to disable a password credential: `disable` and `enable` do
nothing, so a revoke-first rotation leaves the old secret working until
`delete` (removePassword) revokes it. Access tokens already issued with a
removed secret stay valid until they expire (about an hour): Entra cannot
revoke app-only tokens. Entra allows many secrets per app: no quota.

Configuration (constructor keyword, else environment variable, read at first use):
    credential: the admin identity (any azure-core TokenCredential, valid for the
        target's tenant); else a ClientSecretCredential in the target's tenant from
        client_id / KEYTURN_AZURE_CLIENT_ID and client_secret / KEYTURN_AZURE_CLIENT_SECRET.
    authority / KEYTURN_AZURE_AUTHORITY: the Entra authority, e.g. https://login.microsoftonline.us
        (default: azure-identity's, i.e. AZURE_AUTHORITY_HOST or login.microsoftonline.com).
        MSAL's instance discovery is off for an authority named here.
    graph_url / KEYTURN_GRAPH_URL: default https://graph.microsoft.com/v1.0.
    graph_scope / KEYTURN_GRAPH_SCOPE: default https://graph.microsoft.com/.default.
    connection_verify: a CA bundle path or False for TLS to the authority and Graph
        (default: the system store, or REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.identity import ClientSecretCredential
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from keyturn.durations import Duration
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
    StillValid,
    TransientProviderError,
    VerificationFailed,
    for_status,
)
from keyturn.providers.probing import Answer, Probing, accepted, refused
from keyturn.providers.propagation import Propagation
from keyturn.providers.targets import parse_target
from keyturn.secret import Secret, redact

TENANT_ID = "tenant_id"
CLIENT_ID = "client_id"
CLIENT_SECRET = "client_secret"
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GUID_PATTERN = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"

# HTTP statuses (Graph or the token endpoint) are classified by keyturn's one
# table (keyturn.httpstatus). Connection failures and timeouts are transient; a
# token the admin identity cannot get is AccessDenied.
TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    ServiceRequestError,
    ServiceResponseError,
)

# What the token endpoint answers when it refuses a client secret (AADSTS codes).
REJECTED_AADSTS = {
    7000215: "invalid client secret",
    7000222: "expired client secret",
    700016: "application not found in the directory",
    7000112: "application disabled",
}
AADSTS = re.compile(r"\bAADSTS(\d+)\b")
HTTP_ERROR = re.compile(r"\bHTTP Error: (\d{3})\b")  # how MSAL reports a failed HTTP status


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


class AzureAppSecretTarget(BaseModel):
    """Which Entra application (or service principal) gets a new client secret.

    application_id is the application's *object* id (Graph's `id`), not its client
    id; client_id is the app's Application (client) ID, used to prove the secret.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str = Field(pattern=r"^[A-Za-z0-9.-]+$", max_length=256)
    client_id: str = Field(pattern=GUID_PATTERN)
    application_id: str | None = Field(default=None, pattern=GUID_PATTERN)
    service_principal_id: str | None = Field(default=None, pattern=GUID_PATTERN)
    display_name: str | None = Field(default=None, min_length=1, max_length=256)
    lifetime: Annotated[Duration, AfterValidator(_positive)] = timedelta(days=90)

    @model_validator(mode="after")
    def _one_object(self) -> AzureAppSecretTarget:
        if (self.application_id is None) == (self.service_principal_id is None):
            raise ValueError("give exactly one of application_id and service_principal_id")
        return self

    @property
    def collection(self) -> Literal["applications", "servicePrincipals"]:
        return "applications" if self.application_id else "servicePrincipals"

    @property
    def object_id(self) -> str:
        return self.application_id or self.service_principal_id or ""

    def __str__(self) -> str:
        # The object id alone names the target: tenant and client id also travel in the
        # delivered secret, and a message should not repeat any of its fields.
        kind = "application" if self.application_id else "service principal"
        return f"{kind} {self.object_id}"


class AzureAppSecretProvider(Probing, ProviderDefaults):
    """Rotates a client secret of an Entra application or service principal via Graph."""

    name: ClassVar[str] = "azure.app_secret"
    target_model: ClassVar[type[BaseModel]] = AzureAppSecretTarget
    family: ClassVar[str] = "azure"
    step_timeout: ClassVar[timedelta] = timedelta(seconds=90)  # propagation retries

    def __init__(
        self,
        *,
        credential: TokenCredential | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        authority: str | None = None,
        graph_url: str | None = None,
        graph_scope: str | None = None,
        connection_verify: bool | str | None = None,
        timeout: float = 30.0,
        token_retries: int = 2,
        propagation_attempts: int = 6,
        propagation_delay: float = 5.0,
    ) -> None:
        if token_retries < 0:
            raise ValueError("token_retries must be >= 0")
        self._credential = credential
        self._client_id = client_id
        self._client_secret = client_secret
        self._authority = authority
        self._graph_url = graph_url
        self._graph_scope = graph_scope
        self._verify = connection_verify
        self._timeout = timeout
        self._token_retries = token_retries
        self._propagation = Propagation(propagation_attempts, propagation_delay)
        self._admin_credentials: dict[str, TokenCredential] = {}
        self._session = requests.Session()

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        return SecretShape(fields=(TENANT_ID, CLIENT_ID, CLIENT_SECRET))

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        now = datetime.now(UTC)
        passwords = self._passwords(t)
        current = [p["keyId"] for p in passwords if _end(p) > now]
        if not current:
            expired = [p["keyId"] for p in passwords]
            found = f" (expired: {', '.join(expired)})" if expired else ""
            raise CredentialNotFound(
                f"{t} has no unexpired client secret{found}; nothing to rotate"
            )
        return Precheck(old_credential_ids=current)

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        return [p["keyId"] for p in self._passwords(_target(target))]

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = _target(target)
        end = datetime.now(UTC) + t.lifetime
        spec = {
            "displayName": t.display_name or " ".join(filter(None, ["keyturn", ctx.credential])),
            "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        answer = self._graph(t, "POST", "/addPassword", "addPassword", {"passwordCredential": spec})
        try:
            created = answer.json()
            key_id, secret_text = created["keyId"], created["secretText"]
        except (ValueError, KeyError, TypeError):
            raise PermanentProviderError(
                f"addPassword for {t} answered without keyId and secretText"
            ) from None
        secret = {TENANT_ID: t.tenant_id, CLIENT_ID: t.client_id, CLIENT_SECRET: secret_text}
        return NewCredential(credential_id=key_id, secret=secret)

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        _check_secret(t, secret, "verify", VerificationFailed)
        self.expect_accepted(t, secret, f"the token endpoint refused the new client secret of {t}")

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """Nothing: Entra cannot disable a password credential; `delete` revokes it."""

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        """Nothing: `disable` changed nothing."""

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = _target(target)
        operation = f"removePassword {credential_id}"
        try:
            self._graph(t, "POST", "/removePassword", operation, {"keyId": credential_id})
        except PermanentProviderError as exc:
            # 404, or whatever Graph answers for an unknown keyId (undocumented): gone is gone.
            if isinstance(exc, AccessDenied) or credential_id in self._ids_if_any(t):
                raise

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = _target(target)
        if self._propagation.settle(
            lambda: credential_id in self._ids_if_any(t), lambda there: not there
        ):
            raise StillValid(
                f"client secret {credential_id} still exists for {t} "
                f"after {self._propagation.attempts} checks"
            )
        if ctx.old_secret is None:
            return
        old = ctx.old_secret
        _check_secret(t, old, "confirm_revoked", PermanentProviderError)
        self.expect_refused(
            t, old,
            f"client secret {credential_id} of {t} is removed but the token endpoint still "
            "accepted the old secret",
        )

    # -- Graph --------------------------------------------------------------------

    def _passwords(self, t: AzureAppSecretTarget) -> list[dict[str, Any]]:
        answer = self._graph(t, "GET", "?$select=passwordCredentials", "GET passwordCredentials")
        try:
            return list(answer.json()["passwordCredentials"] or [])
        except (ValueError, KeyError, TypeError):
            raise PermanentProviderError(
                f"GET passwordCredentials for {t} answered without passwordCredentials"
            ) from None

    def _ids_if_any(self, t: AzureAppSecretTarget) -> list[str]:
        """The target's secret ids; none when the application itself is gone."""
        try:
            return [p["keyId"] for p in self._passwords(t)]
        except CredentialNotFound:
            return []

    def _graph(
        self, t: AzureAppSecretTarget, method: str, suffix: str, operation: str, body: Any = None
    ) -> requests.Response:
        base = self._setting(self._graph_url, "KEYTURN_GRAPH_URL", DEFAULT_GRAPH_URL).rstrip("/")
        url = f"{base}/{t.collection}/{t.object_id}{suffix}"
        headers = {"Authorization": f"Bearer {self._admin_token(t, operation)}"}
        try:
            answer = self._session.request(
                method,
                url,
                json=body,
                headers=headers,
                timeout=self._timeout,
                verify=True if self._verify is None else self._verify,
            )
        except requests.RequestException as exc:
            raise _error(exc, operation, t) from None
        if answer.status_code >= 400:
            raise _graph_error(answer, operation, t)
        return answer

    def _admin_token(self, t: AzureAppSecretTarget, operation: str) -> str:
        credential = self._credential or self._admin_credentials.get(t.tenant_id)
        client_id = self._setting(self._client_id, "KEYTURN_AZURE_CLIENT_ID", "")
        client_secret = self._setting(self._client_secret, "KEYTURN_AZURE_CLIENT_SECRET", "")
        if credential is None and not (client_id and client_secret):
            raise PermanentProviderError(
                f"{operation} for {t}: no admin identity configured: set "
                "KEYTURN_AZURE_CLIENT_ID and KEYTURN_AZURE_CLIENT_SECRET or pass credential="
            )
        try:
            if credential is None:
                credential = self._secret_credential(t.tenant_id, client_id, client_secret)
                self._admin_credentials[t.tenant_id] = credential
            return credential.get_token(self._scope).token
        except (AzureError, ValueError) as exc:
            raise _error(exc, f"{operation}: Graph token for the admin identity", t) from None

    # -- the token endpoint ---------------------------------------------------------

    @property
    def _scope(self) -> str:
        return self._setting(self._graph_scope, "KEYTURN_GRAPH_SCOPE", DEFAULT_GRAPH_SCOPE)

    def _secret_credential(
        self, tenant_id: str, client_id: str, client_secret: str
    ) -> ClientSecretCredential:
        options: dict[str, Any] = {"retry_total": self._token_retries}
        authority = self._setting(self._authority, "KEYTURN_AZURE_AUTHORITY", "")
        if authority:
            options.update(authority=authority, disable_instance_discovery=True)
        if self._verify is not None:
            options["connection_verify"] = self._verify
        return ClientSecretCredential(tenant_id, client_id, client_secret, **options)

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """Ask the token endpoint for a token with `secret`: accepted, or refused and why."""
        try:
            with self._secret_credential(
                target.tenant_id, target.client_id, secret[CLIENT_SECRET]
            ) as cred:
                cred.get_token(self._scope)
            return accepted()
        except (AzureError, ValueError) as exc:
            code = next((int(c) for c in AADSTS.findall(str(exc))), None)
            if code in REJECTED_AADSTS:
                return refused(f"AADSTS{code}: {REJECTED_AADSTS[code]}")
            raise _error(exc, "token request", target, secret) from None

    @staticmethod
    def _setting(value: str | None, env: str, default: str) -> str:
        return value if value is not None else os.environ.get(env, default)


# -- errors ---------------------------------------------------------------------------


def _graph_error(
    answer: requests.Response, operation: str, t: AzureAppSecretTarget
) -> ProviderError:
    """Classify a Graph error answer; the message carries its OData code and message."""
    try:
        error = answer.json()["error"]
        detail = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, KeyError, TypeError, AttributeError):
        detail = answer.reason or ""
    retry_after = answer.headers.get("Retry-After")
    if retry_after:
        detail += f" (retry after {retry_after} s)"
    return for_status(answer.status_code)(
        f"{operation} for {t} failed: {answer.status_code} {detail}".rstrip()
    )


def _error(
    exc: Exception, operation: str, t: AzureAppSecretTarget, secret: Secret | None = None
) -> ProviderError:
    """Classify a failed request or token request; the message never holds a secret value."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    statuses = [m for e in chain for m in HTTP_ERROR.findall(str(e))]
    if any(isinstance(e, TRANSIENT_EXCEPTIONS) for e in chain):
        kind: type[ProviderError] = TransientProviderError
    elif statuses:
        kind = for_status(int(statuses[0]))
    elif isinstance(exc, AzureError) and secret is None:
        kind = AccessDenied  # the admin identity could not authenticate
    else:
        kind = PermanentProviderError
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())
    detail = redact(detail, (secret or {}).values())
    return kind(f"{operation} for {t} failed: {detail}")


# -- helpers ----------------------------------------------------------------------------


def _target(target: Any) -> AzureAppSecretTarget:
    return parse_target(AzureAppSecretTarget, "azure.app_secret", target)


def _check_secret(
    t: AzureAppSecretTarget, secret: Secret, step: str, mismatch: type[ProviderError]
) -> None:
    """The secret must have all fields and name the target's tenant and client id."""
    missing = sorted({TENANT_ID, CLIENT_ID, CLIENT_SECRET} - secret.keys())
    if missing:
        raise PermanentProviderError(f"{step}: secret for {t} lacks field(s) {', '.join(missing)}")
    given = (secret[TENANT_ID].lower(), secret[CLIENT_ID].lower())
    if given != (t.tenant_id.lower(), t.client_id.lower()):
        raise mismatch(f"{step}: the secret names another tenant or client id than {t}")


def _end(password: dict[str, Any]) -> datetime:
    """A passwordCredential's endDateTime (Graph writes up to seven fractional digits)."""
    value = password.get("endDateTime")
    if not value:
        return datetime.max.replace(tzinfo=UTC)
    return datetime.fromisoformat(value)
