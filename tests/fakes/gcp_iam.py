"""A faithful local fake of Google Cloud IAM service account keys, for tests.

No emulator exists for GCP IAM, so this serves the real wire protocols on
127.0.0.1, driven through the real SDKs:

- the `google.iam.admin.v1.IAM` gRPC service (built from `iam_admin_v1.types`),
  methods GetServiceAccount, ListServiceAccountKeys, GetServiceAccountKey,
  CreateServiceAccountKey, DeleteServiceAccountKey, DisableServiceAccountKey and
  EnableServiceAccountKey; reach it with
  `IAMClient(transport=IAMGrpcTransport(channel=grpc.insecure_channel(fake.address)))`;
- the OAuth2 token endpoint (`fake.token_url`), which grants an access token
  for a JWT-bearer assertion (RFC 7523) signed by an enabled user-managed key,
  as google-auth's `service_account.Credentials.refresh()` sends it.

Like GCP: real RSA key pairs, key names `projects/P/serviceAccounts/EMAIL/keys/KEYID`
with 40-hex key ids, `private_key_data` holding the JSON key file (over gRPC the
bytes themselves; REST shows them base64-encoded), Google keeping only the public
key (as a self-signed X.509 certificate), at most 10 user-managed keys per account
(FAILED_PRECONDITION beyond), one system-managed key per account, and
`invalid_grant: Invalid JWT Signature.` for a deleted, disabled or wrong key.
The key file's `token_uri` is this fake's token URL (GCP's is
https://oauth2.googleapis.com/token, which the JWT's `aud` still names).

`token_granted(key_json)` asks the token endpoint about a key file as a client
would; `forged(key_json)` gives the same key file with another RSA key in it.

Not like GCP: the fake accepts any call metadata (no authentication or IAM
policy; `failing(PERMISSION_DENIED)` stands in for a caller without permission),
changes are visible at once (no eventual consistency), and it makes only
JSON key files (no PKCS#12).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, quote

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request
from google.cloud.iam_admin_v1 import types
from google.oauth2 import service_account
from google.protobuf import empty_pb2

SERVICE = "google.iam.admin.v1.IAM"
MAX_USER_MANAGED_KEYS = 10
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FOREVER = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
USER_MANAGED = types.ListServiceAccountKeysRequest.KeyType.USER_MANAGED
SYSTEM_MANAGED = types.ListServiceAccountKeysRequest.KeyType.SYSTEM_MANAGED
HTTP_STATUS = {  # what the token endpoint answers while an injected fault is on
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class RpcFailure(Exception):
    """Aborts the current RPC with `code` and `message`."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class FakeKey:
    """What Google keeps of a key: its public half (as a certificate) and its state."""

    key_id: str
    certificate_pem: bytes
    key_type: types.ListServiceAccountKeysRequest.KeyType
    bits: int
    created: dt.datetime
    disabled: bool = False

    def public_key(self) -> rsa.RSAPublicKey:
        public = x509.load_pem_x509_certificate(self.certificate_pem).public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        return public


@dataclass
class FakeServiceAccount:
    email: str
    project: str
    unique_id: str
    keys: dict[str, FakeKey] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"projects/{self.project}/serviceAccounts/{self.email}"

    def user_keys(self) -> list[FakeKey]:
        return [k for k in self.keys.values() if k.key_type == USER_MANAGED]


