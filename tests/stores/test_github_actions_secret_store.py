"""The github_actions_secret store against the GitHub fake, through PyGithub's requester.

The fake holds a real key pair per repository, environment and organization and
opens the sealed values, so the assertions read what GitHub would hold.
"""

from __future__ import annotations

import json
import socket
import uuid
from datetime import datetime

import pytest
from fakes.github import GitHubFake
from fakes.github_actions import ActionsSecrets, install
from github import GithubException, RateLimitExceededException
from requests import ConnectionError, ReadTimeout

from keyturn.stores.base import Store
from keyturn.stores.errors import (
    PermanentStoreError,
    StoreAccessDenied,
    StoreConfigError,
    StoreError,
    StoreInvalidRequest,
    StoreNotFound,
    TransientStoreError,
)
from keyturn.stores.github_actions_secret import GitHubActionsSecretStore, classify, parse_path
from keyturn.stores.registry import STORES

pytestmark = pytest.mark.integration

VALUE = "s3cr3t-value-that-must-never-leak"


@pytest.fixture(scope="module")
def served() -> tuple[GitHubFake, ActionsSecrets]:
    server = GitHubFake()
    actions = install(server)
    yield server.start(), actions
    server.stop()


@pytest.fixture
def fake(served) -> GitHubFake:
    return served[0]


@pytest.fixture
def actions(served) -> ActionsSecrets:
    return served[1]


@pytest.fixture
def admin(fake: GitHubFake) -> str:
    login = f"admin-{uuid.uuid4().hex[:8]}"
    fake.add_user(login)
    return login


@pytest.fixture
def org(fake: GitHubFake, admin: str) -> str:
    """An organization with one repository `app`, both administered by `admin`."""
    login = f"acme-{uuid.uuid4().hex[:8]}"
    fake.add_repo(f"{login}/app", admin)
    return login


@pytest.fixture
def token(fake: GitHubFake, admin: str, monkeypatch: pytest.MonkeyPatch) -> str:
    value = fake.mint_token(admin, scopes=["repo", "admin:org"])
    monkeypatch.setenv("KEYTURN_GITHUB_TOKEN", value)
    return value


def open_store(fake: GitHubFake, **config) -> GitHubActionsSecretStore:
    return GitHubActionsSecretStore("gha", {"api_url": fake.url, **config})


@pytest.fixture
def store(fake: GitHubFake, token: str) -> GitHubActionsSecretStore:
    return open_store(fake)


def assert_clean(err: BaseException, *values: str) -> None:
    """No value in the error or in the chain Temporal would record with it."""
    while err is not None:
        for value in values:
            assert value not in str(err) and value not in repr(err)
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)


# -- protocol and configuration --------------------------------------------------------


