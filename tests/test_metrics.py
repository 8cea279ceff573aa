"""keyturn.metrics on its own: what each step outcome counts, throttling told from other
retries, and a metric that fails is logged, never raised."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from keyturn import metrics
from keyturn.providers.errors import TransientProviderError


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_step_outcomes_count_rotations_retries_and_throttling():
    labels = {"provider": "unit.metrics", "tier": "t-unit"}
    rotations = "keyturn_rotations_total"
    metrics.step_started("unit.metrics", "t-unit", "precheck", 1)
    metrics.step_started("unit.metrics", "t-unit", "precheck", 2)  # a retry starts nothing
    assert sample(rotations, outcome="started", **labels) == 1

    throttled = TransientProviderError("Throttling: Rate exceeded")
    metrics.step_finished("unit.metrics", "t-unit", "create", "error", 0.2, throttled)
    metrics.step_finished("unit.metrics", "t-unit", "create", "error", 0.2, TimeoutError("slow"))
    assert sample("keyturn_step_retries_total", provider="unit.metrics", step="create") == 2
    assert sample("keyturn_throttled_responses_total", provider="unit.metrics", step="create") == 1

    metrics.step_finished("unit.metrics", "t-unit", "verify_new", "failed", 1.0, ValueError("no"))
    metrics.step_finished("unit.metrics", "t-unit", "rollback", "succeeded", 0.5, None)
    metrics.step_finished("unit.metrics", "t-unit", "confirm_revoked", "succeeded", 0.5, None)
    assert sample(rotations, outcome="failed", **labels) == 1
    assert sample(rotations, outcome="rolled_back", **labels) == 1
    assert sample(rotations, outcome="succeeded", **labels) == 1
    assert sample("keyturn_step_duration_seconds_count", provider="unit.metrics",
                  step="verify_new", outcome="failed") == 1


def test_a_rejected_credential_gate_fails_its_rotation():
    args = ("run-unit", "t-gate", "deployer", "unit.gate", "gate")
    metrics.audit_event(*args, "opened", {"gate": "promote", "timeout": "2h"})
    assert sample("keyturn_gates_open", tier="t-gate") == 1
    assert 0 <= sample("keyturn_gate_open_timeout_ratio_max", tier="t-gate") < 0.01
    metrics.audit_event(*args, "rejected", {"gate": "promote"})
    assert sample("keyturn_gates_open", tier="t-gate") == 0
    assert sample("keyturn_gate_wait_seconds_count", tier="t-gate", outcome="rejected") == 1
    assert sample("keyturn_rotations_total", provider="unit.gate", tier="t-gate",
                  outcome="failed") == 1


def test_a_cancelled_run_leaves_no_open_gate_behind():
    metrics.audit_event("run-cancelled", "t-cancel", None, None, "gate", "opened", {"gate": "tier"})
    assert sample("keyturn_gates_open", tier="t-cancel") == 1
    metrics.audit_event("run-cancelled", None, None, None, "run", "cancelled", {})
    assert sample("keyturn_gates_open", tier="t-cancel") == 0


def test_a_failing_metric_is_logged_and_swallowed(caplog):
    def broken() -> None:
        raise RuntimeError("registry gone")

    with caplog.at_level(logging.ERROR, logger="keyturn.metrics"):
        metrics.observe(broken)
    assert "metrics: broken failed" in caplog.text
