"""What a store's conformance harness gives the shared store suite.

Each store type's harness exposes a pytest fixture named
`store_harness_<store type>` returning an object of this shape, bound to the
store's real or faithful server.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Literal, Protocol

from keyturn.secret import Secret
from keyturn.stores.base import Store

FaultKind = Literal["permanent", "transient"]


class StoreHarness(Protocol):
    store_type: str
    readable: bool
    """False for write-only stores (GitHub Actions secrets): read() never returns a value."""

    def store(self) -> Store:
        """The store, configured against the test server."""

    def new_path(self) -> str:
        """A path nothing has been written to."""

    def server_value(self, path: str) -> Secret | None:
        """Ask the server directly, not through the store: the Secret `path` holds now, or None.

        A store that keeps a multi-field Secret as one string (JSON) is decoded back.
        """

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        """While inside: every request the store makes fails (403/404, or 429/503)."""
