"""What a credential's secret material is, as every layer passes it: named string fields.

`Secret` lives in this neutral module (not in `keyturn.providers`) so that
providers, stores, activities and the demo can name the type without importing
one another. A value of this type never leaves an activity: workflow inputs,
results, errors and audit records carry references and fingerprints only.
"""

from __future__ import annotations

Secret = dict[str, str]
"""A credential's secret material as named fields, e.g. {"aws_access_key_id": ..., ...}."""
