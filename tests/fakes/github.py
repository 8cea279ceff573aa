"""A loopback fake of GitHub's REST API (api.github.com), for PyGithub with base_url=fake.url.

No installable GitHub emulator exists, so provider tests drive the real SDK
against this server. It speaks the documented wire shapes (paths, status codes,
JSON field names from GitHub's REST docs / @octokit/openapi) and keeps a small
in-memory model: users with tokens, organizations, repositories with deploy
keys and webhooks, fine-grained PAT grants and webhook deliveries.

Built in: the core routes (GET /user, /users/{username}, /orgs/{org},
/repos/{owner}/{repo}), deploy keys, repository webhooks (config, pings,
deliveries signed like GitHub with the hook's secret), organization
fine-grained PAT grants and the credential revocation API. Other route modules
(e.g. fakes/github_actions.py) add theirs with `install(fake)` through
`GitHubFake.route`. `failing(status)` answers every request with a GitHub-style
error while inside, for fault-injection tests.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote_plus, unquote, urlsplit

from fakes.http_server import LoopbackHttpServer, LoopbackRequestHandler

DOCS = "https://docs.github.com/rest"
API_VERSION = "2022-11-28"
ALNUM = string.ascii_letters + string.digits
REASONS = {
    400: "Bad Request",
    401: "Bad credentials",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Failed",
    429: "API rate limit exceeded",
    500: "Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

Handler = Callable[["FakeRequest"], tuple]


def now() -> str:
    """GitHub's timestamp format: ISO 8601 UTC with a Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeHTTPError(Exception):
    """Raised by a handler to answer with a GitHub error body."""

    def __init__(self, status: int, message: str | None = None, errors: list | None = None):
        super().__init__(status)
        self.status = status
        self.message = message or REASONS.get(status, "Error")
        self.errors = errors


