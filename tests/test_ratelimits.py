"""Rate limits of the provider families' task queues, and which queues a worker serves."""

from __future__ import annotations

import pytest

from keyturn.config import ConfigError, Settings
from keyturn.ratelimits import (
    DEFAULT_RATE_LIMITS,
    FALLBACK_RATE_LIMIT,
    RateLimitError,
    parse_overrides,
    rate_limit,
)
from keyturn.worker import WORKFLOWS_QUEUE, installed_families, select_queues


def test_every_shipped_family_has_a_default_limit():
    assert set(installed_families()) <= set(DEFAULT_RATE_LIMITS)
    assert rate_limit("github") == DEFAULT_RATE_LIMITS["github"]
    assert rate_limit("someone-elses") == FALLBACK_RATE_LIMIT


def test_overrides_win_over_defaults():
    overrides = parse_overrides(" github=0.5, aws=10 ,")
    assert overrides == {"github": 0.5, "aws": 10.0}
    assert rate_limit("github", overrides) == 0.5
    assert rate_limit("gcp", overrides) == DEFAULT_RATE_LIMITS["gcp"]


@pytest.mark.parametrize("text", ["github", "github=", "=3", "github=fast", "github=0", "aws=-1"])
def test_malformed_overrides_say_what_to_write(text):
    with pytest.raises(RateLimitError, match="family=activities-per-second"):
        parse_overrides(text)


def test_settings_refuse_malformed_rate_limits(monkeypatch):
    monkeypatch.setenv("KEYTURN_RATE_LIMITS", "github=lots")
    with pytest.raises(ConfigError, match="KEYTURN_RATE_LIMITS"):
        Settings.from_env()


def test_a_worker_serves_every_queue_by_default_or_the_ones_named():
    assert select_queues([]) == (True, installed_families())
    assert select_queues(["github", "aws", "github"]) == (False, ["github", "aws"])
    assert select_queues([WORKFLOWS_QUEUE]) == (True, [])


def test_an_unknown_queue_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="unknown queue.*nosuch.*choose from workflows, aws"):
        select_queues(["nosuch"])
