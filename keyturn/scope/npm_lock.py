"""npm's package-lock.json and npm-shrinkwrap.json, lockfile versions 1, 2 and 3.

Versions 2 and 3 list every installed copy under `packages`, keyed by its
location ("node_modules/a/node_modules/b"); an aliased install has the real
name in `name`. Version 1 nests `dependencies` and writes an alias as the
version "npm:real@1.2.3". Edges follow Node's resolution: a dependency is
the nearest `node_modules/NAME` from the dependent's location up to the root.
"""

from __future__ import annotations

import json
from typing import Any

from keyturn.scope.errors import ScopeError
from keyturn.scope.inventory import Inventory, Package
from keyturn.scope.versions import NPM

ROOT = ""
_RUNTIME = ("dependencies", "optionalDependencies", "peerDependencies")


def parse(text: str, file: str) -> Inventory:
    """Parse a package-lock or npm-shrinkwrap; ScopeError on anything that is not one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScopeError(file, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    if not isinstance(data, dict):
        raise ScopeError(file, "not a package-lock: expected a JSON object")
    version = data.get("lockfileVersion")
    inventory = Inventory(file, "package-lock", text)
    inventory.roots.append(ROOT)
    inventory.titles[ROOT] = str(data.get("name") or file)
    if version in (2, 3):
        _packages(data, inventory)
    elif version == 1:
        _legacy(data, inventory)
    else:
        raise ScopeError(file, f"unsupported lockfileVersion {version!r} (1, 2 and 3 are read)")
    return inventory


def _packages(data: dict[str, Any], inventory: Inventory) -> None:
    entries = data.get("packages")
    if not isinstance(entries, dict):
        raise ScopeError(inventory.file, "packages: expected an object of install locations")
    for location, entry in entries.items():
        if not isinstance(entry, dict):
            raise ScopeError(inventory.file, f"packages[{location!r}]: expected an object")
        if "node_modules/" not in location or entry.get("link"):
            continue  # the project, a workspace, or a link to one
        installed_as = location.rpartition("node_modules/")[2]
        name = entry.get("name") or installed_as
        if not isinstance(entry.get("version"), str):
            raise ScopeError(inventory.file, f"packages[{location!r}]: no version")
        alias = installed_as if name != installed_as else None
        inventory.packages[location] = Package(NPM, name, entry["version"], alias)
    inventory.anchor = json.dumps
    inventory.edge_builder = lambda: _package_edges(entries, inventory)


def _package_edges(entries: dict[str, Any], inventory: Inventory) -> None:
    for location, entry in entries.items():
        if entry.get("link"):
            inventory.depend(location, entry.get("resolved", ""))
            continue
        nested = f"{location}/node_modules/" if location else "node_modules/"
        deep = location.count("node_modules/") > 1
        children = []
        groups = _RUNTIME if "node_modules/" in location else (*_RUNTIME, "devDependencies")
        for group in groups:
            for name in entry.get(group) or ():
                # most dependencies sit in the entry's own node_modules or at the top
                target: str | None = nested + name
                if target not in entries:
                    target = _resolve(entries, location, name) if deep else "node_modules/" + name
                if target is not None and target in entries:
                    children.append(target)
        if children:
            inventory.edges[location] = children


def _resolve(entries: dict[str, Any], location: str, name: str) -> str | None:
    """The location Node would load `name` from, seen from `location`."""
    base = location
    while True:
        candidate = f"{base}/node_modules/{name}" if base else f"node_modules/{name}"
        if candidate in entries:
            return candidate
        if not base:
            return None
        cut = base.rfind("node_modules/")
        base = base[:cut].rstrip("/") if cut >= 0 else ""


def _legacy(data: dict[str, Any], inventory: Inventory) -> None:
    tree = data.get("dependencies", {})
    if not isinstance(tree, dict):
        raise ScopeError(inventory.file, "dependencies: expected an object")
    entries: dict[str, dict[str, Any]] = {}
    stack = [(ROOT, tree)]
    while stack:
        parent, children = stack.pop()
        for installed_as, entry in children.items():
            location = f"{parent}/node_modules/{installed_as}" if parent else (
                f"node_modules/{installed_as}")
            if not isinstance(entry, dict) or not isinstance(entry.get("version"), str):
                raise ScopeError(inventory.file, f"dependencies: {location}: no version")
            name, version, alias = installed_as, entry["version"], None
            if version.startswith("npm:"):
                real, _, version = version[4:].rpartition("@")
                name, alias = real, installed_as
            entries[location] = entry
            inventory.add(location, Package(NPM, name, version, alias))
            if isinstance(entry.get("dependencies"), dict):
                stack.append((location, entry["dependencies"]))
    inventory.anchor = lambda location: f"{json.dumps(location.rpartition('node_modules/')[2])}: {{"
    inventory.edge_builder = lambda: _legacy_edges(entries, inventory)


def _legacy_edges(entries: dict[str, dict[str, Any]], inventory: Inventory) -> None:
    required: set[str] = set()
    for location, entry in entries.items():
        for name in entry.get("requires") or {}:
            target = _resolve(entries, location, name)
            if target is not None:
                inventory.depend(location, target)
                required.add(target)
    # Version 1 does not record the project's own dependencies: the top-level
    # entries nothing requires are taken as direct ones.
    for location in entries:
        if location.count("node_modules/") == 1 and location not in required:
            inventory.depend(ROOT, location)
