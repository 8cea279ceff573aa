"""What one lockfile or SBOM says was installed: packages, who depends on whom, and where.

Every parser returns an `Inventory`: nodes (one per installed package copy,
keyed by an id that is unique in the file), dependency edges, the roots (the
project, its workspaces, or its direct dependencies when the format does not
record the project), and for each node either its line or a literal to find
it by (`anchor`). Lines and paths are worked out only for the packages an advisory hits,
so parsing stays one pass over the input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple


class Package(NamedTuple):
    """One installed package: ecosystem, the real name (not an alias), version.

    A named tuple, not a dataclass: parsers build one per entry of files with
    thousands of entries, and a tuple is built several times faster.
    """

    ecosystem: str
    name: str
    version: str
    alias: str | None = None  # the name it was installed under, when aliased


@dataclass
class Inventory:
    """One parsed file. `roots` are node ids or labels of the project and its workspaces."""

    file: str
    kind: str
    text: str = field(repr=False, default="")
    packages: dict[str, Package] = field(default_factory=dict)
    edges: dict[str, list[str]] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)
    # node id -> a literal in `text` that starts the node's entry (for `line`)
    anchor: Callable[[str], str | None] | None = field(default=None, repr=False)
    subjects: list[str] = field(default_factory=list)  # SBOM: image references and digests
    titles: dict[str, str] = field(default_factory=dict)  # labels of roots that are no package
    # Builds `edges` when a path is first asked for (formats whose edges cost a second pass).
    edge_builder: Callable[[], None] | None = field(default=None, repr=False)

    def add(self, node: str, package: Package, line: int | None = None) -> None:
        self.packages[node] = package
        if line is not None:
            self.lines[node] = line

    def depend(self, parent: str, child: str) -> None:
        self.edges.setdefault(parent, []).append(child)

    def line(self, node: str) -> int | None:
        """The 1-based line of the node's entry, if the file has lines for it."""
        if node in self.lines:
            return self.lines[node]
        anchor = self.anchor(node) if self.anchor else None
        at = self.text.find(anchor) if anchor else -1
        return None if at < 0 else self.text.count("\n", 0, at) + 1

    def path(self, node: str) -> list[str]:
        """The shortest chain from a root to `node`, as labels (root first, node last).

        A node no root reaches (a format without root information, or a
        dangling entry) is its own path.
        """
        if self.edge_builder is not None:
            builder, self.edge_builder = self.edge_builder, None
            builder()
        parents: dict[str, str | None] = {}
        queue: deque[str] = deque()
        for root in self.roots:
            if root not in parents:
                parents[root] = None
                queue.append(root)
        while queue:
            current = queue.popleft()
            if current == node:
                break
            for child in self.edges.get(current, ()):
                if child not in parents:
                    parents[child] = current
                    queue.append(child)
        if node not in parents:
            return [self.label(node)]
        chain: list[str] = []
        step: str | None = node
        while step is not None:
            chain.append(self.label(step))
            step = parents[step]
        return chain[::-1]

    def label(self, node: str) -> str:
        package = self.packages.get(node)
        if package is None:
            return self.titles.get(node, node)
        shown = f"{package.name}@{package.version}"
        return f"{package.alias} ({shown})" if package.alias else shown
