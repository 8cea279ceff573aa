"""What a credential's secret material is, and how a message is kept free of it.

`Secret` lives in this neutral module (not in `keyturn.providers`) so that
providers, stores, activities and the demo can name the type without importing
one another. A value of this type never leaves an activity: workflow inputs,
results, errors and audit records carry references and fingerprints only.

Servers and drivers may echo what they were sent into an error (a token in a
URL, a password in quoted SQL, a key in a JSON body): every layer passes such
text through `redact` with the values it holds before putting it into a
message.
"""

from __future__ import annotations

from collections.abc import Iterable

Secret = dict[str, str]
"""A credential's secret material as named fields, e.g. {"aws_access_key_id": ..., ...}."""

REDACTED = "[redacted]"


def redact(text: str, values: Iterable[object]) -> str:
    """`text` with each non-empty string among `values` replaced by "[redacted]"."""
    for value in values:
        if isinstance(value, str) and value:
            text = text.replace(value, REDACTED)
    return text
