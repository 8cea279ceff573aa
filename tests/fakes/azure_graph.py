"""A local Microsoft Entra ID for the azure.app_secret provider: Graph and the token endpoint.

No emulator exists for Entra, so this fake speaks the two wire protocols the
provider and azure-identity use, on free 127.0.0.1 ports:

- Microsoft Graph v1.0 over plain http (`graph_url`): applications and
  servicePrincipals with their passwordCredentials: `GET /{collection}/{id}`
  (with `$select`), `POST .../addPassword`, `POST .../removePassword`, and
  OData error bodies {"error": {"code", "message", "innerError"}}. Bearer
  tokens must be ones the token endpoint issued for Graph in the object's
  tenant; a token of an app without Application.ReadWrite.All (`privileged`)
  gets 403 Authorization_RequestDenied.
- The Entra token endpoint over https (`authority`, self-signed certificate for
  127.0.0.1 in `ca_file`): OIDC discovery at
  `/{tenant}/v2.0/.well-known/openid-configuration` (what MSAL asks first when
  instance discovery is off) and `/{tenant}/oauth2/v2.0/token` for the
  client_credentials grant (client_secret_post or client_secret_basic). A secret
  is accepted while it is a live passwordCredential of the app or of its
  service principal in that tenant; refusals carry Entra's AADSTS codes.

Graph's answer to removePassword with an unknown keyId is not documented; the
fake answers 404 Request_ResourceNotFound.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
import secrets
import ssl
import string
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fakes.http_server import LoopbackRequestHandler

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_SCOPE = f"{GRAPH_RESOURCE}/.default"
COLLECTIONS = ("applications", "servicePrincipals")
TOKEN_LIFETIME = 3599
DEFAULT_LIFETIME = dt.timedelta(days=730)  # addPassword's default: two years
SECRET_ALPHABET = string.ascii_letters + string.digits + "~._-"
GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

# Graph's error codes for the statuses `failing` is usually asked for.
FAULT_CODES = {
    400: "Request_BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Authorization_RequestDenied",
    404: "Request_ResourceNotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def graph_time(moment: dt.datetime) -> str:
    """Graph's DateTimeOffset form: UTC with seven fractional digits, e.g. 2021-09-09T19:50:29.3086381Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class Password:
    """One passwordCredential; `secret_text` is only ever returned by addPassword."""

    key_id: str
    secret_text: str
    display_name: str | None
    start: dt.datetime
    end: dt.datetime

    def resource(self, with_secret: bool = False) -> dict[str, Any]:
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": graph_time(self.end),
            "hint": self.secret_text[:3],
            "keyId": self.key_id,
            "secretText": self.secret_text if with_secret else None,
            "startDateTime": graph_time(self.start),
        }


@dataclass
class DirectoryObject:
    """An application or service principal; `id` is its object id, `app_id` the client id."""

    tenant_id: str
    collection: str
    id: str
    app_id: str
    display_name: str
    privileged: bool = False
    passwords: list[Password] = field(default_factory=list)

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "passwordCredentials": [p.resource() for p in self.passwords],
        }


@dataclass(frozen=True)
class IssuedToken:
    tenant_id: str
    app_id: str
    resource: str
    expires: dt.datetime


@dataclass(frozen=True)
class Fault:
    status: int
    code: str
    message: str
    retry_after: int | None
    token_endpoint: bool

    def graph_body(self) -> bytes:
        return _odata_error(self.code, self.message)

    def token_body(self) -> dict[str, Any]:
        """The token endpoint's OAuth error: temporarily_unavailable for 429 and 5xx."""
        if self.status == 429 or self.status >= 500:
            return _aad_error(self.status, "temporarily_unavailable", 90033, self.message)[1]
        return _aad_error(self.status, "invalid_request", 50000, self.message)[1]


