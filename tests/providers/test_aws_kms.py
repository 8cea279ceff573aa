"""The aws.kms_key provider against the stack's moto (key checking on, faithful to KMS key states).

The provider finds moto through AWS_ENDPOINT_URL like any boto3 client; the
fault-injection tests go provider -> FaultProxy -> moto. Tests check
the server's state directly (aliases, key states, signing) as the admin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from conformance.harness_aws_kms import KmsDirect, client_factory
from fakes.fault_proxy import FaultProxy

from keyturn.providers.aws_common import classify
from keyturn.providers.aws_kms import AwsKmsKeyProvider
from keyturn.providers.base import Provider, ProviderContext
from keyturn.providers.errors import (
    AccessDenied,
    CredentialNotFound,
    PermanentProviderError,
    QuotaExceeded,
    StillValid,
    TransientProviderError,
    VerificationFailed,
)
from keyturn.providers.kms_keys import (
    ERROR_CODES,
    RETIRED_PREFIX,
    STAGED_PREFIX,
    AwsKmsKeyTarget,
    map_kms_error,
)
from keyturn.providers.kms_symmetric import (
    parse_rotation_id,
    rotation_id,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def faults(moto) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def kms(moto) -> KmsDirect:
    return KmsDirect(moto.url, moto.admin_credentials)


@pytest.fixture
def provider(aws_env) -> AwsKmsKeyProvider:
    """The default client factory, pointed at moto's KMS by the standard AWS variables."""
    return AwsKmsKeyProvider(propagation_attempts=2, propagation_delay=0)


@pytest.fixture
def faulty(moto, faults) -> AwsKmsKeyProvider:
    """A provider behind the fault proxy, without botocore's own retries."""
    factory = client_factory(faults.url, moto.admin_credentials)
    return AwsKmsKeyProvider(client_factory=factory, propagation_attempts=2, propagation_delay=0)


@pytest.fixture
def alias() -> str:
    return f"alias/kt-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def signing_key(kms, alias) -> str:
    return kms.new_key(alias)["KeyId"]


def staged(alias: str) -> str:
    return STAGED_PREFIX + alias.removeprefix("alias/")


def retired(alias: str) -> str:
    return RETIRED_PREFIX + alias.removeprefix("alias/")


def assert_clean(err: BaseException, *values: str) -> None:
    """Nothing from the delivered value (public key PEM) leaks into an error or its causes."""
    current: BaseException | None = err
    while current is not None:
        for value in values:
            assert value not in str(current) and value not in repr(current)
        current = current.__cause__ or current.__context__


def test_provider_satisfies_the_protocol(provider):
    assert isinstance(provider, Provider)
    assert (provider.name, provider.family) == ("aws.kms_key", "aws")