def test_store_satisfies_the_protocol_and_says_it_cannot_be_read(store):
    STORES.check(GitHubActionsSecretStore, "github_actions_secret", "test")
    assert isinstance(store, Store)
    assert store.name == "gha"
    assert GitHubActionsSecretStore.readable is False


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"token": "ghp_x"}, "a token never goes in the config"),
        ({"visibility": "selected"}, "selected_repositories is required"),
        ({"selected_repositories": ["app"]}, "selected_repositories is required"),
        ({"visibility": "public"}, "visibility"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_config_is_refused(token, config, reason):
    with pytest.raises(StoreConfigError, match=reason) as caught:
        GitHubActionsSecretStore("gha", config)
    assert_clean(caught.value, "ghp_x")


def test_missing_token_is_a_config_error(monkeypatch):
    monkeypatch.delenv("KEYTURN_GITHUB_TOKEN", raising=False)
    with pytest.raises(StoreConfigError, match="KEYTURN_GITHUB_TOKEN"):
        GitHubActionsSecretStore("gha", {})


def test_api_url_defaults_to_the_environment(fake, org, actions, token, monkeypatch):
    monkeypatch.setenv("KEYTURN_GITHUB_API_URL", fake.url)
    GitHubActionsSecretStore("gha", {}).write(f"repos/{org}/app/TOKEN", {"t": VALUE}, {})
    assert actions.plaintext(f"repos/{org}/app/TOKEN") == VALUE


@pytest.mark.parametrize(
    ("path", "scope", "name"),
    [
        ("repos/acme/app/NPM_TOKEN", "/repos/acme/app/actions", "NPM_TOKEN"),
        ("/repos/acme/app/environments/prod/KEY/", "/repos/acme/app/environments/prod", "KEY"),
        ("repos/acme/app/environments/prod/eu/KEY", "/repos/acme/app/environments/prod%2Feu",
         "KEY"),
        ("orgs/acme/_DEPLOY", "/orgs/acme/actions", "_DEPLOY"),
    ],
)
def test_paths_name_a_scope_and_a_secret(path, scope, name):
    location = parse_path(path)
    assert (location.scope, location.name) == (scope, name)


@pytest.mark.parametrize(
    "path",
    ["", "repos/acme/NAME", "repos/acme/app/x/NAME", "repos/acme/app/environments/NAME",
     "users/octo/NAME", "orgs/acme/1NAME", "orgs/acme/GITHUB_TOKEN", "orgs/acme/MY-NAME",
     "repos//app/NAME", "orgs/acme/a/NAME"],
)
def test_bad_paths_are_invalid_requests_before_any_call(fake, store, path):
    before = len(fake.requests)
    for call in (lambda: store.write(path, {"v": VALUE}, {}), lambda: store.destroy(path),
                 lambda: store.read(path)):
        with pytest.raises(StoreInvalidRequest, match="bad path") as caught:
            call()
        assert_clean(caught.value, VALUE)
    assert len(fake.requests) == before


# -- writing, reading, destroying ------------------------------------------------------


def test_repository_secret_is_sealed_and_opens_to_the_exact_value(fake, store, org, actions):
    path = f"repos/{org}/app/NPM_TOKEN"
    version = store.write(path, {"token": VALUE}, {"fingerprint": "sha256:x"})
    assert actions.plaintext(path) == VALUE
    shown = actions.secret(("repo", f"{org}/app".lower()), "NPM_TOKEN")
    assert version == int(datetime.fromisoformat(shown["updated_at"]).timestamp())
    assert store.read(path) is None and store.read(path, version=version) is None


def test_rewriting_replaces_the_value_and_keeps_created_at(store, org, actions):
    path = f"repos/{org}/app/NPM_TOKEN"
    store.write(path, {"token": "first"}, {})
    created = actions.secret(("repo", f"{org}/app".lower()), "NPM_TOKEN")["created_at"]
    store.write(path, {"token": VALUE}, {})
    assert actions.plaintext(path) == VALUE
    assert actions.secret(("repo", f"{org}/app".lower()), "npm_token")["created_at"] == created


def test_environment_secret_goes_to_that_environment_only(fake, store, org, actions):
    actions.add_environment(f"{org}/app", "prod/eu")
    store.write(f"repos/{org}/app/environments/prod/eu/DB_PASSWORD", {"password": VALUE}, {})
    assert actions.plaintext(f"repos/{org}/app/environments/prod/eu/DB_PASSWORD") == VALUE
    assert actions.plaintext(f"repos/{org}/app/DB_PASSWORD") is None


@pytest.mark.parametrize("visibility", ["private", "all"])
def test_organization_secret_gets_the_configured_visibility(fake, token, org, actions, visibility):
    config = {} if visibility == "private" else {"visibility": visibility}
    open_store(fake, **config).write(f"orgs/{org}/SHARED", {"v": VALUE}, {})
    assert actions.plaintext(f"orgs/{org}/SHARED") == VALUE
    assert actions.secret(("org", org), "SHARED")["visibility"] == visibility


def test_organization_secret_for_selected_repositories(fake, admin, token, org, actions):
    other = fake.add_repo(f"{org}/api", admin)
    app = fake.repos[f"{org}/app".lower()].data  # made by the org fixture
    store = open_store(fake, visibility="selected", selected_repositories=["app", "api"])
    store.write(f"orgs/{org}/SHARED", {"v": VALUE}, {})
    assert actions.secret(("org", org.lower()), "SHARED")["visibility"] == "selected"
    assert actions.selected_repository_ids(org, "SHARED") == [app["id"], other["id"]]


def test_several_fields_are_stored_as_canonical_json(store, org, actions):
    secret = {"user": "ci", "password": VALUE}
    store.write(f"repos/{org}/app/DB", secret, {})
    stored = actions.plaintext(f"repos/{org}/app/DB")
    assert json.loads(stored) == secret and stored.startswith('{"password":')


def test_config_field_picks_one_field(fake, token, org, actions):
    store = open_store(fake, field="password")
    store.write(f"repos/{org}/app/DB", {"user": "ci", "password": VALUE}, {})
    assert actions.plaintext(f"repos/{org}/app/DB") == VALUE
    with pytest.raises(StoreInvalidRequest, match="no field 'password'") as caught:
        store.write(f"repos/{org}/app/DB", {"secret": VALUE}, {})
    assert_clean(caught.value, VALUE)


def test_an_empty_secret_is_refused(store, org):
    with pytest.raises(StoreInvalidRequest, match="no fields"):
        store.write(f"repos/{org}/app/DB", {}, {})


@pytest.mark.parametrize("kind", ["repo", "environment", "org"])
def test_destroy_deletes_and_is_idempotent(store, org, actions, kind):
    actions.add_environment(f"{org}/app", "prod")
    path = {"repo": f"repos/{org}/app/KEY", "environment": f"repos/{org}/app/environments/prod/KEY",
            "org": f"orgs/{org}/KEY"}[kind]
    store.write(path, {"v": VALUE}, {})
    store.destroy(path)
    assert actions.plaintext(path) is None
    store.destroy(path)


def test_destroy_of_a_missing_repository_or_environment_is_fine(store, org):
    store.destroy(f"repos/{org}/gone/KEY")
    store.destroy(f"repos/{org}/app/environments/nowhere/KEY")


# -- errors ----------------------------------------------------------------------------


def test_non_admin_is_denied(fake, org, monkeypatch):
    reader = f"dev-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KEYTURN_GITHUB_TOKEN", fake.add_user(reader))
    fake.add_collaborator(f"{org}/app", reader, "push")
    store = open_store(fake)
    for path in (f"repos/{org}/app/KEY", f"orgs/{org}/KEY"):
        with pytest.raises(StoreAccessDenied, match=f"write .*path {path} failed: 403"):
            store.write(path, {"v": VALUE}, {})
        with pytest.raises(StoreAccessDenied):
            store.destroy(path)


