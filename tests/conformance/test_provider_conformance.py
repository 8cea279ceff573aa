"""The conformance suite: every provider, through the real rotation activities, against its server.

Each provider's harness (see harness.py) gives a fresh subject on its real or
faithful server. The suite runs the protocol's activities as the worker would,
with a real OpenBao KV store for staging and delivery and a real audit log,
and checks the server's state directly through the harness, never through
the provider under test.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pytest
from fakes.fault_proxy import FaultProxy
from harness import PROVIDERS, WITH_ID_FIELD, WITH_QUOTA, ProviderHarness, Subject, fixture_name
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from keyturn.activities.recording import StepRecorder
from keyturn.activities.steps import RotationSteps
from keyturn.audit import open_log
from keyturn.fingerprint import fingerprint
from keyturn.providers.base import ProviderContext
from keyturn.runbook.plan_model import CredentialPlan, Location, StorePlan
from keyturn.secret import Secret
from keyturn.stores.vault_kv import VaultKvStore
from keyturn.workflows.models import RunContext, StepInput, SupplyNotice

OTHER_FIELDS = {"region": "eu-west-1", "pool_size": 12, "APP_NOTE": "kept as written"}
"""Fields an application keeps beside its credential at a shared path."""

PROTOCOL = ["precheck", "create", "verify_new", "promote", "revoke_old", "revoke_old",
            "confirm_revoked"]


# Database providers also run in single-user mode (one password slot, changed in place).
HARNESSES = [fixture_name(p) for p in PROVIDERS] + [
    "harness_postgres_password_single",
    "harness_mysql_password_single",
]


@pytest.fixture(params=HARNESSES, ids=lambda name: name.removeprefix("harness_"))
def harness(request: pytest.FixtureRequest) -> ProviderHarness:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=WITH_ID_FIELD)
def id_harness(request: pytest.FixtureRequest) -> ProviderHarness:
    return request.getfixturevalue(fixture_name(request.param))


@pytest.fixture(params=WITH_QUOTA)
def quota_harness(request: pytest.FixtureRequest) -> ProviderHarness:
    found = request.getfixturevalue(fixture_name(request.param))
    assert found.quota, f"{request.param} has a quota, its harness must say so"
    return found


class Rotation:
    """One credential's rotation driven step by step through the real activities."""

    def __init__(self, harness: ProviderHarness, store: VaultKvStore, audit_path: Path,
                 *, shared: bool = False) -> None:
        self.harness = harness
        self.provider = harness.provider()
        self.store = store
        self.audit_path = audit_path
        self.steps = RotationSteps(
            provider_for=lambda name: self.provider,
            store_for=lambda plan: store,
            recorder=StepRecorder(open_log(audit_path)),
        )
        self.subject: Subject = harness.new_subject()
        run_id = f"conformance-{uuid.uuid4().hex[:10]}"
        cls = type(self.provider)
        # shared: the application's path holds the credential under its own names,
        # beside fields keyturn must leave alone.
        fields = cls.shape(self.target).fields
        self.mapping = {f: f"APP_{f.upper()}" for f in fields} if shared else {}
        self.deliver = Location(store="vault", path=f"conformance/{run_id}", fields=self.mapping)
        self.inp = StepInput(
            context=RunContext(
                run_id=run_id,
                runbook="conformance",
                requested_by="alice",
                stores={"vault": StorePlan(name="vault", type="vault_kv")},
            ),
            credential=CredentialPlan(
                id="cred",
                tier="tier1",
                provider=cls.name,
                target=self.subject.target,
                family=cls.family,
                supplied=bool(getattr(cls, "supplied", False)),
                deliver=[self.deliver],
                staging=Location(store="vault", path=f"keyturn/staging/{run_id}/cred"),
            ),
        )
        # What an earlier rotation or the operator left: the working value, delivered.
        self.initial_data = {self.mapping.get(k, k): v for k, v in self.subject.initial.items()}
        if shared:
            self.initial_data.update(OTHER_FIELDS)
        store.write(self.deliver.path, self.initial_data, {"credential_id": self.subject.initial_id})

    @property
    def target(self):
        return self.provider.target_model.model_validate(self.subject.target)

    async def call(self, step: str, attempt: int = 1, **changes):
        self.inp = self.inp.model_copy(update=changes)
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, attempt=attempt, activity_type=step)
        return env.run(getattr(self.steps, step), self.inp)  # the steps are sync activities

    async def precheck(self):
        found = await self.call("precheck")
        self.inp = self.inp.model_copy(update={
            "old_credential_ids": found.old_credential_ids,
            "existing_credential_ids": found.existing_credential_ids,
        })
        return found

    def supply(self) -> None:
        """What `keyturn supply` does for a supplied provider: value to staging, notice to run."""
        secret = self.harness.supply(self.subject)
        staging = self.inp.credential.staging
        version = self.store.write(staging.path, secret, {"fingerprint": fingerprint(secret)})
        notice = SupplyNotice(credential="cred", principal="alice",
                              fingerprint=fingerprint(secret), staging_version=version)
        self.inp = self.inp.model_copy(update={"supplied": notice})

    async def create(self, attempt: int = 1):
        if self.inp.credential.supplied and self.inp.supplied is None:
            self.supply()
        created = await self.call("create", attempt)
        self.inp = self.inp.model_copy(update={"new_credential_id": created.credential_id})
        return created

    def staged(self) -> Secret:
        found = self.store.read(self.inp.credential.staging.path)
        assert found is not None, "nothing staged"
        return found.secret

    def delivered(self) -> Secret:
        """The provider's view of the delivered value (mapped fields under their own names)."""
        found = self.store.read(self.deliver.path)
        assert found is not None
        names = {stored: field for field, stored in self.mapping.items()}
        return {names.get(k, k): v for k, v in found.secret.items() if k not in OTHER_FIELDS}

    def credential_ids(self, new: Secret | None = None) -> set[str]:
        ctx = ProviderContext(old_secret=self.subject.initial, new_secret=new, credential="cred")
        return set(self.provider.list_credential_ids(self.target, ctx))

    def audit(self) -> list[dict]:
        lines = self.audit_path.read_text().splitlines() if self.audit_path.exists() else []
        return [r for r in map(json.loads, lines) if r["run"] == self.inp.context.run_id]


