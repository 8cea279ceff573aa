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
    reader = _Reader(Inventory(file, "pnpm-lock", text), _major(text, file))
    node_section = "snapshots" if reader.major == 9 else "packages"
    for section, first, body in _sections(text, file):
        if section == node_section:
            reader.nodes(body, first)
        elif section == "importers" or section in _GROUPS:
            reader.roots(section, body, first)
        # settings, v9's packages (metadata only), ...: not scanned
    return reader.finish()


class _Reader:
    """The state of one parse: what was read so far, aliases, v6 entries awaiting a version."""

    def __init__(self, inventory: Inventory, major: int) -> None:
        self.inventory, self.major, self.file = inventory, major, inventory.file
        self.aliases: dict[str, str] = {}
        self.pending: dict[str, dict[str, str]] = {}  # v6 entries whose key has no version

    def lines(self, body: str, first: int) -> Iterator[tuple[int, str, str, int]]:
        """(number, line, stripped, indent) of each line that holds a key."""
        for number, line in enumerate(body.split("\n"), first):
            stripped = line.lstrip(" ")
            if not stripped or stripped[0] == "#" or stripped.startswith("- "):
                continue
            if stripped[0] == "\t":
                raise ScopeError(self.file, "tab in indentation", number,
                                 len(line) - len(stripped) + 1)
            yield number, line, stripped, len(line) - len(stripped)

    def nodes(self, body: str, first: int) -> None:
        """The installed copies (v9 snapshots, v6 packages) and their dependencies."""
        entry, children, in_deps = "", [], False
        prefix = "" if self.major == 9 else "/"
        for number, line, stripped, indent in self.lines(body, first):
            if indent == 6 and in_deps and stripped[0] not in "'\"":
                # the common dependency line, `name: 1.2.3(peer@x)`, the short way
                key, _, value = stripped.partition(": ")
                if value[:1].isdigit():
                    children.append(f"{prefix}{key}@{value}")
                    continue
            if indent == 4:
                # an entry's field: only its dependency groups (and v6 name/version) matter
                field = stripped.partition(":")[0]
                in_deps = field in _PACKAGE_DEPS
                if field in ("name", "version") and entry in self.pending:
                    self.pending[entry][field] = split_line(line, self.file, number, indent)[1]
            elif indent == 2:
                if stripped[0] not in "'\"" and stripped.endswith(":"):
                    entry = stripped[:-1]  # the common entry line, `name@1.2.3(peer@x):`
                else:
                    entry = split_line(line, self.file, number, indent)[0]
                children, in_deps = self.inventory.edges.setdefault(entry, []), False
                if entry not in self.inventory.packages:
                    self._add(entry, number)
            elif indent == 6 and in_deps:
                key, value = split_line(line, self.file, number, indent)
                self._edge(entry, key, value)
            elif indent < 2 or indent % 2:
                split_line(line, self.file, number, indent)  # refuses what is no `key:` line

    def roots(self, section: str, body: str, first: int) -> None:
        """`importers` (workspaces), or v6's top-level dependency groups of one project."""
        path = [section]  # the keys above the current line, one per indent level
        for number, line, _, indent in self.lines(body, first):
            level = indent // 2
            del path[level:]
            if len(path) < level:
                continue  # under a flow value
            key, value = split_line(line, self.file, number, indent)
            if not value:
                path.append(key)
            elif key == "version" and _is_importer_dep(path, level):
                importer = path[1] if section == "importers" else "."
                root = f"importer:{importer}"
                if root not in self.inventory.titles:
                    self.inventory.roots.append(root)
                    self.inventory.titles[root] = importer
                self._edge(root, path[-1], value)

    def finish(self) -> Inventory:
        inventory = self.inventory
        for node, fields in self.pending.items():
            if "version" not in fields:
                raise ScopeError(self.file, f"package {node!r} has no version",
                                 inventory.lines[node])
            inventory.packages[node] = Package(NPM, fields.get("name", node), fields["version"])
        for node, alias in self.aliases.items():
            package = inventory.packages.get(node)
            if package is not None:
                inventory.packages[node] = Package(NPM, package.name, package.version, alias)
        return inventory

    def _add(self, key: str, number: int) -> None:
        name, at, version = key.removeprefix("/").split("(", 1)[0].rpartition("@")
        if not at or not name:
            self.pending[key] = {}
            self.inventory.lines[key] = number
            return
        self.inventory.add(key, Package(NPM, name, version), number)

    def _edge(self, parent: str, name: str, ref: str) -> None:
        if ref.startswith(("link:", "workspace:")):
            return
        head = ref.split("(", 1)[0]
        if self.major == 9:
            node = ref if head.rfind("@") > 0 else f"{name}@{ref}"
        else:
            node = ref if head.startswith("/") or "/" in head else f"/{name}@{ref}"
        real = node.removeprefix("/").split("(", 1)[0].rpartition("@")[0]
        if real and real != name:
            self.aliases[node] = name
        self.inventory.depend(parent, node)


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
