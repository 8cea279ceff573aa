"""What an operation on a run can refuse with: one typed error per outcome a face must tell apart.

The operations core (start, describe, approve/reject, cancel, supply, preflight) raises
only these (and ConfigError for settings); the HTTP API maps each class to a status
and a stable `code` in one table (keyturn.api.errors.OPERATION_ERRORS), the CLI prints
the message. Messages name the run, target or credential, never a secret value.

  RunError (permanent)       RunNotFound | AmbiguousTarget | RunConflict | RunEnded
                             | GateRefused(.reason) | NotAwaitingSupply | InvalidRunbook
                             | InvalidFilter | PreflightRefused(.report) | CancelForbidden
  TemporalUnavailable, NoWorker, StoreRefused (transient)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio.service import RPCError, RPCStatusCode

from keyturn.errors import KeyturnError, PermanentError, TransientError

if TYPE_CHECKING:
    from keyturn.operations.preflight import PreflightReport
    from keyturn.runbook.source import RunbookError

UNAVAILABLE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})


class RunError(PermanentError):
    """An operation on a run was refused; the message says why."""

    code = "refused"


class RunNotFound(RunError):
    """There is no such run, or the run has no such tier or credential."""

    code = "not_found"


class AmbiguousTarget(RunError):
    """A gate target names both a tier and a credential: say which (kind)."""

    code = "conflict"


class CancelForbidden(RunError):
    """The approval policy keeps this principal from cancelling a run someone else started."""

    code = "forbidden"


class RunConflict(RunError):
    """The run's state (or Temporal's) does not allow this now."""

    code = "conflict"


class RunEnded(RunConflict):
    """The run has already ended; it takes no more requests."""


class GateRefused(RunError):
    """A gate turned an approval or rejection away; `reason` is one of
    keyturn.workflows.gates.REFUSALS."""

    code = "gate_refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason}


class NotAwaitingSupply(RunConflict):
    """The credential does not take a supplied value, or does not wait for one now."""


class InvalidRunbook(RunError):
    """The runbook does not load, validate or plan; names its file, line and column."""

    code = "invalid_runbook"

    def __init__(self, error: RunbookError) -> None:
        super().__init__(str(error))
        self.file, self.line, self.column = error.file, error.line, error.column

    def details(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column}


class InvalidFilter(RunError):
    """A listing filter (state, incident) is not one keyturn knows."""

    code = "invalid_request"


class PreflightRefused(RunError):
    """A run was not started: preflight found problems (the report says which)."""

    code = "preflight_failed"

    def __init__(self, report: PreflightReport) -> None:
        problems = sum(1 for c in report.credentials if not c.ready) + sum(
            1 for g in report.gates if not g.ready)
        super().__init__(f"preflight found {problems} problem(s); nothing was changed: fix "
                         "them and run again, or give --skip-preflight (break-glass, audited)")
        self.report = report

    def details(self) -> dict[str, Any]:
        return {"report": self.report.model_dump(mode="json")}


class TemporalUnavailable(TransientError):
    """Temporal did not answer, or cannot do what was asked (no visibility, no search
    attributes registered)."""

    code = "temporal_unavailable"


class NoWorker(TransientError):
    """No worker polls a task queue the run needs."""

    code = "no_worker"


class StoreRefused(TransientError):
    """The secret store refused a supplied value."""

    code = "store_error"


def temporal_error(exc: RPCError, what: str) -> KeyturnError:
    """The operations error for Temporal's refusal of `what` (a phrase such as "no run 'x'")."""
    if exc.status in UNAVAILABLE:
        return TemporalUnavailable(f"Temporal did not answer: {exc.message}")
    if exc.status == RPCStatusCode.UNIMPLEMENTED:
        return TemporalUnavailable(f"{what}: this Temporal server cannot ({exc.message})")
    if exc.status == RPCStatusCode.NOT_FOUND:
        return RunNotFound(f"{what}: {exc.message}")
    return RunConflict(f"{what}: {exc.message}")