@dataclass
class FakeRequest:
    """One request as a handler sees it."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    principal: str | None
    body: bytes = b""


@dataclass
class Token:
    """A token the fake accepts. `kind` is "classic" or "fine_grained"."""

    value: str
    login: str
    kind: str
    id: int
    name: str
    scopes: list[str] = field(default_factory=list)
    expires_at: str | None = None
    revoked: bool = False


@dataclass
class Repo:
    """A repository and the state hung under it."""

    data: dict
    admins: set[str]
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> permission
    keys: dict[int, dict] = field(default_factory=dict)
    hooks: dict[int, dict] = field(default_factory=dict)
    hook_secrets: dict[int, str] = field(default_factory=dict)
    deliveries: dict[int, list[dict]] = field(default_factory=dict)  # hook id -> newest last


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern
    handler: Handler
    auth: bool


def error_body(status: int, message: str, errors: list | None = None) -> dict:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
    if errors:
        body["errors"] = errors
    return body


class GitHubFake(LoopbackHttpServer):
    """A loopback HTTP server speaking GitHub's REST API shapes (JSON)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, dict] = {}  # login (lower) -> simple-user JSON
        self.orgs: dict[str, dict] = {}  # login (lower) -> organization JSON
        self.org_admins: dict[str, set[str]] = {}
        self.repos: dict[str, Repo] = {}  # full name (lower) -> Repo
        self.tokens: dict[str, Token] = {}
        self.pat_grants: dict[str, dict[int, dict]] = {}  # org (lower) -> grant id -> grant JSON
        self.revoked_credentials: list[str] = []  # values sent to /credentials/revoke
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request served
        self._ids = itertools.count(1000)
        self._routes: list[Route] = []
        self._fault: tuple[int, str, dict[str, str]] | None = None
        self.failed_requests = 0
        super().__init__()
        self._install_builtin_routes()

    # -- server ------------------------------------------------------------------------------

    def _handle(self, request: LoopbackRequestHandler) -> None:
        body = request.read_body()
        status, payload, headers = self._dispatch(
            request.command, request.path, request.headers, body
        )
        data = b"" if payload is None else json.dumps(payload).encode()
        answer = list(headers.items())
        if payload is not None:
            answer.append(("Content-Type", "application/json; charset=utf-8"))
        request.respond(status, answer, data)

    @contextmanager
    def failing(
        self, status: int, message: str | None = None, headers: dict[str, str] | None = None
    ) -> Iterator[None]:
        """Answer every request with `status` and a GitHub error body while inside.

        `headers` are added to the answer (e.g. {"Retry-After": "1"} for a secondary
        rate limit, or {"X-RateLimit-Remaining": "0"} for an exhausted primary one).
        """
        self._fault = (status, message or REASONS.get(status, "Error"), dict(headers or {}))
        try:
            yield
        finally:
            self._fault = None

    # -- routing ----------------------------------------------------------------------------

    def route(self, method: str, template: str, *, auth: bool = True) -> Callable[[Handler], Handler]:
        """Register `handler(request) -> (status, body[, headers])` for METHOD template.

        Template segments in braces match one path segment (URL-decoded into
        request.params). With auth=True an unauthenticated request gets 401.
        """
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        pattern = re.compile(f"^{regex}$")

        def register(handler: Handler) -> Handler:
            self._routes.append(Route(method.upper(), template, pattern, handler, auth))
            return handler

        return register

    def principal(self, request: Any) -> str | None:
        """The login for an "Authorization: token X" / "Bearer X" header; None if not valid."""
        token = self.token_of(request)
        return token.login if token else None

    def token_of(self, request: Any) -> Token | None:
        """The live Token the request authenticates with, if any."""
        header = next(
            (v for k, v in request.headers.items() if k.lower() == "authorization"), ""
        )
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return None
        with self.lock:
            token = self.tokens.get(value.strip())
            return token if token and not token.revoked else None

    def _dispatch(
        self, method: str, raw_path: str, raw_headers: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"X-GitHub-Request-Id": uuid.uuid4().hex[:20].upper(), **rate_limit_headers()}
        parts = urlsplit(raw_path)
        self.requests.append((method, parts.path))
        if self._fault is not None:
            status, message, extra = self._fault
            self.failed_requests += 1
            return status, error_body(status, message), {**headers, **extra}
        request_headers = {k: v for k, v in raw_headers.items()}
        request = FakeRequest(method, parts.path, {}, {}, None, request_headers, None, body)
        token = self.token_of(request)
        if token is not None and token.kind == "classic":
            headers["X-OAuth-Scopes"] = ", ".join(token.scopes)
        if token is not None and token.expires_at:
            expiry = datetime.fromisoformat(token.expires_at)
            headers["GitHub-Authentication-Token-Expiration"] = expiry.strftime(
                "%Y-%m-%d %H:%M:%S UTC"
            )
        if token is None and raw_headers.get("Authorization"):
            return 401, error_body(401, "Bad credentials"), headers
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            return 400, error_body(400, "Problems parsing JSON"), headers
        path = parts.path.rstrip("/") or "/"
        for route in self._routes:
            match = route.pattern.match(path) if route.method == method else None
            if not match:
                continue
            if route.auth and token is None:
                return 401, error_body(401, "Requires authentication"), headers
            request = FakeRequest(
                method=method,
                path=path,
                params={k: unquote(v) for k, v in match.groupdict().items()},
                query=dict(parse_qsl(parts.query)),
                json=parsed,
                headers=request_headers,
                principal=token.login if token else None,
                body=body,
            )
            try:
                with self.lock:
                    answer = route.handler(request)
            except FakeHTTPError as exc:
                return exc.status, error_body(exc.status, exc.message, exc.errors), headers
            status, payload, *more = answer
            return status, payload, {**headers, **(more[0] if more else {})}
        return 404, error_body(404, "Not Found"), headers

    # -- state helpers (tests and route modules) --------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def add_user(self, login: str) -> str:
        """Create a user; returns a new classic token for it (ghp_..., scopes repo, admin:org)."""
        with self.lock:
            uid = self.next_id()
            self.users[login.lower()] = account_json(login, uid, "User")
            return self.mint_token(login, scopes=["repo", "admin:org", "admin:repo_hook"])

    def add_org(self, login: str, admin_login: str) -> None:
        with self.lock:
            self.orgs[login.lower()] = account_json(login, self.next_id(), "Organization")
            self.org_admins[login.lower()] = {admin_login.lower()}
            self.pat_grants.setdefault(login.lower(), {})

    def add_repo(self, full_name: str, owner_login: str) -> dict:
        """Create a private repository; `owner_login` (a user) is its admin.

        The account in `full_name` is the user `owner_login` or an organization
        (created with `owner_login` as admin if it does not exist yet).
        """
        owner_name = full_name.split("/")[0]
        with self.lock:
            owner = self.users.get(owner_name.lower()) or self.orgs.get(owner_name.lower())
            if owner is None:
                self.add_org(owner_name, owner_login)
                owner = self.orgs[owner_name.lower()]
            data = repository_json(self.next_id(), full_name, owner, self.url)
            self.repos[full_name.lower()] = Repo(data=data, admins={owner_login.lower()})
            return data

    def add_collaborator(self, full_name: str, login: str, permission: str = "push") -> None:
        """Give `login` a non-admin permission (pull, triage, push, maintain) on the repo."""
        with self.lock:
            self.repos[full_name.lower()].collaborators[login.lower()] = permission

    def mint_token(
        self,
        login: str,
        *,
        fine_grained: bool = False,
        name: str | None = None,
        scopes: list[str] | None = None,
        expires_at: str | None = None,
        org: str | None = None,
    ) -> str:
        """A new token for `login` (what the user creates in Settings, the harness's `supply`).

        Classic tokens (ghp_...) carry `scopes`; fine-grained ones (github_pat_...) do not.
        With `org`, the fine-grained token gets an approved grant in that organization.
        """
        with self.lock:
            user = self.users[login.lower()]
            if fine_grained:
                value = f"github_pat_{_random(22)}_{_random(59)}"
            else:
                value = f"ghp_{_random(36)}"
            token = Token(
                value=value,
                login=user["login"],
                kind="fine_grained" if fine_grained else "classic",
                id=self.next_id(),
                name=name or f"token-{len(self.tokens) + 1}",
                scopes=[] if fine_grained else list(scopes or ["repo"]),
                expires_at=expires_at,
            )
            self.tokens[value] = token
            if org is not None:
                self.grant_pat(org, value)
            return value

    def grant_pat(self, org: str, token_value: str) -> dict:
        """Approve a fine-grained token's access to `org` (the org's PAT grant list)."""
        with self.lock:
            token = self.tokens[token_value]
            if token.kind != "fine_grained":
                raise ValueError("only fine-grained tokens get organization grants")
            grant_id = self.next_id()
            grant = {
                "id": grant_id,
                "owner": self.users[token.login.lower()],
                "repository_selection": "all",
                "repositories_url": f"{self.url}/orgs/{org}/personal-access-tokens/{grant_id}/repositories",
                "permissions": {
                    "organization": {"members": "read"},
                    "repository": {"metadata": "read", "contents": "read"},
                    "other": {},
                },
                "access_granted_at": now(),
                "token_id": token.id,
                "token_name": token.name,
                "token_expired": False,
                "token_expires_at": token.expires_at,
                "token_last_used_at": None,
            }
            self.pat_grants[org.lower()][grant_id] = grant
            return grant

    def token_info(self, value: str) -> Token:
        with self.lock:
            return self.tokens[value]

    def add_hook(
        self,
        full_name: str,
        url: str,
        *,
        secret: str | None = None,
        content_type: str = "json",
        events: list[str] | None = None,
    ) -> dict:
        """Create a repository webhook (what POST /repos/{owner}/{repo}/hooks does)."""
        with self.lock:
            repo = self.repos[full_name.lower()]
            hook_id = self.next_id()
            api = f"{repo.data['url']}/hooks/{hook_id}"
            repo.hooks[hook_id] = {
                "type": "Repository",
                "id": hook_id,
                "name": "web",
                "active": True,
                "events": list(events or ["push"]),
                "config": {"content_type": content_type, "insecure_ssl": "0", "url": url},
                "updated_at": now(),
                "created_at": now(),
                "url": api,
                "test_url": f"{api}/test",
                "ping_url": f"{api}/pings",
                "deliveries_url": f"{api}/deliveries",
                "last_response": {"code": None, "status": "unused", "message": None},
            }
            if secret:
                repo.hook_secrets[hook_id] = secret
            repo.deliveries[hook_id] = []
            return self.hook_json(repo, hook_id)

    def hook_secret(self, full_name: str, hook_id: int) -> str | None:
        """The secret the hook signs with now (what only GitHub knows)."""
        with self.lock:
            return self.repos[full_name.lower()].hook_secrets.get(int(hook_id))

    def add_deploy_key(self, full_name: str, title: str, key: str, read_only: bool = True) -> dict:
        with self.lock:
            repo = self.repos[full_name.lower()]
            return self._add_key(repo, title, key, read_only, added_by=None)

    def deploy_keys(self, full_name: str) -> list[dict]:
        with self.lock:
            return [dict(k) for k in self.repos[full_name.lower()].keys.values()]

    def hook_json(self, repo: Repo, hook_id: int) -> dict:
        hook = json.loads(json.dumps(repo.hooks[hook_id]))
        hook["config"].update(self._masked_secret(repo, hook_id))
        return hook

    def _masked_secret(self, repo: Repo, hook_id: int) -> dict:
        return {"secret": "********"} if repo.hook_secrets.get(hook_id) else {}

    # -- access checks ----------------------------------------------------------------------

    def repo_for(self, request: FakeRequest, *, admin: bool = False) -> Repo:
        """The repo of {owner}/{repo} the principal can see (404 otherwise); 403 if admin needed."""
        full_name = f"{request.params['owner']}/{request.params['repo']}".lower()
        repo = self.repos.get(full_name)
        login = (request.principal or "").lower()
        if repo is None or (login not in repo.admins and login not in repo.collaborators):
            raise FakeHTTPError(404, "Not Found")
        if admin and login not in repo.admins:
            raise FakeHTTPError(403, "Must have admin rights to Repository.")
        return repo

    def org_admin(self, request: FakeRequest) -> str:
        org = request.params["org"].lower()
        if org not in self.orgs:
            raise FakeHTTPError(404, "Not Found")
        if (request.principal or "").lower() not in self.org_admins[org]:
            raise FakeHTTPError(403, "You must be an organization owner to access this resource.")
        return org

    # -- built-in routes --------------------------------------------------------------------

    def _install_builtin_routes(self) -> None:
        self._install_core()
        self._install_deploy_keys()
        self._install_hooks()
        self._install_pats()

    def _install_core(self) -> None:
        @self.route("GET", "/user")
        def get_user(req: FakeRequest) -> tuple:
            return 200, profile_json(self.users[req.principal.lower()], private=True)

        @self.route("GET", "/users/{username}", auth=False)
        def get_account(req: FakeRequest) -> tuple:
            name = req.params["username"].lower()
            account = self.users.get(name) or self.orgs.get(name)
            if account is None:
                raise FakeHTTPError(404)
            return 200, profile_json(account, private=False)

        @self.route("GET", "/orgs/{org}", auth=False)
        def get_org(req: FakeRequest) -> tuple:
            org = self.orgs.get(req.params["org"].lower())
            if org is None:
                raise FakeHTTPError(404)
            return 200, organization_json(org)

        @self.route("GET", "/repos/{owner}/{repo}")
        def get_repo(req: FakeRequest) -> tuple:
            repo = self.repo_for(req)
            login = req.principal.lower()
            data = dict(repo.data)
            if login not in repo.admins:
                level = repo.collaborators[login]
                order = ["pull", "triage", "push", "maintain", "admin"]
                data["permissions"] = {p: order.index(p) <= order.index(level) for p in order}
            return 200, data

    def _add_key(self, repo: Repo, title: str, key: str, read_only: bool, added_by: str | None) -> dict:
        normalized = " ".join(key.split()[:2])
        if any(" ".join(k["key"].split()[:2]) == normalized for r in self.repos.values()
               for k in r.keys.values()):
            raise FakeHTTPError(422, "Validation Failed", [
                {"resource": "PublicKey", "code": "custom", "field": "key",
                 "message": "key is already in use"}])
        key_id = self.next_id()
        repo.keys[key_id] = {
            "id": key_id,
            "key": normalized,
            "url": f"{repo.data['url']}/keys/{key_id}",
            "title": title,
            "verified": True,
            "created_at": now(),
            "read_only": read_only,
            "added_by": added_by,
            "last_used": None,
            "enabled": True,
        }
        return dict(repo.keys[key_id])

    def _install_deploy_keys(self) -> None:
        @self.route("GET", "/repos/{owner}/{repo}/keys")
        def list_keys(req: FakeRequest) -> tuple:
            repo = self.repo_for(req, admin=True)
            return paginate(req, [dict(k) for k in repo.keys.values()])

        @self.route("POST", "/repos/{owner}/{repo}/keys")
        def create_key(req: FakeRequest) -> tuple:
            repo = self.repo_for(req, admin=True)
            body = req.json or {}
            key = body.get("key")
            if not isinstance(key, str) or not re.match(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+) \S+", key):
                raise FakeHTTPError(422, "Validation Failed", [
                    {"resource": "PublicKey", "code": "custom", "field": "key",
                     "message": "key is invalid. You must supply a key in OpenSSH public key format"}])
            read_only = bool(body.get("read_only", False))
            return 201, self._add_key(repo, body.get("title") or "", key, read_only, req.principal)

        @self.route("GET", "/repos/{owner}/{repo}/keys/{key_id}")
        def get_key(req: FakeRequest) -> tuple:
            repo = self.repo_for(req, admin=True)
            key = repo.keys.get(_int(req.params["key_id"]))
            if key is None:
                raise FakeHTTPError(404)
            return 200, dict(key)

        @self.route("DELETE", "/repos/{owner}/{repo}/keys/{key_id}")
        def delete_key(req: FakeRequest) -> tuple:
            repo = self.repo_for(req, admin=True)
            if repo.keys.pop(_int(req.params["key_id"]), None) is None:
                raise FakeHTTPError(404)
            return 204, None

    def _hook(self, req: FakeRequest) -> tuple[Repo, int]:
        repo = self.repo_for(req, admin=True)
        hook_id = _int(req.params["hook_id"])
        if hook_id not in repo.hooks:
            raise FakeHTTPError(404)
        return repo, hook_id

    def _install_hooks(self) -> None:
        @self.route("GET", "/repos/{owner}/{repo}/hooks")
        def list_hooks(req: FakeRequest) -> tuple:
            repo = self.repo_for(req, admin=True)
            return paginate(req, [self.hook_json(repo, h) for h in repo.hooks])

        @self.route("GET", "/repos/{owner}/{repo}/hooks/{hook_id}")
        def get_hook(req: FakeRequest) -> tuple:
            repo, hook_id = self._hook(req)
            return 200, self.hook_json(repo, hook_id)

        @self.route("GET", "/repos/{owner}/{repo}/hooks/{hook_id}/config")
        def get_config(req: FakeRequest) -> tuple:
            repo, hook_id = self._hook(req)
            return 200, self.hook_json(repo, hook_id)["config"]

        @self.route("PATCH", "/repos/{owner}/{repo}/hooks/{hook_id}/config")
        def update_config(req: FakeRequest) -> tuple:
            repo, hook_id = self._hook(req)
            body = req.json or {}
            config = repo.hooks[hook_id]["config"]
            for name in ("url", "content_type", "insecure_ssl"):
                if name in body:
                    config[name] = body[name]
            if "secret" in body:
                if body["secret"]:
                    repo.hook_secrets[hook_id] = body["secret"]
                else:
                    repo.hook_secrets.pop(hook_id, None)
            repo.hooks[hook_id]["updated_at"] = now()
            return 200, self.hook_json(repo, hook_id)["config"]

        @self.route("POST", "/repos/{owner}/{repo}/hooks/{hook_id}/pings")
        def ping(req: FakeRequest) -> tuple:
            repo, hook_id = self._hook(req)
            self._deliver_ping(repo, hook_id, self.users[req.principal.lower()])
            return 204, None

        @self.route("GET", "/repos/{owner}/{repo}/hooks/{hook_id}/deliveries")
        def list_deliveries(req: FakeRequest) -> tuple:
            repo, hook_id = self._hook(req)
            items = [{k: v for k, v in d.items() if k not in ("request", "response", "url")}
                     for d in reversed(repo.deliveries[hook_id])]
            return paginate(req, items)

        @self.route("GET", "/repos/{owner}/{repo}/hooks/{hook_id}/deliveries/{delivery_id}")
        def get_delivery(req: FakeRequest) -> tuple:
            repo, hook_id = self._hook(req)
            wanted = _int(req.params["delivery_id"])
            for delivery in repo.deliveries[hook_id]:
                if delivery["id"] == wanted:
                    return 200, delivery
            raise FakeHTTPError(404)

    def _deliver_ping(self, repo: Repo, hook_id: int, sender: dict) -> dict:
        """Record a ping delivery signed with the hook's secret, as GitHub's hookshot does."""
        hook = self.hook_json(repo, hook_id)
        payload = {
            "zen": "Keep it logically awesome.",
            "hook_id": hook_id,
            "hook": hook,
            "repository": repo.data,
            "sender": sender,
        }
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        content_type = hook["config"].get("content_type", "json")
        if content_type == "form":
            body = b"payload=" + quote_plus(body.decode()).encode()
        guid = str(uuid.uuid4())
        headers = {
            "Accept": "*/*",
            "User-Agent": "GitHub-Hookshot/fake",
            "X-GitHub-Delivery": guid,
            "X-GitHub-Event": "ping",
            "X-GitHub-Hook-ID": str(hook_id),
            "X-GitHub-Hook-Installation-Target-ID": str(repo.data["id"]),
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "content-type": "application/x-www-form-urlencoded"
            if content_type == "form" else "application/json",
        }
        secret = repo.hook_secrets.get(hook_id)
        if secret:
            key = secret.encode()
            headers["X-Hub-Signature"] = "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
            headers["X-Hub-Signature-256"] = (
                "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
            )
        delivery_id = self.next_id()
        delivery = {
            "id": delivery_id,
            "guid": guid,
            "delivered_at": now(),
            "redelivery": False,
            "duration": 0.01,
            "status": "OK",
            "status_code": 200,
            "event": "ping",
            "action": None,
            "installation_id": None,
            "repository_id": repo.data["id"],
            "throttled_at": None,
            "url": hook["config"]["url"],
            "request": {"headers": headers, "payload": payload},
            "response": {"headers": {"Content-Type": "text/plain"}, "payload": "ok"},
        }
        repo.deliveries[hook_id].append(delivery)
        repo.hooks[hook_id]["last_response"] = {"code": 200, "status": "active", "message": "OK"}
        return delivery

    def _install_pats(self) -> None:
        @self.route("GET", "/orgs/{org}/personal-access-tokens")
        def list_grants(req: FakeRequest) -> tuple:
            org = self.org_admin(req)
            owners = {v.lower() for k, v in req.query.items() if k.startswith("owner")}
            grants = [dict(g) for g in self.pat_grants[org].values()
                      if not owners or g["owner"]["login"].lower() in owners]
            return paginate(req, grants)

        @self.route("POST", "/orgs/{org}/personal-access-tokens")
        def revoke_grants(req: FakeRequest) -> tuple:
            org = self.org_admin(req)
            body = req.json or {}
            ids = body.get("pat_ids")
            if body.get("action") != "revoke" or not isinstance(ids, list) or not ids:
                raise FakeHTTPError(422, "Validation Failed")
            if any(i not in self.pat_grants[org] for i in ids):
                raise FakeHTTPError(404)
            for grant_id in ids:
                del self.pat_grants[org][grant_id]
            return 202, {}

        @self.route("POST", "/credentials/revoke", auth=False)
        def revoke_credentials(req: FakeRequest) -> tuple:
            values = (req.json or {}).get("credentials")
            if not isinstance(values, list) or not 1 <= len(values) <= 1000:
                raise FakeHTTPError(422, "Validation Failed")
            for value in values:
                self.revoked_credentials.append(value)
                token = self.tokens.get(value)
                if token is not None:
                    token.revoked = True
                    for grants in self.pat_grants.values():
                        for grant_id in [i for i, g in grants.items()
                                         if g["token_id"] == token.id]:
                            del grants[grant_id]
            return 202, {}


