"""Signed checkpoints of the log head (Ed25519), which make truncation detectable.

A checkpoint says "the record at ``seq`` had hash ``hash``", signed at ``ts`` by
the key ``key_id`` (the first 16 hex digits of SHA-256 over the raw 32-byte
public key). The signed message is ``CHECKPOINT_CONTEXT ||
canonical_json({"hash", "key_id", "seq", "ts"})``, so a checkpoint signature can
never be mistaken for any other signature. Checkpoints are stored one per line,
in canonical JSON, in ``<log>.checkpoints`` next to the log.

Keys: the signing key file (PEM PKCS#8, 32 raw bytes or 64 hex digits) is named
by ``KEYTURN_AUDIT_SIGNING_KEY``; a verifier needs only the public key (PEM, raw
or hex), from ``--public-key`` or ``KEYTURN_AUDIT_PUBLIC_KEY``. Copy the
checkpoints somewhere the log's writers cannot reach if truncation of both
files together is in your threat model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keyturn.audit.record import AuditError, canonical_json, format_ts
from keyturn.errors import PermanentError

CHECKPOINT_CONTEXT = b"keyturn-audit-checkpoint-v1\x00"
_HEX_FIELDS = {
    "hash": re.compile(r"[0-9a-f]{64}\Z"),
    "key_id": re.compile(r"[0-9a-f]{16}\Z"),
    "signature": re.compile(r"[0-9a-f]{128}\Z"),
}
SIGNING_KEY_ENV = "KEYTURN_AUDIT_SIGNING_KEY"
PUBLIC_KEY_ENV = "KEYTURN_AUDIT_PUBLIC_KEY"


class CheckpointError(AuditError, PermanentError):
    """A key file or a checkpoints line cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    ts: str
    key_id: str
    signature: str  # hex

    def message(self) -> bytes:
        body = {"hash": self.hash, "key_id": self.key_id, "seq": self.seq, "ts": self.ts}
        return CHECKPOINT_CONTEXT + canonical_json(body)

    def line(self) -> bytes:
        return canonical_json(asdict(self)) + b"\n"


def checkpoints_path(log_path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(log_path)}.checkpoints")


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def check_checkpoint_every(every: int | None) -> None:
    """A log's automatic checkpoint interval: at least 1 record, or None (explicit only)."""
    if every is not None and every < 1:
        raise ValueError("checkpoint_every must be at least 1 (or None for explicit only)")


def checkpoint_due(every: int | None, seq: int) -> bool:
    """Whether a signing log that checkpoints every ``every`` records signs after ``seq``."""
    return every is not None and seq % every == 0


def sign_checkpoint(
    key: Ed25519PrivateKey, *, seq: int, hash: str, ts: str | None = None
) -> Checkpoint:
    """The signed checkpoint of the record (``seq``, ``hash``), made at ``ts`` (default now)."""
    ts = ts if ts is not None else format_ts(datetime.now(UTC))
    unsigned = Checkpoint(seq=seq, hash=hash, ts=ts, key_id=key_id(key.public_key()), signature="")
    return Checkpoint(**{**asdict(unsigned), "signature": key.sign(unsigned.message()).hex()})


def signature_valid(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    try:
        public_key.verify(bytes.fromhex(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_checkpoint(line: bytes) -> Checkpoint:
    """One checkpoints line (without newline), which must be in canonical form."""
    try:
        data = json.loads(line.decode("utf-8"))
        checkpoint = Checkpoint(**data)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise CheckpointError(f"not a checkpoint ({exc})") from exc
    if type(checkpoint.seq) is not int or checkpoint.seq < 1:
        raise CheckpointError("seq must be a positive integer")
    for name, pattern in _HEX_FIELDS.items():
        if not isinstance(getattr(checkpoint, name), str) or not pattern.match(
            getattr(checkpoint, name)
        ):
            raise CheckpointError(f"{name} must be lowercase hex of the right length")
    if not isinstance(checkpoint.ts, str):
        raise CheckpointError("ts must be a string")
    if canonical_json(data) != line:  # data has exactly the fields: Checkpoint(**data) took it
        raise CheckpointError("bytes differ from the checkpoint's canonical form")
    return checkpoint


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """All checkpoints in file order; a missing file means none. Raises on a bad line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the empty string after the final newline
    checkpoints = []
    for number, line in enumerate(lines, start=1):
        try:
            checkpoints.append(parse_checkpoint(line))
        except CheckpointError as exc:
            raise CheckpointError(f"{path} line {number}: {exc}") from exc
    return checkpoints


def append_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Append durably; the caller holds the log's lock."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, checkpoint.line())
        os.fsync(fd)
    finally:
        os.close(fd)


def _key_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {what} {path}: {exc.strerror}") from exc


def load_signing_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    data = _key_bytes(Path(path), "audit signing key")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(_raw_32(data))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not an Ed25519 private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """A public key file; a private key file is accepted too (its public half is used)."""
    data = _key_bytes(Path(path), "audit public key")
    if b"PRIVATE KEY" in data:
        return load_signing_key(path).public_key()
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = Ed25519PublicKey.from_public_bytes(_raw_32(data))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not an Ed25519 public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _raw_32(data: bytes) -> bytes:
    if len(data) == 32:
        return data
    text = data.strip()
    if len(text) == 64:
        return bytes.fromhex(text.decode("ascii"))
    raise ValueError(f"expected PEM, 32 raw bytes or 64 hex digits, got {len(data)} bytes")


def signing_key_from_env() -> Ed25519PrivateKey | None:
    path = os.environ.get(SIGNING_KEY_ENV)
    return load_signing_key(path) if path else None


def public_key_from_env() -> Ed25519PublicKey | None:
    """KEYTURN_AUDIT_PUBLIC_KEY, else the public half of KEYTURN_AUDIT_SIGNING_KEY."""
    if path := os.environ.get(PUBLIC_KEY_ENV):
        return load_public_key(path)
    key = signing_key_from_env()
    return key.public_key() if key else None


def resolve_public_key(
    public_key: Ed25519PublicKey | str | os.PathLike[str] | None,
) -> Ed25519PublicKey | None:
    """The key that checks checkpoint signatures: a key as is, a file loaded, and None
    meaning the environment's (``public_key_from_env``)."""
    if public_key is None:
        return public_key_from_env()
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    return load_public_key(public_key)


def generate_signing_key(path: str | os.PathLike[str]) -> str:
    """Write a new private key (PEM, mode 0600) to ``path`` and its public key to
    ``path.pub``; refuse to overwrite either. Returns the key id."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    target = Path(path)
    files = ((target, private_pem, 0o600), (Path(f"{target}.pub"), public_pem, 0o644))
    for file, _, _ in files:
        if file.exists():
            raise CheckpointError(f"{file} exists; refusing to overwrite a key")
    for file, data, mode in files:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    return key_id(key.public_key())
