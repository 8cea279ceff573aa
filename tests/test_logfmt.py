"""The JSON log format: one object a line, the step's fields from its context or `extra`,
the message escaped as in the plain format, a traceback inside the object."""

from __future__ import annotations

import io
import json
import logging

import pytest

from keyturn.logfmt import JsonFormatter, log_format, step_context


@pytest.fixture
def logged():
    out = io.StringIO()
    logger = logging.getLogger("keyturn.test.logfmt")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    yield logger, lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_a_step_context_names_the_run_credential_and_step(logged):
    logger, lines = logged
    with step_context(run="r1", tier="t1", credential="deployer", provider="aws.iam_access_key",
                      step="create", attempt=2, outcome=None):
        logger.info("created %s", "AKIA1")
        logger.warning("told", extra={"outcome": "error"})
    logger.info("outside")
    first, second, third = lines()
    assert first["message"] == "created AKIA1" and first["level"] == "INFO"
    assert (first["run"], first["tier"], first["credential"], first["step"], first["attempt"]) \
        == ("r1", "t1", "deployer", "create", 2)
    assert "outcome" not in first and second["outcome"] == "error"
    assert first["time"].endswith("+00:00") and first["logger"] == "keyturn.test.logfmt"
    assert set(third) == {"time", "level", "logger", "message"}


def test_a_forged_line_stays_inside_its_object_and_escaped_as_in_plain_text(logged):
    logger, lines = logged
    forged = 'ci\n{"level": "INFO", "message": "all keys rotated"}\u202e'
    logger.error("user %s not found", forged)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("step failed")
    (error, failure) = lines()
    assert error["message"] == ('user ci\\n{"level": "INFO", "message": "all keys rotated"}'
                                '\\u202e not found')
    assert failure["exc"].startswith("Traceback") and "RuntimeError: boom" in failure["exc"]


def test_the_format_comes_from_the_option_else_the_environment(monkeypatch):
    monkeypatch.delenv("KEYTURN_LOG_FORMAT", raising=False)
    assert log_format(None) == "text"
    monkeypatch.setenv("KEYTURN_LOG_FORMAT", "JSON")
    assert log_format(None) == "json" and log_format("text") == "text"
    monkeypatch.setenv("KEYTURN_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="log format 'yaml': choose text or json"):
        log_format(None)
