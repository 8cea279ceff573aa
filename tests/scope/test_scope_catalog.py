"""The catalog: loading with positions, implicit exposures, validation, the JSON Schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from keyturn.runbook import RunbookError
from keyturn.scope import catalog
from keyturn.scope.locations import LocationError, canonical, covers
from keyturn.scope.schema import json_schema, schema_text

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = Path(__file__).resolve().parents[2] / "runbooks" / "catalog.schema.json"


@pytest.fixture(autouse=True)
def vault_addr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")


def test_the_fixture_catalog_loads_with_declared_and_implicit_exposures() -> None:
    loaded = catalog.load(FIXTURES / "catalog.yaml")
    exposures = loaded.exposures()
    assert exposures["npm-publish-token"] == ["github:repos/acme/app/NPM_TOKEN"]  # a deliver
    assert exposures["ci-deployer-aws"] == [
        "github:repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID"]
    assert next(c for c in loaded.spec.credentials if c.id == "docs-signing-key").tier == 3


def test_environment_references_stay_references_in_the_raw_spec() -> None:
    loaded = catalog.load(FIXTURES / "catalog.yaml")
    assert loaded.spec.stores["vault"].config["address"] == "http://127.0.0.1:8200"
    assert loaded.raw_spec()["stores"]["vault"]["address"] == "${VAULT_ADDR}"


BASE = """apiVersion: keyturn/v1
kind: Catalog
metadata: {name: acme}
spec:
  stores: {vault: {type: vault_kv, address: "http://127.0.0.1:8200", mount: secret}}
  credentials:
    - id: npm-publish
      provider: npm.token
      target: {username: acme-release}
      deliver: [{store: vault, path: ci/npm}]
"""


@pytest.mark.parametrize(("extra", "message", "line"), [
    ("      exposed_as: [github:repo/acme/app/X]\n", "is not a secret location", 11),
    ("      exposed_az: []\n", "did you mean 'exposed_as'", 11),
    ("      tier: 4\n", "tier", 11),
    (("      exposed_as: [k8s:prod/db]\n    - id: other\n      provider: npm.token\n"
     "      target: {username: other}\n      deliver: [{store: vault, path: ci/o}]\n"
     "      exposed_as: [k8s:prod/db]\n"), "already exposed_as of 'npm-publish'", 16),
    (("    - id: two\n      provider: npm.tokn\n      target: {username: x}\n"
     "      deliver: [{store: vault, path: x}]\n"), "unknown provider 'npm.tokn'", 12),
    (("    - id: npm-publish\n      provider: npm.token\n      target: {username: x}\n"
     "      deliver: [{store: vault, path: x}]\n"), "duplicate credential id", 11),
])
def test_catalog_errors_name_file_line_and_column(extra: str, message: str, line: int) -> None:
    with pytest.raises(RunbookError, match=message) as err:
        catalog.loads(BASE + extra, "catalog.yaml")
    assert (err.value.file, err.value.line) == ("catalog.yaml", line)


def test_a_catalog_needs_its_kind_and_credentials() -> None:
    with pytest.raises(RunbookError, match="Catalog"):
        catalog.loads(BASE.replace("kind: Catalog", "kind: Runbook"), "c.yaml")
    with pytest.raises(RunbookError, match="at least 1 item"):
        catalog.loads(BASE.split("    - id")[0].replace("credentials:", "credentials: []"), "c.yaml")
    with pytest.raises(RunbookError, match="a catalog is a mapping"):
        catalog.loads("- 1\n", "c.yaml")


@pytest.mark.parametrize(("text", "expected"), [
    ("github:repos/Acme/App/npm_token", "github:repos/acme/app/NPM_TOKEN"),
    ("github:repos/acme/app/environments/Prod/EU/key", "github:repos/acme/app/environments/prod/eu/KEY"),
    ("github:orgs/ACME/Token", "github:orgs/acme/TOKEN"),
    ("k8s:prod/orders-db/password", "k8s:prod/orders-db/password"),
    ("k8s:prod/orders-db", "k8s:prod/orders-db"),
])
def test_locations_are_canonical(text: str, expected: str) -> None:
    assert canonical(text) == expected


@pytest.mark.parametrize("text", [
    "github:repos/acme/NAME", "github:orgs/acme/1BAD", "github:repos/a/b/environments//X",
    "k8s:Prod/db", "k8s:prod", "vault:secret/x", "github:users/alice/X",
])
def test_malformed_locations_are_refused(text: str) -> None:
    with pytest.raises(LocationError):
        canonical(text)


def test_a_whole_kubernetes_secret_covers_its_keys_both_ways() -> None:
    assert covers("k8s:prod/db", "k8s:prod/db/password")
    assert covers("k8s:prod/db/password", "k8s:prod/db")
    assert not covers("k8s:prod/db/user", "k8s:prod/db/password")
    assert not covers("github:orgs/acme/X", "github:orgs/acme/Y")


def test_committed_catalog_schema_is_current() -> None:
    assert SCHEMA.read_text() == schema_text(), (
        "regenerate: python -m keyturn.scope.schema > runbooks/catalog.schema.json")


def test_the_fixture_catalog_matches_the_schema_and_an_unknown_field_does_not() -> None:
    document = yaml.safe_load((FIXTURES / "catalog.yaml").read_text())
    validator = jsonschema.Draft202012Validator(json_schema())
    validator.validate(document)
    document["spec"]["credentials"][0]["exposed"] = []
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(document)


def test_the_docs_catalog_example_loads() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "scoping.md").read_text()
    start = page.index("```yaml\napiVersion: keyturn/v1\nkind: Catalog") + len("```yaml\n")
    loaded = catalog.loads(page[start:page.index("```", start)], "docs/scoping.md")
    assert loaded.exposures()["ci-deployer-aws"] == [
        "github:repos/acme/app/environments/prod/AWS_ACCESS_KEY_ID", "k8s:prod/aws"]
