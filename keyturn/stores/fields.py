"""The consumer's shape: how a provider's secret fields sit in the data at a deliver path.

Applications read their secrets in their own field names, often beside other
fields (a service's whole configuration in one path). A deliver target maps
the provider's field names to the stored ones (`fields: {aws_access_key_id:
ACCESS_KEY}`); unmapped provider fields keep their own names. These pure
functions are the one place that rule lives:

- `view`: the provider's secret as a stored value holds it;
- `merged`: the current data with only the mapped fields replaced, every other
  field (and a mapped field whose value does not change) kept as it was;
- `lacking`: the provider fields a stored value does not hold;
- `suggest`: the mapping that would fit a path's field names.

A store that holds one string rather than an object (a Secrets Manager secret
that is not JSON) reads as `{TEXT: the string}`; it fits a provider whose
secret has one required field.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Data = dict[str, Any]
"""What a path holds: field names to JSON values (strings, numbers, ...)."""

TEXT = ""
"""The one field of a value that is a plain string, not an object."""

_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def stored_name(mapping: Mapping[str, str], field: str) -> str:
    return mapping.get(field, field)


def as_text(value: Any) -> str:
    """A stored value as the provider sees it: strings as they are, others as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def is_text(data: Mapping[str, Any]) -> bool:
    return list(data) == [TEXT]


def view(data: Mapping[str, Any], mapping: Mapping[str, str], fields: Sequence[str],
         required: Sequence[str]) -> dict[str, str]:
    """The provider fields `data` holds (under their mapped names), as text."""
    if is_text(data):
        return {required[0]: data[TEXT]} if len(required) == 1 else {}
    found = {}
    for field in fields:
        name = stored_name(mapping, field)
        if name in data:
            found[field] = as_text(data[name])
    return found


def lacking(data: Mapping[str, Any], mapping: Mapping[str, str],
            required: Sequence[str]) -> list[str]:
    """The required provider fields that `data` does not hold."""
    if is_text(data):
        return [] if len(required) == 1 else list(required)
    return [f for f in required if stored_name(mapping, f) not in data]


def merged(current: Mapping[str, Any] | None, secret: Mapping[str, str],
           mapping: Mapping[str, str]) -> Data:
    """`current` with the secret's fields replaced under their mapped names.

    Every other field keeps its value, type and order; a mapped field whose
    value is unchanged keeps its JSON type (a port stays a number). With no
    current value, the secret's fields alone, under their mapped names.
    """
    if current is not None and is_text(current) and len(secret) == 1 and not mapping:
        return {TEXT: next(iter(secret.values()))}
    out: Data = dict(current or {})
    for field, value in secret.items():
        name = stored_name(mapping, field)
        if name in out and as_text(out[name]) == value:
            continue
        out[name] = value
    return out


def _words(name: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(name)}


def _score(field: str, name: str) -> tuple[int, float]:
    return (len(_words(field) & _words(name)),
            difflib.SequenceMatcher(None, field.lower(), name.lower()).ratio())


def suggest(present: Iterable[str], wanted: Sequence[str]) -> dict[str, str]:
    """The mapping from `wanted` provider fields to `present` names that shares the most words.

    Only pairs sharing a word are proposed. Small cases are searched exhaustively
    (ACCESS_KEY/SECRET_KEY against aws_access_key_id/aws_secret_access_key),
    larger ones greedily.
    """
    names = [n for n in present if n != TEXT]
    pairs = {(f, n): _score(f, n) for f in wanted for n in names}
    pairs = {k: v for k, v in pairs.items() if v[0] > 0}
    if not pairs:
        return {}
    if len(wanted) <= 4 and len(names) <= 12:
        best: tuple[tuple[int, float], dict[str, str]] = ((0, 0.0), {})
        slots: list[str | None] = [*names, *([None] * len(wanted))]
        for choice in itertools.permutations(slots, len(wanted)):
            chosen = {f: n for f, n in zip(wanted, choice, strict=True)
                      if n is not None and (f, n) in pairs}
            total = (sum(pairs[f, n][0] for f, n in chosen.items()),
                     sum(pairs[f, n][1] for f, n in chosen.items()))
            if total > best[0]:
                best = (total, chosen)
        return best[1]
    mapping: dict[str, str] = {}
    for (field, name), _ in sorted(pairs.items(), key=lambda kv: kv[1], reverse=True):
        if field not in mapping and name not in mapping.values():
            mapping[field] = name
    return {field: mapping[field] for field in wanted if field in mapping}
