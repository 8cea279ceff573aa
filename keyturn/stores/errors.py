"""Store errors, classified where they are raised.

One base class per layer, in keyturn's one tree (docs/errors.md): every failure of a secret store is a `StoreError`,
either permanent (bad configuration, permission denied, a missing mount, a
rejected request: repeating it cannot help) or transient (sealed or
unreachable server, rate limit, 5xx: worth retrying). Messages name the store
and the path, never a secret value or a token.
"""

from __future__ import annotations

from keyturn import httpstatus
from keyturn.errors import KeyturnError, PermanentError, TransientError


class StoreError(KeyturnError):
    """Base for every store failure."""


class PermanentStoreError(StoreError, PermanentError):
    """The request cannot succeed by repeating it."""


class TransientStoreError(StoreError, TransientError):
    """Unreachable, sealed, rate-limited or a 5xx: worth retrying."""


class StoreConfigError(PermanentStoreError):
    """The store's configuration is missing, malformed or names an unknown store type."""


class StoreAccessDenied(PermanentStoreError):
    """The store refused the token: missing, expired or without permission on the path."""


class StoreNotFound(PermanentStoreError):
    """The store has no such mount (a missing path is not an error: reads return None)."""


class StoreInvalidRequest(PermanentStoreError):
    """The store rejected the request itself, e.g. metadata over its size limits."""


class StoreConflict(TransientStoreError):
    """A check-and-set write lost to another writer: read the new version and merge again."""


class StoreShapeMismatch(PermanentStoreError):
    """A deliver path's current value does not hold the fields the rotation reads and writes."""


class StaleStore(PermanentStoreError):
    """A deliver path holds a credential the service no longer has: the store is out of date."""


class NothingStaged(PermanentStoreError):
    """The staging path does not hold the value a step needs (gone, or not the one supplied)."""


ERRORS = httpstatus.ErrorClasses(
    access_denied=StoreAccessDenied, not_found=StoreNotFound, invalid=StoreInvalidRequest,
    transient=TransientStoreError, permanent=PermanentStoreError,
)
"""The store error class for each kind of failure (keyturn.httpstatus)."""
for_status = ERRORS.for_status
