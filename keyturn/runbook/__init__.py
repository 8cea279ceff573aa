"""Runbooks: the declarative v1 format, loaded with positioned errors, validated, planned.

if TYPE_CHECKING:  # keyturn.policy imports the runbook models: imported where used
    from keyturn.policy.model import Policy

runbook = check("runbooks/demo.yaml")            # load + validate, or raise RunbookError
execution = plan(runbook, run_id=..., requested_by="alice", source_sha256=...)
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import TYPE_CHECKING

from keyturn.runbook.loader import load, loads
from keyturn.runbook.models import Runbook
from keyturn.runbook.plan import new_run_id, plan
from keyturn.runbook.source import RunbookError
from keyturn.runbook.validate import validate

if TYPE_CHECKING:  # keyturn.policy imports the runbook models: imported where used
    from keyturn.policy.model import Policy


def check(
    path_or_runbook: str | os.PathLike[str] | Runbook,
    known_providers: Collection[str] | None = None,
    policy: Policy | None = None,
) -> Runbook:

    """Load (unless given a Runbook) and validate under `policy`; return the runbook or
    raise RunbookError."""
    runbook = path_or_runbook if isinstance(path_or_runbook, Runbook) else load(path_or_runbook)
    return validate(runbook, known_providers, policy)


__all__ = [
    "Runbook",
    "RunbookError",
    "check",
    "load",
    "loads",
    "new_run_id",
    "plan",
    "validate",
]
