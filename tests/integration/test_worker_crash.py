"""A worker killed with SIGKILL mid-run: a second worker finishes the run, with exactly one
new key per user and no audit event written twice."""

from __future__ import annotations

import uuid
from collections import Counter

from stack_support import seed_user, sts_accepts

RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: crash-{tag}}}
spec:
  defaults: {{grace_period: 2s}}
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  tiers:
    - id: tier1
      concurrency: 2
      credentials:
{credentials}
    - id: tier2
      after: [tier1]
      credentials:
{tier2}
"""
CREDENTIAL = """\
        - id: {cid}
          provider: aws.iam_access_key
          target: {{user_name: {cid}-{tag}}}
          deliver: [{{store: vault, path: crash-{tag}/{cid}}}]
"""


def test_sigkilled_worker_is_replaced_without_losing_or_repeating_a_step(
        stack, iam_client, vault_client, moto):
    tag = uuid.uuid4().hex[:6]
    tier1, tier2 = ["u1", "u2", "u3", "u4"], ["u5"]
    old = {cid: seed_user(iam_client, vault_client, f"{cid}-{tag}", f"crash-{tag}/{cid}")
           for cid in tier1 + tier2}
    path = stack.tmp / "crash.yaml"
    path.write_text(RUNBOOK.format(
        tag=tag,
        credentials="".join(CREDENTIAL.format(cid=c, tag=tag) for c in tier1).rstrip("\n"),
        tier2="".join(CREDENTIAL.format(cid=c, tag=tag) for c in tier2).rstrip("\n"),
    ))

    first = stack.start_worker()
    run_id = stack.cli_json("run", str(path), "--as", "dave")["run_id"]

    def created_some():
        return any(r["step"] == "create" and r["outcome"] == "succeeded"
                   for r in stack.audit_records(run_id))
    stack.wait_for(created_some, what="a first key created")
    stack.kill_worker(first)  # SIGKILL, wherever it is
    assert any(r["step"] != "run" for r in stack.audit_records(run_id))
    assert not any(r["step"] == "run" and r["outcome"] == "succeeded"
                   for r in stack.audit_records(run_id)), "the run must still be in flight"

    stack.start_worker()
    waited = stack.cli("wait", run_id, "--output", "json")
    assert waited.returncode == 0, waited.stdout + waited.stderr

    for cid in tier1 + tier2:
        keys = iam_client.list_access_keys(UserName=f"{cid}-{tag}")["AccessKeyMetadata"]
        value = vault_client.secrets.kv.v2.read_secret_version(
            path=f"crash-{tag}/{cid}", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]
        assert [k["AccessKeyId"] for k in keys] == [value["aws_access_key_id"]]
        assert value["aws_access_key_id"] != old[cid]["aws_access_key_id"]
        assert not sts_accepts(moto, old[cid])

    records = stack.audit_records(run_id)
    assert not [e for e, n in Counter(r["event_id"] for r in records).items() if n > 1]
    created = Counter(r["credential"] for r in records
                      if r["step"] == "create" and r["outcome"] == "succeeded")
    assert created == {cid: 1 for cid in tier1 + tier2}
    assert stack.cli("audit", "verify").returncode == 0
    assert stack.cli("audit", "replay", run_id).returncode == 0