class FakeGcpIam:
    """The IAM gRPC service and the OAuth2 token endpoint, on free loopback ports.

    Use as a context manager (or start()/stop()). `.address` is host:port for
    gRPC, `.token_url` the token endpoint; `granted` lists the key ids the token
    endpoint accepted, in order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, FakeServiceAccount] = {}
        self._fault: tuple[grpc.StatusCode, str] | None = None
        self.granted: list[str] = []
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._grpc.add_generic_rpc_handlers([self._handlers()])
        self._port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _token_handler(self))
        self._http_thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self.address = f"127.0.0.1:{self._port}"
        self.token_url = f"http://127.0.0.1:{self._http.server_address[1]}/token"

    def start(self) -> Self:
        self._grpc.start()
        self._http_thread.start()
        return self

    def stop(self) -> None:
        self._grpc.stop(grace=None)
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test-side controls ---------------------------------------------------

    def add_service_account(self, email: str) -> FakeServiceAccount:
        """A service account (project from its email domain) with one system-managed key."""
        domain = email.split("@", 1)[1]
        account = FakeServiceAccount(
            email=email,
            project=domain.removesuffix(".iam.gserviceaccount.com"),
            unique_id=str(10**20 + secrets.randbelow(9 * 10**20)),
        )
        system_key, _ = _new_key(SYSTEM_MANAGED, 2048)
        account.keys[system_key.key_id] = system_key
        with self._lock:
            self._accounts[email] = account
        return account

    def remove_service_account(self, email: str) -> None:
        with self._lock:
            self._accounts.pop(email, None)

    def create_key(self, email: str, disabled: bool = False) -> str:
        """Create a user-managed key as CreateServiceAccountKey does; returns its JSON key file."""
        created = self._create(self._account(f"projects/-/serviceAccounts/{email}"), 2048)
        if disabled:
            self._set_disabled(created.message.name, True)
        return created.file.decode()

    def key_states(self, email: str) -> dict[str, bool]:
        """User-managed key id -> disabled, straight from the fake's state."""
        with self._lock:
            return {k.key_id: k.disabled for k in self._accounts[email].user_keys()}

    @contextmanager
    def failing(self, code: grpc.StatusCode, message: str = "injected fault") -> Iterator[None]:
        """While inside, every RPC aborts with `code` and the token endpoint answers an error."""
        self._fault = (code, message)
        try:
            yield
        finally:
            self._fault = None

    # -- gRPC methods ---------------------------------------------------------

    def _handlers(self) -> grpc.GenericRpcHandler:
        def method(
            call: Callable[[Any], Any], request: Any, response: Callable[[Any], bytes]
        ) -> grpc.RpcMethodHandler:
            def handle(message: Any, context: grpc.ServicerContext) -> Any:
                try:
                    if self._fault is not None:
                        raise RpcFailure(*self._fault)
                    return call(message)
                except RpcFailure as failure:
                    context.abort(failure.code, str(failure))

            return grpc.unary_unary_rpc_method_handler(
                handle, request_deserializer=request.deserialize, response_serializer=response
            )

        empty = empty_pb2.Empty.SerializeToString
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "GetServiceAccount": method(
                    self._get_account,
                    types.GetServiceAccountRequest,
                    types.ServiceAccount.serialize,
                ),
                "ListServiceAccountKeys": method(
                    self._list_keys,
                    types.ListServiceAccountKeysRequest,
                    types.ListServiceAccountKeysResponse.serialize,
                ),
                "GetServiceAccountKey": method(
                    self._get_key,
                    types.GetServiceAccountKeyRequest,
                    types.ServiceAccountKey.serialize,
                ),
                "CreateServiceAccountKey": method(
                    self._create_key,
                    types.CreateServiceAccountKeyRequest,
                    types.ServiceAccountKey.serialize,
                ),
                "DeleteServiceAccountKey": method(
                    self._delete_key, types.DeleteServiceAccountKeyRequest, empty
                ),
                "DisableServiceAccountKey": method(
                    lambda r: self._set_disabled(r.name, True),
                    types.DisableServiceAccountKeyRequest,
                    empty,
                ),
                "EnableServiceAccountKey": method(
                    lambda r: self._set_disabled(r.name, False),
                    types.EnableServiceAccountKeyRequest,
                    empty,
                ),
            },
        )

    def _get_account(self, request: types.GetServiceAccountRequest) -> types.ServiceAccount:
        account = self._account(request.name)
        return types.ServiceAccount(
            name=account.name,
            project_id=account.project,
            unique_id=account.unique_id,
            email=account.email,
            oauth2_client_id=account.unique_id,
        )

    def _list_keys(
        self, request: types.ListServiceAccountKeysRequest
    ) -> types.ListServiceAccountKeysResponse:
        wanted = set(request.key_types) or {USER_MANAGED, SYSTEM_MANAGED}
        if types.ListServiceAccountKeysRequest.KeyType.KEY_TYPE_UNSPECIFIED in wanted:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "Invalid key type.")
        account = self._account(request.name)
        with self._lock:
            keys = [k for k in account.keys.values() if k.key_type in wanted]
            return types.ListServiceAccountKeysResponse(
                keys=[_key_message(account, k) for k in keys]
            )

    def _get_key(self, request: types.GetServiceAccountKeyRequest) -> types.ServiceAccountKey:
        account, key = self._key(request.name)
        message = _key_message(account, key)
        public_type = types.ServiceAccountPublicKeyType
        if request.public_key_type == public_type.TYPE_X509_PEM_FILE:
            message.public_key_data = key.certificate_pem
        elif request.public_key_type == public_type.TYPE_RAW_PUBLIC_KEY:
            message.public_key_data = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return message

    def _create_key(self, request: types.CreateServiceAccountKeyRequest) -> types.ServiceAccountKey:
        if request.private_key_type == types.ServiceAccountPrivateKeyType.TYPE_PKCS12_FILE:
            raise RpcFailure(
                grpc.StatusCode.INVALID_ARGUMENT, "The fake makes JSON key files only."
            )
        small = request.key_algorithm == types.ServiceAccountKeyAlgorithm.KEY_ALG_RSA_1024
        created = self._create(self._account(request.name), 1024 if small else 2048)
        message = created.message
        message.private_key_type = types.ServiceAccountPrivateKeyType.TYPE_GOOGLE_CREDENTIALS_FILE
        message.private_key_data = created.file
        return message

    def _delete_key(self, request: types.DeleteServiceAccountKeyRequest) -> empty_pb2.Empty:
        account, key = self._key(request.name)
        with self._lock:
            del account.keys[key.key_id]
        return empty_pb2.Empty()

    def _set_disabled(self, name: str, disabled: bool) -> empty_pb2.Empty:
        _, key = self._key(name)
        if key.key_type != USER_MANAGED:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "System-managed keys cannot change.")
        with self._lock:
            key.disabled = disabled
        return empty_pb2.Empty()

    # -- state ----------------------------------------------------------------

    def _account(self, name: str) -> FakeServiceAccount:
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "serviceAccounts":
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource name {name!r}.")
        project, ident = parts[1], parts[3]
        with self._lock:
            for account in self._accounts.values():
                if ident in (account.email, account.unique_id) and project in (
                    "-",
                    account.project,
                ):
                    return account
        raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"Service account {name} does not exist.")

    def _key(self, name: str) -> tuple[FakeServiceAccount, FakeKey]:
        account_name, sep, key_id = name.rpartition("/keys/")
        if not sep or not key_id or "/" in key_id:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid key name {name!r}.")
        account = self._account(account_name)
        with self._lock:
            key = account.keys.get(key_id)
        if key is None:
            raise RpcFailure(
                grpc.StatusCode.NOT_FOUND, f"Service account key {name} does not exist."
            )
        return account, key

    def _create(self, account: FakeServiceAccount, bits: int) -> _Created:
        key, private_pem = _new_key(USER_MANAGED, bits)
        with self._lock:
            if len(account.user_keys()) >= MAX_USER_MANAGED_KEYS:
                raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, "Precondition check failed.")
            account.keys[key.key_id] = key
        key_file = {
            "type": "service_account",
            "project_id": account.project,
            "private_key_id": key.key_id,
            "private_key": private_pem,
            "client_email": account.email,
            "client_id": account.unique_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_url,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": (
                "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(account.email)
            ),
            "universe_domain": "googleapis.com",
        }
        return _Created(_key_message(account, key), json.dumps(key_file, indent=2).encode())

    # -- token endpoint -------------------------------------------------------

    def grant(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """The token endpoint's answer (status, JSON body) to a form-encoded request."""
        if (fault := self._fault) is not None:
            code, message = fault
            return HTTP_STATUS.get(code, 400), {
                "error": code.name.lower(),
                "error_description": message,
            }
        if form.get("grant_type") != [JWT_BEARER] or len(form.get("assertion", [])) != 1:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "Invalid grant_type.",
            }
        try:
            header, claims, signed, signature = _parse_jwt(form["assertion"][0])
        except (ValueError, TypeError):
            return _invalid_grant("Invalid JWT: malformed.")
        with self._lock:
            account = self._accounts.get(str(claims.get("iss")))
            key = account.keys.get(str(header.get("kid"))) if account else None
            usable = key is not None and key.key_type == USER_MANAGED and not key.disabled
        if account is None:
            return _invalid_grant("Invalid grant: account not found")
        if header.get("alg") != "RS256" or key is None or not usable:
            return _invalid_grant("Invalid JWT Signature.")
        try:
            key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return _invalid_grant("Invalid JWT Signature.")
        if claims.get("aud") not in (GOOGLE_TOKEN_URL, self.token_url):
            return _invalid_grant("Invalid JWT: Failed audience check.")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not (isinstance(iat, int) and isinstance(exp, int)) or not (
            iat - 300 <= now <= exp + 300 and 0 < exp - iat <= 3600
        ):
            return _invalid_grant(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe."
            )
        if not claims.get("scope"):
            return 400, {
                "error": "invalid_scope",
                "error_description": "Invalid OAuth scope or ID token audience provided.",
            }
        with self._lock:
            self.granted.append(key.key_id)
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}


