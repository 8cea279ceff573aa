"""The `lock_holder` activity: who holds a target, for a rotation that found it held.

A workflow may not talk to Temporal's service itself, so a rotation refused a
target's hold asks through this activity; it reads the hold's memo
(keyturn.locks.holder_of) and returns references only.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from keyturn.locks import holder_of
from keyturn.workflows.models import LockHold


class LockActivities:
    """Activities that read holds through the worker's own client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name="lock_holder")
    async def holder(self, lock_key: str) -> LockHold | None:
        """The holder of the target whose lock key is `lock_key`; None once it is free."""
        found = await holder_of(self._client, lock_key)
        if found is None:
            return None
        return LockHold(lock_key=lock_key, run_id=found.run_id, credential=found.credential,
                        provider=found.provider, target=found.target)
