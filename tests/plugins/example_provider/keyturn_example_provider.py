"""An example third-party keyturn provider: API tokens kept in a JSON file.

It depends on keyturn only through the Provider protocol and its error
classes, as a package from another team would. The "service" is the file at
`target.path`: {"tokens": {id: {"token": ..., "active": bool}}}.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    SecretShape,
)
from keyturn.providers.errors import CredentialNotFound, StillValid, VerificationFailed
from keyturn.randomness import token_urlsafe


class FileTokenTarget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str


class FileTokenProvider:
    """API tokens in a JSON file (an example of a provider installed from another package)."""

    name: ClassVar[str] = "example.file_token"
    target_model: ClassVar[type[BaseModel]] = FileTokenTarget
    family: ClassVar[str] = "example"

    def _load(self, target: FileTokenTarget) -> dict:
        return json.loads(Path(target.path).read_text())

    def _save(self, target: FileTokenTarget, data: dict) -> None:
        Path(target.path).write_text(json.dumps(data))

    @classmethod
    def shape(cls, target) -> SecretShape:
        return SecretShape(fields=("token_id", "token"), id_field="token_id")

    def precheck(self, target, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        active = [i for i, t in self._load(target)["tokens"].items() if t["active"]]
        if not active:
            raise CredentialNotFound(f"no active token in {target.path}")
        return Precheck(old_credential_ids=active)

    def list_credential_ids(self, target, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        return list(self._load(target)["tokens"])

    def create(self, target, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        data = self._load(target)
        token_id = f"tok-{secrets.token_hex(4)}"
        token = token_urlsafe(ctx.random, 24)
        data["tokens"][token_id] = {"token": token, "active": True}
        self._save(target, data)
        return NewCredential(token_id, {"token_id": token_id, "token": token}, ctx.random.name)

    def verify(self, target, secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        found = self._load(target)["tokens"].get(secret.get("token_id", ""))
        if not found or not found["active"] or found["token"] != secret.get("token"):
            raise VerificationFailed(f"token {secret.get('token_id')} rejected")

    def _set(self, target, credential_id: str, active: bool) -> None:
        data = self._load(target)
        data["tokens"][credential_id]["active"] = active
        self._save(target, data)

    def disable(self, target, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        self._set(target, credential_id, False)

    def enable(self, target, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        self._set(target, credential_id, True)

    def delete(self, target, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        data = self._load(target)
        data["tokens"].pop(credential_id, None)
        self._save(target, data)

    def confirm_revoked(self, target, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        if credential_id in self._load(target)["tokens"]:
            raise StillValid(f"token {credential_id} still exists")
