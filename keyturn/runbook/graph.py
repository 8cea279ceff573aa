"""Ordering helpers for `after` between tiers and `depends_on` between credentials.

`edges[node]` lists the nodes that must come before `node`. Names missing from
`edges` are ignored here; validation reports them as unknown references.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

_VISITING, _DONE = 1, 2


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The first cycle met by a depth-first walk in key order, as [a, b, ..., a]; else None."""
    state: dict[str, int] = {}
    for start in edges:
        if start in state:
            continue
        path, pending = [start], [iter(edges[start])]
        state[start] = _VISITING
        while pending:
            node = next(pending[-1], None)
            if node is None:
                state[path.pop()] = _DONE
                pending.pop()
            elif node in edges and state.get(node) == _VISITING:
                return [*path[path.index(node) :], node]
            elif node in edges and node not in state:
                state[node] = _VISITING
                path.append(node)
                pending.append(iter(edges[node]))
    return None


def topological_order(edges: Mapping[str, Sequence[str]]) -> list[str]:
    """Every key after its prerequisites; among nodes that are ready, key order wins."""
    order = list(edges)
    index = {node: i for i, node in enumerate(order)}
    waiting = {node: {dep for dep in edges[node] if dep in index} for node in order}
    dependents: dict[str, list[str]] = {node: [] for node in order}
    for node, deps in waiting.items():
        for dep in deps:
            dependents[dep].append(node)
    ready = [index[node] for node in order if not waiting[node]]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        node = order[heapq.heappop(ready)]
        result.append(node)
        for dependent in dependents[node]:
            waiting[dependent].discard(node)
            if not waiting[dependent]:
                heapq.heappush(ready, index[dependent])
    if len(result) != len(order):
        raise ValueError(
            f"no order exists, there is a cycle: {' -> '.join(find_cycle(edges) or [])}"
        )
    return result
