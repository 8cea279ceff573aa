"""The stack's AWS emulator: moto's server, with KMS refusing what AWS refuses for a key's state.

moto (5.2) signs, encrypts and decrypts with disabled keys and with keys pending
deletion, enables and re-schedules keys pending deletion, and ignores a deletion
window outside 7-30 days. AWS does none of that (the "key states" table of the
KMS Developer Guide), and `aws.kms_key` proves a replaced signing key revoked by
KMS refusing to sign with it. `python -m keyturn.devstack.moto_kms [moto_server
options]` wraps those methods of moto's KMS backend so they answer as AWS does,
then runs moto's server.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.kms.exceptions import NotFoundException, ValidationException
from moto.kms.models import KmsBackend
from moto.server import main as moto_server

CRYPTO_OPERATIONS = frozenset({
    "sign", "verify", "encrypt", "decrypt", "generate_data_key", "get_public_key",
    "generate_mac", "verify_mac", "rotate_key_on_demand",
})
"""Refused for a Disabled key (DisabledException) and one PendingDeletion (KMSInvalidState)."""

STATE_CHANGES = frozenset({"enable_key", "disable_key", "schedule_key_deletion"})
"""Refused for a key PendingDeletion (KMSInvalidStateException)."""


class KeyStateError(JsonRESTError):
    """AWS's answer to an operation the key's state does not allow."""

    code = 400


def refusal(operation: str, key: Any) -> KeyStateError | None:
    """The error AWS answers `operation` with for `key` in its current state, if any."""
    if key.key_state == "PendingDeletion":
        return KeyStateError("KMSInvalidStateException", f"{key.arn} is pending deletion.")
    if key.key_state == "Disabled" and operation in CRYPTO_OPERATIONS:
        return KeyStateError("DisabledException", f"{key.arn} is disabled.")
    return None


def guarded(operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` of the KMS backend, refusing first what AWS refuses."""
    signature = inspect.signature(method)

    @wraps(method)
    def call(backend: KmsBackend, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(backend, *args, **kwargs).arguments
        window = arguments.get("pending_window_in_days", 30)
        if operation == "schedule_key_deletion" and not 7 <= window <= 30:
            raise ValidationException("PendingWindowInDays must be between 7 and 30")
        if arguments.get("key_id") is not None:  # Decrypt may leave the key to the ciphertext
            try:
                key = backend.describe_key(arguments["key_id"])
            except (KeyError, NotFoundException):
                key = None  # moto answers NotFoundException itself
            if key is not None and (error := refusal(operation, key)) is not None:
                raise error
        return method(backend, *args, **kwargs)

    return call


def install() -> None:
    """Guard the KMS backend's operations in this process (moto's server then serves them)."""
    for operation in sorted(CRYPTO_OPERATIONS | STATE_CHANGES):
        setattr(KmsBackend, operation, guarded(operation, getattr(KmsBackend, operation)))


if __name__ == "__main__":
    install()
    sys.exit(moto_server())
