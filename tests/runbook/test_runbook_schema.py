"""The committed JSON Schema is current and agrees with the loader on the example runbooks."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from keyturn.runbook import check
from keyturn.runbook.schema import json_schema, schema_text

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def test_committed_schema_is_current() -> None:
    assert (RUNBOOKS / "schema.json").read_text() == schema_text(), (
        "regenerate: python -m keyturn.runbook.schema > runbooks/schema.json"
    )


def test_schema_uses_the_yaml_field_names() -> None:
    schema = json_schema()
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    gate = schema["$defs"]["CredentialGate"]
    assert {"before", "from", "approvals", "distinct", "timeout"} <= set(gate["properties"])
    assert "before" not in schema["$defs"]["TierGate"]["properties"]
    assert schema["$defs"]["Credential"]["additionalProperties"] is False
    assert schema["$defs"]["Store"]["additionalProperties"] is True


@pytest.mark.parametrize("example", sorted(p.name for p in RUNBOOKS.glob("*.yaml")))
def test_example_runbooks_match_the_schema_and_validate(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    jsonschema.Draft202012Validator(json_schema()).validate(
        yaml.safe_load((RUNBOOKS / example).read_text())
    )
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("HOOKBAY_API_URL", "https://api.hookbay.example")
    check(RUNBOOKS / example)  # the installed providers check every target too


def test_schema_rejects_an_unknown_field() -> None:
    document = yaml.safe_load((RUNBOOKS / "demo.yaml").read_text())
    document["spec"]["tiers"][0]["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(json_schema()).validate(document)
