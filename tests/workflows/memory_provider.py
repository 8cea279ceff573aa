"""In-memory provider and store for workflow tests (orchestration only; real servers elsewhere).

A target may name a step at which the provider fails (`fail_at`), to drive
rollback and error paths through the real activities.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from typing import ClassVar

from pydantic import BaseModel

from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    SecretShape,
)
from keyturn.providers.errors import (
    CredentialNotFound,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.secret import Secret
from keyturn.stores.base import StoredVersion
from keyturn.stores.errors import StoreConflict


class MemoryTarget(BaseModel):
    account: str
    fail_at: str | None = None  # a permanent failure at this step, every time
    flaky_at: str | None = None  # a transient failure at this step, the first time only


class MemoryProvider:
    name: ClassVar[str] = "memory.key"
    target_model: ClassVar[type[BaseModel]] = MemoryTarget
    family: ClassVar[str] = "memory"

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, dict]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        self._flaked: set[tuple[str, str]] = set()

    def seed(self, account: str) -> tuple[str, Secret]:
        new = self._make(account)
        return new.credential_id, new.secret

    def _make(self, account: str) -> NewCredential:
        with self._lock:
            cid = f"{account}-k{next(self._ids)}"
            secret = {"key_id": cid, "key_secret": secrets.token_hex(16)}
            self.keys.setdefault(account, {})[cid] = {"secret": secret, "active": True}
        return NewCredential(credential_id=cid, secret=secret)

    @classmethod
    def shape(cls, target: MemoryTarget | None) -> SecretShape:
        return SecretShape(fields=("key_id", "key_secret"), id_field="key_id")

    def _check(self, target: MemoryTarget, step: str) -> None:
        self.calls.append((target.account, step))
        if target.fail_at == step:
            raise VerificationFailed(f"injected failure at {step} for {target.account}")
        if target.flaky_at == step and (target.account, step) not in self._flaked:
            self._flaked.add((target.account, step))
            raise TransientProviderError(f"injected throttling at {step} for {target.account}")

    def precheck(self, target: MemoryTarget, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        self._check(target, "precheck")
        keys = self.keys.get(target.account)
        if not keys:
            raise CredentialNotFound(f"account {target.account} has no key")
        return Precheck(old_credential_ids=[k for k, v in keys.items() if v["active"]])

    def list_credential_ids(self, target: MemoryTarget, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        return list(self.keys.get(target.account, {}))

    def create(self, target: MemoryTarget, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        self._check(target, "create")
        return self._make(target.account)

    def verify(self, target: MemoryTarget, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        self._check(target, "verify_new")
        key = self.keys.get(target.account, {}).get(secret["key_id"])
        if not key or key["secret"] != secret or not key["active"]:
            raise VerificationFailed(f"key {secret['key_id']} rejected")

    def disable(
        self, target: MemoryTarget, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        self._check(target, "disable")
        self.keys[target.account][credential_id]["active"] = False

    def enable(
        self, target: MemoryTarget, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        self.keys[target.account][credential_id]["active"] = True

    def delete(
        self, target: MemoryTarget, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        self._check(target, "delete")
        self.keys.get(target.account, {}).pop(credential_id, None)

    def confirm_revoked(
        self, target: MemoryTarget, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        self._check(target, "confirm_revoked")
        if credential_id in self.keys.get(target.account, {}):
            raise StillValid(f"key {credential_id} still exists")


class MemoryStore:
    def __init__(self, name: str = "vault") -> None:
        self.name = name
        self.paths: dict[str, list[StoredVersion | None]] = {}
        self._lock = threading.Lock()

    def read(self, path: str, version: int | None = None) -> StoredVersion | None:
        versions = self.paths.get(path)
        if not versions:
            return None
        if version is None:
            return versions[-1]
        return versions[version - 1] if 0 < version <= len(versions) else None

    def write(
        self, path: str, secret: Secret, metadata: dict[str, str], cas: int | None = None
    ) -> int:
        with self._lock:
            versions = self.paths.setdefault(path, [])
            if cas is not None and cas != len(versions):
                raise StoreConflict(f"{path}: version {len(versions)}, not {cas}")
            stored = StoredVersion(secret=dict(secret), version=len(versions) + 1, metadata=dict(metadata))
            versions.append(stored)
            return stored.version

    def write_problem(self, path: str) -> str | None:
        return None

    def destroy(self, path: str) -> None:
        self.paths.pop(path, None)


class MemorySuppliedProvider(MemoryProvider):
    """Like MemoryProvider, but no API creates a key: an operator mints one by hand (`mint`)."""

    name: ClassVar[str] = "memory.supplied"
    supplied: ClassVar[bool] = True
    supplied_field: ClassVar[str] = "token"

    @classmethod
    def shape(cls, target: MemoryTarget | None) -> SecretShape:
        return SecretShape(fields=("token",))

    def __init__(self) -> None:
        super().__init__()
        self.minted: dict[str, tuple[str, str]] = {}  # token -> (account, key id)

    def seed(self, account: str) -> tuple[str, Secret]:
        key_id, _ = super().seed(account)
        return key_id, self.mint_for(account, key_id)

    def mint(self, account: str) -> Secret:
        """What an operator does in the service's UI: make a key and copy its token."""
        key_id, _ = super().seed(account)
        return self.mint_for(account, key_id)

    def mint_for(self, account: str, key_id: str) -> Secret:
        token = f"tok-{secrets.token_hex(12)}"
        self.minted[token] = (account, key_id)
        self.keys[account][key_id]["secret"] = {"token": token}
        return {"token": token}

    def create(self, target: MemoryTarget, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        self._check(target, "create")
        if ctx.new_secret is None or ctx.new_secret.get("token") not in self.minted:
            raise VerificationFailed(f"the supplied value is no key of {target.account}")
        account, key_id = self.minted[ctx.new_secret["token"]]
        if account != target.account:
            raise VerificationFailed(f"the supplied key belongs to {account}, not {target.account}")
        return NewCredential(credential_id=key_id, secret=ctx.new_secret)

    def verify(self, target: MemoryTarget, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        self._check(target, "verify_new")
        account, key_id = self.minted.get(secret.get("token", ""), ("", ""))
        key = self.keys.get(target.account, {}).get(key_id)
        if account != target.account or not key or not key["active"]:
            raise VerificationFailed("supplied token rejected")
