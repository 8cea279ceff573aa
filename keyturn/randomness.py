"""Where generated secret values come from: Vault/OpenBao, AWS KMS, or the OS CSPRNG.

Passwords and webhook secrets that no service generates are drawn from a
`RandomSource`. A runbook that has a Vault store uses that Vault's
`sys/tools/random` (its entropy, its audit device); one that has an AWS
Secrets Manager store uses KMS GenerateRandom in the same account; otherwise
the worker's OS CSPRNG (`secrets`). The source's `name` goes into the audit
record of the create step, so an auditor can see what generated each value.
"""

from __future__ import annotations

import base64
import secrets
import string
from typing import Any, Protocol, runtime_checkable

PASSWORD_ALPHABET = string.ascii_letters + string.digits
"""Letters and digits only: safe in connection strings, URLs, shells and SQL literals."""


@runtime_checkable
class RandomSource(Protocol):
    """A source of cryptographically secure random bytes with a name for the audit log."""

    name: str

    def token_bytes(self, n: int) -> bytes:
        """`n` random bytes."""


class OsRandom:
    """The worker's operating system CSPRNG."""

    name = "os-csprng"

    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)


class VaultRandom:
    """Vault/OpenBao `sys/tools/random` through an hvac client."""

    def __init__(self, client: Any, address: str) -> None:
        self._client = client
        self.name = f"vault:sys/tools/random@{address}"

    def token_bytes(self, n: int) -> bytes:
        answer = self._client.adapter.post(f"/v1/sys/tools/random/{n}", json={"format": "base64"})
        data = base64.b64decode(answer["data"]["random_bytes"])
        if len(data) != n:
            raise ValueError(f"Vault returned {len(data)} random bytes, asked for {n}")
        return data


class KmsRandom:
    """AWS KMS GenerateRandom through a boto3 KMS client."""

    MAX_BYTES = 1024  # KMS's limit per call

    def __init__(self, kms_client: Any, region: str) -> None:
        self._kms = kms_client
        self.name = f"aws-kms:GenerateRandom@{region}"

    def token_bytes(self, n: int) -> bytes:
        chunks = []
        remaining = n
        while remaining > 0:
            size = min(remaining, self.MAX_BYTES)
            chunks.append(self._kms.generate_random(NumberOfBytes=size)["Plaintext"])
            remaining -= size
        return b"".join(chunks)


OS_RANDOM = OsRandom()


def token_urlsafe(source: RandomSource, n_bytes: int = 32) -> str:
    """URL-safe base64 text of `n_bytes` random bytes (no padding)."""
    return base64.urlsafe_b64encode(source.token_bytes(n_bytes)).rstrip(b"=").decode()


def token_hex(source: RandomSource, n_bytes: int = 32) -> str:
    """Hex text of `n_bytes` random bytes."""
    return source.token_bytes(n_bytes).hex()


def password(source: RandomSource, length: int = 32, alphabet: str = PASSWORD_ALPHABET) -> str:
    """A password of `length` characters drawn uniformly from `alphabet` (rejection sampling)."""
    if not 1 < len(alphabet) <= 256:
        raise ValueError("alphabet must have 2 to 256 characters")
    limit = 256 - 256 % len(alphabet)
    chars: list[str] = []
    while len(chars) < length:
        for byte in source.token_bytes(length * 2):
            if byte < limit and len(chars) < length:
                chars.append(alphabet[byte % len(alphabet)])
    return "".join(chars)
