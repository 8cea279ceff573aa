"""pnpm-lock.yaml, lockfile versions 6 and 9, read line by line (no maintained parser exists).

Version 6 keys packages as `/name@version(peer@x)` and puts their
dependencies under each package. Version 9 splits `packages` (metadata) from
`snapshots` (one entry per installed copy, keyed `name@version(peer@x)`, with
its dependencies). In both, `importers` (or, for a single project in v6, the
top-level `dependencies` groups) are the roots. A dependency's version is a
reference: a plain version (with any peer suffix) means `name@version`; an
aliased install (`npm:real@^1`) writes `real@1.2.3` (v9) or `/real@1.2.3`
(v6); `link:` points at a workspace and is not an installed package.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from keyturn.scope.errors import ScopeError
from keyturn.scope.inventory import Inventory, Package
from keyturn.scope.versions import NPM
from keyturn.scope.yamlish import split_line

_GROUPS = frozenset({"dependencies", "devDependencies", "optionalDependencies"})
_PACKAGE_DEPS = frozenset({"dependencies", "optionalDependencies"})
_TOP = re.compile(r"\n(?=[^ \n#-])")  # the end of the line before a top-level line


def parse(text: str, file: str) -> Inventory:
    """Parse a pnpm lockfile; ScopeError (with line and column) on anything else."""
    inventory = Inventory(file, "pnpm-lock", text)
    major = _major(text, file)
    node_section = "snapshots" if major == 9 else "packages"
    aliases: dict[str, str] = {}
    pending: dict[str, dict[str, str]] = {}  # v6 entries whose key has no version
    entry = ""
    children: list[str] = []  # the current entry's dependencies
    wanted = {node_section, "importers", *_GROUPS}
    for section, first, body in _sections(text, file):
        if section not in wanted:
            continue  # settings, v9's packages (metadata only), ...: not scanned
        path = [section]  # the keys above the current line, one per indent level
        for number, line in enumerate(body.split("\n"), first):
            stripped = line.lstrip(" ")
            if not stripped or stripped[0] == "#" or stripped.startswith("- "):
                continue
            indent = len(line) - len(stripped)
            if stripped[0] == "\t":
                raise ScopeError(file, "tab in indentation", number, indent + 1)
            level = indent // 2
            del path[level:]
            if len(path) < level:
                continue  # under a list item or a flow value
            if section == node_section and level == 2:
                # an entry's field: only its dependency groups (and v6 name/version) matter
                field = stripped.partition(":")[0]
                if field in _PACKAGE_DEPS:
                    path.append(field)
                elif field in ("name", "version") and entry in pending:
                    pending[entry][field] = split_line(line, file, number, indent)[1]
                continue
            if section == node_section and level == 1 and stripped[0] not in "'\"" and (
                    stripped.endswith(":")):
                entry = stripped[:-1]  # the common entry line, `name@1.2.3(peer@x):`
                children = inventory.edges.setdefault(entry, [])
                if entry not in inventory.packages:
                    _add_node(inventory, entry, number, pending)
                path.append(entry)
                continue
            if section == node_section and level == 3 and stripped[0] not in "'\"":
                # the common dependency line, `name: 1.2.3(peer@x)`, without the general path
                key, _, value = stripped.partition(": ")
                if value[:1].isdigit():
                    children.append(f"{key}@{value}" if major == 9 else f"/{key}@{value}")
                    continue
            key, value = split_line(line, file, number, indent)
            if not value:
                path.append(key)
            if section == node_section and level == 1:
                entry = key
                children = inventory.edges.setdefault(entry, [])
                if entry not in inventory.packages:
                    _add_node(inventory, entry, number, pending)
            elif section == node_section and level == 3:
                _edge(inventory, entry, key, value, major, aliases)
            elif value and key == "version" and _is_importer_dep(path, level):
                importer = path[1] if section == "importers" else "."
                root = f"importer:{importer}"
                if root not in inventory.titles:
                    inventory.roots.append(root)
                    inventory.titles[root] = importer
                _edge(inventory, root, path[-1], value, major, aliases)
    for node, fields in pending.items():
        if "version" not in fields:
            raise ScopeError(file, f"package {node!r} has no version", inventory.lines[node])
        inventory.packages[node] = Package(NPM, fields.get("name", node), fields["version"])
    for node, alias in aliases.items():
        package = inventory.packages.get(node)
        if package is not None:
            inventory.packages[node] = Package(NPM, package.name, package.version, alias)
    return inventory


def _major(text: str, file: str) -> int:
    head = text[:200].lstrip("\ufeff")
    if not head.startswith("lockfileVersion:"):
        raise ScopeError(file, "not a pnpm lockfile: the first line must be lockfileVersion", 1, 1)
    raw = head.split("\n", 1)[0].split(":", 1)[1].strip().strip("'\"")
    major = raw.split(".", 1)[0]
    if major not in ("6", "9"):
        raise ScopeError(file, f"unsupported pnpm lockfileVersion {raw!r} (6.x and 9.x are read)",
                         1, 18)
    return int(major)


def _is_importer_dep(path: list[str], level: int) -> bool:
    if path and path[0] == "importers":
        return level == 4 and path[2] in _GROUPS
    return level == 2 and bool(path) and path[0] in _GROUPS


def _sections(text: str, file: str) -> Iterator[tuple[str, int, str]]:
    """(key, line number of its first inner line, inner text) of each top-level key.

    Found with one regular expression over the text, so sections that are not
    read cost nothing line by line.
    """
    starts = [0] + [m.start() + 1 for m in _TOP.finditer(text)]
    number = 1
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(text)
        header, _, body = text[start:end].partition("\n")
        if header.startswith("\t"):
            raise ScopeError(file, "tab in indentation", number, 1)
        key, _ = split_line(header, file, number, 0)
        yield key, number + 1, body
        number += text.count("\n", start, end) + 1


def _add_node(inventory: Inventory, key: str, number: int,
              pending: dict[str, dict[str, str]]) -> None:
    bare = key.removeprefix("/")
    bare = bare.split("(", 1)[0]
    name, at, version = bare.rpartition("@")
    if not at or not name:
        pending[key] = {}
        inventory.lines[key] = number
        return
    inventory.add(key, Package(NPM, name, version), number)


def _edge(inventory: Inventory, parent: str, name: str, ref: str, major: int,
          aliases: dict[str, str]) -> None:
    if ref.startswith(("link:", "workspace:")):
        return
    head = ref.split("(", 1)[0]
    if major == 9:
        node = ref if head.rfind("@") > 0 else f"{name}@{ref}"
    else:
        node = ref if head.startswith("/") or "/" in head else f"/{name}@{ref}"
    real = (node.removeprefix("/")).split("(", 1)[0].rpartition("@")[0]
    if real and real != name:
        aliases[node] = name
    inventory.depend(parent, node)
