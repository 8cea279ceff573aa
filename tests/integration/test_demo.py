"""`make demo` end to end: python -m keyturn.demo on a fresh state directory, with `--down`.

The demo brings up its own local stack (Temporal dev server, OpenBao, the AWS
emulator), rotates runbooks/demo.yaml (IAM keys, a PKI code-signing certificate,
a KMS signing key), proves each rotation in its summary table and must leave
nothing running behind it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keyturn.devstack.stack import DevStack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT = 240  # the demo takes about 40 s; servers may be slow to start on a busy machine

# credential id -> the proofs its row of the summary must show as holding (each line "✓ ...")
PROOFS = {
    "ci-deployer-aws": ["→ vault secret/ci/aws/deployer v", "✓ STS rejects the old key",
                        "✓ IAM lists the stored key only",
                        "✓ STS accepts the stored key as ci-deployer"],
    "release-bot-aws": ["→ secrets manager ci/aws/release-bot AWSCURRENT",
                        "✓ STS rejects the old key", "✓ IAM lists the stored key only",
                        "✓ STS accepts the stored key as release-bot"],
    "release-signing-cert": ["→ vault secret/release/signing/cert v",
                             "✓ PKI lists the old serial as revoked",
                             "✓ the old serial is on pki's signed CRL",
                             "✓ PKI issued the stored certificate, unrevoked",
                             "✓ codeSigning EKU, signed by pki's CA", "✓ valid until"],
    "artifact-signing-key": ["→ vault secret/release/signing/kms v",
                             "✓ the old key is PendingDeletion",
                             "✓ KMS refuses to sign with the old key",
                             "✓ alias/demo-artifact-signing names the stored key",
                             "✓ it signs; ECDSA_SHA_256 verified with the stored key"],
    "orders-app-aws": ["→ vault secret/apps/aws/orders-app v", "✓ STS rejects the old key",
                       "✓ IAM lists the stored key only",
                       "✓ STS accepts the stored key as orders-app"],
}


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that would point keyturn elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYTURN_", "VAULT_", "AWS_"))}
    env["COLUMNS"] = "200"  # keep rich from wrapping the lines the test looks for
    return env


def recorded_servers(state: Path) -> dict[str, tuple[int, list[str]]]:
    """name -> (pid, args) of the servers stack.json records right now."""
    try:
        servers = json.loads((state / "stack.json").read_text())["servers"]
    except (OSError, ValueError, KeyError):
        return {}  # not written yet, or being replaced
    return {name: (rec["pid"], rec["args"]) for name, rec in servers.items()}


def running(pid: int, args: list[str]) -> bool:
    """True if `pid` is a live (not zombie) process still running `args`."""
    proc = Path(f"/proc/{pid}")
    try:
        cmdline = [p.decode() for p in (proc / "cmdline").read_bytes().split(b"\0") if p]
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and cmdline[-len(args):] == args


def keyturn(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keyturn", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def summary_rows(output: str) -> dict[str, str]:
    """credential id -> the text of its row in the demo's summary table (rows are ruled off)."""
    summary = output[output.index("─ summary ─"):]
    rows = {}
    for block in re.split(r"\n[┡├└][━─┿╇┼┴]+[┩┤┘]", summary):
        lines = [line for line in block.splitlines() if line.startswith("│")]
        if lines:
            rows[lines[0].split("│")[1].strip()] = "\n".join(lines)
    return rows


def worker_pid(output: str) -> int | None:
    match = re.search(r"worker pid (\d+)", output)
    return int(match.group(1)) if match else None


@pytest.mark.timeout(DEMO_TIMEOUT + 60)
def test_demo_runs_clean_and_stops_its_stack(tmp_path):
    state = tmp_path / "state"
    out_path = tmp_path / "demo.out"
    env = clean_env()
    seen: dict[str, tuple[int, list[str]]] = {}
    with open(out_path, "wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "keyturn.demo", "--state-dir", str(state), "--down"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # `--down` empties stack.json at the end, so note the servers while the demo runs
        deadline = time.monotonic() + DEMO_TIMEOUT
        while demo.poll() is None and time.monotonic() < deadline:
            seen.update(recorded_servers(state))
            time.sleep(0.2)
        if demo.poll() is None:
            raise AssertionError(f"demo still running after {DEMO_TIMEOUT}s:\n{out_path.read_text()}")
        output = out_path.read_text(errors="replace")
        assert demo.returncode == 0, output
        assert "demo complete" in output, output
        assert "demo failed" not in output
        # approvals: one line per opened gate, tier3's single one and the distinct revoke gate
        assert "gate open on tier3 (needs 1, from security)" in output
        assert "gate open on orders-app-aws (needs 2, from security)" in output
        assert "as bob: gate passed, 2/2 approvals" in output
        rows = summary_rows(output)
        assert set(rows) == set(PROOFS), output
        for cred, proofs in PROOFS.items():
            missing = [proof for proof in proofs if proof not in rows[cred]]
            assert not missing, f"{cred}: {missing}\n{rows[cred]}"
        assert "✗" not in output[output.index("─ summary ─"):], output

        assert set(seen) == {"temporal", "openbao", "moto"}, f"servers seen: {seen}\n{output}"
        left = {name: pid for name, (pid, args) in seen.items() if running(pid, args)}
        assert not left, f"servers still running after --down: {left}"
        assert recorded_servers(state) == {}
        pid = worker_pid(output)
        assert pid is not None, output
        assert not running(pid, ["-m", "keyturn", "worker"]), f"worker {pid} still running"

        audit_log = state / "audit.jsonl"
        verify = keyturn(env, "audit", "verify", "--log", str(audit_log))
        assert verify.returncode == 0, verify.stdout + verify.stderr
        # and as JSON, against the checkpoint the demo signed with the stack's key
        public_key = state / "audit-signing.key.pub"
        signed = keyturn(env, "audit", "verify", "--log", str(audit_log),
                         "--public-key", str(public_key), "--output", "json")
        assert signed.returncode == 0, signed.stdout + signed.stderr
        result = json.loads(signed.stdout)
        assert result["ok"] and result["records"] > 0 and result["checkpoints"] >= 1, result
    finally:
        _clean_up(demo, state, out_path, seen)


def _clean_up(demo: subprocess.Popen, state: Path, out_path: Path,
              seen: dict[str, tuple[int, list[str]]]) -> None:
    """After a failure, stop what the demo started: itself, its worker and its servers."""
    if demo.poll() is None:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(timeout=30)
    pid = worker_pid(out_path.read_text(errors="replace")) if out_path.exists() else None
    if pid is not None and running(pid, ["-m", "keyturn", "worker"]):
        os.killpg(pid, signal.SIGTERM)
    if state.is_dir():
        DevStack(state).down()  # stops only the servers stack.json still records, by pid and args
    for server_pid, args in seen.values():
        if running(server_pid, args):
            os.killpg(server_pid, signal.SIGTERM)
