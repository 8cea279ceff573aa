"""Which KMS signing algorithms keyturn can check locally, and the check itself.

A replacement signing key is verified by asking KMS to sign a fresh message
and checking the signature against the public key that is delivered to the
stores (keyturn.providers.kms_signing). That works for the RSA (PSS and
PKCS #1 v1.5) and ECDSA algorithms with SHA-256/384/512; a key offering none of
them is refused before anything changes.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from keyturn.providers.errors import PermanentProviderError
from keyturn.providers.kms_keys import AwsKmsKeyTarget, where

_PSS = "RSASSA_PSS_"
_PKCS1 = "RSASSA_PKCS1_V1_5_"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
SIGNING_ALGORITHMS = [
    prefix + digest for prefix in (_PSS, _PKCS1, "ECDSA_") for digest in _HASHES
]
"""The KMS signing algorithms `verify` can check locally against the public key."""


def signing_algorithm(key: dict[str, Any], t: AwsKmsKeyTarget) -> str:
    """The first of the key's signing algorithms that `verify` can check."""
    offered = key.get("SigningAlgorithms") or []
    for algorithm in offered:
        if algorithm in SIGNING_ALGORITHMS:
            return algorithm
    raise PermanentProviderError(
        f"key {key['KeyId']} ({where(t)}) is {key['KeySpec']} with signing algorithms "
        f"{', '.join(offered) or 'none'}; aws.kms_key supports RSA and ECDSA signing keys"
    )


def check_signature(public: Any, algorithm: str, signature: bytes, message: bytes) -> None:
    """Raise InvalidSignature (or TypeError for a mismatched key type) unless it verifies."""
    digest = _HASHES[algorithm[-7:]]()
    if algorithm.startswith(_PSS) and isinstance(public, rsa.RSAPublicKey):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        public.verify(signature, message, pss, digest)
    elif algorithm.startswith(_PKCS1) and isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, message, padding.PKCS1v15(), digest)
    elif isinstance(public, ec.EllipticCurvePublicKey) and algorithm.startswith("ECDSA_"):
        public.verify(signature, message, ec.ECDSA(digest))
    else:
        raise TypeError(f"a {type(public).__name__} cannot check {algorithm}")
