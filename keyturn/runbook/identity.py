"""A credential target's identity: which thing in the world a rotation changes.

One target is rotated by one run at a time (keyturn.workflows.lock). Runs
recognise the same target by its lock key: a hash of the provider name and the
canonical JSON of the target as the provider's target model reads it, so
`{user_name: ci}` in one runbook and `{"user_name": "ci"}` in another, or a
field left at its default in one and written out in the other, are one target.

Pure functions: the plan computes the key, validation compares keys, the
workflows carry the key and a short description of the target for people.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ValidationError

LOCK_KEY_LENGTH = 32
"""Hex characters of sha256 kept in a lock key (128 bits: no two targets share one)."""

DESCRIPTION_LIMIT = 120


def canonical_target(target: dict[str, Any], model: type[BaseModel] | None = None) -> Any:
    """The target as its provider reads it, defaults filled in, as plain JSON data.

    Without a model (the provider is not installed here), or when the target does
    not fit it (validation reports that), the target as written.
    """
    if model is None:
        return target
    try:
        return model.model_validate(target).model_dump(mode="json")
    except ValidationError:
        return target


def lock_key(provider: str, target: dict[str, Any], model: type[BaseModel] | None = None) -> str:
    """The identity of `provider`'s `target`: equal for the same target however written."""
    body = json.dumps(
        {"provider": provider, "target": canonical_target(target, model)},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:LOCK_KEY_LENGTH]


def describe_target(target: dict[str, Any]) -> str:
    """The target in one short line for people, e.g. "user_name=ci-deployer".

    Targets hold references only (names, ids, the names of environment
    variables), never a secret; long ones are cut at DESCRIPTION_LIMIT characters.
    """
    parts = []
    for key in sorted(target):
        value = target[key]
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"
