"""AWS IAM user access keys: the `aws.iam_access_key` provider.

Knows IAM access keys and nothing else. boto3 clients come from an injected
factory (default: a boto3 session configured by the standard AWS environment,
AWS_ENDPOINT_URL included), so tests point it at a local moto server.

Proof of life and death uses STS GetCallerIdentity signed with the key itself:
it needs no IAM permission, so it answers only "does AWS accept this key?".
IAM is eventually consistent: a new key may be rejected, and a deleted one
accepted, for a few seconds; both checks retry a bounded number of times.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from keyturn.providers.aws_common import AwsProviderBase, classify, error_code, error_detail
from keyturn.providers.base import (
    NO_CONTEXT,
    NewCredential,
    Precheck,
    ProviderContext,
    SecretShape,
)
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    ProviderError,
    QuotaExceeded,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.probing import Answer, Probing, accepted, refused
from keyturn.providers.targets import parse_target
from keyturn.secret import Secret, redact

KEY_ID = "aws_access_key_id"
SECRET_KEY = "aws_secret_access_key"
MAX_KEYS_PER_USER = 2

# The one table from IAM and STS error codes to provider errors; codes not listed are
# classified by aws_common.classify (403 denied, 5xx transient, else permanent).
ERROR_CODES: dict[str, type[ProviderError]] = {
    "NoSuchEntity": CredentialNotFound,
    "AccessDenied": AccessDenied,
    "AccessDeniedException": AccessDenied,
    "UnauthorizedOperation": AccessDenied,
    "LimitExceeded": QuotaExceeded,
    "Throttling": TransientProviderError,
    "ThrottlingException": TransientProviderError,
    "RequestLimitExceeded": TransientProviderError,
    "ServiceUnavailable": TransientProviderError,
    "ServiceFailure": TransientProviderError,
    "InternalFailure": TransientProviderError,
    "RequestTimeout": TransientProviderError,
}

# What STS answers when the signing key is unknown, deleted, wrong or denied.
REJECTED_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "AuthFailure",
        "ExpiredToken",
        "AccessDenied",
        "AccessDeniedException",
    }
)


class AwsIamTarget(BaseModel):
    """Which IAM user's access key to rotate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_name: str = Field(min_length=1, max_length=64)


def map_aws_error(
    exc: Exception, operation: str, user_name: str, secret: Secret | None = None
) -> ProviderError:
    """Classify `exc`; the message names the operation and user, never a secret value."""
    detail = error_detail(exc)
    detail = redact(detail, (secret or {}).values())
    return classify(exc, ERROR_CODES)(f"{operation} for IAM user {user_name!r} failed: {detail}")


