"""Fingerprints of secret values: the only form in which a secret may leave an activity.

A fingerprint names a value without revealing it, so audit records, workflow
results and store metadata can say *which* secret was delivered or verified.
It is a truncated SHA-256 over the canonical JSON of the secret's fields
(sorted keys, no spaces, UTF-8): the same fields always give the same
fingerprint, whatever order they were built in.
"""

from __future__ import annotations

import hashlib
import json

PREFIX = "sha256:"
HEX_DIGITS = 16


def canonical_json(value: object) -> bytes:
    """Sorted keys, compact separators, UTF-8 (non-ASCII kept as is)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(secret: dict[str, str]) -> str:
    """`sha256:` and the first 16 hex digits of SHA-256 over the secret's canonical JSON."""
    digest = hashlib.sha256(canonical_json(secret)).hexdigest()
    return PREFIX + digest[:HEX_DIGITS]
