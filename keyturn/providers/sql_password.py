"""Database user passwords: the rotation rules `postgres.password` and `mysql.password` share.

A database user has one password slot (PostgreSQL has no second password,
MariaDB 10.11 no dual passwords), so the target chooses one of two modes:

single-user (`role:` / `user:`): create sets a new password on the one user and
    the old password stops working at once. A credential id names a password
    without revealing it, `<user>@sha256:<fingerprint prefix>`; which password
    the user has now is only knowable by logging in with the values the
    activity holds (ctx.old_secret, ctx.new_secret), so precheck needs the
    store's current value and checks that it is the user's password. When
    neither value is, list_credential_ids names the slot `<user>@unknown`.
    Single-slot rules:
    - delete of the old value's id: a no-op once create has replaced it (a
      fresh random password if it is somehow still the user's);
    - delete of any other id (a replacement being discarded: rollback, or what
      a killed create left behind) restores ctx.old_secret's password: single-slot
      providers restore on delete of the current value;
    - disable of the current id turns login off (NOLOGIN / ACCOUNT LOCK), keeping
      the password; enable sets the id's password again with login on;
    - confirm_revoked: a fresh login with ctx.old_secret is refused (without it:
      ctx.new_secret logs in, so the slot holds another password).

alternating users (`users: [app_blue, app_green]`): two pre-created users with
    the same grants, and the credential id is the user name. create gives the
    user not in use (ctx.old_secret's username, else the only one that may log
    in) a new password and turns its login on; delivering the secret switches
    the application to it. delete (revoke_old) gives the old user a fresh
    random password nobody knows and turns its login off; disable only turns
    login off, enable turns it on. list_credential_ids lists the users that may
    log in, and those whose login is only off while a value the activity holds
    is still their password (disabled, recoverable). confirm_revoked: the user
    may not log in, and a fresh login with ctx.old_secret is refused.

Secrets are {"username", "password", "host", "port"} plus the database field.
New passwords come from ctx.random (generated_by names it); the throwaway ones
that retire a password come from the OS CSPRNG, since nobody ever reads them.
verify logs in afresh with the secret and checks the session's user. The
dialect modules supply the catalog query, the ALTER statements, the fresh
login and the one error table of their driver.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from keyturn.fingerprint import fingerprint
from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    ProviderDefaults,
    SecretShape,
)
from keyturn.providers.errors import (
    CredentialNotFound,
    PermanentProviderError,
    StillValid,
    VerificationFailed,
)
from keyturn.providers.targets import parse_target
from keyturn.randomness import OS_RANDOM, password
from keyturn.secret import Secret

USERNAME = "username"
PASSWORD = "password"
UNKNOWN = "unknown"

Name = Annotated[str, Field(min_length=1, max_length=80)]


class Login(Enum):
    """What a fresh login with a user's password got."""

    ACCEPTED = "accepted"
    DISABLED = "refused only because login is off (the password is still right)"
    REFUSED = "refused"


