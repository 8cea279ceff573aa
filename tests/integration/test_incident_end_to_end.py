"""runbooks/incident.yaml, every provider at once, rotated end to end on the local stack.

The runbook's tiers, gates, strategies and stores are used as written; only
each credential's target (and store paths) are pointed at a fresh subject on
that provider's test server: the Temporal dev server, OpenBao, the AWS
emulator, Verdaccio, PostgreSQL, MariaDB and the GitHub, Graph, GCP IAM and
vendor-webhook fakes. A worker with the real workflows and activities runs
in this process; the run is driven as an operator would (approvals from
distinct principals, the PAT supplied into the store), then every provider's
state, every store, the audit chain and the run's histories are checked.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from conformance.harness import PROVIDERS, fixture_name
from stack_support import run_histories, run_workflow_ids
from temporalio.client import Client

from keyturn.audit import open_log, replay, verify
from keyturn.cli.render import open_gates
from keyturn.codec import data_converter, new_key
from keyturn.config import Settings
from keyturn.fingerprint import fingerprint
from keyturn.operations import gates, runs
from keyturn.operations.plans import RunbookSource, compile_plan
from keyturn.operations.supply import supply
from keyturn.stores.vault_kv import VaultKvStore
from keyturn.worker import build_workers, running
from keyturn.workflows.tier import credential_workflow_id

RUNBOOK = Path(__file__).parents[2] / "runbooks" / "incident.yaml"
APPROVERS = ["bob", "dave", "carol", "erin"]  # alice requests the run


@pytest.fixture
def harnesses(request):
    return {name: request.getfixturevalue(fixture_name(name)) for name in PROVIDERS}


def retarget(harnesses, actions, vault: VaultKvStore, tag: str, tmp: Path):
    """The incident runbook with each credential on a fresh subject; returns (path, subjects)."""
    document = yaml.safe_load(RUNBOOK.read_text())
    document["metadata"]["name"] = f"incident-e2e-{tag}"
    document["spec"]["defaults"]["grace_period"] = "1s"
    document["spec"]["stores"]["aws-sm"]["region"] = "us-east-1"
    subjects = {}
    for tier in document["spec"]["tiers"]:
        for cred in tier["credentials"]:
            subject = harnesses[cred["provider"]].new_subject()
            subjects[cred["id"]] = subject
            cred["target"] = subject.target
            for location in cred["deliver"]:
                if location["store"] == "ci":
                    location["path"] = actions.new_path()
                else:
                    location["path"] = f"e2e-{tag}/{location['path']}"
            first = cred["deliver"][0]
            assert first["store"] == "vault", "the suite reads old values from Vault"
            vault.write(first["path"], subject.initial, {"credential_id": subject.initial_id})
    path = tmp / "incident.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path, subjects, document


async def drive(client: Client, run_id: str, harnesses, subjects, vault, providers):
    """Approve every open gate with eligible, distinct principals; supply what waits."""
    approved: dict[str, set[str]] = {}
    supplied: set[str] = set()
    for _ in range(2400):
        detail = await runs.describe(client, run_id)
        if detail.status.state in ("succeeded", "failed", "cancelled"):
            return detail
        for target, gate in open_gates(detail).items():
            done = approved.setdefault(target, set())
            voted = {a.principal for a in gate.approvals} | done
            principal = next(p for p in APPROVERS if p in gate.plan.approvers and p not in voted)
            done.add(principal)
            await gates.decide(client, run_id, target, principal, "incident e2e", approve=True)
        for cred_id, status in detail.credentials.items():
            last = status.steps[-1] if status.steps else None
            if last and (last.step, last.outcome) == ("supply", "waiting") \
                    and cred_id not in supplied:
                provider = status.provider
                secret = harnesses[provider].supply(subjects[cred_id])
                await supply(client, run_id, cred_id, secret, "alice",
                             store_for=lambda plan: vault)
                supplied.add(cred_id)
        await asyncio.sleep(0.25)
    raise AssertionError("the incident run did not finish")


async def test_incident_runbook_rotates_every_provider_end_to_end(
    harnesses, store_harness_github_actions_secret, temporal_dev_server, openbao, aws_env,
    monkeypatch, tmp_path,
):
    actions = store_harness_github_actions_secret
    monkeypatch.setenv("VAULT_ADDR", openbao.url)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    for name, value in actions.store_env().items():
        monkeypatch.setenv(name, value)
    vault = VaultKvStore("vault", {"address": openbao.url})
    tag = uuid.uuid4().hex[:8]
    path, subjects, document = retarget(harnesses, actions, vault, tag, tmp_path)
    providers = {name: h.provider() for name, h in harnesses.items()}
    codec_key = new_key()
    client = await Client.connect(temporal_dev_server.address,
                                  data_converter=data_converter(codec_key))
    audit_path = tmp_path / "audit.jsonl"
    task_queue = f"e2e-{tag}"
    families = sorted({type(p).family for p in providers.values()})
    workers = build_workers(client, task_queue=task_queue, audit_log=open_log(audit_path),
                            families=families, rate_limits={f: 200 for f in families},
                            provider_for=providers.__getitem__)
    plan = compile_plan(
        Settings.from_env(), RunbookSource.read(path),
        requested_by="alice", now=datetime.now(UTC))
    async with running(workers):
        await runs.start(client, plan, task_queue)
        detail = await drive(client, plan.run_id, harnesses, subjects, vault, providers)
    errors = {c: s.error for c, s in detail.credentials.items() if s.error}
    assert detail.status.state == "succeeded", errors

    secrets_seen = []
    for tier in document["spec"]["tiers"]:
        for cred in tier["credentials"]:
            harness, subject = harnesses[cred["provider"]], subjects[cred["id"]]
            status = detail.credentials[cred["id"]]
            delivered = vault.read(cred["deliver"][0]["path"])
            assert fingerprint(delivered.secret) == status.new_fingerprint, cred["id"]
            assert harness.works(subject, delivered.secret), f"{cred['id']}: new one fails"
            assert not harness.works(subject, subject.initial), f"{cred['id']}: old one works"
            for location in cred["deliver"][1:]:
                held = actions.server_value(location["path"]) if location["store"] == "ci" \
                    else aws_secret(location["path"])
                assert held is not None, f"{cred['id']}: nothing at {location}"
            public = getattr(harness, "public_fields", frozenset())
            secrets_seen += [v for s in (subject.initial, delivered.secret)
                             for k, v in s.items() if k not in public and len(v) >= 8]

    assert verify(audit_path).ok
    replayed = replay(open_log(audit_path).records(), plan.run_id)
    assert replayed.ok, replayed.violations
    exported, payloads, _ = await run_histories(
        client, run_workflow_ids(runs_json(detail)), codec_key)
    leaked = [s[:6] for s in secrets_seen
              if s in exported or any(s.encode() in p for p in payloads)
              or s in audit_path.read_text()]
    assert not leaked, f"secret values found in histories or the audit log: {leaked}"
    assert credential_workflow_id(plan.run_id, "release-bot-pat") in run_workflow_ids(
        runs_json(detail))


def runs_json(detail: runs.RunSnapshot) -> dict:
    return {**detail.status.model_dump(mode="json"),
            "credential_details": {k: v.model_dump(mode="json")
                                   for k, v in detail.credentials.items()}}


def aws_secret(name: str):
    import boto3

    try:
        return boto3.client("secretsmanager").get_secret_value(
            SecretId=name, VersionStage="AWSCURRENT")["SecretString"]
    except Exception:  # noqa: BLE001 - absence is what the caller asserts on
        return None
