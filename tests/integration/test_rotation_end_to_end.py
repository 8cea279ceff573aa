"""End to end on real servers: the CLI, a worker process, the Temporal dev server, OpenBao
and the AWS emulator (key checking on). Provider state, Vault, the audit log and the
absence of every secret from histories, logs and the audit log are checked after the run."""

from __future__ import annotations

import json
import uuid

from stack_support import run_histories, run_workflow_ids, seed_user, sts_accepts
from temporalio.client import Client

from keyturn.codec import data_converter

RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata:
  name: it-{tag}
  incident: INC-IT-{tag}
spec:
  approvers:
    security: [alice, bob, carol]
  defaults: {{strategy: rotate, grace_period: 1s}}
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  tiers:
    - id: tier1
      name: Immediate
      credentials:
        - id: deployer
          provider: aws.iam_access_key
          target: {{user_name: deployer-{tag}}}
          deliver: [{{store: vault, path: it-{tag}/deployer}}]
    - id: tier2
      name: Parallel
      credentials:
        - id: publisher
          provider: aws.iam_access_key
          target: {{user_name: publisher-{tag}}}
          deliver: [{{store: vault, path: it-{tag}/publisher}}]
    - id: tier3
      name: Follow-up
      after: [tier1, tier2]
      gate: {{approvals: 1, from: security}}
      credentials:
        - id: orders
          provider: aws.iam_access_key
          target: {{user_name: orders-{tag}}}
          deliver: [{{store: vault, path: it-{tag}/orders}}]
          strategy: revoke-first
          gate: {{before: revoke, approvals: 2, from: security, distinct: true}}
