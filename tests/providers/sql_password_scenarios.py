"""Behaviour both SQL password providers must show, against a real throwaway server.

Not collected itself: test_postgres_password.py and test_mysql_password.py
subclass `SqlPasswordScenarios` and give it the fixtures `single` and
`alternating` (conformance harnesses in each mode, see harness_sql.py). Every
assertion about the server's state asks the server directly (`works`,
`can_login`), never the provider under test.
"""

from __future__ import annotations

import re
import secrets

import pytest
from conformance.harness_sql import SqlPasswordHarness

from keyturn.providers.base import ProviderContext
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.sql_password import credential_id
from keyturn.randomness import RandomSource

ID_PATTERN = re.compile(r"^[a-z0-9_]+@sha256:[0-9a-f]{16}$")


class CountingRandom:
    """A RandomSource that records its use, to check generated_by."""

    name = "test-random"

    def __init__(self) -> None:
        self.calls = 0

    def token_bytes(self, n: int) -> bytes:
        self.calls += 1
        return secrets.token_bytes(n)


def ctx(old=None, new=None, random: RandomSource | None = None) -> ProviderContext:
    if random is None:
        return ProviderContext(old_secret=old, new_secret=new)
    return ProviderContext(old_secret=old, new_secret=new, random=random)


def assert_clean(error: BaseException, *values: str) -> None:
    """No value in the error's message, nor in any exception it shows as its cause."""
    shown: BaseException | None = error
    while shown is not None:
        for value in values:
            assert value not in str(shown), "a secret value leaked into an error message"
        shown = shown.__cause__ or (None if shown.__suppress_context__ else shown.__context__)


