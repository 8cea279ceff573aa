"""The GitHub fake against GitHub's own OpenAPI description (npm package @octokit/openapi).

Every route the fake registers (its built-in ones and those of every route
module, tests/fakes/github_*.py with an `install(fake)`) must be a documented
path with that method. A scripted run then calls every route once with success
through the real clients (the github_actions_secret store) and plain HTTP, and
each success answer must validate against the documented schema for its status,
undocumented properties included, as must each JSON request body against the
documented request schema. A new route fails `test_the_script_calls_every_route`
until a call is added to `run_script`.

OpenAPI 3.0 schemas are JSON Schema draft 4 plus `nullable`, which is rewritten
into a "null" type before validating.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fakes.github import GitHubFake
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from keyturn.stores.github_actions_secret import GitHubActionsSecretStore

TESTS = Path(__file__).parents[1]
DESCRIPTION = TESTS / "node/node_modules/@octokit/openapi/generated/api.github.com.json"
ROUTE_MODULES = sorted(p.stem for p in (TESTS / "fakes").glob("github_*.py"))
BASE = "urn:api.github.com"


@dataclass(frozen=True)
class Exchange:
    """One call a route answered: its template, the JSON it got and what it sent back."""

    method: str
    template: str
    request: Any
    status: int
    body: Any


@contextmanager
def running_fake() -> Iterator[tuple[GitHubFake, dict[str, Any]]]:
    """A started fake with every route module installed, and what each install returned."""
    fake = GitHubFake()
    states = {}
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"fakes.{name}")
        if hasattr(module, "install"):
            states[name] = module.install(fake)
    fake.start()
    try:
        yield fake, states
    finally:
        fake.stop()


def routes(fake: GitHubFake) -> list:
    return fake._routes  # no public accessor yet


def record(fake: GitHubFake) -> list[Exchange]:
    """Wrap every route's handler so its answers are logged."""
    log: list[Exchange] = []

    def recording(route):
        inner = route.handler

        def handler(request):
            answer = inner(request)
            log.append(Exchange(route.method, route.template, request.json, *answer[:2]))
            return answer

        return handler

    for route in routes(fake):
        route.handler = recording(route)
    return log


def openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema: "null" added to the type (or anyOf)."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: openapi_to_jsonschema(value) for key, value in node.items()}
    if node.pop("nullable", False) is True:
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


def forbid_undocumented_properties(node: Any, in_all_of: bool = False) -> None:
    """Objects with documented properties accept no others (except allOf parts)."""
    if isinstance(node, list):
        for item in node:
            forbid_undocumented_properties(item, in_all_of)
    elif isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node and not in_all_of:
            node["additionalProperties"] = False
        for key, value in node.items():
            if key != "properties" or not isinstance(value, dict):
                forbid_undocumented_properties(value, key == "allOf")
            else:
                for schema in value.values():
                    forbid_undocumented_properties(schema)


@pytest.fixture(scope="module")
def description() -> dict:
    if not DESCRIPTION.exists():
        pytest.fail(
            f"GitHub's OpenAPI description is missing ({DESCRIPTION}): run `make venv` "
            "(or `npm ci --prefix tests/node`) to install @octokit/openapi",
            pytrace=False,
        )
    spec = openapi_to_jsonschema(json.loads(DESCRIPTION.read_text()))
    forbid_undocumented_properties(spec)
    return spec


@pytest.fixture(scope="module")
def registry(description: dict) -> Registry:
    return Registry().with_resource(BASE, Resource.from_contents(description, DRAFT4))


@pytest.fixture(scope="module")
def table() -> list[tuple[str, str]]:
    """(method, template) of every route the fake registers."""
    with running_fake() as (fake, _):
        return [(r.method, r.template) for r in routes(fake)]


@pytest.fixture(scope="module")
def exchanges() -> list[Exchange]:
    with running_fake() as (fake, states), pytest.MonkeyPatch.context() as patch:
        log = record(fake)
        run_script(fake, states, patch)
    return log


def pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validate(registry: Registry, ref: str, instance: Any) -> list[str]:
    validator = Draft4Validator(
        {"$ref": BASE + ref}, registry=registry, format_checker=Draft4Validator.FORMAT_CHECKER
    )
    return list(messages(validator.iter_errors(instance)))


def messages(errors) -> Iterator[str]:
    """One line per error; for a failed oneOf/anyOf, those of the closest alternative."""
    for error in errors:
        if error.context:
            branches: dict[Any, list] = {}
            for sub in error.context:
                branches.setdefault(sub.relative_schema_path[0], []).append(sub)
            yield from messages(min(branches.values(), key=len))
        else:
            yield f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"


# -- the checks ------------------------------------------------------------------------


def test_every_route_is_documented_with_its_method(description, table):
    assert table, "the fake registers no routes"
    undocumented = [
        f"{method} {template}"
        for method, template in table
        if method.lower() not in description["paths"].get(template, {})
    ]
    assert not undocumented, f"routes not in GitHub's OpenAPI description: {undocumented}"


def test_the_script_calls_every_route(table, exchanges):
    called = {(e.method, e.template) for e in exchanges if e.status < 400}
    missing = [f"{method} {template}" for method, template in table
               if (method, template) not in called]
    assert not missing, f"add a successful call of these routes to run_script: {missing}"