def account_json(login: str, uid: int, kind: str) -> dict:
    """GitHub's simple-user shape (used for users and, with type Organization, as owner)."""
    base = "https://api.github.com"
    users = f"{base}/users/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": f"U_{uid}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "gravatar_id": "",
        "url": users,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{users}/followers",
        "following_url": f"{users}/following{{/other_user}}",
        "gists_url": f"{users}/gists{{/gist_id}}",
        "starred_url": f"{users}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{users}/subscriptions",
        "organizations_url": f"{users}/orgs",
        "repos_url": f"{users}/repos",
        "events_url": f"{users}/events{{/privacy}}",
        "received_events_url": f"{users}/received_events",
        "type": kind,
        "site_admin": False,
    }


def profile_json(account: dict, *, private: bool) -> dict:
    """GET /user (private-user) or GET /users/{username} (public-user) for an account."""
    profile = {
        **account,
        "user_view_type": "private" if private else "public",
        "name": None, "company": None, "blog": "", "location": None, "email": None,
        "hireable": None, "bio": None, "twitter_username": None,
        "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
        "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z",
    }
    if private:
        profile.update(
            private_gists=0, total_private_repos=0, owned_private_repos=0, disk_usage=0,
            collaborators=0, two_factor_authentication=True,
        )
    return profile


