"""Verify's fast path accepts only what the full checks accept, and gives up otherwise."""

from __future__ import annotations

import hashlib

from keyturn.audit import GENESIS_PREV
from keyturn.audit.chain_scan import scan_chain
from keyturn.audit.record import RECORD_HASH_PREFIX, canonical_json, parse_record
from keyturn.audit.verify import verify_lines


def _pairs(lines: list[bytes]) -> list[tuple[bytes, bool]]:
    return [(line.rstrip(b"\n"), True) for line in lines]


def test_an_intact_chain_is_accepted_with_its_head(chain, make_event) -> None:
    records = chain(
        [
            make_event("create", details={"note": "clé ✓ 𝄞", "hash": "x", "n": [1, 2]}),
            make_event("verify_new"),
            make_event("promote"),
        ]
    )
    scanned = scan_chain(
        _pairs([r.line() for r in records]), GENESIS_PREV, {2: [records[1].hash.encode()]}
    )
    assert scanned == (3, records[2].hash)
    assert scan_chain([], GENESIS_PREV, {}) == (0, GENESIS_PREV)


def test_a_checkpoint_that_disagrees_sends_verify_to_the_full_checks(chain, make_event) -> None:
    records = chain([make_event("create"), make_event("verify_new")])
    assert scan_chain(_pairs([r.line() for r in records]), GENESIS_PREV, {1: [b"0" * 64]}) is None


def test_a_repeated_event_id_is_left_to_the_full_checks(chain, make_event) -> None:
    records = chain([make_event("create"), make_event("verify_new"), make_event("create")])
    assert scan_chain(_pairs([r.line() for r in records]), GENESIS_PREV, {}) is None


def test_a_non_canonical_line_hashed_over_its_own_bytes_is_refused(chain, make_event) -> None:
    """A forger who spaces a record out and recomputes the hash over the new bytes: the
    hash matches those bytes, but the line is not canonical, so both paths refuse it."""
    record = chain([make_event("create")])[0]
    body = record.body()
    spaced_body = canonical_json(body).replace(b'"actor":', b'"actor": ')
    forged_hash = hashlib.sha256(RECORD_HASH_PREFIX + body["prev"].encode() + spaced_body)
    line = spaced_body.replace(
        b',"outcome":', f',"hash":"{forged_hash.hexdigest()}","outcome":'.encode()
    )
    assert scan_chain([(line, True)], GENESIS_PREV, {}) is None
    first = verify_lines([(line, True)], b"").first_problem
    assert first is not None and first.seq == 1 and "canonical" in first.reason


def test_types_the_model_refuses_are_left_to_the_full_checks(chain, make_event) -> None:
    record = chain([make_event("create")])[0]
    for field, value in (("seq", True), ("tier", 1), ("details", []), ("ts", "2026-04-12")):
        data = record.model_dump() | {field: value}
        body = {k: v for k, v in data.items() if k != "hash"}
        digest = hashlib.sha256(RECORD_HASH_PREFIX + body["prev"].encode() + canonical_json(body))
        line = canonical_json(data | {"hash": digest.hexdigest()})
        assert scan_chain([(line, True)], GENESIS_PREV, {}) is None, field
        assert not verify_lines([(line, True)], b"").ok, field


def test_every_line_the_scan_accepts_parses_as_a_record(chain, make_event) -> None:
    records = chain([make_event("create", tier="t", provider="p", details={"a": None})])
    line = records[0].line()[:-1]
    assert scan_chain([(line, True)], GENESIS_PREV, {}) == (1, records[0].hash)
    assert parse_record(line) == records[0]


def test_signed_lines_are_judged_by_their_bytes_and_must_be_the_written_ones(
    chain, make_event
) -> None:
    """Up to a verified checkpoint the scan does not parse; a line whose hash member was
    moved (its body and so its hash unchanged) is still refused."""
    records = chain([make_event("create", details={"a": {"event_id": "x", "outcome": "y"}})])
    line, head = records[0].line()[:-1], records[0].hash
    assert scan_chain([(line, True)], GENESIS_PREV, {1: [head.encode()]}, signed_upto=1) == (
        1,
        head,
    )
    member = f',"hash":"{head}"'.encode()
    body = line.replace(member, b"")
    moved = [body[:-1] + member + b"}", body.replace(b',"outcome":"y"', member + b',"outcome":"y"')]
    for forged in moved:
        assert (
            scan_chain([(forged, True)], GENESIS_PREV, {1: [head.encode()]}, signed_upto=1) is None
        )
    assert scan_chain([], GENESIS_PREV, {1: [head.encode()]}, signed_upto=1) is None  # truncated
