"""The hvac-to-StoreError table of the vault_kv store: permanent versus transient."""

from __future__ import annotations

import pytest
import requests
from hvac import exceptions as vault

from keyturn.stores.errors import (
    PermanentStoreError,
    StoreAccessDenied,
    StoreInvalidRequest,
    StoreNotFound,
    TransientStoreError,
)
from keyturn.stores.vault_kv import classify


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (vault.InvalidRequest(), StoreInvalidRequest),
        (vault.ParamValidationError(), StoreInvalidRequest),
        (vault.Unauthorized(), StoreAccessDenied),
        (vault.Forbidden(), StoreAccessDenied),
        (vault.InvalidPath(), StoreNotFound),
        (vault.VaultNotInitialized(), PermanentStoreError),
        (vault.UnexpectedError(), PermanentStoreError),
        (vault.PreconditionFailed(), TransientStoreError),
        (vault.RateLimitExceeded(), TransientStoreError),
        (vault.InternalServerError(), TransientStoreError),
        (vault.BadGateway(), TransientStoreError),
        (vault.VaultDown(), TransientStoreError),
        (requests.ConnectionError(), TransientStoreError),
        (requests.ConnectTimeout(), TransientStoreError),
        (requests.ReadTimeout(), TransientStoreError),
        (ValueError("surprise"), PermanentStoreError),
    ],
)
def test_classification(exc, expected):
    assert classify(exc) is expected
    assert expected.retryable is (expected is TransientStoreError)


def test_every_store_error_is_either_permanent_or_transient():
    for cls in (StoreAccessDenied, StoreInvalidRequest, StoreNotFound):
        assert issubclass(cls, PermanentStoreError) and not cls.retryable
