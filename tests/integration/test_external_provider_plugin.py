"""A provider written outside keyturn, installed as a package, used by name in a runbook.

The example package (tests/plugins/example_provider) is installed with pip into
a directory of its own; the CLI and a worker process find it through its
`keyturn.providers` entry point and rotate one of its credentials end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from stack_support import make_stack

from keyturn.codec import new_key

PACKAGE = Path(__file__).parents[1] / "plugins" / "example_provider"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(PACKAGE)],
        capture_output=True, text=True, timeout=120, cwd=build, check=False,
    )
    assert result.returncode == 0, f"pip install of the example provider failed:\n{result.stderr}"
    return site


def test_an_installed_provider_package_rotates_by_name(plugin_site, tmp_path, temporal_dev_server,
                                                       openbao, moto, vault_client):
    stack = make_stack(tmp_path, temporal_dev_server, openbao, moto, new_key())
    stack.env["PYTHONPATH"] = str(plugin_site)
    stack.env["KEYTURN_RATE_LIMITS"] = "example=50"
    service = tmp_path / "tokens.json"
    service.write_text(json.dumps({"tokens": {"tok-old": {"token": "old-token-value",
                                                          "active": True}}}))
    vault_client.secrets.kv.v2.create_or_update_secret(
        path="plugin/app", mount_point="secret",
        secret={"token_id": "tok-old", "token": "old-token-value"})
    runbook = tmp_path / "plugin.yaml"
    runbook.write_text(textwrap.dedent(f"""\
        apiVersion: keyturn/v1
        kind: Runbook
        metadata: {{name: plugin-example}}
        spec:
          stores:
            vault: {{type: vault_kv, address: "{openbao.url}", mount: secret}}
          tiers:
            - id: tier1
              credentials:
                - id: app-token
                  provider: example.file_token
                  target: {{path: "{service}"}}
                  deliver: [{{store: vault, path: plugin/app}}]
        """))

    listed = stack.cli_json("providers")
    (example,) = [p for p in listed["providers"] if p["name"] == "example.file_token"]
    assert example["family"] == "example" and "path" in example["target"]
    assert "ok:" in stack.cli("validate", str(runbook), check=True).stdout

    stack.start_worker()
    try:
        status = stack.cli_json("run", str(runbook), "--wait")
    finally:
        stack.stop()
    assert status["state"] == "succeeded", stack.worker_logs()
    tokens = json.loads(service.read_text())["tokens"]
    assert list(tokens) != ["tok-old"] and "tok-old" not in tokens
    (new_id,) = tokens
    delivered = vault_client.secrets.kv.v2.read_secret_version(
        path="plugin/app", mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    assert delivered == {"token_id": new_id, "token": tokens[new_id]["token"]}
    create = next(r for r in stack.audit_records(status["run_id"]) if r["step"] == "create")
    assert create["details"]["generated_by"].startswith("vault:sys/tools/random@")
    assert tokens[new_id]["token"] not in stack.audit_log.read_text()
