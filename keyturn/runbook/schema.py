"""The JSON Schema of runbook format v1, generated from the pydantic models.

Editors use runbooks/schema.json for completion and inline errors; regenerate it with
`python -m keyturn.runbook.schema > runbooks/schema.json` (a test checks it is current).
The schema checks shape only; `keyturn validate` is the authority.
"""

from __future__ import annotations

import json
from typing import Any

from keyturn.runbook.models import Runbook

SCHEMA_ID = "https://keyturn.dev/schemas/runbook-v1.json"


def json_schema() -> dict[str, Any]:
    """The runbook JSON Schema, keyed by the YAML field names (aliases)."""
    schema = Runbook.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    """The schema as runbooks/schema.json stores it."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