class EntraFake:
    """Graph at `graph_url` (http), the token endpoint under `authority` (https, trust `ca_file`)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], DirectoryObject] = {}
        self.tenants: set[str] = set()
        self.tokens: dict[str, IssuedToken] = {}
        self.graph_requests = 0
        self._fault: Fault | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="entra-fake-")
        self.ca_file = str(Path(self._dir.name) / "cert.pem")
        self._graph = ThreadingHTTPServer(("127.0.0.1", 0), _graph_handler(self))
        self._login = _TlsServer(("127.0.0.1", 0), _login_handler(self), self._tls_context())
        for server in (self._graph, self._login):
            server.daemon_threads = True
        self._threads = [
            threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True)
            for s in (self._graph, self._login)
        ]

    @property
    def graph_url(self) -> str:
        return f"http://127.0.0.1:{self._graph.server_address[1]}/v1.0"

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self._login.server_address[1]}"

    def start(self) -> EntraFake:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self._graph, self._login):
            server.shutdown()
            server.server_close()
        self._dir.cleanup()

    # -- directory state (what an administrator would set up in the portal) --------------

    def add_tenant(self) -> str:
        tenant_id = str(uuid.uuid4())
        with self.lock:
            self.tenants.add(tenant_id)
        return tenant_id

    def add_application(
        self, tenant_id: str, display_name: str, *, privileged: bool = False
    ) -> DirectoryObject:
        """An app registration; `privileged` grants it Application.ReadWrite.All."""
        app = DirectoryObject(
            tenant_id,
            "applications",
            str(uuid.uuid4()),
            str(uuid.uuid4()),
            display_name,
            privileged,
        )
        with self.lock:
            self.objects[(tenant_id, app.collection, app.id)] = app
        return app

    def add_service_principal(self, app: DirectoryObject) -> DirectoryObject:
        sp = DirectoryObject(
            app.tenant_id, "servicePrincipals", str(uuid.uuid4()), app.app_id, app.display_name
        )
        with self.lock:
            self.objects[(sp.tenant_id, sp.collection, sp.id)] = sp
        return sp

    def remove_object(self, obj: DirectoryObject) -> None:
        with self.lock:
            self.objects.pop((obj.tenant_id, obj.collection, obj.id), None)

    def add_password(
        self,
        obj: DirectoryObject,
        display_name: str | None = "initial",
        end: dt.datetime | None = None,
    ) -> tuple[str, str]:
        """Add a passwordCredential directly; returns (keyId, secretText)."""
        start = _now()
        password = Password(
            str(uuid.uuid4()), _secret_text(), display_name, start, end or start + DEFAULT_LIFETIME
        )
        with self.lock:
            obj.passwords.append(password)
        return password.key_id, password.secret_text

    def key_ids(self, obj: DirectoryObject) -> list[str]:
        with self.lock:
            return [p.key_id for p in obj.passwords]

    def admin(self, tenant_id: str) -> tuple[str, str]:
        """A privileged app in `tenant_id` with one secret: (client_id, client_secret)."""
        app = self.add_application(tenant_id, "keyturn-admin", privileged=True)
        return app.app_id, self.add_password(app, "keyturn admin")[1]

    # -- client side helpers -------------------------------------------------------------

    def token_accepted(self, tenant_id: str, client_id: str, client_secret: str) -> bool:
        """Ask the token endpoint over the wire whether it issues a token for this secret."""
        response = requests.post(
            f"{self.authority}/{tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
                "scope": GRAPH_SCOPE,
            },
            verify=self.ca_file,
            timeout=10,
        )
        if response.status_code == 200:
            return True
        if response.json().get("error") in ("invalid_client", "unauthorized_client"):
            return False
        raise AssertionError(f"token endpoint answered {response.status_code}: {response.text}")

    @contextmanager
    def failing(
        self,
        status: int,
        code: str | None = None,
        message: str = "Injected fault.",
        *,
        retry_after: int | None = None,
        token_endpoint: bool = False,
    ) -> Iterator[None]:
        """While inside, Graph (and the token endpoint if asked) answers `status` with an error body."""
        code = code or FAULT_CODES.get(status, "UnknownError")
        self._fault = Fault(status, code, message, retry_after, token_endpoint)
        try:
            yield
        finally:
            self._fault = None

    # -- internals ----------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256())
        )
        key_file = Path(self._dir.name) / "key.pem"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        Path(self.ca_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        return context

    def _find(self, tenant_id: str, collection: str, object_id: str) -> DirectoryObject | None:
        return self.objects.get((tenant_id, collection, object_id))

    def _by_app_id(self, tenant_id: str, app_id: str) -> list[DirectoryObject]:
        return [o for o in self.objects.values() if o.tenant_id == tenant_id and o.app_id == app_id]

    def _graph_principal(self, authorization: str | None) -> tuple[int, bytes] | IssuedToken:
        """The token behind `Authorization: Bearer ...`, or Graph's 401 answer."""
        if not authorization or not authorization.startswith("Bearer "):
            return 401, _odata_error("InvalidAuthenticationToken", "Access token is empty.")
        token = self.tokens.get(authorization.removeprefix("Bearer "))
        if token is None:
            return 401, _odata_error(
                "InvalidAuthenticationToken", "IDX14100: JWT is not well formed."
            )
        if token.expires <= _now():
            return 401, _odata_error(
                "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
            )
        if token.resource != GRAPH_RESOURCE:
            return 401, _odata_error(
                "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
            )
        return token

    def graph(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, token: IssuedToken
    ) -> tuple[int, Any]:
        """One Graph call by the holder of `token`: (status, JSON body or None)."""
        parts = path.split("/")
        if len(parts) not in (2, 3) or parts[0] not in COLLECTIONS:
            return 400, _odata_error("BadRequest", f"Resource not found for the segment '{path}'.")
        collection, object_id, action = parts[0], parts[1], (parts[2] if len(parts) == 3 else "")
        if not GUID.match(object_id):
            return 400, _odata_error(
                "Request_BadRequest", f"Invalid object identifier '{object_id}'."
            )
        routes = {("GET", ""), ("POST", "addPassword"), ("POST", "removePassword")}
        if (method, action) not in routes:
            return 405, _odata_error("Request_BadRequest", "Unsupported request method or action.")
        if not any(o.privileged for o in self._by_app_id(token.tenant_id, token.app_id)):
            return 403, _odata_error(
                "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        obj = self._find(token.tenant_id, collection, object_id)
        if obj is None:
            return 404, _odata_error(
                "Request_ResourceNotFound",
                f"Resource '{object_id}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        context = f"https://graph.microsoft.com/v1.0/$metadata#{collection}"
        if action == "":
            resource = obj.resource()
            select = [s for v in query.get("$select", []) for s in v.split(",") if s]
            if select:
                resource = {k: v for k, v in resource.items() if k in select}
                context += f"({','.join(select)})"
            return 200, {"@odata.context": f"{context}/$entity", **resource}
        if action == "addPassword":
            return self._add_password(obj, body)
        return self._remove_password(obj, body)

    def _add_password(self, obj: DirectoryObject, body: Any) -> tuple[int, Any]:
        spec = (body or {}).get("passwordCredential") or {}
        start = _now()
        try:
            end = (
                dt.datetime.fromisoformat(spec["endDateTime"])
                if spec.get("endDateTime")
                else start + DEFAULT_LIFETIME
            )
        except (TypeError, ValueError):
            return 400, _odata_error(
                "Request_BadRequest", "Invalid value specified for property 'endDateTime'."
            )
        if end.tzinfo is None or end <= start:
            return 400, _odata_error(
                "Request_BadRequest", "Invalid value specified for property 'endDateTime'."
            )
        password = Password(str(uuid.uuid4()), _secret_text(), spec.get("displayName"), start, end)
        obj.passwords.append(password)
        return 200, {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph."
            "passwordCredential",
            **password.resource(with_secret=True),
        }

    def _remove_password(self, obj: DirectoryObject, body: Any) -> tuple[int, Any]:
        key_id = (body or {}).get("keyId")
        if not isinstance(key_id, str) or not GUID.match(key_id):
            return 400, _odata_error("Request_BadRequest", "Invalid value specified for 'keyId'.")
        kept = [p for p in obj.passwords if p.key_id.lower() != key_id.lower()]
        if len(kept) == len(obj.passwords):
            return 404, _odata_error(
                "Request_ResourceNotFound", f"No password credential found with keyId '{key_id}'."
            )
        obj.passwords = kept
        return 204, None

    def token(self, tenant_id: str, form: dict[str, str], basic: str | None) -> tuple[int, Any]:
        """The client_credentials grant at /{tenant}/oauth2/v2.0/token."""
        if tenant_id not in self.tenants:
            return _aad_error(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant_id}' not found. Check to make "
                "sure you have the correct tenant ID and are signing into the correct cloud.",
            )
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if basic:
            user, _, password = base64.b64decode(basic).decode().partition(":")
            client_id, client_secret = unquote_plus(user), unquote_plus(password)
        if form.get("grant_type") != "client_credentials":
            return _aad_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        scope = form.get("scope", "")
        if not scope.endswith("/.default") or " " in scope.strip():
            return _aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not "
                "valid. Client credential flows must have a scope value with /.default suffixed "
                "to the resource identifier (application ID URI).",
            )
        owners = self._by_app_id(tenant_id, client_id or "")
        if not owners:
            return _aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' "
                f"was not found in the directory '{tenant_id}'.",
            )
        if not client_secret:
            return _aad_error(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or "
                "'request' is required for the 'client_credentials' grant type.",
            )
        matches = [p for o in owners for p in o.passwords if p.secret_text == client_secret]
        if not matches:
            return _aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the "
                "secret being sent in the request is the client secret value, not the client "
                f"secret ID, for a secret added to app '{client_id}'.",
            )
        now = _now()
        if all(p.end <= now for p in matches):
            return _aad_error(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{client_id}' are expired.",
            )
        access_token = secrets.token_urlsafe(32)
        self.tokens[access_token] = IssuedToken(
            tenant_id,
            client_id or "",
            scope.removesuffix("/.default"),
            now + dt.timedelta(seconds=TOKEN_LIFETIME),
        )
        return 200, {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": access_token,
        }

    def openid_configuration(self, tenant_id: str) -> tuple[int, Any]:
        if tenant_id not in self.tenants:
            return _aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant_id}' not found.")
        base = f"{self.authority}/{tenant_id}"
        return 200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{self.authority}/{tenant_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "msgraph_host": "graph.microsoft.com",
        }