def organization_json(account: dict) -> dict:
    """GET /orgs/{org}: GitHub's organization-full shape."""
    api = f"https://api.github.com/orgs/{account['login']}"
    return {
        "login": account["login"],
        "id": account["id"],
        "node_id": account["node_id"],
        "url": api,
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events",
        "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues",
        "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": account["avatar_url"],
        "description": None,
        "name": account["login"],
        "html_url": account["html_url"],
        "has_organization_projects": True,
        "has_repository_projects": True,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "type": "Organization",
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
        "archived_at": None,
    }


REPO_URL_TEMPLATES = {
    "archive_url": "/{archive_format}{/ref}",
    "assignees_url": "/assignees{/user}",
    "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}",
    "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}",
    "commits_url": "/commits{/sha}",
    "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}",
    "contributors_url": "/contributors",
    "deployments_url": "/deployments",
    "downloads_url": "/downloads",
    "events_url": "/events",
    "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}",
    "git_refs_url": "/git/refs{/sha}",
    "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks",
    "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}",
    "issues_url": "/issues{/number}",
    "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}",
    "languages_url": "/languages",
    "merges_url": "/merges",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}",
    "releases_url": "/releases{/id}",
    "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}",
    "subscribers_url": "/subscribers",
    "subscription_url": "/subscription",
    "tags_url": "/tags",
    "teams_url": "/teams",
    "trees_url": "/git/trees{/sha}",
}