@pytest.fixture
def vault_store(openbao, monkeypatch) -> VaultKvStore:
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    return VaultKvStore("vault", {"address": openbao.url, "mount": "secret"})


@pytest.fixture
def rotation(harness, vault_store, tmp_path):
    return Rotation(harness, vault_store, tmp_path / "audit.jsonl")


def assert_no_secret_in(harness: ProviderHarness, text: str, *secrets: Secret) -> None:
    """No secret field's value in `text` (fields the harness declares public are ids)."""
    public = getattr(harness, "public_fields", frozenset())
    for secret in secrets:
        for name, value in secret.items():
            if name not in public and len(value) >= 8:
                assert value not in text, f"the value of secret field {name!r} leaked"


async def test_full_protocol_replaces_the_credential_and_proves_the_old_one_dead(rotation):
    harness, subject = rotation.harness, rotation.subject
    pre = await rotation.precheck()
    assert subject.initial_id in pre.old_credential_ids
    created = await rotation.create()
    assert created.fingerprint == fingerprint(rotation.staged())
    await rotation.call("verify_new")
    promoted = await rotation.call("promote")
    await rotation.call("revoke_old", promoted=True, previous_version=promoted.previous_version,
                        phase="disable")
    await rotation.call("revoke_old", phase="delete")
    await rotation.call("confirm_revoked")

    new = rotation.delivered()
    assert fingerprint(new) == created.fingerprint
    assert harness.works(subject, new), "the delivered credential does not work"
    assert not harness.works(subject, subject.initial), "the old credential still works"
    ids = rotation.credential_ids(new)
    assert subject.initial_id not in ids and created.credential_id in ids
    assert rotation.store.read(rotation.inp.credential.staging.path) is None
    records = rotation.audit()
    assert [r["step"] for r in records if r["outcome"] == "succeeded"] == PROTOCOL
    assert_no_secret_in(harness, rotation.audit_path.read_text(), subject.initial, new)


async def test_a_mapped_shared_path_gets_only_its_mapped_fields_replaced(harness, vault_store,
                                                                        tmp_path):
    rotation = Rotation(harness, vault_store, tmp_path / "audit.jsonl", shared=True)
    subject = rotation.subject
    await rotation.precheck()
    created = await rotation.create()
    await rotation.call("verify_new")
    promoted = await rotation.call("promote")
    await rotation.call("revoke_old", promoted=True, previous_version=promoted.previous_version,
                        phase="disable")
    await rotation.call("revoke_old", phase="delete")
    await rotation.call("confirm_revoked")

    found = vault_store.read(rotation.deliver.path)
    new = rotation.delivered()
    assert fingerprint(new) == created.fingerprint
    assert set(found.secret) == set(rotation.initial_data)  # nothing renamed, added or dropped
    assert {k: found.secret[k] for k in OTHER_FIELDS} == OTHER_FIELDS  # types kept too
    assert harness.works(subject, new), "the delivered credential does not work"
    assert not harness.works(subject, subject.initial), "the old credential still works"
    confirmed = next(r for r in rotation.audit() if r["step"] == "confirm_revoked")
    assert confirmed["details"]["old_fingerprint"] == fingerprint(subject.initial)


