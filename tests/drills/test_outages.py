"""Servers going away mid-run: OpenBao unreachable, then the AWS emulator unreachable (each
until a step has failed on it and been recorded as retried), then the Temporal dev server
SIGKILLed and restarted. The run waits and retries, then completes: one new key per user,
delivered and working, the old one refused, every step recorded once (plus its `error`
records), audit verify and replay pass."""

from __future__ import annotations

import time

from killing import audit_records, report
from outages import down_until_retried, errors, has_record, outage_stack, restart_killed
from two_keys import check_two_keys, two_keys


def test_vault_aws_and_temporal_go_away_mid_run(tmp_path, openbao, moto, iam_client,
                                                vault_client):
    began = time.monotonic()
    keys = two_keys(iam_client, vault_client, tmp_path, "outage")
    with outage_stack(tmp_path, openbao, moto) as (stack, temporal, vault, aws):
        stack.start_worker()
        run_id = stack.cli_json("run", str(keys.path), "--as", "dave")["run_id"]

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

        assert not check_two_keys(keys, iam_client, vault_client, moto,
                                  audit_records(stack, run_id))
        retried = errors(stack, run_id)
        assert len(retried) >= 2 and all(r["details"]["retrying"] for r in retried)
        assert stack.cli("audit", "verify").returncode == 0
        assert stack.cli("audit", "replay", run_id).returncode == 0
        report({"drill": "servers away", "injected": "OpenBao, moto down; Temporal killed",
                "checked": "retried, rotated once", "ok": True,
                "seconds": round(time.monotonic() - began, 1)})
