"""Servers going away mid-run: OpenBao unreachable, then the AWS emulator unreachable (each
until a step has failed on it and been recorded as retried), then the Temporal dev server
SIGKILLed and restarted. The run waits and retries, then completes: one new key per user,
delivered and working, the old one refused, every step recorded once (plus its `error`
records), audit verify and replay pass."""

from __future__ import annotations

import time
import uuid

from killing import audit_records, report
from outages import down_until_retried, errors, has_record, outage_stack, restart_killed
from stack_support import seed_user, sts_accepts

RUNBOOK = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: outage-{tag}}}
spec:
  defaults: {{grace_period: 1s}}
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  tiers:
    - id: tier1
      credentials:
        - {{id: u1, provider: aws.iam_access_key, target: {{user_name: u1-{tag}}},
            deliver: [{{store: vault, path: outage-{tag}/u1}}]}}
        - {{id: u2, provider: aws.iam_access_key, target: {{user_name: u2-{tag}}},
            deliver: [{{store: vault, path: outage-{tag}/u2}}]}}
"""


def test_vault_aws_and_temporal_go_away_mid_run(tmp_path, openbao, moto, iam_client,
                                                vault_client):
    began = time.monotonic()
    tag = uuid.uuid4().hex[:6]
    old = {u: seed_user(iam_client, vault_client, f"{u}-{tag}", f"outage-{tag}/{u}")
           for u in ("u1", "u2")}
    with outage_stack(tmp_path, openbao, moto) as (stack, temporal, vault, aws):
        path = tmp_path / "outage.yaml"
        path.write_text(RUNBOOK.format(tag=tag))
        stack.start_worker()
        run_id = stack.cli_json("run", str(path), "--as", "dave")["run_id"]

        stack.wait_for(lambda: has_record(stack, run_id, "precheck"), what="a precheck")
        with down_until_retried(stack, run_id, vault, "OpenBao"):
            pass
        stack.wait_for(lambda: has_record(stack, run_id, "promote"), what="a promote")
        with down_until_retried(stack, run_id, aws, "the AWS emulator"):
            pass
        stack.wait_for(lambda: has_record(stack, run_id, "revoke_old"), what="a revoke")
        assert not has_record(stack, run_id, "run"), "the run must still be in flight"
        restart_killed(temporal)

        waited = stack.cli("wait", run_id)
        assert waited.returncode == 0, waited.stdout + waited.stderr

        for user in ("u1", "u2"):
            keys = iam_client.list_access_keys(UserName=f"{user}-{tag}")["AccessKeyMetadata"]
            value = vault_client.secrets.kv.v2.read_secret_version(
                path=f"outage-{tag}/{user}", mount_point="secret",
                raise_on_deleted_version=True)["data"]["data"]
            assert [k["AccessKeyId"] for k in keys] == [value["aws_access_key_id"]]
            assert sts_accepts(moto, value) and not sts_accepts(moto, old[user])
        records = audit_records(stack, run_id)
        assert len({r["event_id"] for r in records}) == len(records)
        done = [(r["credential"], r["step"], r["details"].get("phase")) for r in records
                if r["outcome"] == "succeeded" and r["credential"]]
        assert len(done) == len(set(done)) == 14, done
        retried = errors(stack, run_id)
        assert len(retried) >= 2 and all(r["details"]["retrying"] for r in retried)
        assert stack.cli("audit", "verify").returncode == 0
        assert stack.cli("audit", "replay", run_id).returncode == 0
        report({"drill": "servers away", "injected": "OpenBao, moto down; Temporal killed",
                "checked": "retried, rotated once", "ok": True,
                "seconds": round(time.monotonic() - began, 1)})