def is_user_arn(arn: str, user_name: str) -> bool:
    """True for arn:aws:iam::ACCOUNT:user/[PATH/]USER_NAME (any partition)."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "iam" or not parts[5].startswith("user/"):
        return False
    return parts[5].rsplit("/", 1)[-1] == user_name


class AwsIamAccessKeyProvider(Probing, AwsProviderBase):
    """Rotates one IAM user's access key: at most two per user, create/verify/disable/delete."""

    name: ClassVar[str] = "aws.iam_access_key"
    target_model: ClassVar[type[BaseModel]] = AwsIamTarget
    default_attempts: ClassVar[int] = 6

    # -- Provider protocol ------------------------------------------------------

    @classmethod
    def shape(cls, target: Any | None) -> SecretShape:
        return SecretShape(fields=(KEY_ID, SECRET_KEY), id_field=KEY_ID)

    def precheck(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> Precheck:
        t = _target(target)
        keys = self._list_keys(t.user_name)
        active = [k["AccessKeyId"] for k in keys if k["Status"] == "Active"]
        inactive = [k["AccessKeyId"] for k in keys if k["Status"] != "Active"]
        if not active:
            found = f" (inactive: {', '.join(inactive)})" if inactive else ""
            raise CredentialNotFound(
                f"IAM user {t.user_name!r} has no active access key{found}; nothing to rotate"
            )
        removed: list[str] = []
        if len(keys) >= MAX_KEYS_PER_USER:
            if inactive:
                # Quota room: an inactive key is nobody's working credential.
                if not ctx.dry_run:
                    self.delete(t, inactive[0])
                removed.append(inactive[0])
            else:
                # Both keys may be in use; only a human can say which one to drop.
                raise QuotaExceeded(
                    f"IAM user {t.user_name!r} already has two active access keys "
                    f"({', '.join(active)}); deactivate the one no longer in use, then run again"
                )
        return Precheck(old_credential_ids=active, removed_inactive=removed)

    def list_credential_ids(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> list[str]:
        return [k["AccessKeyId"] for k in self._list_keys(_target(target).user_name)]

    def create(self, target: Any, ctx: ProviderContext = NO_CONTEXT) -> NewCredential:
        user = _target(target).user_name
        try:
            key = self._iam.create_access_key(UserName=user)["AccessKey"]
        except (ClientError, BotoCoreError) as exc:
            raise map_aws_error(exc, "CreateAccessKey", user) from exc
        secret = {KEY_ID: key["AccessKeyId"], SECRET_KEY: key["SecretAccessKey"]}
        return NewCredential(credential_id=key["AccessKeyId"], secret=secret)

    def verify(self, target: Any, secret: Secret, ctx: ProviderContext = NO_CONTEXT) -> None:
        user = _target(target).user_name
        key_id = _key_id(secret, user)
        arn = self.expect_accepted(
            user, secret, f"STS rejected access key {key_id} of IAM user {user!r}"
        )
        if not is_user_arn(arn, user):
            raise VerificationFailed(
                f"verify: access key {key_id} authenticates as {arn}, not IAM user {user!r}"
            )

    def disable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        self._set_status(_target(target).user_name, credential_id, "Inactive")

    def enable(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        self._set_status(_target(target).user_name, credential_id, "Active")

    def delete(self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT) -> None:
        user = _target(target).user_name
        try:
            self._iam.delete_access_key(UserName=user, AccessKeyId=credential_id)
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
                return  # already gone: the goal of delete
            raise map_aws_error(exc, f"DeleteAccessKey {credential_id}", user) from exc
        except BotoCoreError as exc:
            raise map_aws_error(exc, f"DeleteAccessKey {credential_id}", user) from exc

    def confirm_revoked(
        self, target: Any, credential_id: str, ctx: ProviderContext = NO_CONTEXT
    ) -> None:
        user = _target(target).user_name
        old_secret = ctx.old_secret
        try:
            keys = self._list_keys(user)
        except CredentialNotFound:
            keys = []  # the user itself is gone, and every key with it
        for key in keys:
            if key["AccessKeyId"] == credential_id:
                raise StillValid(
                    f"access key {credential_id} still exists for IAM user {user!r} "
                    f"(status {key['Status']})"
                )
        if old_secret is None:
            return
        if _key_id(old_secret, user) != credential_id:
            raise PermanentProviderError(
                f"confirm_revoked: the old secret given for IAM user {user!r} is not for "
                f"access key {credential_id}"
            )
        self.expect_refused(
            user, old_secret,
            f"access key {credential_id} of IAM user {user!r} is deleted but STS still accepted it",
        )

    # -- AWS calls ----------------------------------------------------------------

    @cached_property
    def _iam(self) -> Any:
        return self._client_factory("iam")

    def _list_keys(self, user: str) -> list[dict[str, Any]]:
        try:
            return list(self._iam.list_access_keys(UserName=user)["AccessKeyMetadata"])
        except (ClientError, BotoCoreError) as exc:
            raise map_aws_error(exc, "ListAccessKeys", user) from exc

    def _set_status(self, user: str, credential_id: str, status: str) -> None:
        try:
            self._iam.update_access_key(UserName=user, AccessKeyId=credential_id, Status=status)
        except (ClientError, BotoCoreError) as exc:
            raise map_aws_error(exc, f"UpdateAccessKey {credential_id} {status}", user) from exc

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """Ask STS who `secret` is: accepted with the ARN, or refused with the error code.

        `target` is the user name. The STS client is signed with `secret` alone,
        never the ambient credentials; IAM propagates key changes within seconds.
        """
        user = str(target)
        try:
            sts = self._client_factory(
                "sts",
                aws_access_key_id=secret[KEY_ID],
                aws_secret_access_key=secret[SECRET_KEY],
                aws_session_token=None,
            )
            return accepted(str(sts.get_caller_identity()["Arn"]))
        except ClientError as exc:
            if error_code(exc) in REJECTED_CODES:
                return refused(error_code(exc))
            raise map_aws_error(exc, "GetCallerIdentity", user, secret) from exc
        except BotoCoreError as exc:
            raise map_aws_error(exc, "GetCallerIdentity", user, secret) from exc


def _target(target: Any) -> AwsIamTarget:
    return parse_target(AwsIamTarget, "aws.iam_access_key", target)


def _key_id(secret: Secret, user: str) -> str:
    missing = sorted({KEY_ID, SECRET_KEY} - secret.keys())
    if missing:
        raise PermanentProviderError(
            f"secret for IAM user {user!r} lacks field(s) {', '.join(missing)}"
        )
    return secret[KEY_ID]
