"""Validating a runbook `target` against a provider's target model, without quoting it.

Every provider parses its target the same way: a pydantic model, and on failure
a permanent error that names each bad field and never repeats the input (a
mistyped target could hold something that should not be in a log).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from keyturn.providers.errors import PermanentProviderError

M = TypeVar("M", bound=BaseModel)


def parse_target(model: type[M], provider: str, target: Any) -> M:
    """`target` as a `model`; PermanentProviderError naming the fields that are wrong."""
    if isinstance(target, model):
        return target
    try:
        return model.model_validate(target)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'target'}: {e['msg']}" for e in exc.errors()
        )
    # Raised outside the except block so the error carries no context quoting the input.
    raise PermanentProviderError(f"invalid {provider} target: {problems}")