def test_signing_key_rotation_moves_the_alias_when_the_old_key_is_revoked(provider, kms, alias):
    signing_key = kms.new_key(alias, "RSA_2048")["KeyId"]  # RSASSA-PSS: the ECC case is below
    target = {"alias": alias, "pending_window_days": 7}
    old = kms.signing_secret(signing_key, alias)
    assert provider.precheck(target).old_credential_ids == [signing_key]

    new = provider.create(target)
    assert new.generated_by is None
    assert new.secret["key_id"] == new.credential_id != signing_key
    assert new.secret["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert new.secret == kms.signing_secret(new.credential_id, alias)
    assert kms.key_of(alias) == signing_key  # consumers keep the old key until revoke
    assert kms.key_of(staged(alias)) == new.credential_id
    assert provider.list_credential_ids(target) == [signing_key, new.credential_id]
    old_meta, new_meta = kms.describe(signing_key), kms.describe(new.credential_id)
    for field in ("KeySpec", "KeyUsage", "Description", "SigningAlgorithms"):
        assert new_meta[field] == old_meta[field]
    assert kms.kms.list_resource_tags(KeyId=new.credential_id)["Tags"] == [
        {"TagKey": "team", "TagValue": "release"}
    ]

    provider.verify(target, new.secret)

    provider.disable(target, signing_key)
    assert kms.key_of(alias) == new.credential_id
    assert kms.key_of(retired(alias)) == signing_key
    assert kms.key_of(staged(alias)) is None
    assert kms.state(signing_key) == "Disabled" and not kms.signs(signing_key)
    provider.disable(target, signing_key)  # a retried disable changes nothing
    assert kms.key_of(alias) == new.credential_id
    with pytest.raises(StillValid, match="Disabled"):
        provider.confirm_revoked(target, signing_key, ProviderContext(old_secret=old))

    provider.delete(target, signing_key)
    provider.delete(target, signing_key)  # already pending deletion: fine
    key = kms.describe(signing_key)
    assert key["KeyState"] == "PendingDeletion"
    assert kms.key_of(retired(alias)) is None
    provider.confirm_revoked(target, signing_key, ProviderContext(old_secret=old))

    assert provider.list_credential_ids(target) == [new.credential_id]
    assert kms.signs(new.credential_id) and not kms.signs(signing_key)
    provider.verify(target, new.secret)


def test_rollback_deletes_the_staged_key_and_leaves_the_alias(provider, kms, alias, signing_key):
    target = {"alias": alias, "pending_window_days": 7}
    new = provider.create(target)
    provider.delete(target, new.credential_id)
    provider.delete(target, new.credential_id)
    assert kms.key_of(alias) == signing_key and kms.signs(signing_key)
    assert kms.state(new.credential_id) == "PendingDeletion"
    assert kms.key_of(staged(alias)) is None
    assert provider.list_credential_ids(target) == [signing_key]
    assert provider.precheck(target).old_credential_ids == [signing_key]


def test_revoke_first_moves_the_alias_when_the_old_key_is_deleted(
    provider, kms, alias, signing_key
):
    target = {"alias": alias, "pending_window_days": 7}
    provider.disable(target, signing_key)  # before the replacement exists
    assert kms.key_of(alias) == signing_key and not kms.signs(signing_key)
    new = provider.create(target)
    provider.verify(target, new.secret)
    provider.delete(target, signing_key)
    assert kms.key_of(alias) == new.credential_id
    assert kms.state(signing_key) == "PendingDeletion"
    provider.confirm_revoked(target, signing_key)


def test_revoke_first_rollback_reenables_the_old_key(provider, kms, alias, signing_key):
    target = {"alias": alias, "pending_window_days": 7}
    provider.disable(target, signing_key)
    new = provider.create(target)
    provider.delete(target, new.credential_id)
    provider.enable(target, signing_key)
    assert kms.key_of(alias) == signing_key and kms.signs(signing_key)
    assert provider.list_credential_ids(target) == [signing_key]


def test_enable_undoes_disable_including_the_alias_move(provider, kms, alias, signing_key):
    target = {"alias": alias, "pending_window_days": 7}
    new = provider.create(target)
    provider.disable(target, signing_key)
    provider.enable(target, signing_key)
    assert kms.key_of(alias) == signing_key and kms.signs(signing_key)
    assert kms.key_of(staged(alias)) == new.credential_id
    assert kms.key_of(retired(alias)) is None


def test_symmetric_key_is_rotated_on_demand(provider, kms, alias):
    key_id = kms.new_key(alias, "SYMMETRIC_DEFAULT")["KeyId"]
    target = {"alias": alias}
    old_id = rotation_id(key_id, 0)
    assert provider.precheck(target).old_credential_ids == [old_id]

    new = provider.create(target)
    assert new.credential_id == rotation_id(key_id, 1)
    assert parse_rotation_id(new.credential_id) == (key_id, 1)
    assert new.secret["key_id"] == key_id and new.secret["alias"] == alias
    assert [r["RotationType"] for r in kms.kms.list_key_rotations(KeyId=key_id)["Rotations"]] == [
        "ON_DEMAND"
    ]
    assert provider.list_credential_ids(target) == [new.credential_id]
    provider.verify(target, new.secret)

    for step in (provider.disable, provider.delete):  # earlier material stays for decryption
        step(target, old_id)
    assert kms.state(key_id) == "Enabled"
    provider.confirm_revoked(target, old_id)
    with pytest.raises(StillValid, match="still the current material"):
        provider.confirm_revoked(target, new.credential_id)


def test_verify_rejects_what_kms_does_not_back(provider, kms, alias, signing_key):
    target = {"alias": alias, "pending_window_days": 7}
    new = provider.create(target)
    missing = str(uuid.uuid4())
    with pytest.raises(VerificationFailed, match="neither the staged nor the current"):
        provider.verify(target, {**new.secret, "key_id": missing, "credential_id": missing})
    other = kms.signing_secret(kms.new_key(f"{alias}-other")["KeyId"], alias)
    wrong_pem = {**new.secret, "public_key_pem": other["public_key_pem"]}
    err = pytest.raises(VerificationFailed, provider.verify, target, wrong_pem).value
    assert "does not verify with the public key" in str(err)
    assert_clean(err, other["public_key_pem"], new.secret["public_key_pem"])
    with pytest.raises(VerificationFailed, match="not PEM"):
        provider.verify(target, {**new.secret, "public_key_pem": "garbage"})
    kms.kms.disable_key(KeyId=new.credential_id)
    with pytest.raises(VerificationFailed, match="could not sign"):
        provider.verify(target, new.secret)


def test_precheck_refusals(provider, kms, alias, signing_key):
    with pytest.raises(CredentialNotFound, match="does not exist"):
        provider.precheck({"alias": f"{alias}-missing"})
    hmac_alias = f"{alias}-hmac"
    hmac = kms.kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    kms.kms.create_alias(AliasName=hmac_alias, TargetKeyId=hmac["KeyId"])
    with pytest.raises(PermanentProviderError, match="HMAC_256"):
        provider.precheck({"alias": hmac_alias})
    target = {"alias": alias}
    provider.create(target)  # abandoned: never rolled back
    with pytest.raises(PermanentProviderError, match="in progress or was abandoned"):
        provider.precheck(target)


def test_delete_and_disable_refuse_keys_the_alias_does_not_stand_for(
    provider, kms, alias, signing_key
):
    target = {"alias": alias}
    stranger = kms.new_key(f"{alias}-stranger")["KeyId"]
    for step in (provider.disable, provider.delete, provider.enable):
        with pytest.raises(PermanentProviderError, match="neither the current"):
            step(target, stranger)
    with pytest.raises(PermanentProviderError, match="no replacement is staged"):
        provider.delete(target, signing_key)
    assert kms.state(stranger) == kms.state(signing_key) == "Enabled"
    provider.delete(target, str(uuid.uuid4()))  # no such key: nothing to delete


def test_confirm_revoked_checks_the_old_value_names_the_key(provider, kms, alias, signing_key):
    target = {"alias": alias}
    wrong = {"key_id": str(uuid.uuid4())}
    with pytest.raises(PermanentProviderError, match="not for key"):
        provider.confirm_revoked(target, signing_key, ProviderContext(old_secret=wrong))
    with pytest.raises(StillValid, match="still Enabled"):
        provider.confirm_revoked(target, signing_key)


def test_injected_faults_are_classified(faulty, faults, alias, signing_key):
    target = {"alias": alias}
    cases = [
        (400, b'{"__type":"AccessDeniedException","message":"no"}', AccessDenied),
        (400, b'{"__type":"ThrottlingException","message":"slow"}', TransientProviderError),
        (500, b'{"__type":"KMSInternalException"}', TransientProviderError),
        (503, b"", TransientProviderError),
    ]
    for status, body, expected in cases:
        with faults.failing(status, body, "application/x-amz-json-1.1"):
            err = pytest.raises(expected, faulty.create, target).value
        assert type(err) is expected
        assert f"DescribeKey {alias} for KMS alias {alias!r} failed" in str(err)
    with (
        faults.failing(400, b'{"__type":"NotFoundException","message":"gone"}'),
        pytest.raises(CredentialNotFound, match="does not exist; nothing to rotate"),
    ):
        faulty.precheck(target)
    faulty.precheck(target)  # the fault is over


def test_a_principal_without_kms_permissions_gets_access_denied(
    iam_client, moto, faults, alias, signing_key
):
    user = f"kt-{uuid.uuid4().hex[:12]}"
    iam_client.create_user(UserName=user)
    key = iam_client.create_access_key(UserName=user)["AccessKey"]
    credentials = {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }
    weak = AwsKmsKeyProvider(client_factory=client_factory(faults.url, credentials))
    err = pytest.raises(AccessDenied, weak.precheck, {"alias": alias}).value
    assert_clean(err, key["SecretAccessKey"])


def test_region_from_the_target_reaches_the_client(aws_env, faults):
    regions = []

    def factory(service_name, **kwargs):
        regions.append(kwargs.get("region_name"))
        return boto3.client(service_name, endpoint_url=faults.url, **kwargs)

    provider = AwsKmsKeyProvider(client_factory=factory)
    with pytest.raises(CredentialNotFound, match="in eu-west-1"):
        provider.precheck({"alias": "alias/nowhere", "region": "eu-west-1"})
    assert regions == ["eu-west-1"]


@pytest.mark.parametrize(
    "target",
    [
        {"alias": "release-signing"},
        {"alias": "alias/aws/s3"},
        {"alias": "alias/keyturn/staged/x"},
        {"alias": "alias/x", "pending_window_days": 3},
        {"alias": "alias/x", "key_id": "123"},
    ],
)
def test_bad_targets_are_permanent_errors(target):
    with pytest.raises(PermanentProviderError, match="invalid aws.kms_key target"):
        AwsKmsKeyProvider().precheck(target)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NotFoundException", 400, CredentialNotFound),
        ("AccessDeniedException", 400, AccessDenied),
        ("403", 403, AccessDenied),
        ("LimitExceededException", 400, QuotaExceeded),
        ("ThrottlingException", 400, TransientProviderError),
        ("KMSInternalException", 500, TransientProviderError),
        ("ConflictException", 400, TransientProviderError),
        ("SomethingNew", 502, TransientProviderError),
        ("Throttling", 429, TransientProviderError),  # was permanent: found by the drills
        ("KMSInvalidStateException", 400, PermanentProviderError),
        ("ValidationException", 400, PermanentProviderError),
    ],
)
def test_error_table(code, status, expected):
    exc = ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "DescribeKey",
    )
    assert classify(exc, ERROR_CODES) is expected
    assert classify(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ERROR_CODES) is (
        TransientProviderError
    )
    assert type(map_kms_error(exc, "DescribeKey", AwsKmsKeyTarget(alias="alias/x"))) is expected