class SqlPasswordScenarios:
    """Scenarios run once per provider by the test modules that subclass this."""

    # -- single-user mode ---------------------------------------------------------------

    def test_single_rotation_replaces_the_password_in_place(self, single: SqlPasswordHarness):
        provider, subject = single.provider(), single.new_subject()
        old = subject.initial
        assert provider.precheck(subject.target, ctx(old)).old_credential_ids == [
            subject.initial_id
        ]
        assert provider.list_credential_ids(subject.target, ctx(old)) == [subject.initial_id]

        random = CountingRandom()
        new = provider.create(subject.target, ctx(old, random=random))
        assert random.calls and new.generated_by == "test-random"
        assert ID_PATTERN.match(new.credential_id) and new.credential_id != subject.initial_id
        assert new.credential_id == credential_id(old["username"], new.secret["password"])
        assert new.secret.keys() == old.keys() and new.secret["username"] == old["username"]
        assert single.works(subject, new.secret) and not single.works(subject, old)
        provider.verify(subject.target, new.secret, ctx(old, new.secret))
        assert provider.list_credential_ids(subject.target, ctx(old, new.secret)) == [
            new.credential_id
        ]

        after = ctx(old, new.secret)  # what revoke_old and confirm_revoked get after promote
        provider.disable(subject.target, subject.initial_id, after)
        provider.delete(subject.target, subject.initial_id, after)
        provider.delete(subject.target, subject.initial_id, after)
        assert single.works(subject, new.secret), "revoking the replaced password broke the new"
        provider.confirm_revoked(subject.target, subject.initial_id, after)
        provider.confirm_revoked(subject.target, subject.initial_id, ctx(new=new.secret))
        with pytest.raises(StillValid):
            provider.confirm_revoked(subject.target, subject.initial_id, ctx())

    def test_single_rollback_restores_the_old_password(self, single: SqlPasswordHarness):
        provider, subject = single.provider(), single.new_subject()
        old = subject.initial
        new = provider.create(subject.target, ctx(old))
        provider.delete(subject.target, new.credential_id, ctx(old, new.secret))
        assert single.works(subject, old) and not single.works(subject, new.secret)
        provider.delete(subject.target, new.credential_id, ctx(old))  # idempotent
        assert provider.list_credential_ids(subject.target, ctx(old)) == [subject.initial_id]

    def test_single_lost_create_is_listed_as_unknown_and_undone(
        self, single: SqlPasswordHarness
    ):
        provider, subject = single.provider(), single.new_subject()
        old = subject.initial
        provider.create(subject.target, ctx(old))  # its secret never reached a store
        unknown = f"{old['username']}@unknown"
        assert provider.list_credential_ids(subject.target, ctx(old)) == [unknown]
        provider.delete(subject.target, unknown, ctx(old))
        assert single.works(subject, old)

    def test_single_revoke_first_disables_and_enable_restores(self, single: SqlPasswordHarness):
        provider, subject = single.provider(), single.new_subject()
        old, old_id = subject.initial, subject.initial_id
        provider.disable(subject.target, old_id, ctx(old))
        assert not single.works(subject, old)
        assert single.server.can_login(old["username"]) is False
        assert provider.list_credential_ids(subject.target, ctx(old)) == [old_id]
        with pytest.raises(StillValid):  # only login is off: the password is still the same
            provider.confirm_revoked(subject.target, old_id, ctx(old))

        new = provider.create(subject.target, ctx(old))
        assert single.works(subject, new.secret), "create must turn login back on"
        provider.delete(subject.target, new.credential_id, ctx(old, new.secret))  # rollback
        provider.enable(subject.target, old_id, ctx(old, new.secret))
        assert single.works(subject, old) and not single.works(subject, new.secret)

    def test_single_precheck_needs_the_working_current_value(self, single: SqlPasswordHarness):
        provider, subject = single.provider(), single.new_subject()
        with pytest.raises(PermanentProviderError, match="single-user mode") as no_value:
            provider.precheck(subject.target, ctx())
        wrong = single.broken(subject, subject.initial)
        with pytest.raises(CredentialNotFound, match="refuses") as refused:
            provider.precheck(subject.target, ctx(wrong))
        with pytest.raises(StillValid) as alive:
            provider.confirm_revoked(subject.target, subject.initial_id, ctx(subject.initial))
        missing = {**subject.target, single.provider().target_model.single_field: "kt_nobody"}
        with pytest.raises(CredentialNotFound, match="does not exist"):
            provider.precheck(missing, ctx(subject.initial))
        with pytest.raises(CredentialNotFound):
            provider.create(missing, ctx(subject.initial))
        for error in (no_value.value, refused.value, alive.value):
            assert_clean(error, subject.initial["password"], wrong["password"])

    # -- alternating users ----------------------------------------------------------------

    def test_alternating_rotation_is_make_before_break(self, alternating: SqlPasswordHarness):
        provider, subject = alternating.provider(), alternating.new_subject()
        old = subject.initial
        blue, green = subject.target["users"]
        assert provider.precheck(subject.target, ctx(old)).old_credential_ids == [blue]
        assert provider.list_credential_ids(subject.target, ctx(old)) == [blue]

        new = provider.create(subject.target, ctx(old))
        assert new.credential_id == green and new.secret["username"] == green
        assert new.secret.keys() == old.keys()
        assert alternating.works(subject, old) and alternating.works(subject, new.secret)
        provider.verify(subject.target, new.secret, ctx(old, new.secret))
        after = ctx(old, new.secret)
        assert provider.list_credential_ids(subject.target, after) == [blue, green]

        provider.disable(subject.target, blue, after)
        assert not alternating.works(subject, old)
        assert alternating.server.can_login(blue) is False
        assert provider.list_credential_ids(subject.target, after) == [blue, green]
        provider.delete(subject.target, blue, after)
        provider.delete(subject.target, blue, after)
        assert provider.list_credential_ids(subject.target, after) == [green]
        assert alternating.works(subject, new.secret)
        provider.confirm_revoked(subject.target, blue, after)
        provider.confirm_revoked(subject.target, blue, ctx())

        # The next rotation goes back to blue, with a password nobody had before.
        again = provider.create(subject.target, ctx(new.secret))
        assert again.credential_id == blue
        assert alternating.works(subject, again.secret) and not alternating.works(subject, old)

    def test_alternating_rollback_retires_the_spare(self, alternating: SqlPasswordHarness):
        provider, subject = alternating.provider(), alternating.new_subject()
        blue, green = subject.target["users"]
        new = provider.create(subject.target, ctx(subject.initial))
        provider.delete(subject.target, green, ctx(subject.initial, new.secret))
        assert not alternating.works(subject, new.secret)
        assert alternating.server.can_login(green) is False
        assert alternating.works(subject, subject.initial)
        assert provider.list_credential_ids(subject.target, ctx(subject.initial)) == [blue]

    def test_alternating_revoke_first_disable_and_enable(self, alternating: SqlPasswordHarness):
        provider, subject = alternating.provider(), alternating.new_subject()
        blue = subject.target["users"][0]
        provider.disable(subject.target, blue, ctx(subject.initial))
        assert not alternating.works(subject, subject.initial)
        with pytest.raises(StillValid, match="only because login is off"):
            provider.confirm_revoked(subject.target, blue, ctx(subject.initial))
        provider.enable(subject.target, blue, ctx(subject.initial))
        assert alternating.works(subject, subject.initial)

    def test_alternating_which_user_is_in_use(self, alternating: SqlPasswordHarness):
        provider, subject = alternating.provider(), alternating.new_subject()
        blue, green = subject.target["users"]
        # No value in the store: the only user that may log in is the one in use.
        assert provider.precheck(subject.target, ctx()).old_credential_ids == [blue]
        alternating.server.set_login(green, True)
        with pytest.raises(PermanentProviderError, match="both"):
            provider.precheck(subject.target, ctx())
        with pytest.raises(StillValid, match="may still log in"):
            provider.confirm_revoked(subject.target, green, ctx())
        foreign = {**subject.initial, "username": "kt_someone_else"}
        with pytest.raises(PermanentProviderError, match="not one of"):
            provider.precheck(subject.target, ctx(foreign))
        missing = {**subject.target, "users": [blue, "kt_nobody"]}
        with pytest.raises(CredentialNotFound, match="missing"):
            provider.precheck(missing, ctx(subject.initial))
        provider.delete(missing, "kt_nobody", ctx())  # already gone: fine

    # -- verify, errors, secrecy ----------------------------------------------------------

    @pytest.mark.parametrize("mode", ["single", "alternating"])
    def test_verify_rejects_a_wrong_password(self, mode: str, request: pytest.FixtureRequest):
        harness: SqlPasswordHarness = request.getfixturevalue(mode)
        provider, subject = harness.provider(), harness.new_subject()
        provider.verify(subject.target, subject.initial)
        wrong = harness.broken(subject, subject.initial)
        with pytest.raises(VerificationFailed, match="refused") as failure:
            provider.verify(subject.target, wrong)
        assert_clean(failure.value, wrong["password"], subject.initial["password"])
        stranger = {**subject.initial, "username": "kt_stranger"}
        with pytest.raises(PermanentProviderError, match="not for"):
            provider.verify(subject.target, stranger)

    @pytest.mark.parametrize("mode", ["single", "alternating"])
    def test_unreachable_server_is_transient(self, mode: str, request: pytest.FixtureRequest):
        harness: SqlPasswordHarness = request.getfixturevalue(mode)
        provider, subject = harness.provider(), harness.new_subject()
        admin_secrets = self.admin_secrets(harness)
        with harness.fault("transient"):
            for call in (
                lambda: provider.precheck(subject.target, ctx(subject.initial)),
                lambda: provider.create(subject.target, ctx(subject.initial)),
                lambda: provider.verify(subject.target, subject.initial),
            ):
                with pytest.raises(TransientProviderError) as failure:
                    call()
                assert_clean(failure.value, subject.initial["password"], *admin_secrets)
        assert harness.proxy.refused >= 3
        assert harness.works(subject, subject.initial), "a failed create must change nothing"

    @pytest.mark.parametrize("mode", ["single", "alternating"])
    def test_admin_refused_is_access_denied(self, mode: str, request: pytest.FixtureRequest):
        harness: SqlPasswordHarness = request.getfixturevalue(mode)
        subject = harness.new_subject()
        with harness.fault("permanent"), pytest.raises(AccessDenied) as locked:
            harness.provider().precheck(subject.target, ctx(subject.initial))
        server, port = harness.server, harness.proxy.port
        wrong_password = type(harness.provider())(
            admin_dsn=server.dsn("keyturn_admin", "not-the-admin-password", port)
        )
        with pytest.raises(AccessDenied) as bad_login:
            wrong_password.precheck(subject.target, ctx(subject.initial))
        # A user that may log in but not ALTER other users.
        weakling, weak_password = f"kt_weak_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
        server.create_user(weakling, weak_password)
        unprivileged = type(harness.provider())(admin_dsn=server.dsn(weakling, weak_password, port))
        with pytest.raises(AccessDenied) as no_privilege:
            unprivileged.create(subject.target, ctx(subject.initial))
        for failure in (locked, bad_login, no_privilege):
            assert_clean(failure.value, subject.initial["password"], weak_password,
                         "not-the-admin-password", *self.admin_secrets(harness))
        assert harness.works(subject, subject.initial)

    def test_target_must_choose_one_mode(self, single: SqlPasswordHarness):
        provider, subject = single.provider(), single.new_subject()
        field = provider.target_model.single_field
        both = {**subject.target, "users": ["kt_a", "kt_b"]}
        neither = {k: v for k, v in subject.target.items() if k != field}
        twice = {**neither, "users": ["kt_a", "kt_a"]}
        for target in (both, neither, twice, {**subject.target, "password": "x"}):
            with pytest.raises(PermanentProviderError, match="invalid"):
                provider.precheck(target, ctx(subject.initial))

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def admin_secrets(harness: SqlPasswordHarness) -> list[str]:
        return [harness.server.admin_password]
