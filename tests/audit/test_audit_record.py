"""The pure core: canonical JSON, the record hash, event ids, events and line parsing."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from keyturn.audit import GENESIS_PREV, AuditEvent, AuditFormatError, canonical_json, event_id
from keyturn.audit.record import FIELDS, format_ts, make_record, parse_record, record_hash

# --- canonical JSON ---------------------------------------------------------------------


def test_canonical_json_sorts_keys_at_every_depth_without_spaces() -> None:
    value = {"b": [3, {"z": 1, "a": None}], "a": {"y": True, "x": False}}
    assert canonical_json(value) == b'{"a":{"x":false,"y":true},"b":[3,{"a":null,"z":1}]}'


def test_canonical_json_keeps_non_ascii_as_utf8() -> None:
    assert canonical_json({"k": "ü€𝄞"}) == '{"k":"ü€𝄞"}'.encode()


def test_canonical_json_escapes_control_characters_so_a_record_stays_on_one_line() -> None:
    encoded = canonical_json({"k": 'a\nb\t\x00"\\'})
    assert b"\n" not in encoded
    assert encoded == b'{"k":"a\\nb\\t\\u0000\\"\\\\"}'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_canonical_json_refuses_non_finite_numbers(value: float) -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": value})


def test_canonical_json_is_deterministic_for_equal_values() -> None:
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})


def test_canonical_json_scalars_and_empty_containers() -> None:
    assert (
        canonical_json([1, -0.5, 10**30, "", [], {}])
        == b'[1,-0.5,1000000000000000000000000000000,"",[],{}]'
    )


# --- the record hash, by hand ------------------------------------------------------------

HAND_EVENT = AuditEvent(
    run="r",
    event_id="e1",
    tier="tier1",
    credential="c",
    provider="aws.iam_access_key",
    step="create",
    outcome="succeeded",
    actor="worker",
    details={"b": 1, "a": "ü"},
)
HAND_BODY = (
    '{"actor":"worker","credential":"c","details":{"a":"ü","b":1},"event_id":"e1",'
    '"outcome":"succeeded","prev":"' + "0" * 64 + '","provider":"aws.iam_access_key",'
    '"run":"r","seq":1,"step":"create","tier":"tier1","ts":"2026-04-12T03:14:15.000000Z"}'
)
# Pinned so that any change to the hash definition is a visible, deliberate break.
HAND_HASH = "57b81eb43b152fb8090abc959be942be60435fd61a0c3a4ebd713961cc7f5a21"


def test_record_hash_matches_a_hand_computation() -> None:
    record = make_record(HAND_EVENT, seq=1, prev=GENESIS_PREV, ts="2026-04-12T03:14:15.000000Z")
    expected = hashlib.sha256(b"\x00" + b"0" * 64 + HAND_BODY.encode("utf-8")).hexdigest()
    assert record.hash == expected == HAND_HASH
    assert canonical_json(record.body()) == HAND_BODY.encode("utf-8")


def test_record_line_is_canonical_json_with_hash_and_newline() -> None:
    record = make_record(HAND_EVENT, seq=1, prev=GENESIS_PREV, ts="2026-04-12T03:14:15.000000Z")
    hand_line = HAND_BODY.replace('"outcome"', f'"hash":"{HAND_HASH}","outcome"') + "\n"
    assert record.line() == hand_line.encode("utf-8")
    assert list(json.loads(record.line())) == sorted(FIELDS)


def test_second_record_hashes_prev_as_prefix_and_as_field() -> None:
    first = make_record(HAND_EVENT, seq=1, prev=GENESIS_PREV, ts="2026-04-12T03:14:15Z")
    second = make_record(HAND_EVENT, seq=2, prev=first.hash, ts="2026-04-12T03:14:16Z")
    body = canonical_json(second.body())
    assert f'"prev":"{first.hash}"'.encode() in body
    assert second.hash == hashlib.sha256(b"\x00" + first.hash.encode() + body).hexdigest()
    assert second.hash_ok() and first.hash_ok()


def test_hash_changes_with_every_field() -> None:
    base = make_record(HAND_EVENT, seq=1, prev=GENESIS_PREV, ts="2026-04-12T03:14:15Z").body()
    variants = {
        "seq": 2, "ts": "2026-04-12T03:14:16Z", "run": "r2", "event_id": "e2", "tier": None,
        "credential": "d", "provider": "x", "step": "promote", "outcome": "failed",
        "actor": "alice", "details": {"a": "u", "b": 1}, "prev": "1" * 64,
    }  # fmt: skip
    assert set(variants) == set(FIELDS) - {"hash"}
    hashes = {record_hash({**base, name: value}) for name, value in variants.items()}
    assert record_hash(base) not in hashes and len(hashes) == len(variants)


def test_event_ts_wins_over_the_appenders_clock() -> None:
    event = HAND_EVENT.model_copy(update={"ts": "2020-01-01T00:00:00Z"})
    assert make_record(event, seq=1, prev=GENESIS_PREV, ts="2026-01-01T00:00:00Z").ts == (
        "2020-01-01T00:00:00Z"
    )


# --- event ids ---------------------------------------------------------------------------


def test_event_id_is_stable_32_hex() -> None:
    one = event_id("run-1", "cred-a", "create", "succeeded")
    assert one == event_id("run-1", "cred-a", "create", "succeeded")
    assert re.fullmatch(r"[0-9a-f]{32}", one), one


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("ab", "c", "s"), ("a", "bc", "s")),  # no ambiguity from joining
        (("r", None, "s"), ("r", "", "s")),
        (("r", "c", "s"), ("r", "c", "s", "succeeded")),
        (("r", "c", "s", 1), ("r", "c", "s", "1")),
        (("r", "c", "gate", "approved", "alice"), ("r", "c", "gate", "approved", "bob")),
    ],
)
def test_event_id_distinguishes_parts(a: tuple, b: tuple) -> None:
    assert event_id(*a) != event_id(*b)


# --- events ------------------------------------------------------------------------------


def test_event_defaults_and_json_normalisation() -> None:
    event = AuditEvent(
        run="r", event_id="e", step="verify_new", outcome="succeeded", actor="worker",
        details={"ids": ("AKIA1", "AKIA2"), "nested": {"n": 1}},
    )  # fmt: skip
    assert event.tier is None and event.credential is None and event.ts is None
    assert event.details == {"ids": ["AKIA1", "AKIA2"], "nested": {"n": 1}}


@pytest.mark.parametrize(
    "fields",
    [
        {"step": "Create"},
        {"step": "create new"},
        {"outcome": ""},
        {"run": ""},
        {"actor": ""},
        {"event_id": ""},
        {"ts": "2026-04-12 03:14:15"},
        {"ts": "2026-04-12T03:14:15+00:00"},
        {"details": {"when": datetime(2026, 1, 1)}},
        {"details": {"x": math.nan}},
        {"details": {"x": {1, 2}}},
        {"unknown": 1},
    ],
)
def test_event_rejects_bad_fields(fields: dict) -> None:
    base = {"run": "r", "event_id": "e", "step": "create", "outcome": "started", "actor": "worker"}
    with pytest.raises(ValidationError):
        AuditEvent(**(base | fields))


@pytest.mark.parametrize(
    "details",
    [
        {"secret": "hunter2"},
        {"Password": "x"},
        {"target": {"private_key": "-----BEGIN"}},
        {"items": [{"secret_access_key": "abc"}]},
    ],
)
def test_event_refuses_secret_detail_keys(details: dict) -> None:
    with pytest.raises(ValidationError, match="must not carry secret values"):
        AuditEvent(
            run="r", event_id="e", step="create", outcome="started", actor="w", details=details
        )


def test_event_is_frozen() -> None:
    with pytest.raises(ValidationError):
        HAND_EVENT.run = "other"  # type: ignore[misc]


def test_format_ts_is_utc_with_z() -> None:
    moment = datetime(2026, 4, 12, 5, 14, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert format_ts(moment) == "2026-04-12T03:14:15.123456Z"


# --- parsing lines -----------------------------------------------------------------------


def _line() -> bytes:
    return make_record(HAND_EVENT, seq=1, prev=GENESIS_PREV, ts="2026-04-12T03:14:15Z").line()


def test_parse_record_round_trips() -> None:
    line = _line()
    assert parse_record(line[:-1]).line() == line


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: s.replace('"seq":1', '"seq": 1'), "canonical form"),
        (lambda s: s + " ", "canonical form"),
        (lambda s: s.replace('"seq":1', '"seq":1.0'), "seq"),
        (lambda s: s.replace('"seq":1', '"seq":true'), "seq"),
        (lambda s: s.replace('"seq":1', '"seq":0'), "seq"),
        (lambda s: s.replace('"run":"r"', '"run":null'), "run"),
        (lambda s: s.replace('"run":"r",', ""), "missing"),
        (lambda s: s.replace('{"actor"', '{"extra":1,"actor"'), "unexpected"),
        (
            lambda s: s.replace('"details":{', '"details":{"b":2,'),
            "canonical form",
        ),  # duplicate key
        (lambda s: s[:-1], "not valid JSON"),
        (lambda s: "[1]", "not a JSON object"),
        (lambda s: s.replace("0" * 64, "0" * 63 + "g"), "prev"),
    ],
)
def test_parse_record_rejects(mutate, reason: str) -> None:
    text = _line()[:-1].decode("utf-8")
    with pytest.raises(AuditFormatError, match=reason):
        parse_record(mutate(text).encode("utf-8"))


def test_parse_record_rejects_invalid_utf8() -> None:
    with pytest.raises(AuditFormatError, match="not UTF-8"):
        parse_record(_line()[:-1].replace("ü".encode(), b"\xc3"))
