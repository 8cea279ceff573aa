"""The JSON Schema of the scope catalog (kind: Catalog), generated from the pydantic models.

Kept beside the runbook's as runbooks/catalog.schema.json; regenerate it with
`python -m keyturn.scope.schema > runbooks/catalog.schema.json` (a test checks
it is current). The schema checks shape only; loading the catalog is the authority.
"""

from __future__ import annotations

import json
from typing import Any

from keyturn.scope.catalog import Catalog

SCHEMA_ID = "https://keyturn.dev/schemas/catalog-v1.json"


def json_schema() -> dict[str, Any]:
    schema = Catalog.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
