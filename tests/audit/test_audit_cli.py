"""`keyturn audit verify|replay|export|keygen|checkpoint|init`: output and exit codes,
over the JSONL file (`--log`) and the PostgreSQL log (`--dsn`)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from fakes.sql_servers import PostgresDatabase
from typer.testing import CliRunner

from keyturn.audit import JsonlAuditLog, load_signing_key
from keyturn.audit.postgres import PostgresAuditLog
from keyturn.audit.postgres_sql import RECORDS
from keyturn.cli.audit_cmds import app

runner = CliRunner()


@pytest.fixture
def run_log(audit_path: Path, make_event) -> Path:
    log = JsonlAuditLog(audit_path)
    for step in ("precheck", "create", "verify_new", "promote", "revoke_old", "confirm_revoked"):
        log.append(make_event(step, tier="tier1", details={"ref": "vault:ci/aws/deployer"}))
    return audit_path


@pytest.fixture
def bad_run_log(audit_path: Path, make_event) -> Path:
    log = JsonlAuditLog(audit_path)
    for step in ("create", "promote", "revoke_old"):  # promoted unverified
        log.append(make_event(step, run="run-bad"))
    return audit_path


def _tamper(path: Path, seq: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[seq - 1] = lines[seq - 1].replace(b"vault:ci", b"vault:cj")
    path.write_bytes(b"".join(lines))


def test_verify_intact_exits_0(run_log: Path) -> None:
    result = runner.invoke(app, ["verify", "--log", str(run_log)])
    assert result.exit_code == 0, result.output
    assert "intact" in result.output and "6 records" in result.output
    assert "no signed checkpoints" in result.output  # warning, not failure


def test_verify_tampered_exits_1_naming_the_record(run_log: Path) -> None:
    _tamper(run_log, 3)
    result = runner.invoke(app, ["verify", "--log", str(run_log)])
    assert result.exit_code == 1
    assert "BROKEN at seq 3 (log line 3)" in result.output and "altered" in result.output


def test_verify_json_output(run_log: Path) -> None:
    _tamper(run_log, 2)
    result = runner.invoke(app, ["verify", "--log", str(run_log), "--output", "json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert (data["ok"], data["first_bad_seq"], data["first_bad_line"]) == (False, 2, 2)


def test_verify_uses_the_log_from_the_environment(run_log: Path) -> None:
    result = runner.invoke(app, ["verify"], env={"KEYTURN_AUDIT_LOG": str(run_log)})
    assert result.exit_code == 0 and "intact" in result.output


def test_verify_default_log_path(run_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(run_log.parent)
    Path(".keyturn").mkdir()
    run_log.rename(".keyturn/audit.jsonl")
    assert runner.invoke(app, ["verify"]).exit_code == 0


def test_verify_missing_log_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", "--log", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 2 and "no audit log" in result.stderr


def test_verify_truncation_with_public_key(
    audit_path: Path, signing_key_file: Path, make_event
) -> None:
    log = JsonlAuditLog(
        audit_path, signing_key=load_signing_key(signing_key_file), checkpoint_every=2
    )
    for step in ("create", "verify_new", "promote", "revoke_old"):
        log.append(make_event(step))
    audit_path.write_bytes(b"".join(audit_path.read_bytes().splitlines(keepends=True)[:3]))
    args = ["verify", "--log", str(audit_path), "--public-key", f"{signing_key_file}.pub"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "truncation" in result.output and "seq 4" in result.output


def test_verify_unreadable_public_key_is_a_usage_error(run_log: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["verify", "--log", str(run_log), "--public-key", str(tmp_path / "no")]
    )
    assert result.exit_code == 2 and "cannot read audit public key" in result.stderr


def test_replay_clean_run_exits_0(run_log: Path) -> None:
    result = runner.invoke(app, ["replay", "run-1", "--log", str(run_log)])
    assert result.exit_code == 0, result.output
    assert "verify_new" in result.output and "✓ approvals_valid" in result.output


def test_reading_commands_never_load_the_signing_key(
    run_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYTURN_AUDIT_SIGNING_KEY", str(tmp_path / "unreadable.key"))
    assert runner.invoke(app, ["replay", "run-1", "--log", str(run_log)]).exit_code == 0
    args = ["export", "--run", "run-1", "--format", "jsonl", "--log", str(run_log)]
    assert runner.invoke(app, args).exit_code == 0
    signing = runner.invoke(app, ["checkpoint", "--log", str(run_log)])
    assert signing.exit_code == 2 and "cannot read audit signing key" in signing.stderr


def test_replay_violation_exits_1_naming_the_seq(bad_run_log: Path) -> None:
    result = runner.invoke(app, ["replay", "run-bad", "--log", str(bad_run_log)])
    assert result.exit_code == 1
    assert "✗ verified_before_promote" in result.output
    assert "seq 2 cred-a: promoted before verify_new succeeded" in result.output
    assert "seq 3 cred-a: revoke_old succeeded before" not in result.output  # promote delivered


def test_replay_json_output(bad_run_log: Path) -> None:
    result = runner.invoke(app, ["replay", "run-bad", "--log", str(bad_run_log), "-o", "json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False and [r["seq"] for r in data["records"]] == [1, 2, 3]
    assert data["invariants"]["verified_before_promote"]["violations"][0]["seq"] == 2
    assert data["invariants"]["approvals_valid"] == {"ok": True, "violations": []}
    assert data["by_credential"] == {"cred-a": [1, 2, 3]}


def test_replay_unknown_run_exits_2(run_log: Path) -> None:
    result = runner.invoke(app, ["replay", "nope", "--log", str(run_log)])
    assert result.exit_code == 2 and "no records for run 'nope'" in result.stderr


def test_replay_of_a_corrupt_log_exits_1(run_log: Path) -> None:
    run_log.write_bytes(run_log.read_bytes() + b"garbage\n")
    result = runner.invoke(app, ["replay", "run-1", "--log", str(run_log)])
    assert result.exit_code == 1 and "line 7" in result.stderr


def test_export_jsonl_to_stdout(run_log: Path) -> None:
    result = runner.invoke(
        app, ["export", "--run", "run-1", "--format", "jsonl", "--log", str(run_log)]
    )
    assert result.exit_code == 0
    assert result.stdout.encode("utf-8") == run_log.read_bytes()


def test_export_csv_to_file(run_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    args = ["export", "--run", "run-1", "--format", "csv", "--log", str(run_log), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "wrote 6 records" in result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["step"] for r in rows][:2] == ["precheck", "create"] and len(rows) == 6


def test_export_unknown_run_exits_2(run_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    args = ["export", "--run", "nope", "--format", "csv", "--log", str(run_log), "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 2
    assert not out.exists()


def test_export_rejects_an_unknown_format(run_log: Path) -> None:
    args = ["export", "--run", "run-1", "--format", "xml", "--log", str(run_log)]
    assert runner.invoke(app, args).exit_code == 2


def test_keygen_and_checkpoint(run_log: Path, tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    result = runner.invoke(app, ["keygen", str(key)])
    assert result.exit_code == 0 and key.exists() and Path(f"{key}.pub").exists()
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 2

    unsigned = runner.invoke(app, ["checkpoint", "--log", str(run_log)])
    assert unsigned.exit_code == 2 and "KEYTURN_AUDIT_SIGNING_KEY" in unsigned.stderr
    env = {"KEYTURN_AUDIT_SIGNING_KEY": str(key)}
    signed = runner.invoke(app, ["checkpoint", "--log", str(run_log)], env=env)
    assert signed.exit_code == 0 and "signed seq 6" in signed.output
    verified = runner.invoke(app, ["verify", "--log", str(run_log), "--public-key", f"{key}.pub"])
    assert verified.exit_code == 0 and "1 signed checkpoints" in verified.output


@pytest.fixture
def pg_run_log(audit_database: PostgresDatabase, make_event) -> str:
    """The DSN of a PostgreSQL log holding one clean run."""
    log = PostgresAuditLog(audit_database.dsn)
    for step in ("precheck", "create", "verify_new", "promote", "revoke_old", "confirm_revoked"):
        log.append(make_event(step, tier="tier1", details={"ref": "vault:ci/aws/deployer"}))
    log.close()
    return audit_database.dsn


def test_verify_dsn_intact_exits_0_without_showing_the_password(
    pg_run_log: str, audit_database: PostgresDatabase
) -> None:
    result = runner.invoke(app, ["verify", "--dsn", pg_run_log])
    assert result.exit_code == 0, result.output
    assert "intact" in result.output and "6 records" in result.output
    assert f"dbname={audit_database.name}" in result.output
    assert audit_database.password not in result.output


def test_verify_dsn_from_the_environment_names_the_tampered_record(
    pg_run_log: str, audit_database: PostgresDatabase
) -> None:
    with audit_database.superuser() as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            f"UPDATE {RECORDS} SET line = convert_to(replace(convert_from(line, 'UTF8'), "
            "'vault:ci', 'vault:cj'), 'UTF8') WHERE seq = 3"
        )
    result = runner.invoke(app, ["verify", "-o", "json"], env={"KEYTURN_AUDIT_DSN": pg_run_log})
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert (data["ok"], data["first_bad_seq"]) == (False, 3) and "altered" in data["reason"]


def test_replay_and_export_dsn(pg_run_log: str, audit_database: PostgresDatabase) -> None:
    replayed = runner.invoke(app, ["replay", "run-1", "--dsn", pg_run_log])
    assert replayed.exit_code == 0, replayed.output
    assert "✓ verified_before_promote" in replayed.output

    exported = runner.invoke(app, ["export", "--run", "run-1", "--format", "jsonl",
                                   "--dsn", pg_run_log])
    assert exported.exit_code == 0
    with audit_database.superuser() as conn:
        lines = [bytes(r[0]) for r in conn.execute(f"SELECT line FROM {RECORDS} ORDER BY seq")]
    assert exported.stdout.encode("utf-8") == b"".join(line + b"\n" for line in lines)

    unknown = runner.invoke(app, ["replay", "nope", "--dsn", pg_run_log])
    assert unknown.exit_code == 2 and "no records for run 'nope' in postgresql" in unknown.stderr


def test_checkpoint_dsn_then_verify_with_the_public_key(pg_run_log: str, tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    env = {"KEYTURN_AUDIT_SIGNING_KEY": str(key)}
    signed = runner.invoke(app, ["checkpoint", "--dsn", pg_run_log], env=env)
    assert signed.exit_code == 0 and "signed seq 6" in signed.output
    args = ["verify", "--dsn", pg_run_log, "--public-key", f"{key}.pub"]
    verified = runner.invoke(app, args)
    assert verified.exit_code == 0 and "1 signed checkpoints" in verified.output


def test_log_and_dsn_are_mutually_exclusive(run_log: Path, pg_run_log: str) -> None:
    for command in (["verify"], ["replay", "run-1"], ["checkpoint"],
                    ["export", "--run", "run-1", "--format", "csv"]):
        result = runner.invoke(app, [*command, "--log", str(run_log), "--dsn", pg_run_log])
        assert result.exit_code == 2 and "mutually exclusive" in result.stderr
    # An explicit --log wins over KEYTURN_AUDIT_DSN.
    result = runner.invoke(app, ["verify", "--log", str(run_log)],
                           env={"KEYTURN_AUDIT_DSN": pg_run_log})
    assert result.exit_code == 0 and str(run_log) in result.output


def test_init_creates_the_tables(audit_database: PostgresDatabase) -> None:
    missing = runner.invoke(app, ["replay", "run-1", "--dsn", audit_database.dsn])
    assert missing.exit_code == 2 and "no audit log at postgresql" in missing.stderr
    result = runner.invoke(app, ["init", "--dsn", audit_database.dsn])
    assert result.exit_code == 0 and "audit tables ready" in result.output
    assert PostgresAuditLog(audit_database.dsn).exists()
    assert runner.invoke(app, ["init"]).exit_code == 2  # no DSN: nothing to initialise


def test_a_wrong_password_is_an_error_that_does_not_show_it(
    audit_database: PostgresDatabase,
) -> None:
    password = "wrong-" + audit_database.password
    dsn = audit_database.dsn_for(audit_database.owner, password)
    for command in (["verify"], ["replay", "run-1"], ["init"]):
        result = runner.invoke(app, [*command, "--dsn", dsn])
        assert result.exit_code in (1, 2)
        assert "password authentication failed" in " ".join(result.stderr.split())
        unwrapped = result.output.replace("\n", "")  # rich wraps long lines
        assert password not in unwrapped