def test_bad_token_is_denied(fake, org, monkeypatch):
    monkeypatch.setenv("KEYTURN_GITHUB_TOKEN", "ghp_not_a_token_the_fake_knows_000000000")
    with pytest.raises(StoreAccessDenied, match="401 Bad credentials") as caught:
        open_store(fake).write(f"repos/{org}/app/KEY", {"v": VALUE}, {})
    assert_clean(caught.value, VALUE, "ghp_not_a_token")


@pytest.mark.parametrize("path", ["repos/{org}/nope/KEY", "repos/{org}/app/environments/x/KEY",
                                  "orgs/nope-{org}/KEY"])
def test_unknown_repository_environment_or_org_is_not_found(store, org, path):
    with pytest.raises(StoreNotFound, match="404"):
        store.write(path.format(org=org), {"v": VALUE}, {})


@pytest.mark.parametrize(
    ("status", "message", "headers", "expected"),
    [
        (422, "Validation Failed", {}, StoreInvalidRequest),
        (400, "Problems parsing JSON", {}, StoreInvalidRequest),
        (409, "Conflict", {}, PermanentStoreError),
        (403, "Forbidden", {}, StoreAccessDenied),
        (403, "API rate limit exceeded for user ID 1.", {}, TransientStoreError),
        (403, "You have exceeded a secondary rate limit.", {}, TransientStoreError),
        (403, "Forbidden", {"X-RateLimit-Remaining": "0"}, TransientStoreError),
        (429, "Too many requests", {"Retry-After": "1"}, TransientStoreError),
        (429, "Too many requests", {}, TransientStoreError),
        (500, "Server Error", {}, TransientStoreError),
        (502, "Bad Gateway", {}, TransientStoreError),
        (503, "Service Unavailable", {}, TransientStoreError),
    ],
)
def test_server_errors_are_classified(fake, store, org, status, message, headers, expected):
    with fake.failing(status, message, headers), pytest.raises(StoreError) as caught:
        store.write(f"repos/{org}/app/KEY", {"v": VALUE}, {})
    assert type(caught.value) is expected
    assert f"failed: {status}" in str(caught.value)
    with fake.failing(status, message, headers), pytest.raises(expected):
        store.destroy(f"repos/{org}/app/KEY")


def test_an_echoed_value_is_redacted(fake, store, org):
    with fake.failing(422, f"rejected {VALUE}"), pytest.raises(StoreInvalidRequest) as caught:
        store.write(f"repos/{org}/app/KEY", {"v": VALUE}, {})
    assert_clean(caught.value, VALUE)
    assert "[redacted]" in str(caught.value)


def test_unreachable_api_is_transient(token):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = GitHubActionsSecretStore("gha", {"api_url": f"http://127.0.0.1:{port}"})
    with pytest.raises(TransientStoreError, match="ConnectionError"):
        store.write("repos/acme/app/KEY", {"v": VALUE}, {})


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (GithubException(401, {}), StoreAccessDenied),
        (GithubException(403, {}), StoreAccessDenied),
        (RateLimitExceededException(403, {}), TransientStoreError),
        (GithubException(404, {}), StoreNotFound),
        (GithubException(422, {}), StoreInvalidRequest),
        (GithubException(429, {}), TransientStoreError),
        (GithubException(403, {}, {"Retry-After": "60"}), TransientStoreError),
        (GithubException(504, {}), TransientStoreError),
        (GithubException(418, {}), PermanentStoreError),
        (ConnectionError(), TransientStoreError),
        (ReadTimeout(), TransientStoreError),
        (ValueError("surprise"), PermanentStoreError),
    ],
)
def test_classification_table(exc, expected):
    assert classify(exc) is expected
