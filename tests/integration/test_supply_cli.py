"""`keyturn supply`: an operator hands a GitHub PAT to a waiting run through the CLI.

The token is piped on stdin to a CLI process that writes it to OpenBao and
tells the workflow only its fingerprint; a worker with the real workflows then
verifies it against the GitHub fake and revokes the old token.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime

from temporalio.client import Client

from keyturn.audit import open_log
from keyturn.codec import data_converter, new_key
from keyturn.config import Settings
from keyturn.operations import runs
from keyturn.operations.plans import RunbookSource, compile_plan
from keyturn.stores.vault_kv import VaultKvStore
from keyturn.worker import build_workers, running


async def waiting_for_supply(client: Client, run_id: str, credential: str) -> None:
    for _ in range(400):
        detail = await runs.describe(client, run_id)
        status = detail.credentials.get(credential)
        last = status.steps[-1] if status and status.steps else None
        if last and (last.step, last.outcome) == ("supply", "waiting"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{credential} never waited for a supplied value")


async def test_supply_reads_the_token_from_stdin_and_the_run_completes(
    harness_github_pat, temporal_dev_server, openbao, tmp_path, monkeypatch
):
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    subject = harness_github_pat.new_subject()
    vault = VaultKvStore("vault", {"address": openbao.url})
    tag = uuid.uuid4().hex[:8]
    vault.write(f"supply-{tag}/pat", subject.initial, {"credential_id": subject.initial_id})
    runbook = tmp_path / "pat.yaml"
    runbook.write_text(textwrap.dedent(f"""\
        apiVersion: keyturn/v1
        kind: Runbook
        metadata: {{name: supply-{tag}}}
        spec:
          stores:
            vault: {{type: vault_kv, address: "{openbao.url}"}}
          tiers:
            - id: tier2
              credentials:
                - id: release-bot-pat
                  provider: github.pat
                  target: {json.dumps(subject.target)}
                  deliver: [{{store: vault, path: supply-{tag}/pat}}]
        """))
    codec_key, task_queue = new_key(), f"supply-{tag}"
    client = await Client.connect(temporal_dev_server.address,
                                  data_converter=data_converter(codec_key))
    workers = build_workers(
        client, task_queue=task_queue, audit_log=open_log(tmp_path / "audit.jsonl"),
        families=["github"], rate_limits={"github": 100},
        provider_for=lambda name: harness_github_pat.provider(),
    )
    plan = compile_plan(
        Settings.from_env(), RunbookSource.read(runbook),
        requested_by="dave", now=datetime.now(UTC))
    async with running(workers):
        await runs.start(client, plan, task_queue, search_attributes=False)
        await waiting_for_supply(client, plan.run_id, "release-bot-pat")
        token = harness_github_pat.supply(subject)["token"]
        env = {**os.environ, "KEYTURN_TEMPORAL_ADDRESS": temporal_dev_server.address,
               "KEYTURN_TASK_QUEUE": task_queue, "KEYTURN_CODEC_KEY": codec_key}
        cli = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "keyturn", "supply", plan.run_id, "release-bot-pat",
             "--as", "alice", "-o", "json"],
            input=token + "\n", env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        final = await runs.wait(client, plan.run_id)

    assert cli.returncode == 0, cli.stderr
    assert token not in cli.stdout + cli.stderr
    notice = json.loads(cli.stdout)
    assert notice["principal"] == "alice" and notice["fingerprint"].startswith("sha256:")
    assert final.state == "succeeded"
    assert vault.read(f"supply-{tag}/pat").secret == {"token": token}
    assert harness_github_pat.works(subject, {"token": token})
    assert not harness_github_pat.works(subject, subject.initial)
    audit = (tmp_path / "audit.jsonl").read_text()
    assert token not in audit and '"actor":"alice"' in audit
