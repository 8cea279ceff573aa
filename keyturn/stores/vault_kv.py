"""Vault (or OpenBao) KV version 2: the `vault_kv` store, through hvac.

The data written is the KV data of a new version, nothing else: the activities
merge a new credential into the path's current data (keyturn.stores.fields),
so applications reading the path keep every field they read. A write with
`cas` uses KV v2's check-and-set: a concurrent writer makes it raise
StoreConflict, and the caller merges again into the newer version. The metadata written
with a version (fingerprint, run, credential id) goes into the path's KV v2
`custom_metadata`, which Vault keeps per *path*, not per version. So each
version gets its own entry: key `keyturn.v<N>`, value the canonical JSON of that
version's metadata. Entries of versions more than KEPT_VERSION_METADATA behind
the newest are pruned on write, staying inside Vault's limit of 64 keys; an
older version read after pruning comes back with empty metadata.

Writing is two requests: the data (which fixes the version number), then a
merge PATCH of the metadata (which leaves max_versions, delete_version_after
and any operator-set custom_metadata untouched). If the second fails the error
says so, and the version stays without metadata; a retry writes a new version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import hvac
import requests
from hvac import exceptions as vault
from hvac import utils as hvac_utils
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from keyturn.fingerprint import canonical_json
from keyturn.randomness import RandomSource, VaultRandom
from keyturn.secret import redact
from keyturn.stores.base import StoreDefaults, StoredVersion
from keyturn.stores.errors import (
    PermanentStoreError,
    StoreAccessDenied,
    StoreConfigError,
    StoreConflict,
    StoreError,
    StoreInvalidRequest,
    StoreNotFound,
    TransientStoreError,
)
from keyturn.stores.fields import Data
from keyturn.vault_http import retrying_session

METADATA_PREFIX = "keyturn.v"
KEPT_VERSION_METADATA = 16
MAX_METADATA_VALUE = 512  # Vault's limit on one custom_metadata value, in bytes

# The one table from hvac exceptions to store errors (looked up along the MRO).
ERRORS: dict[type[Exception], type[StoreError]] = {
    vault.InvalidRequest: StoreInvalidRequest,
    vault.ParamValidationError: StoreInvalidRequest,
    vault.UnsupportedOperation: StoreInvalidRequest,
    vault.Unauthorized: StoreAccessDenied,
    vault.Forbidden: StoreAccessDenied,
    vault.InvalidPath: StoreNotFound,
    vault.VaultNotInitialized: PermanentStoreError,
    vault.PreconditionFailed: TransientStoreError,  # a standby has not caught up yet
    vault.RateLimitExceeded: TransientStoreError,
    vault.InternalServerError: TransientStoreError,
    vault.BadGateway: TransientStoreError,
    vault.VaultDown: TransientStoreError,  # sealed, or in maintenance
    requests.ConnectionError: TransientStoreError,
    requests.Timeout: TransientStoreError,
}


class VaultKvConfig(BaseModel):
    """A `vault_kv` store as configured in a runbook's `stores:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str = Field(min_length=1)
    mount: str = Field(default="secret", min_length=1)
    token: SecretStr | None = None
    namespace: str | None = None


def classify(exc: Exception) -> type[StoreError]:
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return PermanentStoreError


