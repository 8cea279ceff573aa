"""Checkpoint signing keys, signatures and the checkpoints file."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from keyturn.audit import CheckpointError, generate_signing_key, load_public_key, load_signing_key
from keyturn.audit.checkpoint import (
    append_checkpoint,
    checkpoints_path,
    key_id,
    public_key_from_env,
    read_checkpoints,
    sign_checkpoint,
    signature_valid,
    signing_key_from_env,
)

RAW = serialization.Encoding.Raw


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)


def test_generate_signing_key_writes_a_private_and_a_public_file(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    kid = generate_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    assert b"PUBLIC KEY" in Path(f"{path}.pub").read_bytes()
    assert (
        key_id(load_signing_key(path).public_key()) == kid == key_id(load_public_key(f"{path}.pub"))
    )
    assert len(kid) == 16


def test_generate_signing_key_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    generate_signing_key(path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        generate_signing_key(path)
    assert path.read_bytes() == before
    lone_pub = tmp_path / "other.pem.pub"
    lone_pub.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="other.pem.pub exists"):
        generate_signing_key(tmp_path / "other.pem")
    assert not (tmp_path / "other.pem").exists()


@pytest.mark.parametrize("form", ["raw", "hex", "hex-newline"])
def test_load_signing_key_raw_and_hex(tmp_path: Path, form: str) -> None:
    key = Ed25519PrivateKey.generate()
    raw = _raw_private(key)
    data = {"raw": raw, "hex": raw.hex().encode(), "hex-newline": raw.hex().encode() + b"\n"}[form]
    (tmp_path / "k").write_bytes(data)
    assert _raw_public(load_signing_key(tmp_path / "k")) == _raw_public(key)


@pytest.mark.parametrize("form", ["raw", "hex", "private-pem"])
def test_load_public_key_forms(tmp_path: Path, form: str) -> None:
    key = Ed25519PrivateKey.generate()
    data = {
        "raw": _raw_public(key),
        "hex": _raw_public(key).hex().encode(),
        "private-pem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }[form]
    (tmp_path / "p").write_bytes(data)
    assert key_id(load_public_key(tmp_path / "p")) == key_id(key.public_key())


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"too short", "not an Ed25519 private key"),
        (b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", "not an Ed25519"),
        (
            X25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "X25519PrivateKey, not an Ed25519 key",
        ),
    ],
)
def test_load_signing_key_rejects(tmp_path: Path, data: bytes, match: str) -> None:
    (tmp_path / "k").write_bytes(data)
    with pytest.raises(CheckpointError, match=match):
        load_signing_key(tmp_path / "k")


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot read audit signing key"):
        load_signing_key(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="cannot read audit public key"):
        load_public_key(tmp_path / "nope")


def test_signature_covers_every_field() -> None:
    key = Ed25519PrivateKey.generate()
    cp = sign_checkpoint(key, seq=7, hash="a" * 64, ts="2026-04-12T03:14:15Z")
    assert cp.key_id == key_id(key.public_key())
    assert signature_valid(cp, key.public_key())
    for change in (
        {"seq": 8},
        {"hash": "b" * 64},
        {"ts": "2026-04-12T03:14:16Z"},
        {"key_id": "0" * 16},
    ):
        assert not signature_valid(replace(cp, **change), key.public_key())
    assert not signature_valid(cp, Ed25519PrivateKey.generate().public_key())
    assert not signature_valid(replace(cp, signature="zz"), key.public_key())


def test_checkpoints_file_round_trip(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = checkpoints_path(tmp_path / "audit.jsonl")
    assert path.name == "audit.jsonl.checkpoints"
    assert read_checkpoints(path) == []
    cps = [sign_checkpoint(key, seq=s, hash=f"{s:064x}", ts="2026-04-12T03:14:15Z") for s in (1, 2)]
    for cp in cps:
        append_checkpoint(path, cp)
    assert read_checkpoints(path) == cps


@pytest.mark.parametrize(
    "line",
    [
        b"nope",
        b"[]",
        b'{"seq":1}',
        b'{"seq":0,"hash":"h","ts":"t","key_id":"k","signature":"s"}',
        b'{"seq":true,"hash":"h","ts":"t","key_id":"k","signature":"s"}',
        b'{"seq":1,"hash":1,"ts":"t","key_id":"k","signature":"s"}',
        b'{"seq":1,"hash":"h","ts":"t","key_id":"k","signature":null}',
        b'{"seq":1,"hash":"h","ts":"t","key_id":"k","signature":"s","x":1}',
    ],
)
def test_read_checkpoints_names_a_bad_line(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "audit.jsonl.checkpoints"
    good = sign_checkpoint(Ed25519PrivateKey.generate(), seq=1, hash="a" * 64, ts="t")
    path.write_bytes(good.line() + line + b"\n")
    with pytest.raises(CheckpointError, match="line 2"):
        read_checkpoints(path)


def test_keys_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert signing_key_from_env() is None and public_key_from_env() is None
    signing, other = tmp_path / "s.pem", tmp_path / "o.pem"
    generate_signing_key(signing)
    generate_signing_key(other)
    monkeypatch.setenv("KEYTURN_AUDIT_SIGNING_KEY", str(signing))
    expected = key_id(load_signing_key(signing).public_key())
    assert key_id(public_key_from_env()) == expected  # derived from the signing key
    monkeypatch.setenv("KEYTURN_AUDIT_PUBLIC_KEY", f"{other}.pub")
    assert key_id(public_key_from_env()) == key_id(load_public_key(f"{other}.pub"))  # wins
