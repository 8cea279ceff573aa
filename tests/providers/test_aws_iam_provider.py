"""The aws.iam_access_key provider against a real moto server with key checking on.

moto enforces the 2-keys-per-user quota, IAM policies (AccessDenied) and key
validity for signed requests (a deleted key gets InvalidClientTokenId), but it
still accepts an Inactive key, which real AWS rejects.
"""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from keyturn.devstack.servers import MOTO_REGION
from keyturn.providers.aws_iam import KEY_ID, SECRET_KEY, AwsIamAccessKeyProvider
from keyturn.providers.base import Provider
from keyturn.providers.base import ProviderContext as Ctx
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    QuotaExceeded,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def provider(aws_env) -> AwsIamAccessKeyProvider:
    return AwsIamAccessKeyProvider(propagation_attempts=2, propagation_delay=0)


@pytest.fixture
def user(iam_client):
    name = f"kt-{uuid.uuid4().hex[:12]}"
    iam_client.create_user(UserName=name)
    yield name
    for key in iam_client.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam_client.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    iam_client.delete_user(UserName=name)


@pytest.fixture
def make_key(iam_client, user, secrets_seen):
    def make(status: str = "Active", user_name: str | None = None) -> dict[str, str]:
        owner = user_name or user
        key = iam_client.create_access_key(UserName=owner)["AccessKey"]
        if status != "Active":
            iam_client.update_access_key(
                UserName=owner, AccessKeyId=key["AccessKeyId"], Status=status
            )
        secrets_seen.append(key["SecretAccessKey"])
        return {KEY_ID: key["AccessKeyId"], SECRET_KEY: key["SecretAccessKey"]}

    return make


@pytest.fixture
def sts_accepts(moto):
    def accepts(secret: dict[str, str]) -> bool:
        sts = boto3.client(
            "sts",
            endpoint_url=moto.url,
            region_name=MOTO_REGION,
            aws_access_key_id=secret[KEY_ID],
            aws_secret_access_key=secret[SECRET_KEY],
        )
        try:
            sts.get_caller_identity()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] in {
                "InvalidClientTokenId",
                "SignatureDoesNotMatch",
            }
            return False
        return True

    return accepts


def keys_of(iam_client, user: str) -> dict[str, str]:
    listed = iam_client.list_access_keys(UserName=user)["AccessKeyMetadata"]
    return {k["AccessKeyId"]: k["Status"] for k in listed}


def test_provider_satisfies_the_protocol(provider):
    assert isinstance(provider, Provider)


def test_full_rotation_leaves_only_the_new_active_key(
    provider, user, make_key, iam_client, sts_accepts, secrets_seen, raises
):
    old = make_key()
    target = {"user_name": user}

    check = provider.precheck(target)
    assert check.old_credential_ids == [old[KEY_ID]]
    assert check.removed_inactive == []

    new = provider.create(target)
    secrets_seen.append(new.secret[SECRET_KEY])
    assert set(new.secret) == {KEY_ID, SECRET_KEY}
    assert new.credential_id == new.secret[KEY_ID] != old[KEY_ID]
    assert sorted(provider.list_credential_ids(target)) == sorted([old[KEY_ID], new.credential_id])

    provider.verify(target, new.secret)

    provider.disable(target, old[KEY_ID])
    assert keys_of(iam_client, user)[old[KEY_ID]] == "Inactive"
    raises(StillValid, provider.confirm_revoked, target, old[KEY_ID], Ctx(old_secret=old), match="Inactive")

    provider.delete(target, old[KEY_ID])
    provider.delete(target, old[KEY_ID])  # already gone: fine
    provider.confirm_revoked(target, old[KEY_ID], Ctx(old_secret=old))

    assert keys_of(iam_client, user) == {new.credential_id: "Active"}
    assert not sts_accepts(old)
    assert sts_accepts(new.secret)