class VaultKvStore(StoreDefaults):
    """Versioned secrets at paths under one KV v2 mount, with per-version metadata."""

    type: ClassVar[str] = "vault_kv"

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        cfg = _parse_config(name, config)
        token = cfg.token.get_secret_value() if cfg.token else os.environ.get("VAULT_TOKEN")
        if not token:
            raise StoreConfigError(
                f"vault_kv store {name!r}: no token; set `token` in its config or VAULT_TOKEN"
            )
        self.mount = cfg.mount.strip("/")
        self._address = cfg.address
        self._client = hvac.Client(url=cfg.address, token=token, namespace=cfg.namespace,
                                   session=retrying_session())
        self._kv = self._client.secrets.kv.v2

    def random_source(self) -> RandomSource:
        """This Vault's `sys/tools/random`, for secrets the runbook's providers generate."""
        return VaultRandom(self._client, self._address)

    def read(self, path: str, version: int | None = None) -> StoredVersion | None:
        path = self._clean(path)
        try:
            response = self._kv.read_secret_version(
                path, version=version, mount_point=self.mount, raise_on_deleted_version=False
            )
        except vault.InvalidPath as exc:
            if exc.errors:  # "no handler for route": the mount itself is missing
                raise self._error(exc, "read", path) from exc
            return None
        except (vault.VaultError, requests.RequestException) as exc:
            raise self._error(exc, "read", path) from exc
        data = response["data"]
        meta = data["metadata"]
        # A deleted or destroyed version comes back without data. (A deletion_time
        # alone may lie in the future, set by delete_version_after.)
        if data.get("data") is None or meta.get("destroyed"):
            return None
        number = int(meta["version"])
        return StoredVersion(
            secret=dict(data["data"]),
            version=number,
            metadata=self._version_metadata(path, number, meta.get("custom_metadata")),
        )

    def write(
        self, path: str, secret: Data, metadata: dict[str, str], cas: int | None = None
    ) -> int:
        path = self._clean(path)
        entry = self._encode_metadata(path, metadata)
        try:
            written = self._kv.create_or_update_secret(
                path, secret=dict(secret), cas=cas, mount_point=self.mount
            )["data"]
        except vault.InvalidRequest as exc:
            if cas is not None and any("check-and-set" in e for e in exc.errors or []):
                raise StoreConflict(
                    f"write {self._where(path)}: another writer changed it after version {cas} "
                    "was read"
                ) from None
            raise self._error(exc, "write", path, secret) from exc
        except (vault.VaultError, requests.RequestException) as exc:
            raise self._error(exc, "write", path, secret) from exc
        number = int(written["version"])
        patch: dict[str, str | None] = {f"{METADATA_PREFIX}{number}": entry}
        for key in written.get("custom_metadata") or {}:
            older = _entry_version(key)
            if older is not None and older <= number - KEPT_VERSION_METADATA:
                patch[key] = None  # merge-patch null: remove the entry
        try:
            self._client.adapter.request(
                "PATCH",
                hvac_utils.format_url("/v1/{mount}/metadata/{path}", mount=self.mount, path=path),
                json={"custom_metadata": patch},
                headers={"Content-Type": "application/merge-patch+json"},
            )
        except (vault.VaultError, requests.RequestException) as exc:
            raise self._error(exc, f"write metadata of version {number} at", path) from exc
        return number

    def write_problem(self, path: str) -> str | None:
        """Why this token could not write `path`, as Vault's sys/capabilities-self tells."""
        path = self._clean(path)
        data_path = f"{self.mount}/data/{path}"
        try:
            answer = self._client.adapter.post(
                "/v1/sys/capabilities-self", json={"paths": [data_path]})
        except (vault.VaultError, requests.RequestException) as exc:
            raise self._error(exc, "check write permission on", path) from exc
        body = answer.json() if hasattr(answer, "json") else answer
        granted = set((body.get("data") or body).get(data_path, []))
        if granted & {"root", "sudo"} or {"create", "update"} <= granted:
            return None
        return (f"{self._where(path)}: the token's policy grants {sorted(granted) or 'nothing'} "
                f"on {data_path}; writing needs create and update")

    def destroy(self, path: str) -> None:
        path = self._clean(path)
        try:
            self._kv.delete_metadata_and_all_versions(path, mount_point=self.mount)
        except vault.InvalidPath as exc:
            if exc.errors:
                raise self._error(exc, "destroy", path) from exc
        except (vault.VaultError, requests.RequestException) as exc:
            raise self._error(exc, "destroy", path) from exc

    # -- helpers ------------------------------------------------------------------

    def _where(self, path: str) -> str:
        return f"vault_kv store {self.name!r} path {self.mount}/{path}"

    def _clean(self, path: str) -> str:
        cleaned = path.strip("/")
        if not cleaned:
            raise StoreInvalidRequest(f"vault_kv store {self.name!r}: empty path {path!r}")
        return cleaned

    def _error(
        self, exc: Exception, operation: str, path: str, secret: Data | None = None
    ) -> StoreError:
        """Classify `exc`; the message uses Vault's error list, never the response body."""
        if isinstance(exc, vault.VaultError):
            detail = ", ".join(exc.errors or []) or "no error message"
        else:
            detail = str(exc)
        detail = redact(detail, (secret or {}).values())
        return classify(exc)(
            f"{operation} {self._where(path)} failed: {type(exc).__name__}: {detail}"
        )

    def _encode_metadata(self, path: str, metadata: dict[str, str]) -> str:
        bad = [
            repr(k) for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))
        ]
        if bad:
            raise StoreInvalidRequest(
                f"metadata for {self._where(path)}: keys and values must be strings "
                f"(not so for {', '.join(bad)})"
            )
        entry = canonical_json(metadata).decode()
        if len(entry.encode()) > MAX_METADATA_VALUE:
            raise StoreInvalidRequest(
                f"metadata for {self._where(path)} is {len(entry.encode())} bytes as JSON; "
                f"Vault keeps at most {MAX_METADATA_VALUE}"
            )
        return entry

    def _version_metadata(
        self, path: str, number: int, custom: Mapping[str, str] | None
    ) -> dict[str, str]:
        raw = (custom or {}).get(f"{METADATA_PREFIX}{number}")
        if raw is None:
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            raise PermanentStoreError(
                f"metadata of version {number} at {self._where(path)} is not a JSON object "
                "of strings; it was changed outside keyturn"
            )
        return value


def _parse_config(name: str, config: Mapping[str, Any]) -> VaultKvConfig:
    try:
        return VaultKvConfig.model_validate(dict(config))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
        )
    # Raised outside the except block: pydantic's error quotes the input, token included.
    raise StoreConfigError(f"vault_kv store {name!r}: bad config: {problems}")


def _entry_version(key: str) -> int | None:
    """N for a `keyturn.v<N>` custom_metadata key, else None."""
    suffix = key.removeprefix(METADATA_PREFIX)
    return int(suffix) if suffix != key and suffix.isdigit() else None
