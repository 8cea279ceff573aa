"""The doctor's runner and its secret filter, without servers: a check that does not answer
in time or raises is a failed row (the others still run), and no secret survives a message."""

from __future__ import annotations

import asyncio
from pathlib import Path

from keyturn.config import Settings
from keyturn.doctor.base import Check, Context, Finding, failed, ok
from keyturn.doctor.file_checks import token_file
from keyturn.doctor.runner import run_checks

CODEC_KEY = "x" * 43
ENV = {"KEYTURN_CODEC_KEY": CODEC_KEY, "VAULT_TOKEN": "hvs.a-long-vault-token",
       "KEYTURN_POSTGRES_ADMIN_DSN": "host=db user=admin password=Pa55-word-here",
       "KEYTURN_MYSQL_ADMIN_DSN": "mysql://root:my-sql-secret@127.0.0.1:3306"}


def _context(**env: str) -> Context:
    settings = Settings(temporal_address="127.0.0.1:1", namespace="default", task_queue="q",
                        audit_log=Path("audit.jsonl"), codec_key=CODEC_KEY, principal="p")
    return Context(settings, environ={**ENV, **env})


def test_scrub_blanks_every_secret_and_the_passwords_inside_connection_strings():
    ctx = _context()
    said = ctx.scrub(f"refused {CODEC_KEY} hvs.a-long-vault-token password=Pa55-word-here "
                     "mysql://root:my-sql-secret@127.0.0.1 at pytest-of-root")
    for secret in (CODEC_KEY, "hvs.a-long-vault-token", "Pa55-word-here", "my-sql-secret"):
        assert secret not in said
    assert "pytest-of-root" in said


def test_a_slow_or_broken_check_is_a_failed_row_and_the_others_still_answer():
    async def slow(ctx: Context) -> Finding:
        await asyncio.sleep(30)
        return ok("slow", "never")

    async def broken(ctx: Context) -> Finding:
        raise RuntimeError(f"driver said {CODEC_KEY}")

    async def fine(ctx: Context) -> Finding:
        return failed("fine", "quotes hvs.a-long-vault-token", "set VAULT_TOKEN")

    checks = (Check("slow", slow, "wait less"), Check("broken", broken, "look"),
              Check("fine", fine, "-"))
    found = asyncio.run(run_checks(_context(), timeout=0.2, checks=checks))
    assert [(f.check, f.status) for f in found] == [("slow", "fail"), ("broken", "fail"),
                                                    ("fine", "fail")]
    assert found[0].detail == "no answer within 0.2 s" and found[0].fix == "wait less"
    assert found[1].detail == "RuntimeError: driver said ***"
    assert found[2].detail == "quotes ***"


def test_a_token_file_open_to_others_names_the_chmod(tmp_path):
    tokens = tmp_path / "api-tokens.yaml"
    tokens.write_text("principals: {}\n")
    tokens.chmod(0o640)
    found = asyncio.run(token_file(_context(KEYTURN_API_TOKENS=str(tokens))))
    assert found.status == "fail" and found.fix == f"run `chmod 600 {tokens}`"
    tokens.chmod(0o600)
    assert asyncio.run(token_file(_context(KEYTURN_API_TOKENS=str(tokens)))).status == "ok"