def test_enable_undoes_disable(provider, user, make_key, iam_client):
    old = make_key()
    provider.disable({"user_name": user}, old[KEY_ID])
    provider.enable({"user_name": user}, old[KEY_ID])
    assert keys_of(iam_client, user) == {old[KEY_ID]: "Active"}


def test_precheck_deletes_an_inactive_extra_key_and_reports_it(
    provider, user, make_key, iam_client
):
    old = make_key()
    spare = make_key(status="Inactive")
    check = provider.precheck({"user_name": user})
    assert check.old_credential_ids == [old[KEY_ID]]
    assert check.removed_inactive == [spare[KEY_ID]]
    assert keys_of(iam_client, user) == {old[KEY_ID]: "Active"}


def test_precheck_refuses_two_active_keys(provider, user, make_key, iam_client, raises):
    first, second = make_key(), make_key()
    err = raises(QuotaExceeded, provider.precheck, {"user_name": user})
    assert str(err) == (
        f"IAM user {user!r} already has two active access keys "
        f"({first[KEY_ID]}, {second[KEY_ID]}); deactivate the one no longer in use, then run again"
    )
    assert not err.retryable
    assert len(keys_of(iam_client, user)) == 2


def test_user_without_keys_has_nothing_to_rotate(provider, user, raises):
    err = raises(CredentialNotFound, provider.precheck, {"user_name": user})
    assert user in str(err)


def test_user_with_only_inactive_keys_has_nothing_to_rotate(provider, user, make_key, raises):
    spare = make_key(status="Inactive")
    err = raises(CredentialNotFound, provider.precheck, {"user_name": user})
    assert spare[KEY_ID] in str(err) and "no active access key" in str(err)


@pytest.mark.parametrize("method", ["precheck", "list_credential_ids", "create"])
def test_unknown_user_is_credential_not_found(provider, method, raises):
    ghost = f"kt-ghost-{uuid.uuid4().hex[:8]}"
    err = raises(CredentialNotFound, getattr(provider, method), {"user_name": ghost})
    assert ghost in str(err)
    assert "AccessKey" in str(err)  # names the operation
    assert not err.retryable


def test_disable_of_unknown_key_is_credential_not_found(provider, user, make_key, raises):
    make_key()
    err = raises(CredentialNotFound, provider.disable, {"user_name": user}, "AKIAUNKNOWN000000000")
    assert "UpdateAccessKey AKIAUNKNOWN000000000 Inactive" in str(err) and user in str(err)


def test_verify_rejects_a_wrong_secret(provider, user, make_key, secrets_seen, raises):
    real = make_key()
    bogus = {KEY_ID: real[KEY_ID], SECRET_KEY: "not-the-secret-" + uuid.uuid4().hex}
    secrets_seen.append(bogus[SECRET_KEY])
    err = raises(VerificationFailed, provider.verify, {"user_name": user}, bogus)
    assert real[KEY_ID] in str(err) and "SignatureDoesNotMatch" in str(err)


def test_verify_rejects_an_unknown_key(provider, user, secrets_seen, raises):
    bogus = {KEY_ID: "AKIAUNKNOWN000000000", SECRET_KEY: "bogus-" + uuid.uuid4().hex}
    secrets_seen.append(bogus[SECRET_KEY])
    raises(VerificationFailed, provider.verify, {"user_name": user}, bogus, match="rejected")


def test_verify_rejects_a_key_of_another_user(provider, user, make_key, iam_client, raises):
    other = f"kt-other-{uuid.uuid4().hex[:8]}"
    iam_client.create_user(UserName=other)
    try:
        foreign = make_key(user_name=other)
        raises(VerificationFailed, provider.verify, {"user_name": user}, foreign, match=other)
    finally:
        for key_id in keys_of(iam_client, other):
            iam_client.delete_access_key(UserName=other, AccessKeyId=key_id)
        iam_client.delete_user(UserName=other)


