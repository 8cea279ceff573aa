"""From an advisory to rotated keys on real servers: `keyturn scope` writes the runbook, a
worker runs it on the Temporal dev server, OpenBao and the AWS emulator, and the audit log
ties the run back to the scoping that produced it."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from stack_support import seed_user, sts_accepts

ADVISORY = {
    "id": "MAL-2025-0099",
    "summary": "Malicious code in @acme/ui",
    "affected": [{"package": {"ecosystem": "npm", "name": "@acme/ui"},
                  "ranges": [{"type": "SEMVER",
                              "events": [{"introduced": "2.1.0"}, {"fixed": "2.1.1"}]}]}],
}
WORKFLOW = """on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: npm ci && npm test
        env:
          AWS_KEY: ${{ secrets.AWS_DEPLOY_KEY }}
"""
CATALOG = """apiVersion: keyturn/v1
kind: Catalog
metadata: {{name: shop}}
spec:
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
  credentials:
    - id: deployer
      provider: aws.iam_access_key
      target: {{user_name: deployer-{tag}}}
      deliver: [{{store: vault, path: it-{tag}/deployer}}]
      exposed_as: [github:repos/acme/shop/AWS_DEPLOY_KEY]
    - id: reporter
      provider: aws.iam_access_key
      target: {{user_name: reporter-{tag}}}
      deliver: [{{store: vault, path: it-{tag}/reporter}}]
      exposed_as: [github:repos/acme/shop/REPORT_KEY]
      tier: 3
    - id: elsewhere
      provider: aws.iam_access_key
      target: {{user_name: elsewhere-{tag}}}
      deliver: [{{store: vault, path: it-{tag}/elsewhere}}]
      exposed_as: [github:repos/acme/other/AWS_DEPLOY_KEY]
"""


def checkout(root: Path) -> Path:
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ci.yml").write_text(WORKFLOW)
    (root / "package-lock.json").write_text(json.dumps({
        "name": "shop", "lockfileVersion": 3, "packages": {
            "": {"name": "shop", "dependencies": {"@acme/ui": "^2.1.0"}},
            "node_modules/@acme/ui": {"version": "2.1.0"}}}, indent=2))
    return root


def test_a_scoped_runbook_rotates_what_the_package_could_read(stack, iam_client, vault_client,
                                                              moto):
    tag = uuid.uuid4().hex[:6]
    old = {cid: seed_user(iam_client, vault_client, f"{cid}-{tag}", f"it-{tag}/{cid}")
           for cid in ("deployer", "reporter", "elsewhere")}
    (stack.tmp / "advisory.json").write_text(json.dumps(ADVISORY))
    (stack.tmp / "catalog.yaml").write_text(CATALOG.format(tag=tag))
    runbook = stack.tmp / "incident.yaml"
    scoped = stack.cli(
        "scope", "--advisory", str(stack.tmp / "advisory.json"),
        "--window", "2025-08-26T22:30Z/2025-08-27T03:00Z",
        "--repo-dir", f"{checkout(stack.tmp / 'shop')}=acme/shop",
        "--catalog", str(stack.tmp / "catalog.yaml"), "--runbook-out", str(runbook),
        "--incident", f"INC-IT-{tag}", "--output", "json")
    assert scoped.returncode == 0, scoped.stderr
    report = json.loads(scoped.stdout)
    assert {(e["credential"], e["class"]) for e in report["exposures"]} == {
        ("deployer", "delivered"), ("reporter", "reachable")}

    plan = stack.cli_json("plan", str(runbook))
    assert [(t["id"], [c["id"] for c in t["credentials"]]) for t in plan["tiers"]] == [
        ("tier1", ["deployer"]), ("tier3", ["reporter"])]
    stack.start_worker()
    run_id = stack.cli_json("run", str(runbook), "--as", "carol")["run_id"]
    waited = stack.cli("wait", run_id, "--output", "json")
    assert waited.returncode == 0, waited.stdout + waited.stderr

    for cid in ("deployer", "reporter"):
        value = vault_client.secrets.kv.v2.read_secret_version(
            path=f"it-{tag}/{cid}", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]
        assert value["aws_access_key_id"] != old[cid]["aws_access_key_id"]
        assert sts_accepts(moto, value) and not sts_accepts(moto, old[cid])
    assert sts_accepts(moto, old["elsewhere"])  # not exposed: not rotated

    (record,) = [r for r in stack.audit_records() if r["step"] == "scope"]
    assert record["details"]["runbook_sha256"] == (
        "sha256:" + hashlib.sha256(runbook.read_bytes()).hexdigest())
    assert record["details"]["counts"]["delivered"] == 1
    assert stack.cli("audit", "verify").returncode == 0
    assert stack.cli("audit", "replay", run_id).returncode == 0
