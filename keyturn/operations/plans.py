"""Compiling a runbook into the ExecutionPlan of one run: the one place every run's plan is made.

`keyturn run`, `keyturn preflight`, `keyturn runbook plan`, `POST /v1/runs` and `POST
/v1/preflight` all call `compile_plan` with the settings of the server (or CLI) they run
under, so the approval policy (keyturn.policy: approver groups, minimum gates, whether
requesters approve) is applied here and nowhere else. The runbook's own compilation
(keyturn.runbook.plan.plan) stays pure.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from keyturn.config import Settings
from keyturn.operations.errors import InvalidRunbook
from keyturn.policy.load import load_policy
from keyturn.policy.model import Policy
from keyturn.runbook.loader import decode, loads, read_bytes
from keyturn.runbook.models import Runbook
from keyturn.runbook.plan import new_run_id, plan
from keyturn.runbook.plan_model import ExecutionPlan, OnLocked
from keyturn.runbook.source import RunbookError
from keyturn.runbook.validate import validate

RunbookCheck = Callable[[Runbook], None]
"""A further check of a loaded runbook by whoever supplied it; raises RunbookError."""


@dataclass(frozen=True)
class RunbookSource:
    """A runbook's bytes, the name its errors give, and the environment `${VAR}` may read
    (None: the process's own)."""

    data: bytes
    filename: str
    environ: Mapping[str, str] | None = field(default=None, repr=False)

    @classmethod
    def read(cls, path: str | os.PathLike[str], shown: str | None = None) -> RunbookSource:
        """The runbook file at `path` (errors name it `shown`, default the path); InvalidRunbook
        when it cannot be read."""
        try:
            return cls(read_bytes(path), shown or str(path))
        except RunbookError as exc:
            raise InvalidRunbook(exc) from exc

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def compile_plan(
    settings: Settings,
    source: RunbookSource,
    *,
    requested_by: str,
    now: datetime | None = None,
    run_id: str | None = None,
    on_locked: OnLocked | None = None,
    known_providers: Collection[str] | None = None,
    check: RunbookCheck | None = None,
    policy: Policy | None = None,
) -> ExecutionPlan:
    """Load, validate and plan `source` for a run requested by `requested_by` under
    `settings`; InvalidRunbook names file, line and column.

    `run_id` defaults to a new one from the runbook's name and `now`; `on_locked` (from
    `--on-locked`) overrides what the runbook says; `check` is the supplier's extra rule
    (the API's for runbooks posted to it). `policy` defaults to the one in force for this
    process (`KEYTURN_POLICY`, or beside `KEYTURN_API_TOKENS`); an invalid policy file is a
    PolicyError (a ConfigError).
    """
    if policy is None:
        policy = load_policy(requester_may_approve=settings.requester_may_approve)
    try:
        runbook = validate(loads(decode(source.data, source.filename), source.filename,
                                 source.environ), known_providers, policy)
        if check is not None:
            check(runbook)
        return plan(
            runbook,
            run_id=run_id or new_run_id(runbook.metadata.name, now or datetime.now(UTC)),
            requested_by=requested_by,
            source_sha256=source.sha256,
            on_locked=on_locked,
            policy=policy,
        )
    except RunbookError as exc:
        raise InvalidRunbook(exc) from exc