@dataclass(frozen=True)
class _Created:
    message: types.ServiceAccountKey
    file: bytes


def token_granted(key_json: str) -> bool:
    """Does the token endpoint in this key file grant a token for it? Asked as a client would."""
    credentials = service_account.Credentials.from_service_account_info(
        json.loads(key_json), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    try:
        credentials.refresh(Request())
    except auth_exceptions.RefreshError:
        return False
    return True


def forged(key_json: str) -> str:
    """The same key file with another RSA key in it: the token endpoint refuses its JWT."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps({**json.loads(key_json), "private_key": pem})


def _new_key(key_type: Any, bits: int) -> tuple[FakeKey, str]:
    """A fresh RSA key pair: what Google keeps (a self-signed certificate) and the private PEM."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    key_id = secrets.token_hex(20)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key_id)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(FOREVER)
        .sign(private, hashes.SHA256())
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    fake = FakeKey(
        key_id=key_id,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_type=key_type,
        bits=bits,
        created=now,
    )
    return fake, private_pem


def _key_message(account: FakeServiceAccount, key: FakeKey) -> types.ServiceAccountKey:
    algorithm = types.ServiceAccountKeyAlgorithm
    return types.ServiceAccountKey(
        name=f"{account.name}/keys/{key.key_id}",
        key_algorithm=algorithm.KEY_ALG_RSA_1024
        if key.bits == 1024
        else algorithm.KEY_ALG_RSA_2048,
        valid_after_time=key.created,
        valid_before_time=FOREVER,
        key_origin=types.ServiceAccountKeyOrigin.GOOGLE_PROVIDED,
        key_type=key.key_type,
        disabled=key.disabled,
    )


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signed bytes, signature) of a compact JWS; ValueError/TypeError if not."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    header, claims = json.loads(_b64url(parts[0])), json.loads(_b64url(parts[1]))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TypeError("header and claims must be objects")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), _b64url(parts[2])


def _invalid_grant(description: str) -> tuple[int, dict[str, Any]]:
    return 400, {"error": "invalid_grant", "error_description": description}


def _token_handler(fake: FakeGcpIam) -> type[BaseHTTPRequestHandler]:
    class TokenHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # keep assertions out of test output

        def do_POST(self) -> None:
            if self.path != "/token":
                status, body = 404, {"error": "not_found"}
            else:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
                status, body = fake.grant(form)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return TokenHandler