async def test_a_path_in_the_applications_own_shape_is_refused_before_any_change(rotation):
    harness, subject = rotation.harness, rotation.subject
    app_shape = {f"APP_{k.upper()}": v for k, v in subject.initial.items()} | OTHER_FIELDS
    before = rotation.store.write(rotation.deliver.path, app_shape, {})
    ids = rotation.credential_ids()
    with pytest.raises(ApplicationError) as failure:
        await rotation.precheck()
    assert failure.value.type == "StoreShapeMismatch" and failure.value.non_retryable
    message = failure.value.message
    assert f"vault:{rotation.deliver.path}" in message and "APP_NOTE, " in message
    suggested = ", ".join(f"{k}: APP_{k.upper()}" for k in subject.initial)
    assert f"fields: {{{suggested}}}" in message
    assert_no_secret_in(harness, message, subject.initial)
    assert rotation.credential_ids() == ids
    assert rotation.store.read(rotation.deliver.path).version == before
    assert harness.works(subject, subject.initial)


async def test_a_stale_store_is_refused_before_any_change(id_harness, vault_store, tmp_path):
    rotation = Rotation(id_harness, vault_store, tmp_path / "audit.jsonl")
    id_field = rotation.provider.shape(rotation.target).id_field
    stale = {**rotation.subject.initial, id_field: "no-such-credential-0000"}
    rotation.store.write(rotation.deliver.path, stale, {})
    ids = rotation.credential_ids()
    with pytest.raises(ApplicationError) as failure:
        await rotation.precheck()
    assert failure.value.type == "StaleStore"
    assert "no-such-credential-0000" in failure.value.message
    assert rotation.subject.initial_id in failure.value.message
    assert rotation.credential_ids() == ids


@pytest.mark.parametrize("name", ["harness_npm_token", "harness_github_pat",
                                  "harness_postgres_password_single",
                                  "harness_mysql_password_single"])
async def test_a_provider_that_needs_the_current_value_refuses_an_empty_path(
        name, request, vault_store, tmp_path):
    rotation = Rotation(request.getfixturevalue(name), vault_store, tmp_path / "audit.jsonl")
    assert rotation.provider.shape(rotation.target).reads_current
    rotation.store.destroy(rotation.deliver.path)
    with pytest.raises(ApplicationError) as failure:
        await rotation.precheck()
    assert failure.value.type == "StoreShapeMismatch"
    assert "holds no current value" in failure.value.message
    assert [r["outcome"] for r in rotation.audit()] == ["failed"]


async def test_a_store_outage_at_confirm_leaves_the_new_credential_delivered(
        harness, openbao, monkeypatch, tmp_path):
    proxy = FaultProxy(openbao.url).start()
    try:
        monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
        direct = VaultKvStore("vault", {"address": openbao.url})
        rotation = Rotation(harness, VaultKvStore("vault", {"address": proxy.url}),
                            tmp_path / "audit.jsonl", shared=True)
        await rotation.precheck()
        await rotation.create()
        await rotation.call("verify_new")
        promoted = await rotation.call("promote")
        await rotation.call("revoke_old", promoted=True,
                            previous_version=promoted.previous_version, phase="disable")
        await rotation.call("revoke_old", phase="delete")
        with proxy.failing(503), pytest.raises(ApplicationError) as failure:
            await rotation.call("confirm_revoked")
        assert not failure.value.non_retryable  # Temporal retries it once the store is back
        rotation.store = direct
        new = rotation.delivered()
        assert harness.works(rotation.subject, new), "the delivered credential does not work"
        steps = [(r["step"], r["outcome"]) for r in rotation.audit()]
        assert steps[-1] == ("confirm_revoked", "error")
    finally:
        proxy.stop()


@pytest.mark.parametrize("name", ["harness_aws_iam_access_key", "harness_github_deploy_key"])
async def test_a_retried_promote_writes_nothing_twice(name, request, vault_store, tmp_path):
    rotation = Rotation(request.getfixturevalue(name), vault_store, tmp_path / "audit.jsonl",
                        shared=True)
    await rotation.precheck()
    await rotation.create()
    await rotation.call("verify_new")
    first = await rotation.call("promote")
    again = await rotation.call("promote", attempt=2)  # the worker died before reporting
    assert again.versions == first.versions  # found delivered, not written again
    assert vault_store.read(rotation.deliver.path).version == first.versions[
        f"vault:{rotation.deliver.path}"]
    assert rotation.harness.works(rotation.subject, rotation.delivered())


