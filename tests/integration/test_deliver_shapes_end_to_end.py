"""Delivering into the shapes applications already read, through the CLI on real servers.

An application reads its AWS key from Vault as {ACCESS_KEY, SECRET_KEY, region}, or
from a Secrets Manager JSON secret beside other keys, or shares one Vault path
between two credentials. Preflight and run refuse a runbook that would break
that shape, before anything changes; with `fields:` the rotation replaces only
the mapped fields. Provider state (IAM, STS), the stores and the audit log are
read directly after each run.
"""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from stack_support import sts_accepts

from keyturn.devstack.servers import MOTO_REGION

HEADER = """\
apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: shapes-{tag}}}
spec:
  approvers:
    security: [alice, bob]
  defaults: {{grace_period: 1s}}
  stores:
    vault: {{type: vault_kv, address: "${{VAULT_ADDR}}", mount: secret}}
    sm: {{type: aws_secrets_manager}}
  tiers:
    - id: tier1
      credentials:
"""
BILLING = """\
        - id: billing
          provider: aws.iam_access_key
          target: {{user_name: billing-{tag}}}
          deliver:
            - store: vault
              path: apps-{tag}/billing
"""
MAPPED = "              fields: {{aws_access_key_id: ACCESS_KEY, aws_secret_access_key: SECRET_KEY}}\n"


@pytest.fixture
def stack(worker_stack):
    """Every test here starts with a worker running."""
    return worker_stack


@pytest.fixture
def sm_client(moto, aws_env):
    return boto3.client("secretsmanager", endpoint_url=moto.url, region_name=MOTO_REGION)


def new_user(iam, user: str) -> dict[str, str]:
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


def keys_of(iam, user: str) -> list[str]:
    return [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]


def vault_read(vault, path: str) -> tuple[dict, int]:
    answer = vault.secrets.kv.v2.read_secret_version(path=path, mount_point="secret",
                                                     raise_on_deleted_version=True)["data"]
    return answer["data"], answer["metadata"]["version"]


def write(stack, name: str, text: str):
    path = stack.tmp / name
    path.write_text(text)
    return str(path)


def run_started(stack, run_id: str) -> dict:
    return next(r for r in stack.audit_records(run_id) if r["step"] == "run"
                and r["outcome"] == "started")


def test_a_vault_path_in_the_applications_shape(stack, iam_client, vault_client, moto):
    tag = uuid.uuid4().hex[:6]
    old = new_user(iam_client, f"billing-{tag}")
    app = {"ACCESS_KEY": old["aws_access_key_id"], "SECRET_KEY": old["aws_secret_access_key"],
           "region": "eu-west-1"}
    vault_client.secrets.kv.v2.create_or_update_secret(path=f"apps-{tag}/billing",
                                                       mount_point="secret", secret=app)
    unmapped = write(stack, "unmapped.yaml", (HEADER + BILLING).format(tag=tag))

    checked = stack.cli("preflight", unmapped, "--as", "carol")
    assert checked.returncode == 1, checked.stderr
    assert f"vault:apps-{tag}/billing" in checked.stdout
    assert ("fields: {aws_access_key_id: ACCESS_KEY, aws_secret_access_key: SECRET_KEY}"
            in checked.stdout)
    report = json.loads(stack.cli("preflight", unmapped, "-o", "json").stdout)
    assert report["ready"] is False
    assert report["credentials"][0]["problems"][0]["check"] == "store shape"
    refused = stack.cli("run", unmapped, "--as", "carol")
    assert refused.returncode == 1 and "nothing was changed" in refused.stderr
    assert keys_of(iam_client, f"billing-{tag}") == [old["aws_access_key_id"]]
    assert vault_read(vault_client, f"apps-{tag}/billing") == (app, 1)

    # break-glass: the run starts, audited, and precheck still refuses before any change
    skipped = stack.cli("run", unmapped, "--as", "carol", "--skip-preflight", "--wait")
    assert skipped.returncode == 1 and "--skip-preflight" in skipped.stderr
    run_id = skipped.stdout.split("started run ")[1].split()[0]
    assert run_started(stack, run_id)["details"]["preflight"] == "skipped by carol"
    failed = [r for r in stack.audit_records(run_id) if r["outcome"] == "failed"]
    assert failed[0]["step"] == "precheck" and failed[0]["details"]["error"] == "StoreShapeMismatch"
    assert keys_of(iam_client, f"billing-{tag}") == [old["aws_access_key_id"]]
    assert vault_read(vault_client, f"apps-{tag}/billing") == (app, 1)

    mapped = write(stack, "mapped.yaml", (HEADER + BILLING + MAPPED).format(tag=tag))
    assert stack.cli("preflight", mapped).returncode == 0
    done = stack.cli("run", mapped, "--as", "carol", "--wait", "-o", "json")
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    assert run_started(stack, run_id)["details"]["preflight"] == "passed"

    data, version = vault_read(vault_client, f"apps-{tag}/billing")
    assert version == 2 and list(data) == ["ACCESS_KEY", "SECRET_KEY", "region"]
    assert data["region"] == "eu-west-1" and data["ACCESS_KEY"] != old["aws_access_key_id"]
    new = {"aws_access_key_id": data["ACCESS_KEY"], "aws_secret_access_key": data["SECRET_KEY"]}
    assert keys_of(iam_client, f"billing-{tag}") == [new["aws_access_key_id"]]
    assert sts_accepts(moto, new) and not sts_accepts(moto, old)