def repository_json(rid: int, full_name: str, owner: dict, base_url: str) -> dict:
    """GET /repos/{owner}/{repo}: GitHub's full-repository shape for a private repository."""
    api = f"{base_url}/repos/{full_name}"
    html = f"https://github.com/{full_name}"
    counts = ("forks", "forks_count", "open_issues", "open_issues_count", "size",
              "stargazers_count", "watchers", "watchers_count", "network_count",
              "subscribers_count")
    return {
        "id": rid,
        "node_id": f"R_{rid}",
        "name": full_name.split("/")[1],
        "full_name": full_name,
        "private": True,
        "owner": owner,
        "html_url": html,
        "description": None,
        "fork": False,
        "url": api,
        **{name: api + suffix for name, suffix in REPO_URL_TEMPLATES.items()},
        "clone_url": f"{html}.git",
        "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "svn_url": html,
        "mirror_url": None,
        "homepage": None,
        "language": None,
        "license": None,
        **dict.fromkeys(counts, 0),
        "default_branch": "main",
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_discussions": False,
        "visibility": "private",
        "archived": False,
        "disabled": False,
        "created_at": now(),
        "updated_at": now(),
        "pushed_at": now(),
        "permissions": {
            "admin": True, "maintain": True, "push": True, "triage": True, "pull": True,
        },
    }


