"""Settings from the environment: the worker's shutdown grace."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keyturn.config import DEFAULT_SHUTDOWN_GRACE, ConfigError, Settings


def test_the_shutdown_grace_defaults_to_longer_than_any_step(monkeypatch):
    monkeypatch.delenv("KEYTURN_WORKER_SHUTDOWN_GRACE", raising=False)
    assert Settings.from_env().shutdown_grace == DEFAULT_SHUTDOWN_GRACE == timedelta(minutes=2)


def test_the_shutdown_grace_is_a_duration(monkeypatch):
    monkeypatch.setenv("KEYTURN_WORKER_SHUTDOWN_GRACE", "90s")
    assert Settings.from_env().shutdown_grace == timedelta(seconds=90)
    monkeypatch.setenv("KEYTURN_WORKER_SHUTDOWN_GRACE", "soon")
    with pytest.raises(ConfigError, match="KEYTURN_WORKER_SHUTDOWN_GRACE='soon'"):
        Settings.from_env()
