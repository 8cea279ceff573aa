"""Faulty providers: every request from the worker to moto (IAM, KMS), OpenBao (KV, PKI) and
Verdaccio (npm) goes through a ChaosProxy (tests/fakes/chaos_proxy.py) that fails 30 % of
them at random (HTTP 500, 503, 429 with Retry-After, connection resets, 5 s stalls), and
answers 403 AccessDenied to one IAM user's CreateAccessKey. The run ends: that credential
failed at once (no retry), was rolled back and still works; every other credential rotated
exactly once; the retries are in the audit log; verify and replay pass.

Not in `make test` (about 3 minutes for 10 credentials, most of it stalls and backoff):
bench/drills.py runs it, with KEYTURN_DRILL_CREDENTIALS credentials (default 10)."""

from __future__ import annotations

import os
import random
import time
from contextlib import ExitStack
from types import SimpleNamespace

from fakes.chaos_proxy import ChaosProxy
from killing import audit_records, finished, report, seed_of
from mixed import check_audit, check_rolled_back, check_rotated, make_mixed
from stack_support import make_stack

from keyturn.codec import new_key

DENIED = "iam-3"


def credentials(n: int) -> dict[str, str]:
    """n credentials: half IAM users, then KMS signing keys, PKI certificates, one npm token."""
    iam, kms = max(n // 2, 3), max(n // 5, 1)
    pki = n - iam - kms - 1
    return ({f"iam-{i}": "aws.iam_access_key" for i in range(1, iam + 1)}
            | {f"kms-{i}": "aws.kms_key" for i in range(1, kms + 1)}
            | {f"pki-{i}": "signing.vault_pki_cert" for i in range(1, pki + 1)}
            | {"npm-1": "npm.token"})


def run_faulty(n, rate, tmp_path, temporal_dev_server, openbao, moto, verdaccio, harnesses,
               vault) -> dict:
    seed = seed_of()
    print(f"\n[drill] seed {seed}: {n} credentials, {rate:.0%} faults, 403 on {DENIED}")
    began = time.monotonic()
    rng = random.Random(seed)
    mixed = make_mixed(harnesses, vault, tmp_path, credentials=credentials(n), gated=None)
    with ExitStack() as cleanup:
        aws = cleanup.enter_context(_running(ChaosProxy(moto.url, seed=rng.random(), aws=True)))
        bao = cleanup.enter_context(_running(ChaosProxy(openbao.url, seed=rng.random())))
        npm = cleanup.enter_context(_running(ChaosProxy(verdaccio.url, seed=rng.random())))
        stack = make_stack(tmp_path, temporal_dev_server,
                           SimpleNamespace(url=bao.url, root_token=openbao.root_token),
                           SimpleNamespace(url=aws.url, admin_credentials=moto.admin_credentials),
                           new_key())
        cleanup.callback(stack.stop)
        stack.env.update(mixed.worker_env, KEYTURN_NPM_REGISTRY=npm.url)
        user = mixed.subjects[DENIED].target["user_name"]
        aws.deny("CreateAccessKey", f"UserName={user}")
        for proxy in (aws, bao, npm):
            proxy.chaos(rate)
        stack.start_worker()
        run_id = stack.cli_json("run", str(mixed.path), "--as", "dave",
                                "--skip-preflight")["run_id"]
        stack.wait_for(lambda: finished(stack, run_id), timeout=600, what="the run to end")
        waited = stack.cli("wait", run_id, "--output", "json")
        for proxy in (aws, bao, npm):
            proxy.chaos(0.0)
        status = stack.cli_json("status", run_id)
        records = audit_records(stack, run_id)
        others = {c: p for c, p in mixed.credentials.items() if c != DENIED}
        wrong = check_rotated(mixed, status, vault, skip=(DENIED,))
        wrong += check_rolled_back(mixed, DENIED, status, vault)
        wrong += check_audit(records, others)
        denied = [(r["step"], r["outcome"]) for r in records if r["credential"] == DENIED]
        if ("create", "failed") not in denied or ("create", "error") in denied:
            wrong.append(f"{DENIED}: create should fail at once, not retry: {denied}")
        if ("rollback", "succeeded") not in denied:
            wrong.append(f"{DENIED}: no rollback: {denied}")
        retries = [r for r in records if r["outcome"] == "error"]
        if not retries:
            wrong.append("no retry was recorded")
        if waited.returncode != 1:
            wrong.append(f"keyturn wait exited {waited.returncode}, expected 1 (one failed)")
        for command in (("audit", "verify"), ("audit", "replay", run_id)):
            if stack.cli(*command).returncode:
                wrong.append(f"keyturn {' '.join(command)} failed")
        injected = sum(p.injected.total() for p in (aws, bao, npm))
    row = {"drill": "faulty providers", "injected": f"{n} creds, {injected} faults @{rate:.0%}",
           "checked": f"{len(retries)} retries audited, 403 rolled back", "ok": not wrong,
           "seconds": round(time.monotonic() - began, 1), "problems": wrong, "seed": seed}
    report(row)
    return row


class _running:
    def __init__(self, proxy: ChaosProxy) -> None:
        self.proxy = proxy

    def __enter__(self) -> ChaosProxy:
        return self.proxy.start()

    def __exit__(self, *exc: object) -> None:
        self.proxy.stop()


def test_faulty_providers(
        tmp_path, temporal_dev_server, openbao, moto, verdaccio, harnesses, vault):
    n = int(os.environ.get("KEYTURN_DRILL_CREDENTIALS", "10"))
    row = run_faulty(n, 0.3, tmp_path, temporal_dev_server, openbao, moto, verdaccio,
                     harnesses, vault)
    assert row["ok"], f"seed {row['seed']}: {row['problems']}"
