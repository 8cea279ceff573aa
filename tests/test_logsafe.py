"""Log lines cannot be forged: control and bidi characters in a message become escapes."""

from __future__ import annotations

import io
import logging

from keyturn.logsafe import InertFormatter, inert, inert_logs


def test_control_and_bidi_characters_become_escapes():
    assert inert("ci-deployer\nINFO rotated") == "ci-deployer\\nINFO rotated"
    assert inert("a\x1b[31mb\u202ec\r") == "a\\x1b[31mb\\u202ec\\r"
    assert inert("plain ünïcode, tabs\tno") == "plain ünïcode, tabs\\tno"


def test_a_provider_error_quoting_a_forged_name_stays_on_its_line():
    out = io.StringIO()
    logger = logging.getLogger("keyturn.test.logsafe")
    logger.propagate = False
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    try:
        inert_logs("%(levelname)s %(message)s", logger)
        assert isinstance(handler.formatter, InertFormatter)
        name = "ci\nINFO keyturn.worker: audit log verified, all keys rotated"
        logger.error("precheck failed: NoSuchEntity: user %s not found", name)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("step %s", "a\nb")
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == ("ERROR precheck failed: NoSuchEntity: user ci\\nINFO keyturn.worker: "
                        "audit log verified, all keys rotated not found")
    assert lines[1] == "ERROR step a\\nb" and lines[2].startswith("Traceback")
