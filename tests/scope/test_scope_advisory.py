"""OSV records and command-line advisories: matching, ranges, over-broad records, rejections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyturn.scope.advisory import from_command_line, load_osv, parse_osv
from keyturn.scope.errors import ScopeError
from keyturn.scope.versions import ACTIONS, NPM, PYPI

FIXTURES = Path(__file__).parent / "fixtures" / "advisories"


def osv(*affected: dict) -> dict:
    return {"id": "MAL-TEST", "affected": list(affected)}


def npm_range(*events: dict, kind: str = "SEMVER") -> dict:
    return {"package": {"ecosystem": "npm", "name": "pad"},
            "ranges": [{"type": kind, "events": list(events)}]}


def test_a_versions_only_record_matches_exactly_those_versions() -> None:
    advisory = load_osv(FIXTURES / "mal-versions.json")
    assert advisory.id == "MAL-2025-0001"
    assert advisory.match(NPM, "@acme/ui", "2.1.0") is not None
    assert advisory.match(NPM, "@acme/ui", "2.1.1") is None
    assert advisory.match(NPM, "@ACME/ui", "2.1.0") is None  # npm names are case-sensitive
    assert not any(pkg.over_broad for pkg in advisory.packages)


def test_an_open_ended_record_is_applied_and_flagged_over_broad() -> None:
    advisory = load_osv(FIXTURES / "mal-overbroad.json")
    assert [pkg.over_broad for pkg in advisory.packages] == [True]
    assert advisory.match(PYPI, "ctrl.utils", "0.0.1") is not None  # PEP 503 names
    assert advisory.match(PYPI, "CTRL-UTILS", "99.0") is not None
    assert advisory.ignored == ("crates.io:ctrl-utils",)


@pytest.mark.parametrize(("version", "hit"), [
    ("1.0.0", False), ("1.2.0", True), ("1.2.9", True), ("1.3.0", False),
    ("2.0.0", True), ("2.0.5", True), ("2.0.6", False), ("3.0.0", False),
])
def test_ranges_follow_osv_event_semantics(version: str, hit: bool) -> None:
    advisory = parse_osv(osv(
        npm_range({"introduced": "1.2.0"}, {"fixed": "1.3.0"}),
        npm_range({"introduced": "2.0.0"}, {"last_affected": "2.0.5"}),
    ), "x.json")
    assert (advisory.match(NPM, "pad", version) is not None) is hit


def test_osv_order_counts_a_prerelease_inside_the_range() -> None:
    advisory = parse_osv(osv(npm_range({"introduced": "1.9.0"}, {"fixed": "2.0.0"})), "x.json")
    assert advisory.match(NPM, "pad", "2.0.0-beta.1") is not None
    assert advisory.match(NPM, "pad", "2.0.0") is None


def test_limit_caps_a_range() -> None:
    advisory = parse_osv(osv(npm_range({"introduced": "0"}, {"limit": "1.5.0"})), "x.json")
    assert advisory.match(NPM, "pad", "1.4.9") is not None
    assert advisory.match(NPM, "pad", "1.5.0") is None
    assert not any(pkg.over_broad for pkg in advisory.packages)


def test_an_action_matches_by_tag_range_or_by_listed_commit_sha() -> None:
    advisory = load_osv(FIXTURES / "ghsa-action.json")
    assert advisory.match(ACTIONS, "Acme/Setup-Tool", "v2.0.0") is not None
    assert advisory.match(ACTIONS, "acme/setup-tool", "v2") is not None
    assert advisory.match(ACTIONS, "acme/setup-tool", "v2.0.1") is None
    assert advisory.match(ACTIONS, "acme/setup-tool",
                          "0fedcba9876543210fedcba9876543210fedcba9") is not None
    assert advisory.match(ACTIONS, "acme/setup-tool", "1" * 40) is None


def test_a_native_npm_range_includes_prereleases_inside_it() -> None:
    advisory = from_command_line("npm:@acme/ui", [], ">=2.1.0 <2.2.0")
    assert advisory.match(NPM, "@acme/ui", "2.1.5") is not None
    assert advisory.match(NPM, "@acme/ui", "2.1.5-rc.1") is not None  # npm itself would not
    assert advisory.match(NPM, "@acme/ui", "2.2.0") is None
    # node-semver reads "<2.2.0" as "<2.2.0-0" even with prereleases included, while OSV's
    # `fixed: 2.2.0` orders 2.2.0-rc.1 below 2.2.0: the one place the two disagree.
    assert advisory.match(NPM, "@acme/ui", "2.2.0-rc.1") is None
    osv_range = parse_osv(osv(npm_range({"introduced": "2.1.0"}, {"fixed": "2.2.0"})), "x.json")
    assert osv_range.match(NPM, "pad", "2.2.0-rc.1") is not None


def test_a_native_pep440_specifier_and_listed_versions() -> None:
    advisory = from_command_line("PyPI:Ctrl_Utils", ["1.0"], "~=2.0")
    assert advisory.match(PYPI, "ctrl-utils", "1.0.0") is not None  # 1.0 == 1.0.0
    assert advisory.match(PYPI, "ctrl-utils", "2.5rc1") is not None
    assert advisory.match(PYPI, "ctrl-utils", "3.0") is None


def test_command_line_actions_take_shas_in_any_case() -> None:
    advisory = from_command_line("actions:acme/setup-tool", ["ABCDEF" + "0" * 34], None)
    assert advisory.match(ACTIONS, "acme/setup-tool", "abcdef" + "0" * 34) is not None


@pytest.mark.parametrize(("data", "message"), [
    ([], "expected an object with a string 'id'"),
    ({"id": "X"}, "lists no affected packages"),
    (osv({"package": {"ecosystem": "npm"}}), "affected[0].package: needs"),
    (osv({"package": {"ecosystem": "npm", "name": "a"}, "versions": "1.0"}),
     "affected[0].versions: must be a list"),
    (osv({"package": {"ecosystem": "npm", "name": "a"}, "ranges": {}}),
     "affected[0].ranges: must be a list"),
    (osv({"package": {"ecosystem": "npm", "name": "a"}, "ranges": [{"type": "DATE"}]}),
     "ranges[0].type: must be SEMVER"),
    (osv({"package": {"ecosystem": "npm", "name": "a"}, "ranges": [{"type": "SEMVER"}]}),
     "ranges[0].events: must be a non-empty list"),
    (osv(npm_range({"introduced": "0", "fixed": "1"})), "events[0]: must be one of"),
    (osv({"package": {"ecosystem": "Go", "name": "x"}, "versions": ["1"]}),
     "no affected package in a supported ecosystem"),
])
def test_malformed_records_are_rejected_with_the_json_path(data: object, message: str) -> None:
    with pytest.raises(ScopeError, match=None) as err:
        parse_osv(data, "adv.json")
    assert message in str(err.value)
    assert str(err.value).startswith("adv.json: ")


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "adv.json"
    path.write_text('{\n  "id": "X",\n  "affected": [,]\n}\n')
    with pytest.raises(ScopeError) as err:
        load_osv(path)
    assert err.value.line == 3


def test_an_unreadable_advisory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(ScopeError, match="cannot read the advisory"):
        load_osv(tmp_path / "missing.json")
    (tmp_path / "latin1.json").write_bytes(json.dumps({"id": "é"}).encode("utf-8")[:-3] + b"\xe9}")
    with pytest.raises(ScopeError, match="not UTF-8"):
        load_osv(tmp_path / "latin1.json")


@pytest.mark.parametrize(("package", "listed", "native", "message"), [
    ("acme-ui", ["1"], None, "expected ECOSYSTEM:NAME"),
    ("cargo:serde", ["1"], None, "expected ECOSYSTEM:NAME"),
    ("npm:a", [], None, "give --versions"),
    ("npm:a", [], ">=1 <<2", "not an npm semver range"),
    ("pypi:a", [], "=>1", "not a PEP 440 specifier"),
    ("actions:a/b", [], "v1", "no range syntax"),
])
def test_command_line_advisories_are_checked(package: str, listed: list[str],
                                             native: str | None, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        from_command_line(package, listed, native)
