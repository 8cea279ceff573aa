"""Fixtures of the reliability drills: the integration `stack` (tests/integration/conftest.py,
imported so both suites share one definition) plus the conformance harnesses of the mixed
runbook's providers (tests/drills/mixed.py) and a Vault KV store for reading deliveries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))

from integration.conftest import stack  # noqa: F401 - the shared fixture
from mixed import CREDENTIALS

from keyturn.stores.vault_kv import VaultKvStore


@pytest.fixture
def harnesses(request):
    from conformance.harness import fixture_name

    return {p: request.getfixturevalue(fixture_name(p)) for p in set(CREDENTIALS.values())}


@pytest.fixture
def vault(openbao, monkeypatch):
    monkeypatch.setenv("VAULT_ADDR", openbao.url)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    return VaultKvStore("vault", {"address": openbao.url})