async def test_a_create_retried_after_a_killed_attempt_leaves_one_new_credential(rotation):
    pre = await rotation.precheck()
    old_ids = set(pre.old_credential_ids)
    if rotation.inp.credential.supplied:
        first = await rotation.create()
        again = await rotation.create(attempt=2)
        assert again.credential_id == first.credential_id
    else:
        # The killed attempt made a credential at the service but died before staging it.
        ctx = ProviderContext(old_secret=rotation.subject.initial, credential="cred")
        rotation.provider.create(rotation.target, ctx)
        created = await rotation.create(attempt=2)
        assert created.fingerprint == fingerprint(rotation.staged())
    new_ids = rotation.credential_ids(rotation.staged()) - old_ids
    assert new_ids == {rotation.inp.new_credential_id}
    await rotation.call("verify_new")
    await rotation.call("rollback", phase="test over")
    assert rotation.harness.works(rotation.subject, rotation.subject.initial)


async def test_a_failed_verify_rolls_back_and_leaves_the_old_credential_working(rotation):
    harness, subject = rotation.harness, rotation.subject
    await rotation.precheck()
    created = await rotation.create()
    staging = rotation.inp.credential.staging
    staged = rotation.store.read(staging.path)
    rotation.store.write(staging.path, harness.broken(subject, staged.secret), staged.metadata)

    with pytest.raises(ApplicationError) as failure:
        await rotation.call("verify_new")
    assert failure.value.non_retryable
    assert "'cred'" in failure.value.message and "step verify_new" in failure.value.message
    await rotation.call("rollback", phase="verify_new failed")

    assert created.credential_id not in rotation.credential_ids()
    assert harness.works(subject, subject.initial)
    assert rotation.store.read(staging.path) is None
    assert rotation.delivered() == subject.initial
    steps = [(r["step"], r["outcome"]) for r in rotation.audit()]
    assert ("verify_new", "failed") in steps and ("rollback", "succeeded") in steps


async def test_quota_makes_room_from_an_inactive_credential(quota_harness, openbao, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    rotation = Rotation(quota_harness, VaultKvStore("vault", {"address": openbao.url}),
                        tmp_path / "audit.jsonl")
    added = quota_harness.fill_to_quota(rotation.subject, active=False)
    assert len(rotation.credential_ids()) == quota_harness.quota
    pre = await rotation.precheck()
    assert len(pre.removed_inactive) == 1 and pre.removed_inactive[0] in added
    assert len(rotation.credential_ids()) == quota_harness.quota - 1
    removed = next(r for r in rotation.audit() if r["step"] == "precheck")
    assert removed["details"]["removed_inactive"] == pre.removed_inactive


async def test_quota_of_active_credentials_is_refused_clearly(quota_harness, openbao, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    rotation = Rotation(quota_harness, VaultKvStore("vault", {"address": openbao.url}),
                        tmp_path / "audit.jsonl")
    quota_harness.fill_to_quota(rotation.subject, active=True)
    with pytest.raises(ApplicationError) as failure:
        await rotation.precheck()
    assert failure.value.type == "QuotaExceeded" and failure.value.non_retryable
    assert "step precheck" in failure.value.message
    assert len(rotation.credential_ids()) == quota_harness.quota


async def test_a_permanent_provider_error_fails_fast_naming_credential_and_step(rotation):
    with rotation.harness.fault("permanent"), pytest.raises(ApplicationError) as failure:
        await rotation.precheck()
    assert failure.value.non_retryable
    assert "credential 'cred'" in failure.value.message
    assert "step precheck" in failure.value.message
    assert_no_secret_in(rotation.harness, failure.value.message, rotation.subject.initial)
    assert [r["outcome"] for r in rotation.audit()] == ["failed"]


async def test_a_transient_provider_error_is_retried(rotation):
    with rotation.harness.fault("transient"), pytest.raises(ApplicationError) as failure:
        await rotation.precheck()
    assert not failure.value.non_retryable, failure.value.message
    assert "step precheck" in failure.value.message
    pre = await rotation.call("precheck", attempt=2)  # the retry, once the service recovers
    assert rotation.subject.initial_id in pre.old_credential_ids
    assert [r["outcome"] for r in rotation.audit()] == ["error", "succeeded"]
