"""Lockfile parsers: what each reads (real names, versions, lines, paths) and what each refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyturn.scope import npm_lock, pnpm_lock, python_locks, yarn_lock
from keyturn.scope.errors import ScopeError
from keyturn.scope.inventory import Inventory

FIXTURES = Path(__file__).parent / "fixtures"


def read(parser, name: str) -> Inventory:
    path = FIXTURES / name
    return parser(path.read_text(), name)


def node_of(inventory: Inventory, name: str, version: str) -> str:
    return next(node for node, p in inventory.packages.items()
                if (p.name, p.version) == (name, version))


# -- npm -----------------------------------------------------------------------------


def test_package_lock_v3_follows_node_resolution_and_aliases() -> None:
    inventory = read(npm_lock.parse, "checkouts/app/package-lock.json")
    nested = node_of(inventory, "color-name", "1.1.4")
    assert inventory.path(nested) == ["app", "@acme/ui@2.1.0", "color-name@1.1.4"]
    hoisted = node_of(inventory, "color-name", "2.0.0")
    assert inventory.path(hoisted) == ["app", "eslint-lite@1.0.2", "color-name@2.0.0"]
    alias = node_of(inventory, "left-pad", "1.3.0")
    assert inventory.packages[alias].alias == "left-pad-cjs"
    assert inventory.line(alias) == 43


def test_package_lock_v1_reads_nested_installs_and_npm_aliases() -> None:
    text = json.dumps({"name": "old", "lockfileVersion": 1, "dependencies": {
        "a": {"version": "1.0.0", "requires": {"b": "^2"},
              "dependencies": {"b": {"version": "2.0.0"}}},
        "b": {"version": "3.0.0"},
        "pad": {"version": "npm:left-pad@1.3.0"},
    }}, indent=2)
    inventory = npm_lock.parse(text, "npm-shrinkwrap.json")
    nested = node_of(inventory, "b", "2.0.0")
    assert inventory.path(nested) == ["old", "a@1.0.0", "b@2.0.0"]
    assert inventory.path(node_of(inventory, "b", "3.0.0")) == ["old", "b@3.0.0"]
    alias = node_of(inventory, "left-pad", "1.3.0")
    assert inventory.label(alias) == "pad (left-pad@1.3.0)"


@pytest.mark.parametrize(("text", "message"), [
    ("{", "invalid JSON"),
    ("[]", "expected a JSON object"),
    ('{"lockfileVersion": 4}', "unsupported lockfileVersion 4"),
    ('{"lockfileVersion": 3, "packages": []}', "packages: expected an object"),
    ('{"lockfileVersion": 3, "packages": {"node_modules/a": 1}}', "expected an object"),
    ('{"lockfileVersion": 3, "packages": {"node_modules/a": {}}}', "no version"),
    ('{"lockfileVersion": 1, "dependencies": []}', "dependencies: expected an object"),
    ('{"lockfileVersion": 1, "dependencies": {"a": {}}}', "node_modules/a: no version"),
])
def test_package_lock_rejections(text: str, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        npm_lock.parse(text, "package-lock.json")


# -- pnpm ----------------------------------------------------------------------------


def test_pnpm_v9_finds_a_transitive_install_through_snapshots_with_peer_suffixes() -> None:
    inventory = read(pnpm_lock.parse, "checkouts/api/pnpm-lock.yaml")
    node = node_of(inventory, "@acme/ui", "2.1.0")
    assert node == "@acme/ui@2.1.0(react@18.2.0)"
    assert inventory.path(node) == [".", "@acme/forms@3.0.4", "@acme/ui@2.1.0"]
    assert inventory.line(node) == 52


def test_pnpm_v9_alias_is_matched_by_the_real_name() -> None:
    inventory = read(pnpm_lock.parse, "checkouts/api/pnpm-lock.yaml")
    node = node_of(inventory, "wrap-ansi", "7.0.0")
    assert inventory.path(node) == [".", "wrap-cjs (wrap-ansi@7.0.0)"]


def test_pnpm_v6_reads_packages_aliases_and_non_registry_entries() -> None:
    inventory = read(pnpm_lock.parse, "pnpm-v6.yaml")
    ui = node_of(inventory, "@acme/ui", "2.1.0")
    assert inventory.path(node_of(inventory, "color-name", "1.1.4")) == [
        ".", "@acme/ui@2.1.0", "color-name@1.1.4"]
    assert inventory.line(ui) == 22
    assert inventory.packages[node_of(inventory, "wrap-ansi", "7.0.0")].alias == "wrap-cjs"
    assert node_of(inventory, "tiny", "0.1.0").startswith("github.com/acme/tiny/")


def test_pnpm_workspace_importers_are_roots() -> None:
    text = ("lockfileVersion: '9.0'\n\nimporters:\n\n  packages/web:\n    dependencies:\n"
            "      pad:\n        specifier: ^1\n        version: 1.0.0\n\npackages:\n\n"
            "  pad@1.0.0:\n    resolution: {integrity: sha512-A}\n\nsnapshots:\n\n"
            "  pad@1.0.0: {}\n")
    inventory = pnpm_lock.parse(text, "pnpm-lock.yaml")
    assert inventory.path("pad@1.0.0") == ["packages/web", "pad@1.0.0"]


@pytest.mark.parametrize(("text", "message", "line"), [
    ("settings: {}\n", "the first line must be lockfileVersion", 1),
    ("lockfileVersion: '5.4'\n", "unsupported pnpm lockfileVersion '5.4'", 1),
    ("lockfileVersion: '9.0'\nsnapshots:\n\t a@1.0.0: {}\n", "tab in indentation", 3),
    ("lockfileVersion: '9.0'\n\tsnapshots:\n", "tab in indentation", 2),
    ("lockfileVersion: '9.0'\nsnapshots:\n  a@1.0.0 {}\n", "expected 'key: value'", 3),
    ("lockfileVersion: '9.0'\nsnapshots:\n  'a@1.0.0: {}\n", "unterminated quoted key", 3),
    ("lockfileVersion: '9.0'\nsnapshots:\n  'a@1.0.0' {}\n", "expected ':' after the key", 3),
    ("lockfileVersion: '6.0'\npackages:\n  github.com/a/b/c:\n    name: b\n", "has no version", 3),
])
def test_pnpm_rejections(text: str, message: str, line: int) -> None:
    with pytest.raises(ScopeError, match=message) as err:
        pnpm_lock.parse(text, "pnpm-lock.yaml")
    assert err.value.line == line


# -- yarn ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["yarn-classic.lock", "yarn-berry.lock"])
def test_yarn_reads_both_generations_with_aliases(name: str) -> None:
    inventory = read(yarn_lock.parse, name)
    ui = node_of(inventory, "@acme/ui", "2.1.0")
    color = node_of(inventory, "color-name", "1.1.4")
    assert inventory.path(color)[-2:] == ["@acme/ui@2.1.0", "color-name@1.1.4"]
    alias = node_of(inventory, "left-pad", "1.3.0")
    assert inventory.packages[alias].alias == "left-pad-cjs"
    assert inventory.line(ui) == {"yarn-classic.lock": 5, "yarn-berry.lock": 8}[name]


def test_yarn_berry_workspaces_are_the_roots() -> None:
    inventory = read(yarn_lock.parse, "yarn-berry.lock")
    assert inventory.path(node_of(inventory, "@acme/ui", "2.1.0")) == [".", "@acme/ui@2.1.0"]


CLASSIC = "# yarn lockfile v1\n\n"
BERRY = "__metadata:\n  version: 8\n\n"


@pytest.mark.parametrize(("text", "message", "line"), [
    ("a@^1:\n  version \"1.0.0\"\n", "not a yarn lockfile", 1),
    (CLASSIC + "a@^1\n", "an entry header ends with ':'", 3),
    (CLASSIC + "a:\n  version \"1.0.0\"\n", "has no '@range'", 3),
    (CLASSIC + "  version \"1.0.0\"\n", "indented line outside an entry", 3),
    (CLASSIC + "a@^1:\n  version\n", "expected 'key value' or 'key:'", 4),
    (CLASSIC + "a@^1:\n  \"version 1.0.0\n", "unterminated quoted key", 4),
    (CLASSIC + "a@^1:\n  resolved \"x\"\n", "entry 'a@\\^1' has no version", 3),
    (BERRY + '"a@npm:^1":\n  version 1.0.0\n', "expected 'key: value'", 5),
])
def test_yarn_rejections(text: str, message: str, line: int) -> None:
    with pytest.raises(ScopeError, match=message) as err:
        yarn_lock.parse(text, "yarn.lock")
    assert err.value.line == line


# -- Python --------------------------------------------------------------------------


def test_requirements_with_hashes_normalize_names_and_skip_unpinned_lines() -> None:
    inventory = read(python_locks.parse_requirements, "requirements-prod.txt")
    assert {(p.name, p.version) for p in inventory.packages.values()} == {
        ("certifi", "2024.8.30"), ("ctrl-utils", "1.2.0")}
    assert inventory.line("ctrl-utils") == 7


def test_requirements_paths_urls_and_options_name_no_registry_pin() -> None:
    text = ("-r base.txt\n-e .\n./vendor/pkg\nhttps://files.example/x-1.0.tar.gz\n"
            "pkg @ git+https://git.example/pkg@1.0\n--index-url https://pypi.org/simple\n"
            "six==1.16.0\n")
    inventory = python_locks.parse_requirements(text, "requirements.txt")
    assert list(inventory.packages) == ["six"]


def test_poetry_uv_and_pipfile_locks() -> None:
    poetry = read(python_locks.parse_poetry, "poetry.lock")
    assert poetry.path("ctrl-utils") == ["(project)", "web-kit@3.0.1", "ctrl-utils@1.2.0"]
    uv = read(python_locks.parse_uv, "uv.lock")
    assert uv.path("ctrl-utils") == ["api", "web-kit@3.0.1", "ctrl-utils@1.2.0"]
    assert uv.line("web-kit") == 18  # its [[package]] header
    pipfile = read(python_locks.parse_pipfile, "Pipfile.lock")
    assert pipfile.packages["ctrl-utils"].version == "1.2.0"
    assert pipfile.line("ctrl-utils") == 4


@pytest.mark.parametrize(("parser", "text", "message"), [
    (python_locks.parse_requirements, "ok==1.0\nnot a requirement!\n", "invalid requirement"),
    (python_locks.parse_poetry, "[[package]\n", "invalid TOML"),
    (python_locks.parse_poetry, "package = 1\n", "expected \\[\\[package\\]\\] tables"),
    (python_locks.parse_uv, "[[package]]\nname = \"a\"\n", "needs a name and a version"),
    (python_locks.parse_pipfile, "{", "invalid JSON"),
    (python_locks.parse_pipfile, "{\"default\": []}", "not a Pipfile.lock"),
])
def test_python_lock_rejections(parser, text: str, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        parser(text, "lock")