def test_a_secrets_manager_json_secret_keeps_its_other_keys(stack, iam_client, sm_client, moto):
    tag = uuid.uuid4().hex[:6]
    old = new_user(iam_client, f"billing-{tag}")
    name = f"apps-{tag}/billing-config"
    config = {"endpoint": "https://billing.example", "AccessKeyId": old["aws_access_key_id"],
              "retries": 3, "SecretAccessKey": old["aws_secret_access_key"], "debug": False}
    sm_client.create_secret(Name=name, SecretString=json.dumps(config))
    runbook = (HEADER + """\
        - id: billing
          provider: aws.iam_access_key
          target: {{user_name: billing-{tag}}}
          deliver:
            - store: sm
              path: apps-{tag}/billing-config
              fields: {{aws_access_key_id: AccessKeyId, aws_secret_access_key: SecretAccessKey}}
""").format(tag=tag)
    done = stack.cli("run", write(stack, "sm.yaml", runbook), "--as", "carol", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr

    current = json.loads(sm_client.get_secret_value(SecretId=name,
                                                    VersionStage="AWSCURRENT")["SecretString"])
    assert list(current) == list(config)
    assert {k: current[k] for k in ("endpoint", "retries", "debug")} == {
        "endpoint": "https://billing.example", "retries": 3, "debug": False}
    new = {"aws_access_key_id": current["AccessKeyId"],
           "aws_secret_access_key": current["SecretAccessKey"]}
    assert keys_of(iam_client, f"billing-{tag}") == [new["aws_access_key_id"]]
    assert sts_accepts(moto, new) and not sts_accepts(moto, old)


@pytest.mark.parametrize("order", ["parallel", "b-after-a", "a-after-b"])
def test_two_credentials_sharing_one_vault_path_lose_no_update(order, stack, iam_client,
                                                               vault_client, moto):
    tag = uuid.uuid4().hex[:6]
    olds = {c: new_user(iam_client, f"{c}-{tag}") for c in ("a", "b")}
    shared = {"note": "one service, two keys", "A_ID": olds["a"]["aws_access_key_id"],
              "A_SECRET": olds["a"]["aws_secret_access_key"],
              "B_ID": olds["b"]["aws_access_key_id"], "B_SECRET": olds["b"]["aws_secret_access_key"]}
    vault_client.secrets.kv.v2.create_or_update_secret(path=f"svc-{tag}/keys", mount_point="secret",
                                                       secret=shared)
    after = {"parallel": ("", ""), "b-after-a": ("", "depends_on: [a]"),
             "a-after-b": ("depends_on: [b]", "")}[order]
    creds = "".join(f"""\
        - id: {c}
          provider: aws.iam_access_key
          target: {{user_name: {c}-{tag}}}
          {after[i]}
          deliver:
            - store: vault
              path: svc-{tag}/keys
              fields: {{aws_access_key_id: {c.upper()}_ID, aws_secret_access_key: {c.upper()}_SECRET}}
""" for i, c in enumerate("ab"))
    runbook = write(stack, "shared.yaml", HEADER.format(tag=tag) + creds)
    done = stack.cli("run", runbook, "--as", "carol", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr

    data, version = vault_read(vault_client, f"svc-{tag}/keys")
    assert version == 3 and data["note"] == "one service, two keys"
    for c in ("a", "b"):
        new = {"aws_access_key_id": data[f"{c.upper()}_ID"],
               "aws_secret_access_key": data[f"{c.upper()}_SECRET"]}
        assert keys_of(iam_client, f"{c}-{tag}") == [new["aws_access_key_id"]]
        assert sts_accepts(moto, new) and not sts_accepts(moto, olds[c])


def open_gates(stack, run_id: str) -> list[str]:
    return stack.cli_json("status", run_id)["open_gates"]


@pytest.mark.parametrize("failure", ["gate-rejected", "write-refused"])
def test_a_run_that_fails_after_precheck_leaves_the_consumer_working(
        failure, stack, iam_client, vault_client, sm_client, moto):
    tag = uuid.uuid4().hex[:6]
    old = new_user(iam_client, f"billing-{tag}")
    app = {"ACCESS_KEY": old["aws_access_key_id"], "SECRET_KEY": old["aws_secret_access_key"],
           "region": "eu-west-1"}
    vault_client.secrets.kv.v2.create_or_update_secret(path=f"apps-{tag}/billing",
                                                       mount_point="secret", secret=app)
    text = (HEADER + BILLING + MAPPED).format(tag=tag)
    if failure == "gate-rejected":
        text += "          gate: {before: promote, approvals: 1, from: security}\n"
    else:  # a second target the store refuses to write: a secret scheduled for deletion
        sm_client.create_secret(Name=f"apps-{tag}/mirror", SecretString="{}")
        sm_client.delete_secret(SecretId=f"apps-{tag}/mirror", RecoveryWindowInDays=7)
        text += f"            - {{store: sm, path: apps-{tag}/mirror}}\n"
    started = stack.cli_json("run", write(stack, "fails.yaml", text), "--as", "carol")
    run_id = started["run_id"]
    if failure == "gate-rejected":
        stack.wait_for(lambda: "billing" in open_gates(stack, run_id), what="promote gate")
        stack.cli("reject", run_id, "billing", "--as", "alice", "--reason", "wrong user",
                  check=True)
    assert stack.cli("wait", run_id).returncode == 1

    data, _ = vault_read(vault_client, f"apps-{tag}/billing")
    assert data == app  # the consumer reads its old, working key in its own shape
    assert keys_of(iam_client, f"billing-{tag}") == [old["aws_access_key_id"]]
    assert sts_accepts(moto, old)
    steps = [(r["step"], r["outcome"]) for r in stack.audit_records(run_id)]
    failed_step = ("gate", "rejected") if failure == "gate-rejected" else ("promote", "failed")
    assert failed_step in steps and ("rollback", "succeeded") in steps
    assert ("revoke_old", "succeeded") not in steps
