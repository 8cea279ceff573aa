"""Export one run's audit records for a compliance team, as JSONL or CSV.

JSONL lines are byte-for-byte the lines of the log, so every exported record
can still be re-hashed. CSV has one column per record field in log order;
``details`` is its canonical JSON string and a null field is an empty cell.
A text cell a spreadsheet would evaluate as a formula (it starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return) is prefixed with ``'``, so an
actor or credential name cannot run in the auditor's spreadsheet; the JSONL
export is the one to re-hash.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from keyturn.audit.record import FIELDS, AuditRecord, canonical_json

FORMATS = ("jsonl", "csv")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _csv_row(record: AuditRecord) -> list[object]:
    data = record.model_dump()
    data["details"] = canonical_json(data["details"]).decode("utf-8")
    return [_csv_cell(data[name]) for name in FIELDS]


def export_run(records: Iterable[AuditRecord], run: str, fmt: str, out: TextIO) -> int:
    """Write the records of ``run`` to ``out`` in seq order; returns how many."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    selected = sorted((r for r in records if r.run == run), key=lambda r: r.seq)
    if fmt == "jsonl":
        out.writelines(record.line().decode("utf-8") for record in selected)
    else:
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        writer.writerows(_csv_row(r) for r in selected)
    return len(selected)
