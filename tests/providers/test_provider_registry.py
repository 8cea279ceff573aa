"""Provider lookup through the "keyturn.providers" entry points, checked when loaded."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from keyturn.providers import registry
from keyturn.providers.aws_iam import AwsIamAccessKeyProvider
from keyturn.providers.base import Provider
from keyturn.providers.errors import PermanentProviderError
from keyturn.providers.registry import (
    ProviderLoadError,
    get_provider,
    provider_class,
    provider_names,
    register,
    unregister,
)


class GoodTarget(BaseModel):
    thing: str


class GoodProvider:
    name = "test.good"
    target_model = GoodTarget
    family = "test"

    def __init__(self, client_factory=None):
        self.client_factory = client_factory

    @classmethod
    def shape(cls, target): ...
    def precheck(self, target, ctx=None): ...
    def list_credential_ids(self, target, ctx=None): ...
    def create(self, target, ctx=None): ...
    def verify(self, target, secret, ctx=None): ...
    def disable(self, target, credential_id, ctx=None): ...
    def enable(self, target, credential_id, ctx=None): ...
    def delete(self, target, credential_id, ctx=None): ...
    def confirm_revoked(self, target, credential_id, ctx=None): ...


@pytest.fixture(autouse=True)
def fake_entry_points(plugin_registry):
    """A clean PROVIDERS registry in every test; call it to replace the installed entry points."""
    return plugin_registry(registry.PROVIDERS)


def test_installed_entry_point_resolves_to_the_aws_provider():
    assert "aws.iam_access_key" in provider_names()
    assert provider_class("aws.iam_access_key") is AwsIamAccessKeyProvider
    provider = get_provider("aws.iam_access_key")
    assert isinstance(provider, AwsIamAccessKeyProvider)
    assert isinstance(provider, Provider)


def test_factory_kwargs_reach_the_constructor():
    made = []

    class FakeIam:
        def list_access_keys(self, UserName):
            return {"AccessKeyMetadata": [{"AccessKeyId": "AKIA1", "Status": "Active"}]}

    def factory(service, **kwargs):
        made.append(service)
        return FakeIam()

    provider = get_provider("aws.iam_access_key", client_factory=factory, propagation_delay=0)
    assert provider.list_credential_ids({"user_name": "ci"}) == ["AKIA1"]
    assert made == ["iam"]


def test_unknown_provider_names_the_known_ones():
    with pytest.raises(ProviderLoadError, match=r"unknown provider 'nope.*aws\.iam_access_key"):
        get_provider("nope")


def test_load_errors_are_permanent_provider_errors():
    assert issubclass(ProviderLoadError, PermanentProviderError)
    assert not ProviderLoadError.retryable


def test_register_adds_a_checked_provider():
    assert register(GoodProvider) is GoodProvider
    assert "test.good" in provider_names()
    provider = get_provider("test.good", client_factory="f")
    assert isinstance(provider, GoodProvider) and provider.client_factory == "f"
    unregister("test.good")
    assert "test.good" not in provider_names()


def bad_variant(**changes):
    return type("Bad", (GoodProvider,), changes)


@pytest.mark.parametrize(
    ("cls", "problem"),
    [
        (bad_variant(name=None), "name is None"),
        (bad_variant(target_model=dict), "target_model .* is not a pydantic BaseModel subclass"),
        (bad_variant(target_model=GoodTarget(thing="x")), "is not a pydantic BaseModel"),
        (bad_variant(family=None), "family None is not a lower-case identifier"),
        (bad_variant(family="Git Hub"), "family 'Git Hub' is not"),
        (bad_variant(verify=None), "verify is missing or not callable"),
        (
            bad_variant(confirm_revoked=lambda self, target: None),
            "confirm_revoked.*cannot be called",
        ),
        (bad_variant(create=lambda self: None), r"create\(self\) cannot be called as create"),
    ],
)
def test_register_rejects_a_class_that_breaks_the_protocol(cls, problem):
    with pytest.raises(ProviderLoadError, match=problem) as info:
        register(cls)
    assert "does not satisfy the Provider protocol" in str(info.value)
    assert cls.name is None or cls.name not in provider_names()


def test_register_rejects_a_non_class():
    with pytest.raises(ProviderLoadError, match="is not a class"):
        register(GoodProvider())


def test_entry_point_whose_class_has_the_wrong_name_is_rejected_naming_it(fake_entry_points):
    fake_entry_points(("other.kind", "keyturn.providers.aws_iam:AwsIamAccessKeyProvider"))
    with pytest.raises(ProviderLoadError) as info:
        get_provider("other.kind")
    message = str(info.value)
    assert "entry point other.kind = keyturn.providers.aws_iam:AwsIamAccessKeyProvider" in message
    assert "name is 'aws.iam_access_key', expected 'other.kind'" in message


def test_entry_point_that_is_not_a_provider_lists_every_problem(fake_entry_points):
    fake_entry_points(("vault_kv", "keyturn.stores.vault_kv:VaultKvStore"))
    with pytest.raises(ProviderLoadError) as info:
        provider_class("vault_kv")
    message = str(info.value)
    assert "entry point vault_kv = keyturn.stores.vault_kv:VaultKvStore" in message
    for method in ("precheck", "create", "verify", "disable", "delete", "confirm_revoked"):
        assert f"{method} is missing" in message


def test_entry_point_that_is_a_function_is_rejected(fake_entry_points):
    fake_entry_points(("fp", "keyturn.fingerprint:fingerprint"))
    with pytest.raises(
        ProviderLoadError, match="'fp' .*keyturn.fingerprint:fingerprint.* not a class"
    ):
        provider_class("fp")


def test_entry_point_that_fails_to_import_is_rejected(fake_entry_points):
    fake_entry_points(("ghost", "keyturn.providers.no_such_module:Ghost"))
    with pytest.raises(ProviderLoadError, match="'ghost' .*no_such_module.* failed to import"):
        provider_class("ghost")


def test_a_name_claimed_by_two_packages_is_refused(fake_entry_points):
    fake_entry_points(
        ("aws.iam_access_key", "keyturn.providers.aws_iam:AwsIamAccessKeyProvider"),
        ("aws.iam_access_key", "evil_pkg.aws:Provider"),
    )
    with pytest.raises(ProviderLoadError, match="several entry points.*evil_pkg"):
        provider_class("aws.iam_access_key")