def paginate(req: FakeRequest, items: list) -> tuple[int, list, dict[str, str]]:
    """One page of `items` by ?per_page=&page= with a Link header, like GitHub."""
    per_page = min(int(req.query.get("per_page", 30)), 100)
    page = max(int(req.query.get("page", 1)), 1)
    chunk = items[(page - 1) * per_page: page * per_page]
    links = []
    if page * per_page < len(items):
        last = (len(items) + per_page - 1) // per_page
        # other parameters (filters such as `created`) stay in the links, as on GitHub
        kept = "".join(f"&{quote_plus(k)}={quote_plus(v)}" for k, v in req.query.items()
                       if k not in ("per_page", "page"))
        base = f"{req.headers.get('Host', '')}{req.path}"
        links.append(f'<http://{base}?per_page={per_page}&page={page + 1}{kept}>; rel="next"')
        links.append(f'<http://{base}?per_page={per_page}&page={last}{kept}>; rel="last"')
    return 200, chunk, ({"Link": ", ".join(links)} if links else {})


def rate_limit_headers() -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "4999",
        "X-RateLimit-Reset": str(int(datetime.now(UTC).timestamp()) + 3600),
        "X-RateLimit-Used": "1",
        "X-RateLimit-Resource": "core",
        "X-GitHub-Api-Version-Selected": API_VERSION,
    }


def _random(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def _int(text: str) -> int:
    if not text.isdigit():
        raise FakeHTTPError(404)
    return int(text)
