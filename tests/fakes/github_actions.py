"""GitHub Actions secrets for the GitHub fake: repository, environment and organization secrets.

`install(fake)` registers GitHub's REST routes for Actions secrets (public key,
list, get, create-or-update, delete; paths, statuses and shapes as in GitHub's
OpenAPI description) on a `fakes.github.GitHubFake` and returns the
`ActionsSecrets` state behind them, with the listings `scope collect github`
reads: a repository's environments and the organization secrets it can see. Each repository, environment and
organization has a real Curve25519 key pair; a PUT must carry a value sealed to
it (libsodium sealed box, base64) under the current key_id, else 422. Like
GitHub, the fake opens the value on PUT and never returns it: tests read it
with `ActionsSecrets.plaintext(path)`, the path written as the
github_actions_secret store writes it (`repos/o/r/NAME`,
`repos/o/r/environments/ENV/NAME`, `orgs/ORG/NAME`).

Access: repository and environment secrets need admin rights on the
repository, organization secrets an organization owner (403); unknown
repositories, environments, organizations and secrets are 404. Secret names
ignore case and are kept upper-case, as GitHub does.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from secrets import randbelow

from fakes.github import FakeHTTPError, FakeRequest, GitHubFake, now, paginate
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

MAX_VALUE_BYTES = 48 * 1024  # GitHub's limit on one secret value
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REPO = "/repos/{owner}/{repo}/actions/secrets"
ENVIRONMENT = "/repos/{owner}/{repo}/environments/{environment_name}/secrets"
ORG = "/orgs/{org}/actions/secrets"
# ("repo", "owner/repo") | ("environment", "owner/repo", environment) | ("org", org), lower-cased
Scope = tuple[str, ...]


@dataclass
class _Secret:
    name: str
    value: str  # opened on PUT, as GitHub does; never returned by a route
    created_at: str
    updated_at: str
    visibility: str | None = None  # organization secrets only
    selected_repository_ids: list[int] = field(default_factory=list)


@dataclass
class _Box:
    """One scope's key pair and its secrets (keyed by upper-case name)."""

    key: PrivateKey = field(default_factory=PrivateKey.generate)
    key_id: str = field(default_factory=lambda: str(10**17 + randbelow(9 * 10**17)))
    secrets: dict[str, _Secret] = field(default_factory=dict)