def test_success_answers_validate_against_the_documented_schema(description, registry,
                                                                 exchanges):
    problems = []
    for e in exchanges:
        if e.status >= 400:
            continue
        where = f"{e.method} {e.template} -> {e.status}"
        documented = description["paths"][e.template][e.method.lower()]["responses"]
        if str(e.status) not in documented:
            problems.append(f"{where}: status not documented ({sorted(documented)})")
            continue
        response = documented[str(e.status)]
        # a response is given inline or as a $ref to components/responses
        ref = response.get("$ref") or pointer(
            "paths", e.template, e.method.lower(), "responses", str(e.status)
        )
        if "$ref" in response:
            response = description["components"]["responses"][ref.rsplit("/", 1)[1]]
        if "schema" not in response.get("content", {}).get("application/json", {}):
            if e.body is not None:
                problems.append(f"{where}: documented without a body, got one")
            continue
        ref += "/content/application~1json/schema"
        problems += [f"{where}: {p}" for p in validate(registry, ref, e.body)]
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_request_bodies_validate_against_the_documented_schema(description, registry,
                                                               exchanges):
    problems = []
    for e in exchanges:
        operation = description["paths"][e.template][e.method.lower()]
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None or e.request is None:
            continue
        ref = pointer("paths", e.template, e.method.lower(), "requestBody", "content",
                      "application/json", "schema")
        problems += [f"{e.method} {e.template}: {p}" for p in validate(registry, ref, e.request)]
    assert not problems, "\n".join(problems)


# -- the scripted run ------------------------------------------------------------------


def run_script(fake: GitHubFake, states: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Call every route once or more with success (an admin acting on its own org and repo)."""
    token = fake.add_user("octo")
    fake.add_repo("acme/app", "octo")  # creates the organization acme, octo its owner
    session = requests.Session()
    session.headers["Authorization"] = f"token {token}"

    def call(method: str, path: str, body: Any = None) -> Any:
        answer = session.request(method, fake.url + path, json=body, timeout=10)
        assert answer.status_code < 400, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    call("GET", "/user")
    call("GET", "/users/octo")
    call("GET", "/orgs/acme")
    call("GET", "/repos/acme/app")
    script_deploy_keys(call)
    script_hooks(fake, call)
    script_personal_access_tokens(fake, call)
    script_actions_secrets(fake, states["github_actions"], token, call, monkeypatch)
    script_runs(states["github_runs"], call)


def script_deploy_keys(call) -> None:
    public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    key = call("POST", "/repos/acme/app/keys", {"title": "ci", "key": public, "read_only": True})
    call("GET", "/repos/acme/app/keys")
    call("GET", f"/repos/acme/app/keys/{key['id']}")
    call("DELETE", f"/repos/acme/app/keys/{key['id']}")


def script_hooks(fake: GitHubFake, call) -> None:
    hook = fake.add_hook("acme/app", "https://hooks.example.com/ci", secret="old-hook-secret")
    base = f"/repos/acme/app/hooks/{hook['id']}"
    call("GET", "/repos/acme/app/hooks")
    call("GET", base)
    call("GET", f"{base}/config")
    call("PATCH", f"{base}/config", {"secret": "new-hook-secret"})
    call("POST", f"{base}/pings")
    delivery = call("GET", f"{base}/deliveries")[0]
    call("GET", f"{base}/deliveries/{delivery['id']}")


def script_personal_access_tokens(fake: GitHubFake, call) -> None:
    fine_grained = fake.mint_token("octo", fine_grained=True, org="acme")
    grant = call("GET", "/orgs/acme/personal-access-tokens")[0]
    call("POST", "/orgs/acme/personal-access-tokens", {"action": "revoke", "pat_ids": [grant["id"]]})
    call("POST", "/credentials/revoke", {"credentials": [fine_grained]})


def script_actions_secrets(fake, actions, token, call, monkeypatch) -> None:
    """The store writes (public key, PUT create and update, GET) and destroys; lists by hand."""
    monkeypatch.setenv("KEYTURN_GITHUB_TOKEN", token)
    actions.add_environment("acme/app", "prod")
    config = {"api_url": fake.url}
    paths = ["repos/acme/app/DEPLOY", "repos/acme/app/environments/prod/DEPLOY", "orgs/acme/DEPLOY"]
    store = GitHubActionsSecretStore("gha", config)
    selected = GitHubActionsSecretStore(
        "gha-selected", {**config, "visibility": "selected", "selected_repositories": ["app"]}
    )
    for path in paths:
        store.write(path, {"value": "first"}, {})
        store.write(path, {"value": "second"}, {})
    selected.write("orgs/acme/DEPLOY", {"value": "third"}, {})
    for base in ("/repos/acme/app/actions", "/repos/acme/app/environments/prod", "/orgs/acme/actions"):
        call("GET", f"{base}/secrets")
        call("GET", f"{base}/secrets?per_page=1&page=1")
    call("GET", "/repos/acme/app/environments")
    call("GET", "/repos/acme/app/actions/organization-secrets")
    for path in paths:
        store.destroy(path)


def script_runs(runs, call) -> None:
    """What `keyturn scope collect github` reads: runs, attempts, jobs, trees, blobs, repos."""
    sha = "a" * 40
    runs.add_file("acme/app", sha, ".github/workflows/ci.yml", "on: push\njobs: {}\n")
    run_id = runs.add_run("acme/app", path=".github/workflows/ci.yml", head_sha=sha,
                          attempts=["2025-08-26T23:00:00Z", "2025-08-27T01:00:00Z"])
    call("GET", "/orgs/acme/repos")
    call("GET", "/repos/acme/app/actions/runs?created=2025-08-26T00:00:00Z..2025-08-28T00:00:00Z")
    call("GET", f"/repos/acme/app/actions/runs/{run_id}/attempts/1")
    call("GET", f"/repos/acme/app/actions/runs/{run_id}/attempts/2/jobs")
    tree = call("GET", f"/repos/acme/app/git/trees/{sha}?recursive=1")
    call("GET", f"/repos/acme/app/git/blobs/{tree['tree'][0]['sha']}")
