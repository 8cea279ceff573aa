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

from keyturn.providers.base import NewCredential, Precheck, Secret
from keyturn.providers.errors import (
    CredentialNotFound,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.stores.base import StoredVersion


class MemoryTarget(BaseModel):
    account: str
    fail_at: str | None = None  # a permanent failure at this step, every time
    flaky_at: str | None = None  # a transient failure at this step, the first time only


class MemoryProvider:
    name: ClassVar[str] = "memory.key"
    target_model: ClassVar[type[BaseModel]] = MemoryTarget

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

    def _check(self, target: MemoryTarget, step: str) -> None:
        self.calls.append((target.account, step))
        if target.fail_at == step:
            raise VerificationFailed(f"injected failure at {step} for {target.account}")
        if target.flaky_at == step and (target.account, step) not in self._flaked:
            self._flaked.add((target.account, step))
            raise TransientProviderError(f"injected throttling at {step} for {target.account}")

    def precheck(self, target: MemoryTarget) -> Precheck:
        self._check(target, "precheck")
        keys = self.keys.get(target.account)
        if not keys:
            raise CredentialNotFound(f"account {target.account} has no key")
        return Precheck(old_credential_ids=[k for k, v in keys.items() if v["active"]])

    def list_credential_ids(self, target: MemoryTarget) -> list[str]:
        return list(self.keys.get(target.account, {}))

    def create(self, target: MemoryTarget) -> NewCredential:
        self._check(target, "create")
        return self._make(target.account)

    def verify(self, target: MemoryTarget, secret: Secret) -> None:
        self._check(target, "verify_new")
        key = self.keys.get(target.account, {}).get(secret["key_id"])
        if not key or key["secret"] != secret or not key["active"]:
            raise VerificationFailed(f"key {secret['key_id']} rejected")

    def disable(self, target: MemoryTarget, credential_id: str) -> None:
        self._check(target, "disable")
        self.keys[target.account][credential_id]["active"] = False

    def enable(self, target: MemoryTarget, credential_id: str) -> None:
        self.keys[target.account][credential_id]["active"] = True

    def delete(self, target: MemoryTarget, credential_id: str) -> None:
        self._check(target, "delete")
        self.keys.get(target.account, {}).pop(credential_id, None)

    def confirm_revoked(self, target: MemoryTarget, credential_id: str, old_secret: Secret | None) -> None:
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

    def write(self, path: str, secret: Secret, metadata: dict[str, str]) -> int:
        with self._lock:
            versions = self.paths.setdefault(path, [])
            stored = StoredVersion(secret=dict(secret), version=len(versions) + 1, metadata=dict(metadata))
            versions.append(stored)
            return stored.version

    def destroy(self, path: str) -> None:
        self.paths.pop(path, None)
