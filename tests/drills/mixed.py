"""The drills' mixed runbook: two IAM users, a KMS signing key, a PKI code-signing
certificate, a PostgreSQL password (behind a gate) and an npm token, each on a fresh
subject of its conformance harness (tests/conformance), with the old value delivered to
Vault as an earlier rotation would have left it; and the checks every drill ends with."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from keyturn.providers.base import ProviderContext

CREDENTIALS = {  # credential id -> provider
    "iam-a": "aws.iam_access_key",
    "iam-b": "aws.iam_access_key",
    "kms-sign": "aws.kms_key",
    "pki-cert": "signing.vault_pki_cert",
    "orders-db": "postgres.password",
    "npm-publish": "npm.token",
}
GATED = "orders-db"  # its promote waits for one approval from security


@dataclass
class Mixed:
    """One mixed runbook on fresh subjects: its file, subjects and the worker env it needs."""

    path: Path
    tag: str
    subjects: dict
    harnesses: dict
    worker_env: dict[str, str]
    credentials: dict[str, str]

    def deliver_path(self, cid: str) -> str:
        return f"drill-{self.tag}/{cid}"


def make_mixed(harnesses: dict, vault, tmp: Path, *, grace: str = "1s",
               credentials: dict[str, str] = CREDENTIALS, gated: str | None = GATED) -> Mixed:
    """`harnesses`: provider name -> ProviderHarness; `vault`: a VaultKvStore;
    `credentials`: credential id -> provider (at most one npm.token: one npm password
    per worker); `gated`: the credential whose promote waits for an approval."""
    tag = uuid.uuid4().hex[:8]
    plan = credentials
    subjects, credentials = {}, []
    for cid, provider in plan.items():
        subject = subjects[cid] = harnesses[provider].new_subject()
        path = f"drill-{tag}/{cid}"
        vault.write(path, subject.initial, {"credential_id": subject.initial_id})
        entry = {"id": cid, "provider": provider, "target": subject.target,
                 "deliver": [{"store": "vault", "path": path}]}
        if cid == gated:
            entry["gate"] = {"before": "promote", "approvals": 1, "from": "security"}
        credentials.append(entry)
    document = {
        "apiVersion": "keyturn/v1", "kind": "Runbook",
        "metadata": {"name": f"drill-{tag}", "incident": "INC-DRILL"},
        "spec": {
            "approvers": {"security": ["alice", "bob"]},
            "defaults": {"grace_period": grace},
            "stores": {"vault": {"type": "vault_kv", "address": "${VAULT_ADDR}",
                                 "mount": "secret"}},
            "tiers": [{"id": "tier1", "concurrency": len(credentials),
                       "credentials": credentials}],
        },
    }
    path = tmp / f"drill-{tag}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    env = {}
    for cid, provider in plan.items():
        if provider == "npm.token":
            env["KEYTURN_NPM_REGISTRY"] = harnesses[provider].proxy.url
            env["KEYTURN_NPM_PASSWORD"] = subjects[cid].extra["password"]
        elif provider == "postgres.password":
            pg = harnesses[provider]
            env["KEYTURN_POSTGRES_ADMIN_DSN"] = pg.server.admin_dsn(pg.proxy.port)
    return Mixed(path, tag, subjects, harnesses, env, dict(plan))


def check_rotated(mixed: Mixed, status: dict, vault, skip: tuple[str, ...] = ()) -> list[str]:
    """What is wrong after a run that should have rotated everything but `skip` (empty:
    all good).

    Each credential succeeded; its target holds exactly one credential, the new one; the
    deliver path holds it and it works; the old one no longer works."""
    wrong = []
    for cid, provider in mixed.credentials.items():
        if cid in skip:
            continue
        detail = status["credential_details"].get(cid, {})
        if detail.get("state") != "succeeded":
            wrong.append(f"{cid}: {detail.get('state')} {detail.get('error')}")
            continue
        harness, subject = mixed.harnesses[provider], mixed.subjects[cid]
        delivered = vault.read(mixed.deliver_path(cid))
        if delivered is None or not harness.works(subject, delivered.secret):
            wrong.append(f"{cid}: the delivered value does not work")
            continue
        if harness.works(subject, subject.initial):
            wrong.append(f"{cid}: the old value still works")
        live = harness.provider().list_credential_ids(
            harness.provider().target_model.model_validate(subject.target),
            ProviderContext(old_secret=delivered.secret, credential=cid))
        if live != [detail["new_credential_id"]]:
            wrong.append(f"{cid}: target holds {live}, expected only "
                         f"{detail['new_credential_id']}")
    return wrong


def check_rolled_back(mixed: Mixed, cid: str, status: dict, vault) -> list[str]:
    """What is wrong with a credential that should have failed and rolled back: the old
    value must still be delivered, work, and be the target's only credential."""
    provider = mixed.credentials[cid]
    harness, subject = mixed.harnesses[provider], mixed.subjects[cid]
    detail = status["credential_details"].get(cid, {})
    delivered = vault.read(mixed.deliver_path(cid))
    wrong = []
    if detail.get("state") != "failed":
        wrong.append(f"{cid}: {detail.get('state')}, expected failed")
    if delivered is None or delivered.secret != subject.initial:
        wrong.append(f"{cid}: the store no longer holds the old value")
    if not harness.works(subject, subject.initial):
        wrong.append(f"{cid}: the old value stopped working")
    live = harness.provider().list_credential_ids(
        harness.provider().target_model.model_validate(subject.target),
        ProviderContext(old_secret=subject.initial, credential=cid))
    if live != [subject.initial_id]:
        wrong.append(f"{cid}: target holds {live}, expected only {subject.initial_id}")
    return wrong


def check_audit(records: list[dict], credentials=CREDENTIALS) -> list[str]:
    """No event twice, and each step of each credential succeeded exactly once (revoke_old
    once per phase): nothing duplicated, nothing missing."""
    wrong = [f"event {e} written {n} times"
             for e, n in Counter(r["event_id"] for r in records).items() if n > 1]
    done = Counter((r["credential"], r["step"], r["details"].get("phase"))
                   for r in records if r["outcome"] == "succeeded" and r["credential"])
    for cid in credentials:
        for step in ("precheck", "create", "verify_new", "promote", "confirm_revoked"):
            if done[(cid, step, None)] != 1:
                wrong.append(f"{cid}: {step} succeeded {done[(cid, step, None)]} times")
        for phase in ("disable", "delete"):
            if done[(cid, "revoke_old", phase)] != 1:
                wrong.append(f"{cid}: revoke_old {phase} succeeded "
                             f"{done[(cid, 'revoke_old', phase)]} times")
    return wrong
