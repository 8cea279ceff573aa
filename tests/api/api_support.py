"""Helpers the API tests share (plain functions; the fixtures are in conftest.py):
the principals of the token file, runbook YAML over the in-memory providers, a free port."""

from __future__ import annotations

import socket
import uuid

PRINCIPALS = {
    "alice": ["operator"],
    "bob": ["approver"],
    "carol": ["approver"],
    "dave": ["auditor"],
    "erin": ["operator", "approver"],
}


def runbook_yaml(tiers: str, *, name: str = "api-test", incident: str | None = None,
                 approvers: str = "security: [bob, carol, erin]") -> str:
    """A runbook over the in-memory providers; `tiers` is the YAML under `tiers:`."""
    incident = incident or f"INC-{uuid.uuid4().hex[:10]}"
    return f"""apiVersion: keyturn/v1
kind: Runbook
metadata: {{name: {name}, incident: {incident}}}
spec:
  approvers:
    {approvers}
  stores:
    vault: {{type: vault_kv, address: "http://127.0.0.1:1", mount: secret}}
  tiers:
{tiers}"""


def memory_credential(cid: str, *, provider: str = "memory.key", extra: str = "") -> str:
    """One credential of a tier, delivered to vault:app/<cid>; `extra` is more YAML lines."""
    return (f"        - id: {cid}\n          provider: {provider}\n"
            f"          target: {{account: {cid}}}\n"
            f"          deliver: [{{store: vault, path: app/{cid}}}]\n{extra}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
