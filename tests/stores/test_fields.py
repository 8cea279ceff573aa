"""The consumer-shape rules: view, merge, what a path lacks, and the suggested mapping."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from keyturn.stores.fields import TEXT, lacking, merged, suggest, view

AWS = ("aws_access_key_id", "aws_secret_access_key")
MAPPING = {"aws_access_key_id": "ACCESS_KEY", "aws_secret_access_key": "SECRET_KEY"}
BILLING = {"ACCESS_KEY": "AKIAOLD", "SECRET_KEY": "old-secret", "region": "eu-west-1"}
NEW = {"aws_access_key_id": "AKIANEW", "aws_secret_access_key": "new-secret"}


def test_view_reads_the_provider_fields_under_their_mapped_names():
    assert view(BILLING, MAPPING, AWS, AWS) == {"aws_access_key_id": "AKIAOLD",
                                                "aws_secret_access_key": "old-secret"}
    assert view(BILLING, {}, AWS, AWS) == {}


def test_view_gives_non_string_values_as_json_text():
    fields = ("username", "password", "port")
    assert view({"username": "u", "password": "p", "port": 5432}, {}, fields, fields) == {
        "username": "u", "password": "p", "port": "5432"}


def test_merge_replaces_only_the_mapped_fields_and_keeps_order_and_the_rest():
    out = merged(BILLING, NEW, MAPPING)
    assert out == {"ACCESS_KEY": "AKIANEW", "SECRET_KEY": "new-secret", "region": "eu-west-1"}
    assert list(out) == list(BILLING)


def test_merge_keeps_the_json_type_of_an_unchanged_field():
    current = {"host": "db", "port": 5432, "username": "app", "password": "old"}
    out = merged(current, {"host": "db", "port": "5432", "username": "app", "password": "new"}, {})
    assert out == {"host": "db", "port": 5432, "username": "app", "password": "new"}


def test_merge_into_nothing_writes_the_mapped_fields_only():
    assert merged(None, NEW, MAPPING) == {"ACCESS_KEY": "AKIANEW", "SECRET_KEY": "new-secret"}


def test_a_plain_string_fits_a_provider_with_one_field():
    assert view({TEXT: "npm_old"}, {}, ("token",), ("token",)) == {"token": "npm_old"}
    assert lacking({TEXT: "npm_old"}, {}, ("token",)) == []
    assert merged({TEXT: "npm_old"}, {"token": "npm_new"}, {}) == {TEXT: "npm_new"}
    assert view({TEXT: "x"}, {}, AWS, AWS) == {}
    assert lacking({TEXT: "x"}, {}, AWS) == list(AWS)


def test_lacking_names_the_provider_fields_a_path_does_not_hold():
    assert lacking(BILLING, {}, AWS) == list(AWS)
    assert lacking(BILLING, MAPPING, AWS) == []
    assert lacking(BILLING, {"aws_access_key_id": "ACCESS_KEY"}, AWS) == ["aws_secret_access_key"]


def test_suggest_finds_the_assignment_that_shares_the_most_words():
    assert suggest(["ACCESS_KEY", "SECRET_KEY", "region"], list(AWS)) == MAPPING
    assert suggest(["AwsAccessKeyId", "AwsSecretAccessKey"], list(AWS)) == {
        "aws_access_key_id": "AwsAccessKeyId", "aws_secret_access_key": "AwsSecretAccessKey"}
    assert suggest(["DB_USER", "DB_PASSWORD"], ["username", "password"]) == {
        "password": "DB_PASSWORD"}
    assert suggest(["region"], list(AWS)) == {}


def test_suggest_stays_greedy_and_one_to_one_for_many_names():
    names = [f"FIELD_{i}" for i in range(20)] + ["PASSWORD", "DB_PASSWORD"]
    found = suggest(names, ["username", "password", "host", "port", "dbname"])
    assert found == {"password": "PASSWORD"}


names = st.text(alphabet="abcdefgXYZ_", min_size=1, max_size=8)
values = st.one_of(st.text(max_size=6), st.integers(), st.booleans())


@given(current=st.dictionaries(names, values, max_size=6),
       secret=st.dictionaries(names, st.text(max_size=6), min_size=1, max_size=3),
       renames=st.dictionaries(names, names, max_size=3))
def test_merge_changes_nothing_but_the_secret_fields(current, secret, renames):
    mapping = {k: v for k, v in renames.items() if k in secret}
    stored = {mapping.get(f, f) for f in secret}
    if len(stored) < len(secret):
        return  # two fields mapped to one name: validation refuses such a runbook
    out = merged(current, secret, mapping)
    assert {k: v for k, v in out.items() if k not in stored} == {
        k: v for k, v in current.items() if k not in stored}
    assert view(out, mapping, tuple(secret), tuple(secret)) == secret
