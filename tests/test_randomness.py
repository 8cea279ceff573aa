"""Random sources: Vault's sys/tools/random, KMS GenerateRandom and the OS, and the text helpers."""

from __future__ import annotations

import boto3
import pytest

from keyturn.randomness import (
    OS_RANDOM,
    PASSWORD_ALPHABET,
    KmsRandom,
    password,
    token_hex,
    token_urlsafe,
)
from keyturn.stores.vault_kv import VaultKvStore


class Counting:
    """A deterministic source that records how many bytes were asked for."""

    name = "counting"

    def __init__(self) -> None:
        self.asked = 0

    def token_bytes(self, n: int) -> bytes:
        self.asked += n
        return bytes((self.asked + i) % 256 for i in range(n))


def test_vault_store_offers_sys_tools_random(openbao):
    store = VaultKvStore("vault", {"address": openbao.url, "token": openbao.root_token})
    source = store.random_source()
    assert source.name == f"vault:sys/tools/random@{openbao.url}"
    first, second = source.token_bytes(48), source.token_bytes(48)
    assert len(first) == 48 and first != second


def test_kms_generate_random_in_chunks(moto, aws_env):
    source = KmsRandom(boto3.client("kms"), "us-east-1")
    data = source.token_bytes(KmsRandom.MAX_BYTES + 5)
    assert len(data) == KmsRandom.MAX_BYTES + 5
    assert source.name == "aws-kms:GenerateRandom@us-east-1"


def test_os_random_and_text_helpers():
    assert len(OS_RANDOM.token_bytes(16)) == 16
    assert len(token_hex(OS_RANDOM, 16)) == 32
    assert "=" not in token_urlsafe(OS_RANDOM, 32)
    generated = password(OS_RANDOM, 40)
    assert len(generated) == 40 and set(generated) <= set(PASSWORD_ALPHABET)


def test_password_rejects_bytes_that_would_bias_the_alphabet():
    # 62 characters: bytes 248..255 must be dropped, not folded onto the first letters.
    source = Counting()
    generated = password(source, 300)
    assert len(generated) == 300
    counts = {c: generated.count(c) for c in set(generated)}
    assert max(counts.values()) - min(counts.values()) <= 2


def test_password_refuses_a_useless_alphabet():
    with pytest.raises(ValueError, match="alphabet"):
        password(OS_RANDOM, 8, alphabet="a")


def test_secrets_manager_store_offers_kms_generate_random(moto, aws_env):
    from keyturn.stores.aws_secrets_manager import AwsSecretsManagerStore

    source = AwsSecretsManagerStore("aws-sm", {"region": "us-east-1"}).random_source()
    assert source.name == "aws-kms:GenerateRandom@us-east-1"
    assert len(source.token_bytes(32)) == 32