def test_verify_needs_both_secret_fields(provider, user, make_key, raises):
    key = make_key()
    only_id = {KEY_ID: key[KEY_ID]}
    raises(PermanentProviderError, provider.verify, {"user_name": user}, only_id, match=SECRET_KEY)


def test_confirm_revoked_fails_while_the_old_key_exists(provider, user, make_key, raises):
    old = make_key()
    target = {"user_name": user}
    raises(StillValid, provider.confirm_revoked, target, old[KEY_ID], Ctx(old_secret=old), match="still exists")
    raises(StillValid, provider.confirm_revoked, target, old[KEY_ID], match="still exists")


def test_confirm_revoked_refuses_a_secret_of_another_key(provider, user, make_key, raises):
    old, other = make_key(), make_key()
    provider.delete({"user_name": user}, old[KEY_ID])
    err = raises(
        PermanentProviderError, provider.confirm_revoked, {"user_name": user}, old[KEY_ID], Ctx(old_secret=other)
    )
    assert not isinstance(err, StillValid)


def test_confirm_revoked_without_secret_checks_the_listing_only(provider, user, make_key):
    old = make_key()
    provider.delete({"user_name": user}, old[KEY_ID])
    provider.confirm_revoked({"user_name": user}, old[KEY_ID])


def test_confirm_revoked_accepts_a_deleted_user(provider, iam_client, secrets_seen):
    gone = f"kt-gone-{uuid.uuid4().hex[:8]}"
    iam_client.create_user(UserName=gone)
    key = iam_client.create_access_key(UserName=gone)["AccessKey"]
    secrets_seen.append(key["SecretAccessKey"])
    iam_client.delete_access_key(UserName=gone, AccessKeyId=key["AccessKeyId"])
    iam_client.delete_user(UserName=gone)
    old = {KEY_ID: key["AccessKeyId"], SECRET_KEY: key["SecretAccessKey"]}
    provider.confirm_revoked({"user_name": gone}, key["AccessKeyId"], Ctx(old_secret=old))


def test_missing_permission_is_access_denied(moto, user, make_key, iam_client, raises):
    # `user` has no policy: its own key may call STS but not IAM.
    own = make_key()

    def as_user(service, **kwargs):
        kwargs.setdefault("aws_access_key_id", own[KEY_ID])
        kwargs.setdefault("aws_secret_access_key", own[SECRET_KEY])
        return boto3.client(service, endpoint_url=moto.url, region_name=MOTO_REGION, **kwargs)

    provider = AwsIamAccessKeyProvider(as_user, propagation_attempts=1, propagation_delay=0)
    target = {"user_name": user}
    err = raises(AccessDenied, provider.precheck, target, match="ListAccessKeys")
    assert not err.retryable
    raises(AccessDenied, provider.create, target, match="CreateAccessKey")
    raises(AccessDenied, provider.delete, target, own[KEY_ID], match="DeleteAccessKey")
    provider.verify(target, own)  # STS needs no permission


def test_unreachable_endpoint_is_transient(raises, secrets_seen):
    def nowhere(service, **kwargs):
        return boto3.client(
            service,
            endpoint_url="http://127.0.0.1:9",
            region_name=MOTO_REGION,
            aws_access_key_id=kwargs.get("aws_access_key_id", "AKIAUNREACHABLE00000"),
            aws_secret_access_key=kwargs.get("aws_secret_access_key", "unreachable-secret"),
            config=Config(retries={"max_attempts": 1}, connect_timeout=1),
        )

    provider = AwsIamAccessKeyProvider(nowhere, propagation_attempts=1, propagation_delay=0)
    err = raises(TransientProviderError, provider.precheck, {"user_name": "ci"})
    assert err.retryable and "ListAccessKeys for IAM user 'ci'" in str(err)
    secret = {KEY_ID: "AKIAUNREACHABLE00000", SECRET_KEY: "unreachable-" + uuid.uuid4().hex}
    secrets_seen.append(secret[SECRET_KEY])
    raises(TransientProviderError, provider.verify, {"user_name": "ci"}, secret)
