"""The template language of `http.webhook` calls: `{{ name }}` placeholders and nothing else.

Templates are plain text with `{{ name }}` placeholders and no expressions or
code. The names are a closed set, checked when the runbook loads: `secret`
(create, verify), `credential_id` (verify, revoke, disable, enable),
`old_credential_id` (create; the old secret's id from the store) and the
target's `vars` (everywhere); `SCOPES` says which call may use which.
`{{ secret }}` may appear in bodies and headers only, never in a path or query:
URLs end up in logs. Values are URL-quoted in paths and JSON-encoded in bodies.
Responses are read with dotted paths (`data.items.0.id`, `dig`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pydantic import JsonValue

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SECRET, CREDENTIAL_ID, OLD_CREDENTIAL_ID = "secret", "credential_id", "old_credential_id"
RESERVED = frozenset({SECRET, CREDENTIAL_ID, OLD_CREDENTIAL_ID})
# Which built-in placeholders each call may use (besides the target's vars).
SCOPES: dict[str, frozenset[str]] = {
    "create": frozenset({SECRET, OLD_CREDENTIAL_ID}),
    "list": frozenset(),
    "verify": frozenset({SECRET, CREDENTIAL_ID}),
    "revoke": frozenset({CREDENTIAL_ID}),
    "disable": frozenset({CREDENTIAL_ID}),
    "enable": frozenset({CREDENTIAL_ID}),
}


def placeholders(text: str) -> list[str]:
    """The names used in template `text`; ValueError for a stray `{{` or `}}`."""
    rest = PLACEHOLDER.sub("", text)
    if "{{" in rest or "}}" in rest:
        raise ValueError(f"malformed placeholder in {text!r}: write {{{{ name }}}}")
    return PLACEHOLDER.findall(text)


def render(text: str, values: Mapping[str, str], quoted: bool = False) -> str:
    """Substitute every placeholder once (substituted text is never scanned again)."""
    return PLACEHOLDER.sub(
        lambda m: quote(values[m.group(1)], safe="") if quoted else values[m.group(1)], text
    )


def render_json(value: JsonValue, values: Mapping[str, str]) -> JsonValue:
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, list):
        return [render_json(v, values) for v in value]
    if isinstance(value, dict):
        return {k: render_json(v, values) for k, v in value.items()}
    return value


def json_strings(value: JsonValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in json_strings(v)]
    return []


def dig(document: Any, path: str) -> Any:
    """The value at dotted `path` ("data.items.0.id"; "" is the document); KeyError if absent."""
    for part in path.split(".") if path else []:
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            raise KeyError(path)
    return document