class SqlTarget(BaseModel):
    """Where the users live and which mode: exactly one of the single-user field or `users`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    single_field: ClassVar[str]

    host: str = Field(min_length=1)
    users: tuple[Name, Name] | None = None

    @property
    def single(self) -> str | None:
        return getattr(self, self.single_field)

    @property
    def accounts(self) -> tuple[str, ...]:
        return self.users or (str(self.single),)

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        if (self.single is None) == (self.users is None):
            raise ValueError(
                f"give exactly one of {self.single_field} (single-user mode) "
                "or users (two alternating users)"
            )
        if self.users is not None and self.users[0] == self.users[1]:
            raise ValueError("users must name two different users")
        return self


def credential_id(user: str, secret_password: str) -> str:
    """The single-user id of a password: names it without revealing it."""
    return f"{user}@{fingerprint({PASSWORD: secret_password})}"


def secret_fields(secret: Secret, where: str) -> tuple[str, str]:
    """(username, password) of a secret, or a clear error naming the missing fields."""
    missing = sorted({USERNAME, PASSWORD} - secret.keys())
    if missing:
        raise PermanentProviderError(f"a secret given for {where} lacks {', '.join(missing)}")
    return secret[USERNAME], secret[PASSWORD]


class SqlPasswordProvider(ProviderDefaults, ABC):
    """A database's user passwords in either mode; subclasses are the dialects."""

    name: ClassVar[str]
    family: ClassVar[str]
    target_model: ClassVar[type[SqlTarget]]
    account_kind: ClassVar[str]
    """What the database calls a user in messages: "role" or "user"."""
    default_connection_fields: ClassVar[tuple[str, ...]]
    """The names `connection_fields` returns for a target with every default."""

    # -- dialect --------------------------------------------------------------------

    @abstractmethod
    def account(self, t: Any, user: str) -> bool | None:
        """None if `user` does not exist, else whether it may log in."""

    @abstractmethod
    def set_password(self, t: Any, user: str, new_password: str, login: bool | None) -> None:
        """Give `user` this password; login True/False turns login on/off, None leaves it."""

    @abstractmethod
    def set_login(self, t: Any, user: str, allowed: bool) -> None:
        """Turn `user`'s login on or off, keeping its password."""

    @abstractmethod
    def login(self, t: Any, user: str, user_password: str) -> Login:
        """A fresh login as `user` with this password, at the target's host and port."""

    @staticmethod
    @abstractmethod
    def connection_fields(t: Any) -> dict[str, str]:
        """What an application needs besides username and password: host, port, database."""

    # -- Provider protocol ----------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        """username, password and what the application connects with; single-user mode
        needs the current password in the store."""
        if target is None:
            return SecretShape(fields=(USERNAME, PASSWORD, *cls.default_connection_fields))
        t = parse_target(cls.target_model, cls.name, target)
        return SecretShape(fields=(USERNAME, PASSWORD, *cls.connection_fields(t)),
                           reads_current=not t.users)

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = self._target(target)
        return self._mode(t).precheck(t, ctx)

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        t = self._target(target)
        return self._mode(t).list_ids(t, ctx)

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        t = self._target(target)
        user, new_password = self._mode(t).create(t, ctx)
        secret = {USERNAME: user, PASSWORD: new_password, **self.connection_fields(t)}
        new_id = user if t.users else credential_id(user, new_password)
        return NewCredential(credential_id=new_id, secret=secret, generated_by=ctx.random.name)

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = self._target(target)
        user, user_password = secret_fields(secret, self.describe(t))
        if user not in t.accounts:
            raise PermanentProviderError(
                f"verify: the secret is for {user!r}, not for {self.describe(t)}"
            )
        answer = self.login(t, user, user_password)
        if answer is not Login.ACCEPTED:
            raise VerificationFailed(
                f"verify: a fresh login with the new password of {self.account_kind} {user!r} "
                f"on {t.host}:{t.port} was {answer.value}"
            )

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = self._target(target)
        self._mode(t).disable(t, credential_id, ctx)

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = self._target(target)
        self._mode(t).enable(t, credential_id, ctx)

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        t = self._target(target)
        self._mode(t).delete(t, credential_id, ctx)

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        t = self._target(target)
        self._mode(t).confirm_revoked(t, credential_id, ctx)

    # -- helpers --------------------------------------------------------------------

    def describe(self, t: Any) -> str:
        who = (
            f"users {t.users[0]!r}/{t.users[1]!r}"
            if t.users
            else f"{self.account_kind} {t.single!r}"
        )
        return f"{who} on {t.host}:{t.port}"

    def _mode(self, t: Any) -> SingleUser | AlternatingUsers:
        return AlternatingUsers(self) if t.users else SingleUser(self)

    def _target(self, target: Any) -> Any:
        return parse_target(self.target_model, self.name, target)


class SingleUser:
    """One user, one password slot: the old password stops working when create sets the new one."""

    def __init__(self, db: SqlPasswordProvider) -> None:
        self.db = db

    def precheck(self, t: Any, ctx: ProviderContext) -> Precheck:
        where = self.db.describe(t)
        if self.db.account(t, t.single) is None:
            raise CredentialNotFound(f"precheck: {where} does not exist")
        if ctx.old_secret is None:
            raise PermanentProviderError(
                f"precheck: {where} is in single-user mode, which needs its current password "
                "in the store (the first deliver target holds none): put it there first, "
                "or rotate between two users (target field `users`)"
            )
        old_id = self._id(t, ctx.old_secret)
        if self._login(t, ctx.old_secret) is Login.REFUSED:
            raise CredentialNotFound(
                f"precheck: the server refuses the store's current value ({old_id}) for "
                f"{where}: it is not the {self.db.account_kind}'s password; put the working "
                "password in the store first"
            )
        return Precheck(old_credential_ids=[old_id])

    def list_ids(self, t: Any, ctx: ProviderContext) -> list[str]:
        if self.db.account(t, t.single) is None:
            return []
        for secret in (ctx.new_secret, ctx.old_secret):
            if secret is not None and self._login(t, secret) is not Login.REFUSED:
                return [self._id(t, secret)]
        return [f"{t.single}@{UNKNOWN}"]

    def create(self, t: Any, ctx: ProviderContext) -> tuple[str, str]:
        new_password = password(ctx.random)
        self.db.set_password(t, t.single, new_password, login=True)
        return t.single, new_password

    def disable(self, t: Any, cid: str, ctx: ProviderContext) -> None:
        if self._login(t, self._holder(t, cid, ctx, "disable")) is Login.ACCEPTED:
            self.db.set_login(t, t.single, allowed=False)

    def enable(self, t: Any, cid: str, ctx: ProviderContext) -> None:
        holder = self._holder(t, cid, ctx, "enable")
        self.db.set_password(t, t.single, holder[PASSWORD], login=True)

    def delete(self, t: Any, cid: str, ctx: ProviderContext) -> None:
        old = ctx.old_secret
        if old is not None and self._id(t, old) == cid:
            if self._login(t, old) is not Login.REFUSED:
                self.db.set_password(t, t.single, password(OS_RANDOM), login=None)
            return
        if old is None:
            raise PermanentProviderError(
                f"delete {cid}: cannot put back the previous password of {self.db.describe(t)}: "
                "the store holds no current value"
            )
        try:
            self.db.set_password(t, t.single, old[PASSWORD], login=True)
        except CredentialNotFound:
            pass  # the user is gone, and every password with it

    def confirm_revoked(self, t: Any, cid: str, ctx: ProviderContext) -> None:
        where = self.db.describe(t)
        old, new = ctx.old_secret, ctx.new_secret
        if old is not None:
            if self._id(t, old) != cid:
                raise PermanentProviderError(
                    f"confirm_revoked: the old secret given for {where} is not {cid}"
                )
            answer = self._login(t, old)
            if answer is not Login.REFUSED:
                raise StillValid(
                    f"{cid} of {where} is not revoked: a fresh login with it was {answer.value}"
                )
        elif new is None or self._id(t, new) == cid or self._login(t, new) is not Login.ACCEPTED:
            raise StillValid(
                f"cannot prove {cid} of {where} is replaced: the store has no old value to "
                "try, and no other new value that logs in"
            )

    def _id(self, t: Any, secret: Secret) -> str:
        user, secret_password = secret_fields(secret, self.db.describe(t))
        if user != t.single:
            raise PermanentProviderError(
                f"a secret given for {self.db.describe(t)} is for {user!r}"
            )
        return credential_id(user, secret_password)

    def _login(self, t: Any, secret: Secret) -> Login:
        return self.db.login(t, t.single, secret[PASSWORD])

    def _holder(self, t: Any, cid: str, ctx: ProviderContext, operation: str) -> Secret:
        for secret in (ctx.old_secret, ctx.new_secret):
            if secret is not None and self._id(t, secret) == cid:
                return secret
        raise PermanentProviderError(
            f"{operation} {cid}: neither the store's current nor its new value for "
            f"{self.db.describe(t)} is this password, so it cannot be told or set"
        )


class AlternatingUsers:
    """Two users with the same grants: the new password goes to the one not in use."""

    def __init__(self, db: SqlPasswordProvider) -> None:
        self.db = db

    def precheck(self, t: Any, ctx: ProviderContext) -> Precheck:
        return Precheck(old_credential_ids=[self._in_use(t, ctx)])

    def list_ids(self, t: Any, ctx: ProviderContext) -> list[str]:
        return [user for user in t.users if self._listed(t, user, ctx)]

    def create(self, t: Any, ctx: ProviderContext) -> tuple[str, str]:
        in_use = self._in_use(t, ctx)
        spare = t.users[1] if in_use == t.users[0] else t.users[0]
        new_password = password(ctx.random)
        self.db.set_password(t, spare, new_password, login=True)
        return spare, new_password

    def disable(self, t: Any, cid: str, ctx: ProviderContext) -> None:
        self.db.set_login(t, self._user(t, cid), allowed=False)

    def enable(self, t: Any, cid: str, ctx: ProviderContext) -> None:
        self.db.set_login(t, self._user(t, cid), allowed=True)

    def delete(self, t: Any, cid: str, ctx: ProviderContext) -> None:
        try:
            self.db.set_password(t, self._user(t, cid), password(OS_RANDOM), login=False)
        except CredentialNotFound:
            pass  # already gone: the goal of delete

    def confirm_revoked(self, t: Any, cid: str, ctx: ProviderContext) -> None:
        user = self._user(t, cid)
        where = self.db.describe(t)
        if self.db.account(t, user):
            raise StillValid(f"{self.db.account_kind} {user!r} ({where}) may still log in")
        if ctx.old_secret is None:
            return
        name, old_password = secret_fields(ctx.old_secret, where)
        if name != user:
            raise PermanentProviderError(
                f"confirm_revoked: the old secret given for {where} is for {name!r}, not {user!r}"
            )
        answer = self.db.login(t, user, old_password)
        if answer is not Login.REFUSED:
            raise StillValid(
                f"the old password of {user!r} ({where}) is not revoked: a fresh login with it "
                f"was {answer.value}"
            )

    def _listed(self, t: Any, user: str, ctx: ProviderContext) -> bool:
        """`user` may log in, or its login is off and a value held in ctx is its password."""
        state = self.db.account(t, user)
        if state is not False:
            return bool(state)
        held = [
            secret[PASSWORD]
            for secret in (ctx.old_secret, ctx.new_secret)
            if secret is not None and secret.get(USERNAME) == user and PASSWORD in secret
        ]
        return any(self.db.login(t, user, value) is Login.DISABLED for value in held)

    def _user(self, t: Any, name: str) -> str:
        if name not in t.users:
            raise PermanentProviderError(f"{name!r} is not one of {self.db.describe(t)}")
        return name

    def _in_use(self, t: Any, ctx: ProviderContext) -> str:
        """The user the application uses now: the store's current value says, else the only
        one that may log in."""
        where = self.db.describe(t)
        states = {user: self.db.account(t, user) for user in t.users}
        missing = [user for user, state in states.items() if state is None]
        if missing:
            raise CredentialNotFound(
                f"{where}: {', '.join(map(repr, missing))} missing; alternating mode needs "
                "both users, created with the same grants"
            )
        if ctx.old_secret is not None:
            user, _ = secret_fields(ctx.old_secret, where)
            return self._user(t, user)
        enabled = [user for user in t.users if states[user]]
        if len(enabled) == 1:
            return enabled[0]
        raise PermanentProviderError(
            f"{where}: the store holds no current value and {'both' if enabled else 'neither'} "
            "may log in, so which one is in use is unknown: put the current value in the store"
        )
