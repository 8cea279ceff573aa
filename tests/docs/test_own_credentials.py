"""The provider table of docs/own-credentials.md says what each provider's shape() declares.

The table is written by hand; this keeps it from rotting: one row per registered provider,
the fields in the provider's order with the optional ones marked, the id field, and whether
the current value must be in the store before the first run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keyturn.providers.registry import provider_class, provider_names

PAGE = Path(__file__).resolve().parents[2] / "docs" / "own-credentials.md"
HEADER = "| Provider | Fields written to the store | Id field | Current value before the first run |"

# Providers whose reads_current depends on the target: a target of the mode that reads it,
# and the target field the table names for that mode.
READS_CURRENT_WITH = {
    "postgres.password": ({"host": "db", "dbname": "orders", "role": "orders_app"}, "role"),
    "mysql.password": ({"host": "db", "user": "orders_app"}, "user"),
}


def table_rows(text: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    start = lines.index(HEADER) + 2  # past the header and its |---| line
    rows: dict[str, list[str]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = re.fullmatch(r"`([\w.]+)`", cells[0])
        assert name, f"not a provider cell: {cells[0]!r}"
        assert name.group(1) not in rows, f"{name.group(1)} twice"
        rows[name.group(1)] = cells[1:]
    return rows


ROWS = table_rows(PAGE.read_text())


def test_the_table_has_one_row_per_registered_provider() -> None:
    assert sorted(ROWS) == sorted(provider_names())


def row_problems(name: str, cells: list[str]) -> list[str]:
    """How the row of provider `name` differs from what its shape() declares."""
    fields_cell, id_cell, current_cell = cells
    cls = provider_class(name)
    shape = cls.shape(None)
    listed = re.findall(r"`(\w+)`( \(optional\))?", fields_cell)
    problems = []
    if [field for field, _ in listed] != list(shape.fields):
        problems.append(f"fields: {shape.fields}")
    if {field for field, optional in listed if optional} != set(shape.optional):
        problems.append(f"optional: {sorted(shape.optional)}")
    if id_cell != (f"`{shape.id_field}`" if shape.id_field else "none"):
        problems.append(f"id field: {shape.id_field}")
    if not current_cell.startswith("**yes**" if shape.reads_current else "no"):
        problems.append(f"reads_current: {shape.reads_current}")
    if name in READS_CURRENT_WITH:
        target, field = READS_CURRENT_WITH[name]
        assert cls.shape(cls.target_model.model_validate(target)).reads_current
        if f"**yes** with `{field}`" not in current_cell:
            problems.append(f"reads_current with {field}: True")
    return problems


@pytest.mark.parametrize("name", provider_names())
def test_the_row_matches_what_the_provider_declares(name: str) -> None:
    assert row_problems(name, ROWS[name]) == []


@pytest.mark.parametrize(("name", "cells", "problem"), [
    ("npm.token", ["`token`", "none", "no"], "reads_current: True"),
    ("github.pat", ["`token`, `token_name`", "none", "**yes**"], "optional: ['token_name']"),
    ("aws.iam_access_key", ["`aws_secret_access_key`, `aws_access_key_id`",
                            "`aws_access_key_id`", "no"], "fields: "),
    ("http.webhook", ["`secret`, `secret_id`", "none", "no"], "id field: secret_id"),
    ("postgres.password", ["`username`, `password`, `host`, `port`, `dbname`", "none", "no"],
     "reads_current with role: True"),
])
def test_a_wrong_row_is_caught(name: str, cells: list[str], problem: str) -> None:
    assert any(p.startswith(problem) for p in row_problems(name, cells))
