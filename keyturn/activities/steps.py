"""The per-credential protocol steps as Temporal activities.

Each activity does one step against a provider and the stores, appends the
step's audit record, and returns references only. Secret values are read from
and written to stores inside the activity and never returned, logged or put
into an error message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from keyturn.activities.delivery import Delivery
from keyturn.activities.recording import StepRecorder
from keyturn.fingerprint import fingerprint
from keyturn.providers.base import NewCredential, Provider, ProviderContext
from keyturn.randomness import OS_RANDOM, RandomSource
from keyturn.runbook.plan_model import Location, StorePlan
from keyturn.secret import Secret
from keyturn.stores.base import Store, StoredVersion
from keyturn.stores.errors import NothingStaged, PermanentStoreError
from keyturn.stores.registry import with_capabilities
from keyturn.workflows.models import (
    CreateResult,
    PrecheckResult,
    PromoteResult,
    StepInput,
)


class RollbackRefused(PermanentStoreError):
    """Rolling back would delete a credential that a consumer's store already holds."""


class RotationSteps:
    """Activities for the rotation protocol; providers and stores come from injected factories."""

    def __init__(
        self,
        *,
        provider_for: Callable[[str], Provider],
        store_for: Callable[[StorePlan], Store],
        recorder: StepRecorder,
    ) -> None:
        self.provider_for = provider_for
        self.store_for = with_capabilities(store_for)
        self._rec = recorder

    # ---- plumbing ---------------------------------------------------------------------

    def _provider(self, inp: StepInput) -> tuple[Provider, Any]:
        provider = self.provider_for(inp.credential.provider)
        return provider, provider.target_model.model_validate(inp.credential.target)

    def _store(self, inp: StepInput, location: Location) -> Store:
        return self.store_for(inp.context.stores[location.store])

    def _staged(self, inp: StepInput) -> tuple[Store, StoredVersion | None]:
        """The staging store and what it holds for this credential (None if nothing)."""
        staging = inp.credential.staging
        store = self._store(inp, staging)
        return store, store.read(staging.path)

    def delivery(self, inp: StepInput) -> Delivery:
        """The credential's deliver targets, read and written in their consumers' shape."""
        provider, target = self._provider(inp)
        return Delivery(inp.credential, inp.context.stores, self.store_for,
                        provider.shape(target))

    def _delivered(self, inp: StepInput, version: int | None = None) -> Secret | None:
        """The provider's fields at the first deliver target (latest, or `version`)."""
        return self.delivery(inp).read(version)

    def _random(self, inp: StepInput) -> RandomSource:
        """The first random source the runbook's stores offer (Vault, KMS), else the OS CSPRNG."""
        staging = inp.credential.staging.store
        for name in sorted(inp.context.stores, key=lambda n: n != staging):
            source = self.store_for(inp.context.stores[name]).random_source()
            if source is not None:
                return source
        return OS_RANDOM

    def _context(
        self, inp: StepInput, *, old: Secret | None = None, new: Secret | None = None
    ) -> ProviderContext:
        return ProviderContext(
            old_secret=old, new_secret=new, random=self._random(inp), credential=inp.credential.id
        )

    def _current_context(self, inp: StepInput) -> ProviderContext:
        """Before promote: the delivered value is the old one and staging holds the new one.

        After promote: the delivered value is the new one; the old one is the
        version precheck read (runs from before that was recorded: the version
        promote replaced), whatever else was written to the path since.
        """
        if inp.promoted:
            old = None
            old_version = inp.old_version if inp.old_version is not None else inp.previous_version
            if old_version is not None:
                old = self._delivered(inp, old_version)
            return self._context(inp, old=old, new=self._delivered(inp))
        _, staged = self._staged(inp)
        return self._context(inp, old=self._delivered(inp), new=staged.secret if staged else None)

    def _metadata(self, inp: StepInput, credential_id: str, fp: str) -> dict[str, str]:
        return {
            "keyturn_run": inp.context.run_id,
            "credential": inp.credential.id,
            "credential_id": credential_id,
            "fingerprint": fp,
        }

    # ---- steps ------------------------------------------------------------------------

    @activity.defn(name="precheck")
    def precheck(self, inp: StepInput) -> PrecheckResult:
        """Read everything later steps need and refuse, before any change, what cannot finish."""
        with self._rec.step(inp, "precheck") as details:
            provider, target = self._provider(inp)
            if inp.credential.strategy == "revoke-first":
                activity.logger.warning(
                    "%s: strategy revoke-first: the old credential is disabled BEFORE its "
                    "replacement exists", inp.credential.id)
            delivery = self.delivery(inp)
            current = delivery.check_current()
            ctx = self._context(inp, old=current.secret)
            delivery.check_not_stale(current, lambda: provider.list_credential_ids(target, ctx))
            found = provider.precheck(target, ctx)
            existing = provider.list_credential_ids(target, ctx)
            details.update(
                old_credential_ids=found.old_credential_ids,
                removed_inactive=found.removed_inactive,
                existing_credential_ids=existing,
                strategy=inp.credential.strategy,
                old_fingerprint=fingerprint(current.secret) if current.secret else None,
                old_version=current.version,
            )
            return PrecheckResult(
                old_credential_ids=found.old_credential_ids,
                removed_inactive=found.removed_inactive,
                existing_credential_ids=existing,
                old_version=current.version,
            )

    @activity.defn(name="create")
    def create(self, inp: StepInput) -> CreateResult:
        """Create the replacement and stage it; a retried create reuses or cleans up, never doubles."""
        with self._rec.step(inp, "create") as details:
            if inp.supplied is not None:
                result, generated_by = self._identify_supplied(inp)
            else:
                result, generated_by = self._create_new(inp)
            staging = inp.credential.staging
            details.update(
                credential_id=result.credential_id,
                fingerprint=result.fingerprint,
                generated_by=generated_by,
                staging=f"{staging.store}:{staging.path}@{result.staging_version}",
                removed_orphans=result.removed_orphans,
            )
            return result

    def _create_new(self, inp: StepInput) -> tuple[CreateResult, str]:
        provider, target = self._provider(inp)
        store, staged = self._staged(inp)
        ctx = self._context(
            inp, old=self._delivered(inp), new=staged.secret if staged else None
        )
        existing_ids = provider.list_credential_ids(target, ctx)
        if staged and staged.metadata.get("credential_id") in existing_ids:
            reused = CreateResult(
                credential_id=staged.metadata["credential_id"],
                fingerprint=staged.metadata["fingerprint"],
                staging_version=staged.version,
            )
            return reused, staged.metadata.get("generated_by", inp.credential.provider)
        known = {*inp.old_credential_ids, *inp.existing_credential_ids}
        orphans = [i for i in existing_ids if i not in known]
        if orphans and activity.info().attempt > 1:
            for orphan in orphans:  # made by an attempt that died before staging it
                provider.delete(target, orphan, ctx)
        else:
            orphans = []
        new = provider.create(target, ctx)
        generated_by = new.generated_by or inp.credential.provider
        version = self._stage(inp, store, new, generated_by, ctx)
        created = CreateResult(
            credential_id=new.credential_id,
            fingerprint=fingerprint(new.secret),
            staging_version=version,
            removed_orphans=orphans,
        )
        return created, generated_by

    def _stage(
        self, inp: StepInput, store: Store, new: NewCredential, generated_by: str,
        ctx: ProviderContext,
    ) -> int:
        """Write the new value to staging; if that fails, the new credential is deleted."""
        metadata = self._metadata(inp, new.credential_id, fingerprint(new.secret))
        metadata["generated_by"] = generated_by
        provider, target = self._provider(inp)
        try:
            return store.write(inp.credential.staging.path, new.secret, metadata)
        except Exception:
            provider.delete(target, new.credential_id, ctx)
            raise

    def _identify_supplied(self, inp: StepInput) -> tuple[CreateResult, str]:
        """A supplied value: check it is the one the operator announced, and name its credential."""
        notice = inp.supplied
        assert notice is not None
        staging = inp.credential.staging
        store, staged = self._staged(inp)
        if staged is None or fingerprint(staged.secret) != notice.fingerprint:
            found = fingerprint(staged.secret) if staged else "nothing"
            raise NothingStaged(
                f"staging {staging.store}:{staging.path} holds {found}, not the supplied value "
                f"{notice.fingerprint}: run `keyturn supply` again"
            )
        generated_by = f"supplied by {notice.principal}"
        if staged.metadata.get("credential_id"):
            identified = staged.metadata["credential_id"]
            version = staged.version
        else:
            provider, target = self._provider(inp)
            ctx = self._context(inp, old=self._delivered(inp), new=staged.secret)
            new = provider.create(target, ctx)
            identified = new.credential_id
            version = self._stage(
                inp, store, NewCredential(identified, staged.secret), generated_by, ctx
            )
        result = CreateResult(
            credential_id=identified, fingerprint=notice.fingerprint, staging_version=version
        )
        return result, generated_by

    @activity.defn(name="verify_new")
    def verify_new(self, inp: StepInput) -> None:
        with self._rec.step(inp, "verify_new") as details:
            provider, target = self._provider(inp)
            _, staged = self._staged(inp)
            if staged is None:
                staging = inp.credential.staging
                raise NothingStaged(f"nothing staged at {staging.store}:{staging.path}")
            ctx = self._context(inp, old=self._delivered(inp), new=staged.secret)
            provider.verify(target, staged.secret, ctx)
            details.update(credential_id=inp.new_credential_id, fingerprint=fingerprint(staged.secret))

    @activity.defn(name="promote")
    def promote(self, inp: StepInput) -> PromoteResult:
        """Merge the staged value into every deliver target (idempotent), then clear staging.

        If a target refuses the write, the targets written before it get their
        previous fields back before the step fails, so consumers keep reading
        the old, still working credential.
        """
        with self._rec.step(inp, "promote") as details:
            staging = inp.credential.staging
            staging_store, staged = self._staged(inp)
            delivery = self.delivery(inp)
            if staged is None:
                if not self._holds_new(inp, delivery):
                    raise NothingStaged(
                        f"staged value for {inp.credential.id} is gone and "
                        f"{delivery.targets()[0].store}:{delivery.targets()[0].path} does not "
                        "hold the new credential"
                    )
                delivered = {f"{t.store}:{t.path}": (self._version_of(delivery, t), None)
                             for t in delivery.targets()}
            else:
                delivered = delivery.deliver(staged.secret, dict(staged.metadata))
                try:
                    staging_store.destroy(staging.path)
                except Exception:
                    delivery.restore(delivery.targets(), staged.secret)
                    raise
            versions = {where: written for where, (written, _) in delivered.items()}
            details.update(
                credential_id=inp.new_credential_id,
                fingerprint=staged.metadata["fingerprint"] if staged else None,
                delivered=[f"{k}@{v}" for k, v in versions.items()],
            )
            return PromoteResult(versions=versions,
                                 previous_version=next(iter(delivered.values()))[1])

    @staticmethod
    def _version_of(delivery: Delivery, location: Location) -> int:
        """The latest version at `location`; 0 for a write-only store or an empty path."""
        store = delivery.store(location)
        found = store.read(location.path) if store.readable else None
        return found.version if found else 0

    def _holds_new(self, inp: StepInput, delivery: Delivery) -> bool:
        """After staging was cleared (a retried promote): does the first target hold the new
        credential? Its id field says so, else the metadata of the version holding it."""
        first = delivery.targets()[0]
        found = delivery.store(first).read(first.path)
        if found is None:
            return False
        if found.metadata.get("credential_id") == inp.new_credential_id:
            return True
        view = delivery.view(first, found) or {}
        id_field = delivery.shape.id_field
        return id_field is not None and view.get(id_field) == inp.new_credential_id

    @activity.defn(name="revoke_old")
    def revoke_old(self, inp: StepInput) -> None:
        """phase "disable": make the old credential unusable; phase "delete": remove it."""
        with self._rec.step(inp, "revoke_old", inp.phase) as details:
            provider, target = self._provider(inp)
            ctx = self._current_context(inp)
            for credential_id in inp.old_credential_ids:
                if inp.phase == "disable":
                    provider.disable(target, credential_id, ctx)
                else:
                    provider.delete(target, credential_id, ctx)
            details.update(phase=inp.phase, credential_ids=inp.old_credential_ids)

    @activity.defn(name="confirm_revoked")
    def confirm_revoked(self, inp: StepInput) -> None:
        """Prove the old credential is gone and, when the store still has its value, rejected."""
        with self._rec.step(inp, "confirm_revoked") as details:
            provider, target = self._provider(inp)
            ctx = self._current_context(inp)
            old_secret = ctx.old_secret
            for credential_id in inp.old_credential_ids:
                provider.confirm_revoked(target, credential_id, ctx)
            details.update(
                credential_ids=inp.old_credential_ids,
                proof="absent at provider" + ("; old secret rejected" if old_secret else ""),
                old_fingerprint=fingerprint(old_secret) if old_secret else None,
            )

    @activity.defn(name="rollback")
    def rollback(self, inp: StepInput) -> None:
        """Undo a rotation that failed up to promote: the old credential is left working and the
        deliver targets hold its fields again."""
        with self._rec.step(inp, "rollback") as details:
            provider, target = self._provider(inp)
            staging = inp.credential.staging
            store, staged = self._staged(inp)
            ctx = self._current_context(inp)
            new_ids = {i for i in [inp.new_credential_id] if i}
            if staged and staged.metadata.get("keyturn_run") == inp.context.run_id \
                    and staged.metadata.get("credential_id"):
                new_ids.add(staged.metadata["credential_id"])
            delivery = self.delivery(inp)
            if staged is not None:  # a promote that died half-way: consumers get the old back
                delivery.restore(delivery.targets(), staged.secret)
            elif inp.new_credential_id and self._holds_new(inp, delivery):
                first = delivery.targets()[0]
                raise RollbackRefused(
                    f"{first.store}:{first.path} already holds the new credential "
                    f"{inp.new_credential_id}, so it is not deleted; both credentials work, "
                    "finish the rotation by hand or run it again"
                )
            for credential_id in sorted(new_ids - set(inp.old_credential_ids)):
                provider.delete(target, credential_id, ctx)
            store.destroy(staging.path)
            reenabled = []
            if inp.credential.strategy == "revoke-first":
                existing = set(provider.list_credential_ids(target, ctx))
                for credential_id in inp.old_credential_ids:
                    if credential_id in existing:
                        provider.enable(target, credential_id, ctx)
                        reenabled.append(credential_id)
            details.update(
                reason=inp.phase,
                deleted_new=sorted(new_ids),
                staging_cleared=f"{staging.store}:{staging.path}",
                reenabled=reenabled,
            )
