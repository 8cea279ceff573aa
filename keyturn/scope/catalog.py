"""The catalog: every credential the organization has, in the runbook's format, and where it sits.

    apiVersion: keyturn/v1
    kind: Catalog
    metadata: {name: acme, description: ...}
    spec:
      approvers: {security: [alice, bob]}
      stores: {vault: {type: vault_kv, ...}, gha: {type: github_actions_secret}}
      credentials:
        - id: ci-deployer-aws                 # a runbook credential entry ...
          provider: aws.iam_access_key
          target: {user_name: ci-deployer}
          deliver: [{store: vault, path: ci/aws}, {store: gha, path: repos/acme/app/AWS_KEY}]
          exposed_as: [k8s:prod/aws-creds]    # ... plus where the secret is exposed
          tier: 1                             # optional: overrides the priority matrix

A deliver to a `github_actions_secret` store is an exposure at that location
without saying so. Loading reuses the runbook's YAML reader and error
conversion (file:line:col); the checks across entries are the runbook
validator's, run on the catalog seen as a one-tier runbook, with positions
mapped back to the catalog.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, ValidationError, WithJsonSchema

from keyturn.runbook.loader import decode, first_error, read_bytes
from keyturn.runbook.models import Credential, Metadata, Runbook, Slug, Spec, Store, Tier, _Strict
from keyturn.runbook.source import Path, RunbookError, SourceMap
from keyturn.runbook.validate import validate
from keyturn.runbook.yaml_tree import parse
from keyturn.scope.locations import LocationError, canonical

GITHUB_STORE_TYPE = "github_actions_secret"


def _location(value: str) -> str:
    try:
        return canonical(value)
    except LocationError as exc:
        raise ValueError(str(exc)) from None


Location = Annotated[
    str,
    AfterValidator(_location),
    WithJsonSchema({"type": "string", "pattern": "^(github:(repos|orgs)/|k8s:)"}),
]


class CatalogCredential(Credential):
    """A runbook credential entry plus where it is exposed and, optionally, its tier."""

    exposed_as: list[Location] = Field(default_factory=list)
    tier: Literal[1, 2, 3] | None = None

    def runbook_entry(self) -> Credential:
        """The entry as a runbook credential: every runbook field as written, nothing else."""
        return Credential.model_validate(
            self.model_dump(by_alias=True, exclude={"exposed_as", "tier"}, exclude_unset=True)
        )


class CatalogMetadata(_Strict):
    name: Slug
    description: str | None = None


class CatalogSpec(_Strict):
    approvers: dict[Slug, list[Annotated[str, Field(min_length=1)]]] = Field(default_factory=dict)
    stores: dict[Slug, Store] = Field(default_factory=dict)
    credentials: list[CatalogCredential] = Field(min_length=1)


class Catalog(_Strict):
    api_version: Literal["keyturn/v1"] = Field(alias="apiVersion")
    kind: Literal["Catalog"]
    metadata: CatalogMetadata
    spec: CatalogSpec

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    def raw_spec(self) -> dict[str, Any]:
        """`spec` as written, `${VAR}` references kept: what a generated runbook copies,
        whole, so that it reads the environment when it is loaded, not now."""
        return self._raw.get("spec") or self.model_dump(mode="json", by_alias=True)["spec"]

    def exposures(self) -> dict[str, list[str]]:
        """Credential id -> the canonical locations it is exposed at (declared and implicit)."""
        found: dict[str, list[str]] = {}
        for cred in self.spec.credentials:
            places = list(cred.exposed_as)
            for target in cred.deliver:
                store = self.spec.stores.get(target.store)
                if store is not None and store.type == GITHUB_STORE_TYPE:
                    try:
                        places.append(canonical(f"github:{target.path}"))
                    except LocationError:
                        pass  # the store itself rejects the path when a run writes it
            found[cred.id] = list(dict.fromkeys(places))
        return found


def load(path: str | os.PathLike[str], known_providers: Any = None) -> Catalog:
    """Read, shape-check and validate a catalog; RunbookError (file:line:col) on any problem."""
    file = str(path)
    return loads(decode(read_bytes(path), file), file, known_providers)


def loads(text: str, filename: str = "<catalog>", known_providers: Any = None) -> Catalog:
    data, source = parse(text, filename, os.environ)
    if not isinstance(data, dict):
        raise source.error((), "a catalog is a mapping that starts with 'apiVersion: keyturn/v1'")
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as err:
        raise first_error(err, source, Catalog) from None
    _check_locations(catalog, source)
    validate(_as_runbook(catalog, source), known_providers)
    catalog._raw = parse(text, filename, _KeepReferences())[0]
    return catalog


class _KeepReferences(Mapping[str, str]):
    """An environment in which every variable is set to its own reference, `${NAME}`."""

    def __getitem__(self, name: str) -> str:
        return "${" + name + "}"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _check_locations(catalog: Catalog, source: SourceMap) -> None:
    owner: dict[str, str] = {}
    for i, cred in enumerate(catalog.spec.credentials):
        for j, place in enumerate(cred.exposed_as):
            if place in owner and owner[place] != cred.id:
                raise source.error(("spec", "credentials", i, "exposed_as", j),
                                   f"{place} is already exposed_as of '{owner[place]}'; a "
                                   "location maps to one credential")
            owner[place] = cred.id


def _as_runbook(catalog: Catalog, source: SourceMap) -> Runbook:
    """The catalog as a one-tier runbook whose positions point into the catalog file."""
    runbook = Runbook.model_validate({
        "apiVersion": "keyturn/v1",
        "kind": "Runbook",
        "metadata": Metadata(name=catalog.metadata.name),
        "spec": Spec(
            approvers=catalog.spec.approvers,
            stores=catalog.spec.stores,
            tiers=[Tier(id="catalog", credentials=[
                c.runbook_entry() for c in catalog.spec.credentials])],
        ),
    })
    runbook._source = SourceMap(
        source.file,
        {_to_runbook(path): pos for path, pos in source.values.items()},
        {_to_runbook(path): pos for path, pos in source.keys.items()},
    )
    return runbook


def _to_runbook(path: Path) -> Path:
    if path[:2] == ("spec", "credentials"):
        return ("spec", "tiers", 0, "credentials", *path[2:])
    return path


__all__ = ["Catalog", "CatalogCredential", "RunbookError", "load", "loads"]
