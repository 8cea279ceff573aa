"""Audit recording and error classification around each protocol step.

`StepRecorder.step()` wraps one activity: on success it appends the step's
`succeeded` record with the details the activity filled in; on failure it
appends a `failed` record (or an `error` record per attempt for retryable
failures) and raises an ApplicationError whose message names the credential
and the step, and whose retryability comes from the error's class. The wrapper
also times the step for keyturn.metrics and names the run, credential and step
in every log record of the activity (keyturn.logfmt.step_context).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from keyturn import metrics
from keyturn.audit import AuditError, AuditEvent, AuditLog, event_id
from keyturn.drill import kill_point
from keyturn.errors import PermanentError, TransientError
from keyturn.logfmt import step_context
from keyturn.workflows.common import AUDIT_UNAVAILABLE
from keyturn.workflows.models import AuditInput, StepInput


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (PermanentError, TransientError)):
        return exc.retryable
    # Bad input never gets better by retrying; unknown failures (network, timeouts) might.
    return not isinstance(exc, (ValidationError, LookupError, ValueError, TypeError))


class StepRecorder:
    """Appends audit records for steps and workflow events; one record per event_id."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    @activity.defn(name="audit_record")
    def append(self, record: AuditInput) -> None:
        """Activity for workflow-level events (gates, tiers, the run); also used by the steps.

        A log that refuses the append raises AuditLogUnavailable (not retried by
        Temporal: the workflow waits for the log and calls again, see workflows.common)."""
        event = AuditEvent(
            run=record.run,
            event_id=event_id(record.run, *record.key),
            tier=record.tier,
            credential=record.credential,
            provider=record.provider,
            step=record.step,
            outcome=record.outcome,
            actor=record.actor,
            details=record.details,
        )
        started = time.perf_counter()
        try:
            self._log.append(event)
        except AuditError as exc:
            # Any audit failure (not a bad event: that is a ValueError) means "not written".
            metrics.observe(metrics.AUDIT_FAILURES.inc)
            message = f"audit log unavailable: {exc}"
            activity.logger.error("%s (%s %s of %s waits)", message, record.step,
                                  record.outcome, record.credential or record.run)
            raise ApplicationError(message, type=AUDIT_UNAVAILABLE, non_retryable=True) from None
        except Exception:
            metrics.observe(metrics.AUDIT_FAILURES.inc)
            raise
        metrics.observe(metrics.AUDIT_APPEND.observe, time.perf_counter() - started)
        metrics.observe(metrics.audit_event, record.run, record.tier, record.credential,
                        record.provider, record.step, record.outcome, record.details)

    def _event(self, inp: StepInput, step: str, phase: str, outcome: str, key: list[str],
               details: dict[str, Any]) -> None:
        cred = inp.credential
        self.append(
            AuditInput(
                run=inp.context.run_id,
                key=[cred.id, step, phase, *key],
                step=step,
                outcome=outcome,
                tier=cred.tier,
                credential=cred.id,
                provider=cred.provider,
                details=details,
            )
        )

    @contextmanager
    def step(self, inp: StepInput, step: str, phase: str = "") -> Iterator[dict[str, Any]]:
        """Record the step (see the module doc), time it and name it in its log records."""
        cred, attempt = inp.credential, activity.info().attempt
        with step_context(run=inp.context.run_id, tier=cred.tier, credential=cred.id,
                          provider=cred.provider, step=step, attempt=attempt):
            metrics.observe(metrics.step_started, cred.provider, cred.tier, step, attempt)
            started = time.perf_counter()
            outcome, error = "succeeded", None
            try:
                yield from self._recorded(inp, step, phase)
            except Exception as exc:
                if isinstance(exc, ApplicationError):  # raised by _recorded from the failure
                    error, retryable = exc.__context__, not exc.non_retryable
                else:  # e.g. the succeeded record could not be appended
                    error, retryable = exc, _retryable(exc)
                outcome = "error" if retryable else "failed"
                raise
            finally:
                metrics.observe(metrics.step_finished, cred.provider, cred.tier, step, outcome,
                                time.perf_counter() - started, error)

    def _recorded(self, inp: StepInput, step: str, phase: str) -> Iterator[dict[str, Any]]:
        """Yield the details to fill in; append the step's audit record when it ends."""
        details: dict[str, Any] = {}
        kill_point(f"{step}.started")
        try:
            yield details
        except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
            retryable = _retryable(exc)
            message = f"credential {inp.credential.id!r} ({inp.credential.provider}), step {step}: {exc}"
            failure = {"error": type(exc).__name__, "message": str(exc), **details}
            if phase:
                failure["phase"] = phase
            if retryable:
                attempt = activity.info().attempt
                self._event(inp, step, phase, "error", [f"attempt-{attempt}"],
                            {**failure, "attempt": attempt, "retrying": True})
                with step_context(outcome="error"):
                    activity.logger.warning("%s (attempt %d, will retry)", message, attempt)
            else:
                self._event(inp, step, phase, "failed", ["failed"], failure)
                with step_context(outcome="failed"):
                    activity.logger.error("%s", message)
            raise ApplicationError(message, type=type(exc).__name__, non_retryable=not retryable) from None
        kill_point(f"{step}.before_audit")
        self._event(inp, step, phase, "succeeded", ["succeeded"], details)
        # details hold references and fingerprints only, so they are safe to log
        with step_context(outcome="succeeded"):
            activity.logger.info("%s %s%s succeeded %s", inp.credential.id, step,
                                 f" ({phase})" if phase else "", details)

