"""The payload codec and data converter: AES-256-GCM payloads, key parsing, encoded failures."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.exceptions import InvalidTag
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from keyturn.codec import (
    ENCODING,
    ZLIB_ENCODING,
    EncryptionCodec,
    data_converter,
    new_key,
    parse_key,
)
from keyturn.config import ConfigError

SECRET = "s3cret-message"


def payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def test_round_trip_restores_payloads_and_hides_plaintext():
    codec = EncryptionCodec(os.urandom(32))
    originals = [payload(SECRET), payload("second")]
    encoded = await codec.encode(originals)
    assert len(encoded) == 2
    for sealed in encoded:
        assert sealed.metadata["encoding"] == ENCODING == b"binary/keyturn-aes256gcm"
        assert SECRET.encode() not in sealed.data
        assert b"json/plain" not in sealed.data
    assert await codec.decode(encoded) == originals


async def test_each_encoding_uses_a_fresh_nonce():
    codec = EncryptionCodec(os.urandom(32))
    first, second = await codec.encode([payload(SECRET), payload(SECRET)])
    assert first.data != second.data


async def test_key_id_is_in_metadata_and_not_the_key():
    key = os.urandom(32)
    (sealed,) = await EncryptionCodec(key).encode([payload(SECRET)])
    key_id = sealed.metadata["key-id"]
    assert len(key_id) == 16
    assert key not in sealed.SerializeToString()
    (again,) = await EncryptionCodec(key).encode([payload("other")])
    assert again.metadata["key-id"] == key_id


async def test_decoding_with_another_key_names_the_key_id():
    sealed = await EncryptionCodec(os.urandom(32)).encode([payload(SECRET)])
    key_id = sealed[0].metadata["key-id"].decode()
    with pytest.raises(ConfigError, match=f"another KEYTURN_CODEC_KEY.*key id {key_id}"):
        await EncryptionCodec(os.urandom(32)).decode(sealed)


async def test_tampered_ciphertext_does_not_decode():
    codec = EncryptionCodec(os.urandom(32))
    (sealed,) = await codec.encode([payload(SECRET)])
    flipped = bytes([sealed.data[-1] ^ 1])
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + flipped)
    with pytest.raises(InvalidTag):
        await codec.decode([tampered])


async def test_plain_payloads_pass_through_decode_untouched():
    codec = EncryptionCodec(os.urandom(32))
    plain = [payload("not encrypted"), Payload(metadata={"encoding": b"binary/null"})]
    (sealed,) = await codec.encode([payload(SECRET)])
    decoded = await codec.decode([plain[0], sealed, plain[1]])
    assert decoded == [plain[0], payload(SECRET), plain[1]]
    assert decoded[0] is plain[0] and decoded[2] is plain[1]


def test_parse_key_accepts_urlsafe_standard_unpadded_and_surrounding_space():
    raw = bytes([251, 255]) + os.urandom(30)  # encodes to "+/" or "-_" first: the alphabets differ
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    standard = base64.b64encode(raw).decode()
    assert urlsafe[:2] == "-_" and standard[:2] == "+/"
    assert parse_key(urlsafe) == raw
    assert parse_key(standard) == raw
    assert parse_key(urlsafe.rstrip("=")) == raw
    assert parse_key(f"  {urlsafe}\n") == raw
    assert len(parse_key(new_key())) == 32


@pytest.mark.parametrize("bad", ["not base64!", "a", "abcde", "ÿÿÿÿ", "a" * 43 + "!"])
def test_parse_key_rejects_bad_base64(bad):
    with pytest.raises(ConfigError, match="KEYTURN_CODEC_KEY is not valid base64"):
        parse_key(bad)


@pytest.mark.parametrize("length", [0, 1, 16, 31, 33, 64])
def test_parse_key_rejects_wrong_lengths(length):
    encoded = base64.urlsafe_b64encode(b"k" * length).decode()
    with pytest.raises(ConfigError, match=f"must decode to 32 bytes, got {length}$"):
        parse_key(encoded)


async def test_converter_without_key_leaves_small_payloads_plain():
    for key in (None, ""):
        converter = data_converter(key)
        (encoded,) = await converter.encode([{"note": SECRET}])
        assert encoded.metadata["encoding"] == b"json/plain"
        assert SECRET.encode() in encoded.data
        assert await converter.decode([encoded]) == [{"note": SECRET}]


async def test_converter_compresses_large_payloads():
    big = {"items": [f"credential-{i}" for i in range(2000)]}
    converter = data_converter(None)
    (encoded,) = await converter.encode([big])
    assert encoded.metadata["encoding"] == ZLIB_ENCODING
    assert len(encoded.data) < len(json.dumps(big)) / 4
    assert await converter.decode([encoded]) == [big]


async def test_converter_with_key_encrypts():
    key = new_key()
    converter = data_converter(key)
    (encoded,) = await converter.encode([{"note": SECRET}])
    assert encoded.metadata["encoding"] == ENCODING
    assert SECRET.encode() not in encoded.SerializeToString()
    assert await data_converter(key).decode([encoded]) == [{"note": SECRET}]
    with pytest.raises(ConfigError, match="key id"):
        await data_converter(new_key()).decode([encoded])


async def test_large_payloads_are_compressed_then_encrypted():
    key = new_key()
    big = {"items": [f"credential-{i}" for i in range(2000)]}
    (encoded,) = await data_converter(key).encode([big])
    assert encoded.metadata["encoding"] == ENCODING
    assert len(encoded.data) < len(json.dumps(big)) / 4
    (inner,) = await EncryptionCodec(parse_key(key)).decode([encoded])
    assert inner.metadata["encoding"] == ZLIB_ENCODING
    assert await data_converter(key).decode([encoded]) == [big]


def test_converter_rejects_a_bad_key_when_built():
    with pytest.raises(ConfigError, match="32 bytes"):
        data_converter(base64.urlsafe_b64encode(b"short").decode())


def test_failure_converter_moves_the_message_out_of_the_plain_field():
    converter = data_converter(None)
    failure = Failure()
    converter.failure_converter.to_failure(
        ApplicationError(SECRET, non_retryable=True), converter.payload_converter, failure)
    assert SECRET not in failure.message
    assert failure.HasField("encoded_attributes")
    restored = converter.failure_converter.from_failure(failure, converter.payload_converter)
    assert isinstance(restored, ApplicationError)
    assert restored.message == SECRET
    assert restored.non_retryable


async def test_failure_messages_are_encrypted_with_a_key():
    key = new_key()
    converter = data_converter(key)
    failure = Failure()
    converter.failure_converter.to_failure(
        ApplicationError(SECRET, type="Boom"), converter.payload_converter, failure)
    await converter.payload_codec.encode_failure(failure)
    serialized = failure.SerializeToString()
    assert SECRET.encode() not in serialized
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING

    received = Failure.FromString(serialized)
    await data_converter(key).payload_codec.decode_failure(received)
    restored = converter.failure_converter.from_failure(received, converter.payload_converter)
    assert isinstance(restored, ApplicationError)
    assert (restored.message, restored.type) == (SECRET, "Boom")


async def test_encode_failure_round_trip_through_the_converter():
    key = new_key()
    failure = Failure()
    try:
        raise ApplicationError(SECRET)
    except ApplicationError as err:  # raised, so the stack trace is encoded as well
        await data_converter(key).encode_failure(err, failure)
    assert SECRET.encode() not in failure.SerializeToString()
    assert "test_codec" not in failure.stack_trace
    restored = await data_converter(key).decode_failure(Failure.FromString(failure.SerializeToString()))
    assert isinstance(restored, ApplicationError) and restored.message == SECRET
