"""The audit log under damage, end to end with a worker process: a torn last line appears
(as a writer killed mid-append leaves it) and the worker's next append cuts it back with a
`repair` record; then the disk is "full" (the worker's RLIMIT_FSIZE lowered to the log's
size, so every append fails with EFBIG): the rotation waits, `keyturn status` says it waits
on the audit log and why, the log never holds a partial line; once there is room again the
run finishes by itself, every step recorded once, and `audit verify`/`replay` pass.

(A read-only file cannot be shown to a root test process; tests/audit/test_audit_repair.py
covers EROFS with an injected error.)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

from filelock import FileLock
from killing import audit_records, report
from two_keys import check_two_keys, two_keys

TORN = b'{"actor":"worker","credential":"u1","details":{"credential_id":"AKIA'


def _quiet_worker(stack) -> subprocess.Popen:
    """A worker whose output goes to /dev/null: a file-size limit applies to every regular
    file the process writes, and only the audit log should hit it."""
    proc = subprocess.Popen([sys.executable, "-m", "keyturn", "worker"], env=stack.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    stack.workers.append(proc)
    return proc


def _waiting_on_audit(stack, run_id: str) -> str | None:
    status = json.loads(stack.cli("status", run_id, "--output", "json", check=True).stdout)
    for detail in status["credential_details"].values():
        last = (detail.get("steps") or [{}])[-1]
        if last.get("outcome") == "waiting" and "audit log unavailable" in last.get("detail", ""):
            return last["detail"]
    return None


def test_torn_tail_repaired_and_full_disk_waited_out(stack, iam_client, vault_client, moto):
    began = time.monotonic()
    keys = two_keys(iam_client, vault_client, stack.tmp, "damage")
    worker = _quiet_worker(stack)
    run_id = stack.cli_json("run", str(keys.path), "--as", "dave")["run_id"]
    log = stack.audit_log

    stack.wait_for(lambda: any(r["step"] == "precheck" for r in audit_records(stack, run_id)),
                   what="a first precheck record")
    with FileLock(f"{log}.lock"), open(log, "ab") as f:  # as a writer killed mid-append
        f.write(TORN)
    stack.wait_for(lambda: any(r["step"] == "repair" for r in audit_records(stack)),
                   what="the worker to repair the torn tail")

    resource.prlimit(worker.pid, resource.RLIMIT_FSIZE,
                     (log.stat().st_size, resource.RLIM_INFINITY))
    why = stack.wait_for(lambda: _waiting_on_audit(stack, run_id),
                         what="a rotation waiting on the audit log")
    assert "File too large" in why
    shown = stack.cli("status", run_id).stdout
    assert "waiting: audit log unavailable" in " ".join(shown.split()), shown
    assert log.read_bytes().endswith(b"\n"), "a refused append left a partial line"
    assert stack.cli("audit", "verify").returncode == 0
    assert not any(r["step"] == "run" and r["outcome"] == "succeeded"
                   for r in audit_records(stack, run_id))

    resource.prlimit(worker.pid, resource.RLIMIT_FSIZE,
                     (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    waited = stack.cli("wait", run_id)
    assert waited.returncode == 0, waited.stdout + waited.stderr

    assert not check_two_keys(keys, iam_client, vault_client, moto,
                              audit_records(stack, run_id))
    verified = stack.cli("audit", "verify")
    assert verified.returncode == 0 and "repaired" in verified.stdout, verified.stdout
    assert stack.cli("audit", "replay", run_id).returncode == 0
    report({"drill": "audit damage", "injected": "torn tail; EFBIG (full disk)",
            "checked": "repair record, waits, once", "ok": True,
            "seconds": round(time.monotonic() - began, 1)})
