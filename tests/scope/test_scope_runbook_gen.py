"""The generated runbook: the real loader and validator accept it; tiers, overrides, comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyturn.runbook import check, loads, validate
from keyturn.scope import advisory, catalog, runbook_gen, scan
from keyturn.scope.report import Report, parse_window

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> catalog.Catalog:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    return catalog.load(FIXTURES / "catalog.yaml")


@pytest.fixture
def report(acme: catalog.Catalog) -> Report:
    return scan.scope(scan.Inputs(
        advisory.load_osv(FIXTURES / "advisories" / "mal-versions.json"), acme,
        repos=[(FIXTURES / "checkouts" / "app", "acme/app")],
        sboms=[FIXTURES / "sboms"], manifests=[FIXTURES / "manifests"],
        window=parse_window("2025-08-26T22:30Z/2025-08-27T03:00Z")))


def tiers(text: str) -> dict[str, list[str]]:
    runbook = validate(loads(text, "incident.yaml"))
    return {tier.id: [c.id for c in tier.credentials] for tier in runbook.spec.tiers}


def test_the_runbook_validates_and_places_credentials_by_the_matrix(
        acme: catalog.Catalog, report: Report, tmp_path: Path) -> None:
    text = runbook_gen.generate(report, acme, incident="INC-2025-0827")
    assert text is not None
    path = tmp_path / "incident.yaml"
    path.write_text(text)
    runbook = check(path)  # the installed providers check every target too
    assert runbook.metadata.name == "scope-mal-2025-0001"
    assert runbook.metadata.incident == "INC-2025-0827"
    assert "MAL-2025-0001" in runbook.metadata.description
    assert "2025-08-26T22:30:00Z/2025-08-27T03:00:00Z" in runbook.metadata.description
    assert tiers(text) == {
        "tier1": ["npm-publish-token", "ci-deployer-aws"],
        "tier2": ["release-bot-pat"],
        "tier3": ["orders-db", "docs-signing-key"],  # docs-signing-key: `tier: 3` in the catalog
    }
    assert runbook.spec.tiers[2].after == ["tier1", "tier2"]
    assert runbook.spec.stores["vault"].config["address"] == "http://127.0.0.1:8200"
    assert 'address: ${VAULT_ADDR}' in text  # read when the runbook is loaded, not copied
    assert "#   MAL-2025-0001 -> @acme/ui@2.1.0 -> acme/app/package-lock.json:18" in text


def test_delivered_only_leaves_reachable_credentials_out(acme: catalog.Catalog,
                                                         report: Report) -> None:
    text = runbook_gen.generate(report, acme, delivered_only=True)
    assert text is not None
    assert "docs-signing-key" not in tiers(text)["tier3"]


def test_empty_tiers_are_omitted_and_after_names_only_tiers_present(
        acme: catalog.Catalog, report: Report) -> None:
    only_db = Report(report.advisory, report.window)
    only_db.exposures = {k: v for k, v in report.exposures.items() if v.credential == "orders-db"}
    text = runbook_gen.generate(only_db, acme)
    assert text is not None
    assert tiers(text) == {"tier3": ["orders-db"]}
    assert "after:" not in text


def test_nothing_exposed_means_no_runbook(acme: catalog.Catalog) -> None:
    assert runbook_gen.generate(Report("MAL-X", None), acme) is None


def test_untrusted_names_cannot_break_out_of_a_comment(acme: catalog.Catalog) -> None:
    hostile = Report("MAL-X", None)
    hostile.expose("github:repos/acme/app/NPM_TOKEN", "delivered", "npm-publish-token",
                   ["MAL-X", "evil@1.0.0", "job\nkind: Runbook\u2028x", "acme/app"])
    text = runbook_gen.generate(hostile, acme)
    assert text is not None
    assert "job\\x0akind: Runbook\\x2028x" in text
    assert tiers(text) == {"tier1": ["npm-publish-token"]}


def test_depends_on_outside_the_tier_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (FIXTURES / "catalog.yaml").read_text().replace(
        "      gate: {before: revoke, approvals: 1, from: security}\n",
        "      gate: {before: revoke, approvals: 1, from: security}\n"
        "      depends_on: [billing-db]\n")
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    modified = catalog.loads(text, "catalog.yaml")
    report = Report("MAL-X", None)
    report.expose("k8s:prod/orders-db/password", "delivered", "orders-db", ["MAL-X"])
    generated = runbook_gen.generate(report, modified)
    assert generated is not None and "depends_on" not in generated
    assert tiers(generated) == {"tier3": ["orders-db"]}
