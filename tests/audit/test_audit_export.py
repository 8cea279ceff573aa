"""Exporting one run as JSONL (the log's own bytes) or CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest

from keyturn.audit import JsonlAuditLog, export_run
from keyturn.audit.record import FIELDS, parse_record


@pytest.fixture
def two_runs(audit_path, make_event) -> JsonlAuditLog:
    log = JsonlAuditLog(audit_path)
    log.append(
        make_event(
            "create", run="run-1", tier="tier1", details={"fingerprint": "sha256:ab", "n": "é"}
        )
    )
    log.append(make_event("create", run="run-2"))
    log.append(make_event("verify_new", run="run-1", credential=None, details={}))
    return log


def test_jsonl_export_is_the_runs_lines_of_the_log(two_runs: JsonlAuditLog) -> None:
    out = io.StringIO()
    assert export_run(two_runs.records(), "run-1", "jsonl", out) == 2
    log_lines = two_runs.path.read_bytes().splitlines(keepends=True)
    assert out.getvalue().encode("utf-8") == log_lines[0] + log_lines[2]
    assert all(parse_record(line).hash_ok() for line in out.getvalue().encode().splitlines())


def test_csv_export_has_one_column_per_field(two_runs: JsonlAuditLog) -> None:
    out = io.StringIO()
    records = list(two_runs.records())
    assert export_run(reversed(records), "run-1", "csv", out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == FIELDS
    assert [row["seq"] for row in rows] == ["1", "3"]  # seq order, other run left out
    assert json.loads(rows[0]["details"]) == {"fingerprint": "sha256:ab", "n": "é"}
    assert rows[0]["details"] == '{"fingerprint":"sha256:ab","n":"é"}'
    assert (rows[1]["credential"], rows[1]["provider"], rows[1]["details"]) == ("", "", "{}")
    assert rows[1]["hash"] == records[2].hash and rows[1]["prev"] == records[1].hash


@pytest.mark.parametrize("actor", ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx"])
def test_csv_export_defuses_spreadsheet_formulas(audit_path, make_event, actor: str) -> None:
    log = JsonlAuditLog(audit_path)
    log.append(make_event("gate", run="run-1", actor=actor, details={"reason": "=1+1"}))
    out = io.StringIO()
    export_run(log.records(), "run-1", "csv", out)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["actor"] == "'" + actor
    assert json.loads(row["details"]) == {"reason": "=1+1"}  # JSON cells start with "{"
    assert row["seq"] == "1"


def test_export_of_an_unknown_run_writes_only_a_header(two_runs: JsonlAuditLog) -> None:
    out = io.StringIO()
    assert export_run(two_runs.records(), "nope", "csv", out) == 0
    assert out.getvalue().strip() == ",".join(FIELDS)


def test_export_rejects_an_unknown_format(two_runs: JsonlAuditLog) -> None:
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export_run(two_runs.records(), "run-1", "xml", io.StringIO())
