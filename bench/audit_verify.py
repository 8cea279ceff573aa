"""`keyturn audit verify` of a large JSONL log against SHA-256 over the same stored lines.

Run through ``bench/audit_log.py --verify-n N`` (or this file directly with ``--n N``).
Writes two logs, N/10 and N records, quickly: each record is chained with the
library's own ``record_hash`` and ``canonical_json`` (what ``make_record`` does, minus
the pydantic model) and signed checkpoints every 100 records with ``sign_checkpoint``,
as production writers do; one buffered write, no fsync per record. Then, for each log,
in a fresh child process each (so peak RSS is the case's own):

sha256 lines    read the log line by line and ``hashlib.sha256(line).hexdigest()`` each:
                the floor any verifier of this format pays
verify          ``keyturn.audit.verify`` with the public key: chain, canonical form,
                event ids, checkpoint signatures

and prints seconds, records/s, peak RSS (``ru_maxrss`` of the child) and verify's
ratio to the SHA-256 pass of the same run.

    .venv/bin/python bench/audit_verify.py [--n 1000000] [--dir PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import print_table

from keyturn.audit import GENESIS_PREV, event_id, generate_signing_key, load_signing_key
from keyturn.audit.checkpoint import checkpoints_path, sign_checkpoint
from keyturn.audit.record import canonical_json, record_hash

STEPS = (
    "precheck",
    "create",
    "verify_new",
    "promote",
    "revoke_old",
    "revoke_old",
    "confirm_revoked",
)
CHECKPOINT_EVERY = 100


def write_log(path: Path, count: int, key_path: Path) -> None:
    """``count`` valid records of 10-credential runs, 7 records each, with checkpoints."""
    key = load_signing_key(key_path)
    prev = GENESIS_PREV
    with (
        open(path, "wb", buffering=1 << 20) as log,
        open(checkpoints_path(path), "wb") as checkpoints,
    ):
        for seq in range(1, count + 1):
            run, cred = f"bench-{(seq - 1) // 70:06d}", f"cred-{(seq - 1) // 7:07d}"
            step = STEPS[(seq - 1) % 7]
            body = {
                "seq": seq, "ts": f"2026-12-04T22:{seq // 60 % 60:02d}:{seq % 60:02d}.000000Z",
                "run": run, "event_id": event_id(run, cred, step, seq % 7, "succeeded"),
                "tier": "tier1", "credential": cred, "provider": "aws.iam_access_key",
                "step": step, "outcome": "succeeded", "actor": "worker",
                "details": {"credential_id": "AKIAIOSFODNN7EXAMPLE",
                            "fingerprint": "sha256:" + hashlib.sha256(cred.encode()).hexdigest()[:16],
                            "targets": ["vault:ci/aws"]},
                "prev": prev,
            }  # fmt: skip
            prev = record_hash(body)
            log.write(canonical_json(body | {"hash": prev}) + b"\n")
            if seq % CHECKPOINT_EVERY == 0:
                checkpoints.write(sign_checkpoint(key, seq=seq, hash=prev).line())


def child(case: str, path: str, public_key: str) -> None:
    """One measured case in this (fresh) process; prints JSON with seconds and peak RSS."""
    start = time.perf_counter()
    if case == "sha256":
        with open(path, "rb") as f:
            records = sum(1 for line in f if hashlib.sha256(line).hexdigest())
    else:
        from keyturn.audit import verify

        result = verify(path, public_key)
        if not result.ok:
            raise SystemExit(f"verify failed: {result.problems[:1]}")
        records = result.records
    seconds = time.perf_counter() - start
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "records": records, "rss_mb": rss_kb / 1024}))


def measure(case: str, path: Path, public_key: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, str(path), str(public_key)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def run(n: int, parent: str | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="keyturn-bench-verify-", dir=parent))
    try:
        key_path = workdir / "signing.pem"
        generate_signing_key(key_path)
        rows = []
        for count in (n // 10, n):
            path = workdir / f"audit-{count}.jsonl"
            began = time.perf_counter()
            write_log(path, count, key_path)
            written = time.perf_counter() - began
            size = path.stat().st_size
            sha = measure("sha256", path, Path(f"{key_path}.pub"))
            checked = measure("verify", path, Path(f"{key_path}.pub"))
            for name, got in (("sha256 over the lines", sha), ("keyturn audit verify", checked)):
                rows.append(
                    [
                        f"{name}, {count:,} records",
                        f"{got['seconds']:.2f}",
                        f"{got['records'] / got['seconds']:,.0f}",
                        f"{got['rss_mb']:.0f}",
                        f"{got['seconds'] / sha['seconds']:.2f}x",
                    ]
                )
            print(
                f"{count:,} records: {size / 1e6:.0f} MB ({size / count:.0f} bytes/record), "
                f"{count // CHECKPOINT_EVERY:,} checkpoints, written in {written:.1f} s"
            )
            path.unlink()
        print(
            f"\nverify benchmark: cpus={os.cpu_count()}, load average "
            f"{os.getloadavg()[0]:.1f}, dir={workdir.parent}\n"
        )
        print_table(["case", "seconds", "records/s", "peak RSS MB", "vs sha256"], rows)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="records (default 1,000,000)")
    parser.add_argument("--dir", help="parent directory for the logs (default: system temp)")
    args = parser.parse_args()
    run(args.n, args.dir)


if __name__ == "__main__":
    main()
