"""Provider errors, classified where they are raised.

Every class sits in keyturn's one tree (docs/errors.md): a provider error is a
`ProviderError` and, through its branch, a `PermanentError` or a
`TransientError`. Permanent errors (access denied, not found, bad input, quota) must not be
retried; transient ones (throttling, 5xx, timeouts) are left to the retry
policy. Messages never contain secret values.
"""

from __future__ import annotations

from keyturn import httpstatus
from keyturn.errors import KeyturnError, PermanentError, TransientError


class ProviderError(KeyturnError):
    """Base for every provider failure."""


class PermanentProviderError(ProviderError, PermanentError):
    """The request cannot succeed by repeating it."""


class TransientProviderError(ProviderError, TransientError):
    """Throttling, a 5xx or a timeout: worth retrying."""


class CredentialNotFound(PermanentProviderError):
    """The target or credential does not exist."""


class AccessDenied(PermanentProviderError):
    """The rotating identity lacks permission."""


class QuotaExceeded(PermanentProviderError):
    """No room for another credential and nothing safe to clean up."""


class VerificationFailed(PermanentProviderError):
    """The new credential did not authenticate."""


class StillValid(PermanentProviderError):
    """The old credential is still accepted after revocation."""


ERRORS = httpstatus.ErrorClasses(
    access_denied=AccessDenied, not_found=CredentialNotFound, invalid=PermanentProviderError,
    transient=TransientProviderError, permanent=PermanentProviderError,
)
"""The provider error class for each kind of failure (keyturn.httpstatus)."""
for_status = ERRORS.for_status
