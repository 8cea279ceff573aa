"""fingerprint(): stable, order-independent, short, and never the secret itself."""

from __future__ import annotations

import hashlib
import re

from keyturn.fingerprint import canonical_json, fingerprint


def test_format_is_sha256_prefix_and_16_hex():
    assert re.fullmatch(r"sha256:[0-9a-f]{16}", fingerprint({"a": "b"}))


def test_matches_sha256_of_canonical_json():
    secret = {"aws_secret_access_key": "s3cret", "aws_access_key_id": "AKIA1"}
    body = b'{"aws_access_key_id":"AKIA1","aws_secret_access_key":"s3cret"}'
    assert canonical_json(secret) == body
    assert fingerprint(secret) == "sha256:" + hashlib.sha256(body).hexdigest()[:16]


def test_key_order_does_not_matter():
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})


def test_any_change_changes_it():
    base = fingerprint({"a": "1", "b": "2"})
    assert fingerprint({"a": "1", "b": "3"}) != base
    assert fingerprint({"a": "1", "c": "2"}) != base
    assert fingerprint({"a": "1"}) != base


def test_empty_secret_has_a_fingerprint():
    assert fingerprint({}) == "sha256:" + hashlib.sha256(b"{}").hexdigest()[:16]


def test_non_ascii_is_hashed_as_utf8():
    assert canonical_json({"k": "é"}) == '{"k":"é"}'.encode()
    assert fingerprint({"k": "é"}) != fingerprint({"k": "e"})


def test_does_not_contain_the_secret():
    secret = {"password": "0123456789abcdef"}
    assert "0123456789abcdef" not in fingerprint(secret)
