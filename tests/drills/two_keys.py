"""The small runbook of the outage and audit-damage drills: two IAM users whose keys are
delivered to Vault, and the checks those drills end with (each key rotated exactly once,
delivered and working, the old one refused, every step recorded once)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from stack_support import seed_user, sts_accepts

USERS = ("u1", "u2")
RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: {prefix}-{tag}}}
spec:
  defaults: {{grace_period: 1s}}
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  tiers:
    - id: tier1
      credentials:
        - {{id: u1, provider: aws.iam_access_key, target: {{user_name: u1-{tag}}},
            deliver: [{{store: vault, path: {prefix}-{tag}/u1}}]}}
        - {{id: u2, provider: aws.iam_access_key, target: {{user_name: u2-{tag}}},
            deliver: [{{store: vault, path: {prefix}-{tag}/u2}}]}}
"""


@dataclass
class TwoKeys:
    path: Path  # the runbook
    tag: str
    prefix: str
    old: dict[str, dict[str, str]]  # user -> its old secret


def two_keys(iam, vault_client, tmp: Path, prefix: str) -> TwoKeys:
    """Seed both users (one working key each, delivered) and write the runbook."""
    tag = uuid.uuid4().hex[:6]
    old = {u: seed_user(iam, vault_client, f"{u}-{tag}", f"{prefix}-{tag}/{u}") for u in USERS}
    path = tmp / f"{prefix}.yaml"
    path.write_text(RUNBOOK.format(tag=tag, prefix=prefix))
    return TwoKeys(path, tag, prefix, old)


def check_two_keys(keys: TwoKeys, iam, vault_client, moto, records: list) -> list[str]:
    """What is wrong after the run (empty: all good); `records` are the run's, as dicts."""
    wrong = []
    for user in USERS:
        held = iam.list_access_keys(UserName=f"{user}-{keys.tag}")["AccessKeyMetadata"]
        value = vault_client.secrets.kv.v2.read_secret_version(
            path=f"{keys.prefix}-{keys.tag}/{user}", mount_point="secret",
            raise_on_deleted_version=True)["data"]["data"]
        if [k["AccessKeyId"] for k in held] != [value["aws_access_key_id"]]:
            wrong.append(f"{user}: IAM holds {held}, Vault {value['aws_access_key_id']}")
        if not sts_accepts(moto, value) or sts_accepts(moto, keys.old[user]):
            wrong.append(f"{user}: the new key does not work or the old one still does")
    if len({r["event_id"] for r in records}) != len(records):
        wrong.append("an event was written twice")
    done = [(r["credential"], r["step"], r["details"].get("phase")) for r in records
            if r["outcome"] == "succeeded" and r["credential"]]
    if len(done) != len(set(done)) or len(done) != 7 * len(USERS):
        wrong.append(f"steps succeeded: {done}")
    return wrong
