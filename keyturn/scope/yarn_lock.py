"""yarn.lock, classic (v1) and berry (v2+), read line by line (no maintained parser exists).

An entry starts with its descriptors (`name@range, name@other-range:`) and
gives `version` and `dependencies` (`name range`). Classic writes `key value`;
berry writes YAML (`key: value`), prefixes ranges with a protocol (`npm:^1`)
and records the real package in `resolution` (`real@npm:1.2.3`), which is how
an alias (`alias@npm:real@^1`) is told apart. Berry's workspaces
(`@workspace:`) are the roots; classic does not record the project, so its
roots are the entries nothing depends on.
"""

from __future__ import annotations

from keyturn.scope.errors import ScopeError
from keyturn.scope.inventory import Inventory, Package
from keyturn.scope.versions import NPM
from keyturn.scope.yamlish import split_line, unquote

_DEPS = frozenset({"dependencies", "optionalDependencies"})


def parse(text: str, file: str) -> Inventory:
    """Parse a yarn lockfile of either generation; ScopeError (line, column) on anything else."""
    berry = "\n__metadata:" in text or text.startswith("__metadata:")
    if not berry and "# yarn lockfile v1" not in text[:500]:
        raise ScopeError(file, "not a yarn lockfile: no '# yarn lockfile v1' header and no "
                               "__metadata entry", 1, 1)
    inventory = Inventory(file, "yarn.lock", text)
    by_descriptor: dict[str, str] = {}
    fields: dict[str, dict[str, str]] = {}
    deps: dict[str, list[str]] = {}
    entry, section = "", ""
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.lstrip(" ")
        if not stripped or stripped[0] == "#":
            continue
        indent = len(line) - len(stripped)
        if indent == 0:
            entry = _header(line, file, number, by_descriptor)
            fields[entry], deps[entry], section = {}, [], ""
            inventory.lines[entry] = number
            continue
        if not entry:
            raise ScopeError(file, "indented line outside an entry", number, indent + 1)
        key, value = split_line(line, file, number, indent) if berry else _classic(
            line, file, number, indent)
        if indent == 2:
            section = key if not value else ""
            fields[entry][key] = value
        elif indent == 4 and section in _DEPS:
            deps[entry].append(f"{key}@{value}")
    for node, values in fields.items():
        _add(inventory, node, values, berry)
    inventory.edge_builder = lambda: _edges(inventory, deps, by_descriptor, berry)
    return inventory


def _header(line: str, file: str, number: int, by_descriptor: dict[str, str]) -> str:
    if not line.endswith(":"):
        raise ScopeError(file, "an entry header ends with ':'", number, len(line))
    if line == "__metadata:":
        return "__metadata"
    descriptors = [unquote(part.strip()) for part in unquote(line[:-1]).split(", ")]
    for descriptor in descriptors:
        if descriptor.find("@", 1) < 0:
            raise ScopeError(file, f"descriptor {descriptor!r} has no '@range'", number, 1)
        by_descriptor[descriptor] = descriptors[0]
    return descriptors[0]


def _classic(line: str, file: str, number: int, start: int) -> tuple[str, str]:
    """`key value`, `"key" "value"` or `key:` of the classic format."""
    if line[start] == '"':
        end = line.find('"', start + 1)
        if end < 0:
            raise ScopeError(file, "unterminated quoted key", number, start + 1)
        return line[start + 1:end], unquote(line[end + 1:].strip())
    key, _, value = line[start:].partition(" ")
    if not value and not key.endswith(":"):
        raise ScopeError(file, f"expected 'key value' or 'key:', got {key!r}", number, start + 1)
    return (key[:-1], "") if not value else (key, unquote(value.strip()))


def _add(inventory: Inventory, node: str, values: dict[str, str], berry: bool) -> None:
    resolution = values.get("resolution", "")
    if node == "__metadata":
        return
    if "@workspace:" in resolution:
        inventory.roots.append(node)
        inventory.titles[node] = resolution.split("@workspace:", 1)[1] or "."
        return
    version = values.get("version")
    if not version:
        raise ScopeError(inventory.file, f"entry {node!r} has no version", inventory.lines[node])
    installed_as = node[:node.index("@", 1)]
    real = installed_as
    if berry and resolution.find("@", 1) > 0:
        real = resolution[:resolution.index("@", 1)]
    elif not berry and node[len(installed_as) + 1:].startswith("npm:"):
        real = node[len(installed_as) + 5:].rpartition("@")[0] or installed_as
    inventory.add(node, Package(NPM, real, version, installed_as if real != installed_as else None))


def _edges(inventory: Inventory, deps: dict[str, list[str]], by_descriptor: dict[str, str],
           berry: bool) -> None:
    needed: set[str] = set()
    for node, descriptors in deps.items():
        for descriptor in descriptors:
            target = by_descriptor.get(descriptor)
            if target is not None:
                inventory.depend(node, target)
                needed.add(target)
    if not berry:
        inventory.roots.extend(node for node in inventory.packages if node not in needed)
