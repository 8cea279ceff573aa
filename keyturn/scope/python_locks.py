"""Python lockfiles: requirements*.txt (pinned, with hashes), poetry.lock, uv.lock, Pipfile.lock.

Names are PEP 503-normalized. A requirements file is read with `packaging`'s
requirement parser after joining continuation lines and dropping options and
`--hash` flags; only exact pins (`==`, `===`) name an installed version, other
lines (ranges, local paths, URLs) are kept out. poetry.lock and uv.lock are TOML with each package's
dependencies (uv records the project as the package whose source is
`editable`/`virtual`); Pipfile.lock is JSON and flat.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from keyturn.scope.errors import ScopeError
from keyturn.scope.inventory import Inventory, Package
from keyturn.scope.versions import PYPI

ROOT = "(project)"
_URL = re.compile(r"[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def parse_requirements(text: str, file: str) -> Inventory:
    inventory = _new(file, "requirements", text)
    logical, start = "", 0
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not logical:
            start = number
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        _requirement(inventory, logical.strip(), start)
        logical = ""
    return inventory


def _requirement(inventory: Inventory, line: str, number: int) -> None:
    if not line or line.startswith(("-", ".", "/", "~")) or _URL.match(line):
        return  # options (-r, -e, --index-url, a --hash line), local paths, URLs: no registry pin
    spec = " ".join(word for word in line.split() if not word.startswith("--hash"))
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise ScopeError(inventory.file, f"invalid requirement: {exc}", number, 1) from exc
    pins = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
    if len(pins) == 1 and "*" not in pins[0]:
        node = canonicalize_name(requirement.name)
        inventory.add(node, Package(PYPI, node, pins[0]), number)
        inventory.depend(ROOT, node)


def parse_poetry(text: str, file: str) -> Inventory:
    inventory = _new(file, "poetry.lock", text)
    written = _toml_headers(inventory)
    for i, entry in enumerate(_toml_packages(text, file)):
        node = _add_toml(inventory, entry, i, written)
        for dep in entry.get("dependencies") or {}:
            inventory.depend(node, canonicalize_name(dep))
    needed = {child for children in inventory.edges.values() for child in children}
    for node in inventory.packages:
        if node not in needed:
            inventory.depend(ROOT, node)
    return inventory


def parse_uv(text: str, file: str) -> Inventory:
    inventory = _new(file, "uv.lock", text)
    written = _toml_headers(inventory)
    inventory.roots.clear()
    for i, entry in enumerate(_toml_packages(text, file)):
        source = entry.get("source") or {}
        if isinstance(source, dict) and ("editable" in source or "virtual" in source):
            node = canonicalize_name(str(entry.get("name", "")))
            inventory.roots.append(node)
            inventory.titles[node] = node
        else:
            node = _add_toml(inventory, entry, i, written)
        for dep in entry.get("dependencies") or []:
            if isinstance(dep, dict) and isinstance(dep.get("name"), str):
                inventory.depend(node, canonicalize_name(dep["name"]))
    return inventory


def parse_pipfile(text: str, file: str) -> Inventory:
    inventory = _new(file, "Pipfile.lock", text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScopeError(file, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    if not isinstance(data, dict) or not isinstance(data.get("default", {}), dict):
        raise ScopeError(file, "not a Pipfile.lock: expected an object with 'default'")
    written: dict[str, str] = {}
    inventory.anchor = written.get
    for group in ("default", "develop"):
        for name, entry in (data.get(group) or {}).items():
            version = entry.get("version", "") if isinstance(entry, dict) else ""
            if version.startswith("=="):
                node = canonicalize_name(name)
                inventory.add(node, Package(PYPI, node, version[2:]))
                written[node] = json.dumps(name) + ":"
                inventory.depend(ROOT, node)
    return inventory


def _new(file: str, kind: str, text: str) -> Inventory:
    inventory = Inventory(file, kind, text, roots=[ROOT])
    inventory.titles[ROOT] = ROOT
    return inventory


def _toml_packages(text: str, file: str) -> list[dict[str, Any]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScopeError(file, f"invalid TOML: {exc}") from exc
    packages = data.get("package", [])
    if not isinstance(packages, list) or not all(isinstance(p, dict) for p in packages):
        raise ScopeError(file, "package: expected [[package]] tables")
    return packages


def _toml_headers(inventory: Inventory) -> dict[str, str]:
    """node -> its name as written, which starts its [[package]] table (for `line`)."""
    written: dict[str, str] = {}
    inventory.anchor = lambda node: f'[[package]]\nname = "{written[node]}"' if (
        node in written) else None
    return written


def _add_toml(inventory: Inventory, entry: dict[str, Any], index: int,
              written: dict[str, str]) -> str:
    name, version = entry.get("name"), entry.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise ScopeError(inventory.file, f"package #{index + 1}: needs a name and a version")
    node = canonicalize_name(name)
    inventory.add(node, Package(PYPI, node, version))
    written[node] = name
    return node
