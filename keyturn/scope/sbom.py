"""SBOMs: CycloneDX 1.4-1.6 JSON, SPDX 2.3 JSON, and GitHub's dependency-graph export.

Packages are read from their purls (packageurl-python decodes the
percent-encoding GitHub uses, `pkg:npm/%40acme/ui@2.1.0`). Edges come from
CycloneDX `dependencies` and SPDX relationships; a CycloneDX dependency ref
that is a purl but no listed component still counts as installed. The SBOM's
subject (the image it describes) gives `subjects`: image references and
digests that Kubernetes containers are matched against.
"""

from __future__ import annotations

import json
from typing import Any

from packageurl import PackageURL

from keyturn.scope.errors import ScopeError
from keyturn.scope.inventory import Inventory, Package
from keyturn.scope.versions import ACTIONS, NPM, PYPI

_TYPES = {"npm": NPM, "pypi": PYPI, "githubactions": ACTIONS, "github": ACTIONS}
_FORWARD = {"DEPENDS_ON", "CONTAINS", "DESCRIBES", "DEV_DEPENDENCY_OF"}
_BACKWARD = {"DEPENDENCY_OF", "CONTAINED_BY", "DESCRIBED_BY"}


def parse(text: str, file: str) -> Inventory:
    """Parse a CycloneDX or SPDX JSON document (or GitHub's `{"sbom": ...}` wrapper)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScopeError(file, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    if isinstance(data, dict) and isinstance(data.get("sbom"), dict):
        data = data["sbom"]
    if not isinstance(data, dict):
        raise ScopeError(file, "not an SBOM: expected a JSON object")
    if data.get("bomFormat") == "CycloneDX":
        if str(data.get("specVersion")) not in ("1.4", "1.5", "1.6"):
            raise ScopeError(file, f"unsupported CycloneDX specVersion "
                                   f"{data.get('specVersion')!r} (1.4 to 1.6 are read)")
        return _cyclonedx(data, Inventory(file, "cyclonedx", text))
    if data.get("spdxVersion") == "SPDX-2.3":
        return _spdx(data, Inventory(file, "spdx", text))
    raise ScopeError(file, "not a CycloneDX 1.4-1.6 or SPDX 2.3 JSON document")


def package_of(purl: str) -> Package | None:
    """The package a purl names, or None if it is no purl or of an ecosystem not scoped."""
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return None
    eco = _TYPES.get(parsed.type)
    if eco is None or not parsed.version:
        return None
    name = f"{parsed.namespace}/{parsed.name}" if parsed.namespace else parsed.name
    return Package(eco, name, parsed.version)


def _cyclonedx(data: dict[str, Any], inventory: Inventory) -> Inventory:
    purls: dict[str, str] = {}
    inventory.anchor = purls.get
    stack = list(data.get("components") or [])
    while stack:
        component = stack.pop()
        if not isinstance(component, dict):
            raise ScopeError(inventory.file, "components: every component must be an object")
        purl = component.get("purl")
        ref = component.get("bom-ref") or purl
        if isinstance(purl, str) and isinstance(ref, str):
            _add(inventory, purls, ref, purl)
        stack.extend(component.get("components") or [])
    subject = (data.get("metadata") or {}).get("component")
    if isinstance(subject, dict):
        root = subject.get("bom-ref") or subject.get("purl") or "(subject)"
        inventory.roots.append(root)
        inventory.titles[root] = str(subject.get("name") or root)
        inventory.subjects.extend(_subjects(subject.get("name"), subject.get("version"),
                                            subject.get("purl")))
    for i, entry in enumerate(data.get("dependencies") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("ref"), str):
            raise ScopeError(inventory.file, f"dependencies[{i}]: needs a string 'ref'")
        for child in [entry["ref"], *(entry.get("dependsOn") or [])]:
            if child not in inventory.packages:
                _add(inventory, purls, child, child)  # a purl ref with no component entry
        for child in entry.get("dependsOn") or []:
            inventory.depend(entry["ref"], child)
    if not inventory.roots:
        needed = {child for children in inventory.edges.values() for child in children}
        inventory.roots.extend(node for node in inventory.packages if node not in needed)
    return inventory


def _spdx(data: dict[str, Any], inventory: Inventory) -> Inventory:
    purls: dict[str, str] = {}
    inventory.anchor = purls.get
    for i, package in enumerate(data.get("packages") or []):
        if not isinstance(package, dict) or not isinstance(package.get("SPDXID"), str):
            raise ScopeError(inventory.file, f"packages[{i}]: needs a string 'SPDXID'")
        node = package["SPDXID"]
        inventory.titles[node] = str(package.get("name") or node)
        for ref in package.get("externalRefs") or []:
            if isinstance(ref, dict) and ref.get("referenceType") == "purl":
                _add(inventory, purls, node, str(ref.get("referenceLocator", "")))
    described = list(data.get("documentDescribes") or [])
    for rel in data.get("relationships") or []:
        if not isinstance(rel, dict):
            raise ScopeError(inventory.file, "relationships: every relationship must be an object")
        kind, a, b = rel.get("relationshipType"), rel.get("spdxElementId"), rel.get(
            "relatedSpdxElement")
        if kind == "DESCRIBES" and a == "SPDXRef-DOCUMENT":
            described.append(b)
        elif kind in _FORWARD:
            inventory.depend(a, b)
        elif kind in _BACKWARD:
            inventory.depend(b, a)
    by_id = {p.get("SPDXID"): p for p in data.get("packages") or []}
    for node in dict.fromkeys(described):
        inventory.roots.append(node)
        subject = by_id.get(node, {})
        purls = [r.get("referenceLocator") for r in subject.get("externalRefs") or []
                 if isinstance(r, dict) and r.get("referenceType") == "purl"]
        inventory.subjects.extend(_subjects(subject.get("name"), subject.get("versionInfo"),
                                            purls[0] if purls else None))
    return inventory


def _add(inventory: Inventory, purls: dict[str, str], node: str, purl: str) -> None:
    package = package_of(purl)
    if package is not None:
        inventory.add(node, package)
        purls[node] = purl  # as written: `line` searches for it


def _subjects(name: Any, version: Any, purl: Any) -> list[str]:
    """Image references and digests an SBOM subject is known by."""
    found: list[str] = []
    if isinstance(name, str) and name:
        found.append(name)
        if isinstance(version, str) and version:
            found.append(version if version.startswith("sha256:") else f"{name}:{version}")
    if isinstance(purl, str) and purl.startswith("pkg:oci/"):
        try:
            parsed = PackageURL.from_string(purl)
        except ValueError:
            return found
        if parsed.version:
            found.append(parsed.version)
        repository = (parsed.qualifiers or {}).get("repository_url")
        if repository:
            found.append(repository)
            tag = (parsed.qualifiers or {}).get("tag")
            if tag:
                found.append(f"{repository}:{tag}")
    return found
