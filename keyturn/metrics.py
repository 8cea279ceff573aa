"""Prometheus metrics of the worker and the API (docs/operating.md lists them).

The worker counts what its activities see: each protocol step's duration and outcome
(StepRecorder.step), rotations started, succeeded, failed and rolled back, retries and
throttling answers, gates opened and decided (the audit records of workflow events), and
every audit append. Labels are only provider, tier, step, outcome and the API's route
template: never a target, a credential id or a run, so cardinality stays bounded and no
label can hold a secret. A metric that cannot be recorded is logged, never raised: metrics
must not fail a step.

    observe(step_finished, provider, tier, step, outcome, seconds, exc)   # never raises
    serve_worker_metrics(port, address)    # keyturn worker --metrics-port
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from keyturn.durations import parse_duration

log = logging.getLogger("keyturn.metrics")

ROTATIONS = Counter("keyturn_rotations", "Credential rotations by outcome: started, succeeded, "
                    "failed, rolled_back", ["provider", "tier", "outcome"])
STEP_SECONDS = Histogram("keyturn_step_duration_seconds", "One attempt of a protocol step",
                         ["provider", "step", "outcome"],
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
RETRIES = Counter("keyturn_step_retries", "Step attempts that failed and will be retried",
                  ["provider", "step"])
THROTTLED = Counter("keyturn_throttled_responses", "Step attempts a provider or store "
                    "refused for a rate limit", ["provider", "step"])
GATE_WAIT = Histogram("keyturn_gate_wait_seconds", "From a gate opening to its decision",
                      ["tier", "outcome"],
                      buckets=(1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400))
AUDIT_APPEND = Histogram("keyturn_audit_append_duration_seconds", "One audit record appended",
                         buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
AUDIT_FAILURES = Counter("keyturn_audit_append_failures", "Audit appends that raised")

_THROTTLING = re.compile(r"throttl|rate.?limit|too many requests|\b429\b|slow ?down",
                         re.IGNORECASE)


def observe(record: Callable[..., None], *args: Any) -> None:
    """Call `record(*args)`; a failure is logged and swallowed (metrics never fail a step)."""
    try:
        record(*args)
    except Exception:  # a metric must never fail the step it describes
        log.exception("metrics: %s failed", getattr(record, "__name__", record))


def step_started(provider: str, tier: str, step: str, attempt: int) -> None:
    """A rotation starts with its precheck's first attempt."""
    if step == "precheck" and attempt == 1:
        ROTATIONS.labels(provider, tier, "started").inc()


def step_finished(provider: str, tier: str, step: str, outcome: str, seconds: float,
                  exc: BaseException | None) -> None:
    """outcome: succeeded, error (will retry) or failed (for good)."""
    STEP_SECONDS.labels(provider, step, outcome).observe(seconds)
    if outcome == "error":
        RETRIES.labels(provider, step).inc()
    if exc is not None and _THROTTLING.search(f"{type(exc).__name__} {exc}"):
        THROTTLED.labels(provider, step).inc()
    if outcome == "succeeded" and step in ("confirm_revoked", "rollback"):
        ROTATIONS.labels(provider, tier, "succeeded" if step != "rollback" else "rolled_back").inc()
    elif outcome == "failed" and step != "rollback":
        ROTATIONS.labels(provider, tier, "failed").inc()


class OpenGates(Collector):
    """Gates this process saw open and not yet decided, from their audit records: a count,
    the oldest one's age and the largest share of its timeout spent, per tier."""

    DECIDED = frozenset({"passed", "rejected", "timed_out"})

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple, tuple[str, float, float | None]] = {}

    def event(self, run: str, tier: str | None, credential: str | None, provider: str | None,
              outcome: str, details: dict[str, Any]) -> None:
        """One gate audit record: remember an opening, observe a decision's wait."""
        key = (run, tier, credential, details.get("gate"))
        label = tier or ""
        with self._lock:
            if outcome == "opened":
                timeout = details.get("timeout")
                seconds = parse_duration(timeout).total_seconds() if timeout else None
                self._open.setdefault(key, (label, time.monotonic(), seconds))
                return
            if outcome not in self.DECIDED:
                return
            opened = self._open.pop(key, None)
        if opened is not None:
            GATE_WAIT.labels(label, outcome).observe(time.monotonic() - opened[1])
        if outcome in ("rejected", "timed_out") and credential:
            ROTATIONS.labels(provider or "", label, "failed").inc()

    def run_ended(self, run: str) -> None:
        """Forget the run's gates: a cancelled run leaves its open gates undecided."""
        with self._lock:
            for key in [k for k in self._open if k[0] == run]:
                del self._open[key]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily("keyturn_gates_open", "Gates open now", labels=["tier"])
        age = GaugeMetricFamily("keyturn_gate_open_age_max_seconds",
                                "Age of the oldest open gate", labels=["tier"])
        share = GaugeMetricFamily("keyturn_gate_open_timeout_ratio_max", "Largest share of "
                                  "its timeout an open gate has waited (0..1)", labels=["tier"])
        now = time.monotonic()
        per_tier: dict[str, list[tuple[float, float | None]]] = {}
        with self._lock:
            for label, since, timeout in self._open.values():
                per_tier.setdefault(label, []).append((now - since, timeout))
        for label, gates in sorted(per_tier.items()):
            count.add_metric([label], len(gates))
            age.add_metric([label], max(a for a, _ in gates))
            ratios = [a / t for a, t in gates if t]
            if ratios:
                share.add_metric([label], max(ratios))
        yield from (count, age, share)


OPEN_GATES = OpenGates()
REGISTRY.register(OPEN_GATES)


def audit_event(run: str, tier: str | None, credential: str | None, provider: str | None,
                step: str, outcome: str, details: dict[str, Any]) -> None:
    """A workflow event's audit record (gates, the run's end) as metrics."""
    if step == "gate":
        OPEN_GATES.event(run, tier, credential, provider, outcome, details)
    elif step == "run" and outcome in ("succeeded", "failed", "cancelled"):
        OPEN_GATES.run_ended(run)


def serve_worker_metrics(port: int, address: str) -> None:
    """Serve the default registry at http://address:port/metrics from a daemon thread."""
    start_http_server(port, addr=address)
