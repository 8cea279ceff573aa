"""SBOMs: CycloneDX, SPDX and GitHub's export; purls, dependency-only packages, subjects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyturn.scope import sbom
from keyturn.scope.errors import ScopeError
from keyturn.scope.inventory import Package
from keyturn.scope.versions import ACTIONS, NPM, PYPI

SBOMS = Path(__file__).parent / "fixtures" / "sboms"


def test_cyclonedx_counts_a_package_reachable_only_through_dependencies() -> None:
    inventory = sbom.parse((SBOMS / "api-image.cdx.json").read_text(), "api.cdx.json")
    node = "pkg:npm/%40acme/ui@2.1.0"
    assert inventory.packages[node] == Package(NPM, "@acme/ui", "2.1.0")
    assert inventory.path(node) == ["ghcr.io/acme/api", "@acme/forms@3.0.4", "@acme/ui@2.1.0"]
    assert "sha256:" + "1" * 64 in inventory.subjects
    assert "ghcr.io/acme/api:1.4.2" in inventory.subjects


def test_github_dependency_graph_export_decodes_percent_encoded_purls() -> None:
    inventory = sbom.parse((SBOMS / "worker-github-export.json").read_text(), "export.json")
    node = "SPDXRef-npm-acme-ui-2.1.0"
    assert inventory.packages[node].name == "@acme/ui"
    assert inventory.path(node) == ["com.github.acme/worker", "@acme/ui@2.1.0"]
    assert inventory.line(node) == 23


@pytest.mark.parametrize(("purl", "package"), [
    ("pkg:pypi/Ctrl_Utils@1.2.0", Package(PYPI, "ctrl-utils", "1.2.0")),
    ("pkg:githubactions/acme/setup-tool@v2", Package(ACTIONS, "acme/setup-tool", "v2")),
    ("pkg:npm/left-pad", None),  # no version: nothing installed to match
    ("pkg:cargo/serde@1.0.0", None),
    ("not a purl", None),
])
def test_purls_name_packages_of_scoped_ecosystems(purl: str, package: Package | None) -> None:
    assert sbom.package_of(purl) == package


def test_spdx_relationships_in_either_direction() -> None:
    doc = {"spdxVersion": "SPDX-2.3", "packages": [
        {"SPDXID": "SPDXRef-app", "name": "app"},
        {"SPDXID": "SPDXRef-a", "externalRefs": [
            {"referenceType": "purl", "referenceLocator": "pkg:npm/a@1.0.0"}]},
        {"SPDXID": "SPDXRef-b", "externalRefs": [
            {"referenceType": "purl", "referenceLocator": "pkg:npm/b@2.0.0"}]},
    ], "relationships": [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
         "relatedSpdxElement": "SPDXRef-app"},
        {"spdxElementId": "SPDXRef-a", "relationshipType": "DEPENDENCY_OF",
         "relatedSpdxElement": "SPDXRef-app"},
        {"spdxElementId": "SPDXRef-a", "relationshipType": "DEPENDS_ON",
         "relatedSpdxElement": "SPDXRef-b"},
    ]}
    inventory = sbom.parse(json.dumps(doc), "doc.spdx.json")
    assert inventory.path("SPDXRef-b") == ["app", "a@1.0.0", "b@2.0.0"]


@pytest.mark.parametrize(("text", "message"), [
    ("{", "invalid JSON"),
    ("[1]", "expected a JSON object"),
    ('{"bomFormat": "CycloneDX", "specVersion": "1.2"}', "unsupported CycloneDX specVersion"),
    ('{"spdxVersion": "SPDX-2.2"}', "not a CycloneDX 1.4-1.6 or SPDX 2.3"),
    ('{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [1]}',
     "every component must be an object"),
    ('{"bomFormat": "CycloneDX", "specVersion": "1.4", "dependencies": [{}]}',
     "dependencies\\[0\\]: needs a string 'ref'"),
    ('{"spdxVersion": "SPDX-2.3", "packages": [{}]}', "packages\\[0\\]: needs a string 'SPDXID'"),
    ('{"spdxVersion": "SPDX-2.3", "relationships": [1]}', "every relationship must be an object"),
])
def test_sbom_rejections(text: str, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        sbom.parse(text, "sbom.json")