"""


def open_gates(stack, run_id: str) -> list[str]:
    return stack.cli_json("status", run_id)["open_gates"]


async def test_runbook_rotates_end_to_end_through_the_cli(stack, iam_client, vault_client, moto):
    tag = uuid.uuid4().hex[:6]
    users = {"deployer": f"deployer-{tag}", "publisher": f"publisher-{tag}", "orders": f"orders-{tag}"}
    old = {cid: seed_user(iam_client, vault_client, user, f"it-{tag}/{cid}") for cid, user in users.items()}
    spare = iam_client.create_access_key(UserName=users["publisher"])["AccessKey"]["AccessKeyId"]
    iam_client.update_access_key(UserName=users["publisher"], AccessKeyId=spare, Status="Inactive")
    path = stack.tmp / "incident.yaml"
    path.write_text(RUNBOOK.format(tag=tag))

    assert stack.cli("validate", str(path), check=True).returncode == 0
    plan = stack.cli_json("plan", str(path))
    assert [t["id"] for t in plan["tiers"]] == ["tier1", "tier2", "tier3"]

    stack.start_worker()
    run_id = stack.cli_json("run", str(path), "--as", "carol")["run_id"]

    stack.wait_for(lambda: "tier3" in open_gates(stack, run_id), what="tier3 gate")
    status = stack.cli_json("status", run_id)
    assert [t["state"] for t in status["tiers"]] == ["succeeded", "succeeded", "waiting"]
    stack.cli("approve", run_id, "tier3", "--as", "alice", "--reason", "tier 1/2 done", check=True)

    stack.wait_for(lambda: "orders" in open_gates(stack, run_id), what="orders revoke gate")
    refused = stack.cli("approve", run_id, "orders", "--as", "carol")
    assert refused.returncode == 2 and "distinct" in refused.stderr
    refused = stack.cli("approve", run_id, "orders", "--as", "dave")
    assert refused.returncode == 2 and "not an approver" in refused.stderr
    stack.cli("approve", run_id, "orders", "--as", "alice", check=True)
    refused = stack.cli("approve", run_id, "orders", "--as", "alice")
    assert refused.returncode == 2 and "already approved" in refused.stderr
    stack.cli("approve", run_id, "orders", "--as", "bob", check=True)

    waited = stack.cli("wait", run_id, "--output", "json")
    assert waited.returncode == 0, waited.stderr

    # provider state and Vault
    new_secrets = {}
    for cid, user in users.items():
        keys = iam_client.list_access_keys(UserName=user)["AccessKeyMetadata"]
        stored = vault_client.secrets.kv.v2.read_secret_version(
            path=f"it-{tag}/{cid}", mount_point="secret", raise_on_deleted_version=True)["data"]
        value = stored["data"]
        assert [(k["AccessKeyId"], k["Status"]) for k in keys] == [(value["aws_access_key_id"], "Active")]
        assert value["aws_access_key_id"] != old[cid]["aws_access_key_id"]
        assert stored["metadata"]["version"] == 2
        custom = vault_client.secrets.kv.v2.read_secret_metadata(
            path=f"it-{tag}/{cid}", mount_point="secret")["data"]["custom_metadata"]
        assert json.loads(custom["keyturn.v2"])["keyturn_run"] == run_id
        assert sts_accepts(moto, value)
        assert not sts_accepts(moto, old[cid])
        new_secrets[cid] = value
    staging = vault_client.secrets.kv.v2.list_secrets(path="keyturn/staging", mount_point="secret",
                                                      raise_on_deleted_version=True) \
        if _has_staging(vault_client) else {"data": {"keys": []}}
    assert f"{run_id}/" not in staging["data"]["keys"]

    # audit log: intact, replay invariants hold, one record per event, protocol order per credential
    assert stack.cli("audit", "verify").returncode == 0
    replay = stack.cli("audit", "replay", run_id)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    records = stack.audit_records(run_id)
    assert len({r["event_id"] for r in records}) == len(records)
    steps = {cid: [(r["step"], r["outcome"], r["details"].get("phase")) for r in records
                   if r["credential"] == cid and r["step"] != "gate"] for cid in users}
    assert steps["deployer"] == [
        ("precheck", "succeeded", None), ("create", "succeeded", None),
        ("verify_new", "succeeded", None), ("promote", "succeeded", None),
        ("revoke_old", "succeeded", "disable"), ("revoke_old", "succeeded", "delete"),
        ("confirm_revoked", "succeeded", None),
    ]
    assert steps["orders"] == [
        ("precheck", "succeeded", None), ("revoke_old", "succeeded", "disable"),
        ("create", "succeeded", None), ("verify_new", "succeeded", None),
        ("promote", "succeeded", None), ("revoke_old", "succeeded", "delete"),
        ("confirm_revoked", "succeeded", None),
    ]
    prechecks = {r["credential"]: r["details"] for r in records if r["step"] == "precheck"}
    assert prechecks["publisher"]["removed_inactive"] == [spare]  # quota room, recorded
    assert prechecks["orders"]["strategy"] == "revoke-first"
    approvals = [(r["actor"], r["outcome"]) for r in records
                 if r["credential"] == "orders" and r["step"] == "gate"]
    assert approvals == [("worker", "opened"), ("alice", "approved"), ("bob", "approved"),
                         ("worker", "passed")]

    # the run is listed with its search attributes
    def listed():
        runs = stack.cli_json("status")["runs"]
        return next((r for r in runs if r["run_id"] == run_id and r["state"] == "succeeded"), None)
    assert stack.wait_for(listed, what="run listed as succeeded")["incident"] == f"INC-IT-{tag}"

    # no secret, old or new, in histories (decrypted), worker logs or the audit log
    client = await Client.connect(stack.env["KEYTURN_TEMPORAL_ADDRESS"],
                                  data_converter=data_converter(stack.env["KEYTURN_CODEC_KEY"]))
    final = stack.cli_json("status", run_id)
    exported, payloads, sizes = await run_histories(client, run_workflow_ids(final),
                                                    stack.env["KEYTURN_CODEC_KEY"])
    assert max(sizes.values()) < 200, sizes  # child workflows keep every history small
    assert payloads, "histories carry payloads"
    haystacks = [exported, stack.worker_logs(), stack.audit_log.read_text(), *map(_text, payloads)]
    for secret in [*old.values(), *new_secrets.values()]:
        for haystack in haystacks:
            assert secret["aws_secret_access_key"] not in haystack


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _has_staging(vault_client) -> bool:
    try:
        vault_client.secrets.kv.v2.list_secrets(path="keyturn/staging", mount_point="secret")
    except Exception:  # noqa: BLE001 - hvac raises InvalidPath when nothing is there
        return False
    return True
