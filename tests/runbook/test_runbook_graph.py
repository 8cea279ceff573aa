"""Cycle finding and stable topological order for `after` and `depends_on`."""

from __future__ import annotations

import pytest

from keyturn.runbook.graph import find_cycle, topological_order


def test_no_cycle() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None


def test_cycle_is_reported_as_a_closed_path() -> None:
    assert find_cycle({"a": [], "b": ["c"], "c": ["d"], "d": ["b"]}) == ["b", "c", "d", "b"]


def test_self_loop() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_unknown_names_are_ignored() -> None:
    assert find_cycle({"a": ["ghost"]}) is None
    assert topological_order({"a": ["ghost"], "b": []}) == ["a", "b"]


def test_long_chain_does_not_recurse() -> None:
    chain = {f"n{i}": [f"n{i + 1}"] for i in range(5000)} | {"n5000": ["n0"]}
    cycle = find_cycle(chain)
    assert cycle is not None and len(cycle) == 5002


def test_order_is_stable_among_ready_nodes() -> None:
    assert topological_order({"x": ["y"], "y": [], "z": []}) == ["y", "x", "z"]
    assert topological_order({"c": ["a", "b"], "a": [], "b": []}) == ["a", "b", "c"]


def test_order_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="a -> b -> a"):
        topological_order({"a": ["b"], "b": ["a"]})
