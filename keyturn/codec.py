"""The data converter shared by client and worker: pydantic JSON, compressed, encrypted.

Every payload Temporal stores (workflow inputs, results, activity arguments,
update arguments, failure messages) is sealed with AES-256-GCM under a key from
`KEYTURN_CODEC_KEY`, so even references and fingerprints are ciphertext in
history. Failure messages and stack traces are moved into encoded attributes
so they pass through the codec as well.

Large payloads are zlib-compressed first: the plan of an incident with
thousands of credentials is repetitive JSON that would otherwise pass
Temporal's 2 MiB payload limit. Compressing before encrypting reveals only
sizes, and payloads carry references, never secrets.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import zlib
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from keyturn.config import ConfigError

ENCODING = b"binary/keyturn-aes256gcm"
ZLIB_ENCODING = b"binary/zlib"
COMPRESS_ABOVE = 1024
_NONCE_BYTES = 12


def parse_key(encoded: str) -> bytes:
    """Decode a base64 (urlsafe or standard) 32-byte key; say what is wrong otherwise."""
    text = encoded.strip().replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError as exc:
        raise ConfigError("KEYTURN_CODEC_KEY is not valid base64") from exc
    if len(key) != 32:
        raise ConfigError(f"KEYTURN_CODEC_KEY must decode to 32 bytes, got {len(key)}")
    return key


def key_id(key: bytes) -> str:
    """The id a payload's metadata names its key by: a hash prefix, which reveals nothing of
    the key and is in every encrypted payload of history already."""
    return hashlib.sha256(key).hexdigest()[:16]


def new_key() -> str:
    """A fresh random key in the form KEYTURN_CODEC_KEY expects."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over the whole serialized payload; the key id travels in metadata."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._key_id = key_id(key).encode()

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            nonce = os.urandom(_NONCE_BYTES)
            sealed = self._aead.encrypt(nonce, payload.SerializeToString(), None)
            out.append(
                Payload(
                    metadata={"encoding": ENCODING, "key-id": self._key_id},
                    data=nonce + sealed,
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)
                continue
            if payload.metadata.get("key-id") != self._key_id:
                raise ConfigError(
                    "payload was encrypted with another KEYTURN_CODEC_KEY "
                    f"(key id {payload.metadata.get('key-id', b'?').decode()})"
                )
            nonce, sealed = payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:]
            out.append(Payload.FromString(self._aead.decrypt(nonce, sealed, None)))
        return out


class CompressionCodec(PayloadCodec):
    """zlib over serialized payloads of COMPRESS_ABOVE bytes or more; small ones pass as they are."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            raw = payload.SerializeToString()
            if len(raw) < COMPRESS_ABOVE:
                out.append(payload)
            else:
                out.append(Payload(metadata={"encoding": ZLIB_ENCODING}, data=zlib.compress(raw)))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload.FromString(zlib.decompress(p.data))
            if p.metadata.get("encoding") == ZLIB_ENCODING else p
            for p in payloads
        ]


class ChainCodec(PayloadCodec):
    """Codecs applied in order on encode and in reverse order on decode."""

    def __init__(self, *codecs: PayloadCodec) -> None:
        self._codecs = codecs

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = list(payloads)
        for codec in self._codecs:
            out = await codec.encode(out)
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = list(payloads)
        for codec in reversed(self._codecs):
            out = await codec.decode(out)
        return out


def data_converter(codec_key: str | None) -> DataConverter:
    """The converter for client and worker; without a key, payloads are compressed but plain."""
    codecs: list[PayloadCodec] = [CompressionCodec()]
    if codec_key:
        codecs.append(EncryptionCodec(parse_key(codec_key)))
    return dataclasses.replace(
        pydantic_data_converter,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
        payload_codec=ChainCodec(*codecs),
    )