class ActionsSecrets:
    """The Actions secrets state of one GitHubFake."""

    def __init__(self, fake: GitHubFake) -> None:
        self.fake = fake
        self.environments: set[tuple[str, str]] = set()  # (owner/repo lower-cased, environment)
        self._boxes: dict[Scope, _Box] = {}

    def add_environment(self, full_name: str, environment: str) -> None:
        """Create a deployment environment of a repository (those of unknown ones are 404)."""
        with self.fake.lock:
            self.environments.add((full_name.lower(), environment))

    def plaintext(self, path: str) -> str | None:
        """The value at a store path (`repos/o/r/NAME`, ...), or None if there is no such secret."""
        parts = path.strip("/").split("/")
        if parts[0] == "orgs":
            scope: Scope = ("org", parts[1].lower())
        elif len(parts) == 4:
            scope = ("repo", f"{parts[1]}/{parts[2]}".lower())
        else:
            scope = ("environment", f"{parts[1]}/{parts[2]}".lower(), "/".join(parts[4:-1]))
        with self.fake.lock:
            stored = self._box(scope).secrets.get(parts[-1].upper())
            return stored.value if stored else None

    def secret(self, scope: Scope, name: str) -> dict | None:
        """A secret's metadata as the API shows it (None if absent), e.g. scope ("org", "acme")."""
        with self.fake.lock:
            stored = self._box(scope).secrets.get(name.upper())
            return self._shape(scope, stored) if stored else None

    def selected_repository_ids(self, org: str, name: str) -> list[int]:
        """The repositories an organization secret with visibility `selected` is for."""
        with self.fake.lock:
            return list(self._box(("org", org.lower())).secrets[name.upper()].selected_repository_ids)

    # -- route handlers (called under fake.lock) ------------------------------------

    def scope(self, request: FakeRequest) -> Scope:
        """The scope a request names, after the access checks."""
        if "org" in request.params:
            return ("org", self.fake.org_admin(request))
        full_name = self.fake.repo_for(request, admin=True).data["full_name"].lower()
        environment = request.params.get("environment_name")
        if environment is None:
            return ("repo", full_name)
        if (full_name, environment) not in self.environments:
            raise FakeHTTPError(404, "Not Found")
        return ("environment", full_name, environment)

    def public_key(self, request: FakeRequest) -> tuple:
        box = self._box(self.scope(request))
        return 200, {"key_id": box.key_id, "key": base64.b64encode(bytes(box.key.public_key)).decode()}

    def list_secrets(self, request: FakeRequest) -> tuple:
        scope = self.scope(request)
        items = [self._shape(scope, s) for _, s in sorted(self._box(scope).secrets.items())]
        status, page, headers = paginate(request, items)
        return status, {"total_count": len(items), "secrets": page}, headers

    def list_environments(self, request: FakeRequest) -> tuple:
        full_name = self.fake.repo_for(request, admin=True).data["full_name"]
        names = sorted(env for repo, env in self.environments if repo == full_name.lower())
        items = [self._environment(full_name, env) for env in names]
        status, page, headers = paginate(request, items)
        return status, {"total_count": len(items), "environments": page}, headers

    def list_visible_org_secrets(self, request: FakeRequest) -> tuple:
        """Organization secrets the repository can use: visibility all, private (the
        repositories here are private) or selected with this repository."""
        repo = self.fake.repo_for(request, admin=True).data
        box = self._box(("org", repo["owner"]["login"].lower()))
        items = [{"name": s.name, "created_at": s.created_at, "updated_at": s.updated_at}
                 for _, s in sorted(box.secrets.items())
                 if s.visibility != "selected" or repo["id"] in s.selected_repository_ids]
        status, page, headers = paginate(request, items)
        return status, {"total_count": len(items), "secrets": page}, headers

    def get(self, request: FakeRequest) -> tuple:
        scope = self.scope(request)
        stored = self._box(scope).secrets.get(request.params["secret_name"].upper())
        if stored is None:
            raise FakeHTTPError(404, "Not Found")
        return 200, self._shape(scope, stored)

    def put(self, request: FakeRequest) -> tuple:
        scope = self.scope(request)
        name = request.params["secret_name"].upper()
        if not SECRET_NAME.fullmatch(name) or name.startswith("GITHUB_"):
            raise FakeHTTPError(422, "Secret names can only contain alphanumeric characters "
                                     "([a-z], [A-Z], [0-9]) or underscores (_), and must not "
                                     "start with a number or the GITHUB_ prefix.")
        body = request.json if isinstance(request.json, dict) else {}
        box = self._box(scope)
        value = self._unseal(box, body)
        previous = box.secrets.get(name)
        stamp = now()
        stored = _Secret(name, value, previous.created_at if previous else stamp, stamp)
        if scope[0] == "org":
            visibility = body.get("visibility")
            if visibility not in ("all", "private", "selected"):
                raise FakeHTTPError(422, "Invalid request: visibility must be one of "
                                         "all, private, selected.")
            ids = body.get("selected_repository_ids") or []
            if ids and visibility != "selected":
                raise FakeHTTPError(422, "Invalid request: selected_repository_ids needs "
                                         "visibility selected.")
            stored.visibility, stored.selected_repository_ids = visibility, list(ids)
        box.secrets[name] = stored
        return (204, None) if previous else (201, {})

    def delete(self, request: FakeRequest) -> tuple:
        scope = self.scope(request)
        if self._box(scope).secrets.pop(request.params["secret_name"].upper(), None) is None:
            raise FakeHTTPError(404, "Not Found")
        return 204, None

    # -- helpers --------------------------------------------------------------------

    def _environment(self, full_name: str, name: str) -> dict:
        eid = int.from_bytes(f"{full_name}/{name}".encode()[:6], "big")
        stamp = "2025-01-01T00:00:00Z"
        return {"id": eid, "node_id": f"EN_{eid}", "name": name,
                "url": f"{self.fake.url}/repos/{full_name}/environments/{name}",
                "html_url": f"https://github.com/{full_name}/deployments/activity_log"
                            f"?environments_filter={name}",
                "created_at": stamp, "updated_at": stamp}

    def _box(self, scope: Scope) -> _Box:
        return self._boxes.setdefault(scope, _Box())

    def _shape(self, scope: Scope, stored: _Secret) -> dict:
        shape: dict = {
            "name": stored.name, "created_at": stored.created_at, "updated_at": stored.updated_at,
        }
        if scope[0] == "org":
            shape["visibility"] = stored.visibility
            shape["selected_repositories_url"] = (
                f"{self.fake.url}/orgs/{scope[1]}/actions/secrets/{stored.name}/repositories"
            )
        return shape

    @staticmethod
    def _unseal(box: _Box, body: dict) -> str:
        """The value sealed in the body to the box's key; 422 as GitHub answers otherwise."""
        if body.get("key_id") != box.key_id:
            raise FakeHTTPError(422, "Invalid request: key_id does not match the current key.")
        try:
            sealed = base64.b64decode(body.get("encrypted_value") or "", validate=True)
            value = SealedBox(box.key).decrypt(sealed).decode()
        except (TypeError, binascii.Error, CryptoError, UnicodeDecodeError):
            raise FakeHTTPError(422, "Invalid request: encrypted_value cannot be decrypted "
                                     "with the current key.") from None
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise FakeHTTPError(422, f"Secret values are limited to {MAX_VALUE_BYTES // 1024} KB.")
        return value


def install(fake: GitHubFake) -> ActionsSecrets:
    """Register the Actions secrets routes on `fake`; returns their state."""
    state = ActionsSecrets(fake)
    for base in (REPO, ENVIRONMENT, ORG):
        # public-key first: routes match in order and {secret_name} would take it
        fake.route("GET", f"{base}/public-key")(state.public_key)
        fake.route("GET", base)(state.list_secrets)
        fake.route("GET", f"{base}/{{secret_name}}")(state.get)
        fake.route("PUT", f"{base}/{{secret_name}}")(state.put)
        fake.route("DELETE", f"{base}/{{secret_name}}")(state.delete)
    fake.route("GET", "/repos/{owner}/{repo}/environments")(state.list_environments)
    fake.route("GET", "/repos/{owner}/{repo}/actions/organization-secrets")(
        state.list_visible_org_secrets)
    return state