def _secret_text() -> str:
    """Entra's current secret shape: 40 characters with "Q~" after a 3-character prefix."""
    body = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(37))
    return f"{body[:3]}8Q~{body[3:]}"[:40]


def _odata_error(code: str, message: str) -> bytes:
    inner = {
        "date": _now().strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }
    return json.dumps({"error": {"code": code, "message": message, "innerError": inner}}).encode()


def _aad_error(status: int, error: str, code: int, description: str) -> tuple[int, Any]:
    trace, correlation, now = uuid.uuid4(), uuid.uuid4(), _now()
    return status, {
        "error": error,
        "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\n"
        f"Correlation ID: {correlation}\r\nTimestamp: {now:%Y-%m-%d %H:%M:%SZ}",
        "error_codes": [code],
        "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
        "trace_id": str(trace),
        "correlation_id": str(correlation),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


class _TlsServer(ThreadingHTTPServer):
    """Wraps each accepted connection in TLS; the handshake runs in the handler's thread."""

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust the certificate hangs up mid-handshake
        super().finish_request(tls, client_address)


class _Handler(LoopbackRequestHandler):
    fake: EntraFake

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = (
            body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        )
        content_type = [("Content-Type", "application/json; charset=utf-8")] if data else []
        self.respond(status, content_type + list((headers or {}).items()), data)

    def _fault(self, token_endpoint: bool) -> bool:
        fault = self.fake._fault
        if fault is None or (token_endpoint and not fault.token_endpoint):
            return False
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        body = fault.token_body() if token_endpoint else fault.graph_body()
        self._answer(fault.status, body, headers)
        return True


def _graph_handler(fake: EntraFake) -> type[_Handler]:
    class GraphHandler(_Handler):
        def _handle(self) -> None:
            raw = self.read_body()
            with fake.lock:
                fake.graph_requests += 1
            if self._fault(token_endpoint=False):
                return
            url = urlsplit(self.path)
            if not url.path.startswith("/v1.0/"):
                self._answer(404, _odata_error("BadRequest", "Invalid version."))
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                self._answer(
                    400, _odata_error("BadRequest", "Unable to read JSON request payload.")
                )
                return
            with fake.lock:
                principal = fake._graph_principal(self.headers.get("Authorization"))
                if isinstance(principal, tuple):
                    status, answer = principal
                else:
                    path = url.path.removeprefix("/v1.0/").rstrip("/")
                    status, answer = fake.graph(
                        self.command, path, parse_qs(url.query), body, principal
                    )
            self._answer(status, answer)

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

    GraphHandler.fake = fake
    return GraphHandler


def _login_handler(fake: EntraFake) -> type[_Handler]:
    discovery = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
    token = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")

    class LoginHandler(_Handler):
        def do_GET(self) -> None:
            if self._fault(token_endpoint=True):
                return
            match = discovery.match(urlsplit(self.path).path)
            if match is None:
                self._answer(404, None)
                return
            with fake.lock:
                self._answer(*fake.openid_configuration(match.group(1)))

        def do_POST(self) -> None:
            raw = self.read_body()
            if self._fault(token_endpoint=True):
                return
            match = token.match(urlsplit(self.path).path)
            if match is None:
                self._answer(404, None)
                return
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            auth = self.headers.get("Authorization") or ""
            basic = auth.removeprefix("Basic ") if auth.startswith("Basic ") else None
            with fake.lock:
                self._answer(*fake.token(match.group(1), form, basic))

    LoginHandler.fake = fake
    return LoginHandler
