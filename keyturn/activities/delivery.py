"""One credential's deliver targets, read and written in the shape their consumers read.

`Delivery` is what the step activities and preflight know about the paths a
credential is delivered to: the provider's view of what a path holds (through
the target's `fields:` mapping), the checks precheck makes before anything
changes, and the merge-write of a new value (check-and-set, retried on a
concurrent writer), with the targets already written restored if a later one
fails. Secret values stay inside; errors name stores, paths and field names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keyturn.providers.base import SecretShape
from keyturn.runbook.plan_model import CredentialPlan, Location, StorePlan
from keyturn.secret import Secret
from keyturn.stores import fields
from keyturn.stores.base import Store, StoredVersion
from keyturn.stores.errors import StaleStore, StoreConflict, StoreShapeMismatch

MERGE_ATTEMPTS = 5
"""Check-and-set writes tried in one activity attempt before the conflict goes to Temporal."""


@dataclass(frozen=True)
class Current:
    """What precheck read: the provider's view of the first target and that version."""

    secret: Secret | None
    version: int | None


class Delivery:
    """The deliver targets of one credential, with its provider's shape."""

    def __init__(self, credential: CredentialPlan, stores: dict[str, StorePlan],
                 store_for: Callable[[StorePlan], Store], shape: SecretShape) -> None:
        self.credential = credential
        self.shape = shape
        self._stores = stores
        self._store_for = store_for

    def targets(self) -> list[Location]:
        """Where the new value goes; a credential without `deliver` keeps it under keyturn/."""
        cred = self.credential
        if cred.deliver:
            return list(cred.deliver)
        return [Location(store=cred.staging.store, path=f"keyturn/credentials/{cred.id}")]

    def store(self, location: Location) -> Store:
        return self._store_for(self._stores[location.store])

    def view(self, location: Location, found: StoredVersion | None) -> Secret | None:
        """The provider's fields in `found` (None when it holds none of them)."""
        if found is None:
            return None
        seen = fields.view(found.secret, location.fields, self.shape.fields, self.shape.required)
        return seen or None

    def read(self, version: int | None = None) -> Secret | None:
        """The provider's view of the first target (latest, or `version`)."""
        first = self.targets()[0]
        return self.view(first, self.store(first).read(first.path, version=version))

    # ---- precheck ----------------------------------------------------------------

    def check_current(self) -> Current:
        """Read every readable target; refuse a shape the rotation cannot keep.

        Raises StoreShapeMismatch when a path holds a value without one of the
        provider's fields (under its mapped name), or holds nothing where the
        provider needs the current value. Nothing is written.
        """
        current = Current(None, None)
        for index, location in enumerate(self.targets()):
            store = self.store(location)
            if not store.readable:
                continue
            found = store.read(location.path)
            if found is not None:
                self._check_shape(location, found)
            if index == 0:
                current = Current(self.view(location, found), found.version if found else None)
        if current.secret is None and self.shape.reads_current:
            first = self.targets()[0]
            raise StoreShapeMismatch(
                f"{first.store}:{first.path} holds no current value, and "
                f"{self.credential.provider} needs it to rotate (it authenticates with or "
                "revokes the current credential): write the working value there first"
                + self._expected(first)
            )
        return current

    def check_not_stale(self, current: Current, list_ids: Callable[[], list[str]]) -> None:
        """Refuse a first target whose credential id the service no longer has.

        `list_ids` (the provider's listing) is called only when the stored value
        names its credential id, so other providers make no extra request.
        """
        id_field = self.shape.id_field
        if id_field is None or current.secret is None or id_field not in current.secret:
            return
        held = current.secret[id_field]
        existing = list_ids()
        if held not in existing:
            first = self.targets()[0]
            raise StaleStore(
                f"{first.store}:{first.path} holds credential {held}, which the service no "
                f"longer has (it has: {', '.join(existing) or 'none'}): the store is stale; "
                "put the working credential there, then run again"
            )

    def _check_shape(self, location: Location, found: StoredVersion) -> None:
        missing = fields.lacking(found.secret, location.fields, self.shape.required)
        if not missing:
            return
        present = sorted(n for n in found.secret if n != fields.TEXT)
        held = (f"fields {', '.join(present)}" if present else
                "a plain string" if fields.is_text(found.secret) else "no fields")
        names = [fields.stored_name(location.fields, f) for f in missing]
        unplaced = [f for f in self.shape.fields
                    if fields.stored_name(location.fields, f) not in found.secret]
        suggestion = fields.suggest(present, unplaced)
        fit = {**location.fields, **suggestion}
        hint = ("; a mapping that would fit: fields: {"
                + ", ".join(f"{k}: {v}" for k, v in fit.items()) + "}") if suggestion else (
                "; map each provider field to the name the application reads with `fields:`")
        raise StoreShapeMismatch(
            f"{location.store}:{location.path} (version {found.version}) holds {held}, "
            f"without {', '.join(names)} for {self.credential.provider} field(s) "
            f"{', '.join(missing)}{hint}"
        )

    def _expected(self, location: Location) -> str:
        names = [fields.stored_name(location.fields, f) for f in self.shape.required]
        return f" (fields {', '.join(names)})"

    # ---- promote -----------------------------------------------------------------

    def deliver(self, secret: Secret, metadata: dict[str, str]) -> dict[str, tuple[int, int | None]]:
        """Merge `secret` into every target; per target, (version written, version replaced).

        A target that already holds the secret's fields is left as it is (a
        retried promote). If a write fails, the targets written before it get
        their previous fields back, and the failure is raised.
        """
        done: list[Location] = []
        results: dict[str, tuple[int, int | None]] = {}
        try:
            for location in self.targets():
                done.append(location)
                results[f"{location.store}:{location.path}"] = self._merge_write(
                    location, secret, metadata)
        except Exception:
            self.restore(done, secret)
            raise
        return results

    def _merge_write(self, location: Location, secret: Secret,
                     metadata: dict[str, str]) -> tuple[int, int | None]:
        store = self.store(location)
        if not store.readable:
            return store.write(location.path, fields.merged(None, secret, location.fields),
                               metadata), None
        attempt = 0
        while True:
            attempt += 1
            found = store.read(location.path)
            if found is not None and self.view(location, found) == secret:
                replaced = found.metadata.get("replaces_version")
                return found.version, int(replaced) if replaced else None
            meta = dict(metadata)
            if found is not None:
                meta["replaces_version"] = str(found.version)
            data = fields.merged(found.secret if found else None, secret, location.fields)
            try:
                written = store.write(location.path, data, meta, cas=found.version if found else 0)
            except StoreConflict:
                if attempt >= MERGE_ATTEMPTS:
                    raise
                continue
            return written, found.version if found else None

    def restore(self, done: list[Location], secret: Secret) -> None:
        """Give each target that holds `secret` the fields it held before, other fields as
        they are now; a path this delivery created is removed again."""
        for location in done:
            store = self.store(location)
            if not store.readable:
                continue  # write-only: the old value cannot be read back to restore it
            found = store.read(location.path)
            if found is None or self.view(location, found) != secret:
                continue  # not delivered, or changed since: not ours to undo
            replaced = found.metadata.get("replaces_version")
            if not replaced and found.version > 1:
                # The version was written (check-and-set on the one before it) but its
                # metadata was not: a store that writes them in two calls (Vault KV) failed
                # in between. The path has older versions, so it is not ours to destroy.
                replaced = str(found.version - 1)
            if not replaced:
                ours = {fields.stored_name(location.fields, f) for f in secret}
                if set(found.secret) <= ours:
                    store.destroy(location.path)
                continue
            old = self.view(location, store.read(location.path, version=int(replaced)))
            if old is not None:
                store.write(location.path, fields.merged(found.secret, old, location.fields),
                            {"restores_version": replaced}, cas=found.version)
