"""Store conformance harness for `vault_kv` on the OpenBao dev server (behind a fault proxy)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import hvac
import pytest
from fakes.fault_proxy import FaultProxy

from keyturn.secret import Secret
from keyturn.stores.vault_kv import VaultKvStore

FAULTS = {
    "permanent": (403, b'{"errors":["permission denied"]}'),
    "transient": (503, b'{"errors":["Vault is sealed"]}'),
}


class VaultKvHarness:
    store_type = "vault_kv"
    readable = True

    def __init__(self, url: str, token: str, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self._token = token
        self._client = hvac.Client(url=url, token=token)

    def store(self) -> VaultKvStore:
        return VaultKvStore("vault", {"address": self._proxy.url, "token": self._token})

    def new_path(self) -> str:
        return f"conformance/{uuid.uuid4().hex[:12]}"

    def server_value(self, path: str) -> Secret | None:
        try:
            found = self._client.secrets.kv.v2.read_secret_version(
                path, mount_point="secret", raise_on_deleted_version=False)
        except hvac.exceptions.InvalidPath:
            return None
        return found["data"]["data"]

    @contextmanager
    def fault(self, kind: str) -> Iterator[None]:
        status, body = FAULTS[kind]
        with self._proxy.failing(status, body):
            yield


@pytest.fixture(scope="session")
def store_harness_vault_kv(openbao) -> Iterator[VaultKvHarness]:
    proxy = FaultProxy(openbao.url).start()
    yield VaultKvHarness(openbao.url, openbao.root_token, proxy)
    proxy.stop()
