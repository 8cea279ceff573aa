"""Token lifetimes and names: `keyturn api token add --expires`, `keyturn api token revoke`,
and the principal names keyturn keeps for itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from typer.testing import CliRunner

from keyturn.api.auth import TokenFile, TokenFileError, add_token
from keyturn.cli import app as cli


def test_a_token_with_a_lifetime_works_until_it_expires(tmp_path):
    path = tmp_path / "tokens.yaml"
    token = add_token(path, "bob", ["approver"], expires_in=timedelta(days=30))
    expires = datetime.fromisoformat(yaml.safe_load(path.read_text())["principals"]["bob"]["expires"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert TokenFile(path).lookup(token).name == "bob"
    with pytest.raises(TokenFileError, match="positive"):
        add_token(path, "bob", ["approver"], expires_in=timedelta(0))


def test_cli_token_add_expires_and_revoke(tmp_path):
    path = tmp_path / "tokens.yaml"
    runner = CliRunner()
    added = runner.invoke(cli, ["api", "token", "add", "gina", "--role", "approver",
                                "--expires", "30d", "--tokens", str(path), "-o", "json"])
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["expires_in_seconds"] == 30 * 86400
    token = json.loads(added.stdout)["token"]
    assert TokenFile(path).lookup(token).name == "gina"
    bad = runner.invoke(cli, ["api", "token", "add", "gina", "--role", "approver",
                              "--expires", "soon", "--tokens", str(path)])
    assert bad.exit_code == 2 and "--expires" in bad.output
    revoked = runner.invoke(cli, ["api", "token", "revoke", "gina", "--tokens", str(path)])
    assert revoked.exit_code == 0, revoked.output
    assert TokenFile(path).lookup(token) is None
    again = runner.invoke(cli, ["api", "token", "revoke", "gina", "--tokens", str(path)])
    assert again.exit_code == 2 and "no principal 'gina'" in " ".join(again.output.split())


@pytest.mark.parametrize("name", ["worker", "timeout"])
def test_reserved_principal_names_are_refused(tmp_path, name):
    result = CliRunner().invoke(cli, ["api", "token", "add", name, "--role", "approver",
                                      "--tokens", str(tmp_path / "t.yaml")])
    assert result.exit_code == 2 and "reserved" in result.output
    assert not (tmp_path / "t.yaml").exists()
