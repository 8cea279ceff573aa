"""Verify's fast path: walk the hash chain of an intact log without building models.

``verify`` (keyturn.audit.verify) must name the first bad record exactly, which the
full parser (``parse_record``, a pydantic model per line) does well and slowly. Most
logs are intact, so verify first runs :func:`scan_chain`, which accepts a line only
when the full checks would accept it too, and gives up (returns None) at the first
line it is not sure of; verify then runs the full checks from the start to name the
problem.

Every accepted line holds the expected seq, its hash recomputes (SHA-256 over
``0x00 || prev`` and the line without its ``"hash"`` member, which for a canonical line
is ``canonical_json(record without hash)``) and its ``"hash"`` member sits where
canonical form puts it. Lines up to the latest checkpoint whose signature verified
need no more: once the chain reaches the signed hash, each of them is the line its
writer hashed, and keyturn's writers write canonical records (only a holder of the
signing key could have signed anything else). Later lines, and every line when no
public key is given, must also parse to exactly the record fields with the types
``AuditRecord`` requires and re-encode (one ``json`` call) to exactly their bytes.
Event ids are remembered as their (per-process keyed) ``hash()``, a set of ints; a
repeated value sends verify to the full checks, which tell a repeated id from a
collision.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from keyturn.audit.record import FIELDS, RECORD_HASH_PREFIX

_FIELD_SET = frozenset(FIELDS)
_DECODE = json.JSONDecoder().decode
_ENCODE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode
# A subset of record._TS (ASCII digits only): anything else goes to the full checks.
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z\Z")
_HASH_MEMBER = b',"hash":"'
_HASH_MEMBER_LEN = len(_HASH_MEMBER) + 64 + 1  # ,"hash":" + 64 hex digits + "
_OUTCOME_KEY, _EVENT_ID_KEY, _SEQ_KEY = b',"outcome":"', b',"event_id":"', b',"seq":'
_NAMES = ("run", "event_id", "step", "outcome", "actor")
_OPTIONAL = ("tier", "credential", "provider")


def _well_typed(data: Any) -> bool:
    """Exactly the record fields, with the types ``AuditRecord`` (strict) requires."""
    return (
        type(data) is dict
        and data.keys() == _FIELD_SET
        and all(type(data[name]) is str for name in _NAMES)
        and all(data[name] is None or type(data[name]) is str for name in _OPTIONAL)
        and type(data["details"]) is dict
        and type(data["ts"]) is str
        and _TS.match(data["ts"]) is not None
        and type(data["hash"]) is str
    )


def _by_json(line: bytes, seq: int, head: bytes) -> tuple[bytes, bytes] | None:
    """(hash, event id) of a line the full checks would accept as ``seq`` after ``head``,
    judged from the line alone: parse, types, one re-encoding for canonical form."""
    try:
        data = _DECODE(line.decode("utf-8"))
        if not _well_typed(data) or _ENCODE(data).encode("utf-8") != line:
            return None
    except ValueError:  # not UTF-8, not JSON, NaN, lone surrogates
        return None
    if type(data["seq"]) is not int or data["seq"] != seq or data["prev"] != head.decode():
        return None
    return _by_bytes(line, seq, head)


def _by_bytes(line: bytes, seq: int, head: bytes) -> tuple[bytes, bytes] | None:
    """(hash, event id as encoded) when the line's hash recomputes over its bytes after
    ``head``, its ``"hash"`` member sits where canonical form puts it (before
    ``outcome``, no ``event_id`` key after it) and its seq is ``seq``.

    That is all a line needs if it is canonical (``_by_json`` checked) or the bytes its
    writer hashed (a signed checkpoint later in the chain proves it). In a canonical
    line the top-level ``"hash"`` member is the last one: only scalar fields follow it,
    and their strings cannot hold a bare quote; the event id's encoded bytes name it as
    uniquely as its value."""
    at = line.rfind(_HASH_MEMBER)
    end = at + _HASH_MEMBER_LEN
    if at < 0 or line[end - 1 : end] != b'"':
        return None
    stored, suffix = line[at + len(_HASH_MEMBER) : end - 1], line[end:]
    if (
        hashlib.sha256(RECORD_HASH_PREFIX + head + line[:at] + suffix).hexdigest().encode()
        != stored
    ):
        return None
    seq_at = suffix.find(_SEQ_KEY)
    if seq_at < 0 or not suffix.startswith(_OUTCOME_KEY) or _EVENT_ID_KEY in suffix:
        return None
    seq_at += len(_SEQ_KEY)
    if suffix[seq_at : suffix.find(b",", seq_at)] != b"%d" % seq:
        return None
    return stored, line[line.rfind(_EVENT_ID_KEY, 0, at) + len(_EVENT_ID_KEY) : at]


REPAIR_STEP = b'"step":"repair"'
"""How a `repair` record's canonical line names its step: verify checks and lists those."""


def scan_chain(
    lines: Iterable[tuple[bytes, bool]],
    genesis: str,
    checkpoints: Mapping[int, Sequence[bytes]],
    signed_upto: int = 0,
) -> tuple[int, str] | None:
    """(records, head hash) when every line is a good record, chained from ``genesis``
    and carrying the hash every checkpoint of its seq signed (``checkpoints``: seq ->
    hashes, ASCII); None as soon as a line or a checkpoint needs the full checks.

    Lines up to ``signed_upto``, the seq of the latest checkpoint whose signature
    verified, are judged by their bytes: if their chain reaches the signed hash, each is
    the line its writer hashed (SHA-256 is collision resistant), so it is canonical.
    Should the chain not reach it, the full checks run. Later lines are parsed."""
    seen: set[int] = set()
    head, count = genesis.encode("ascii"), 0
    for count, (line, terminated) in enumerate(lines, start=1):
        if not terminated or REPAIR_STEP in line:  # a repair record gets the full checks
            return None
        found = (
            _by_bytes(line, count, head) if count <= signed_upto else _by_json(line, count, head)
        )
        if found is None:
            return None
        key = hash(found[1])
        if key in seen:
            return None
        seen.add(key)
        head = found[0]
        if (signed := checkpoints.get(count)) is not None and any(h != head for h in signed):
            return None
    if count < signed_upto:
        return None  # the signed records are not all there: truncation, named by verify
    return count, head.decode("ascii")
