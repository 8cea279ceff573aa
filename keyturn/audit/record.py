"""The audit record: its one-sentence definition, canonical JSON, and the hash chain.

Definition. An audit record is one step transition of one run, chained to the
record before it:

    hash = SHA-256( 0x00 || prev || canonical_json(record without "hash") )

written as 64 lowercase hex digits, where

- ``prev`` is the previous record's ``hash`` as its 64 ASCII hex bytes (the
  first record, seq 1, uses ``GENESIS_PREV`` = 64 ``"0"`` characters); ``prev``
  is also a field of the record, so it is hashed twice, once as the prefix;
- ``canonical_json(x)`` is ``json.dumps(x, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False, allow_nan=False)`` encoded as UTF-8;
- the 0x00 byte separates record hashes from any other hash keyturn signs
  (checkpoints use their own context string).

On disk a record is exactly ``canonical_json(record) + b"\\n"``; any other byte
sequence that parses to the same record is rejected, so a one-byte change is
always visible.

Fields: ``seq`` (1, 2, 3 ... in file order), ``ts`` (UTC ISO-8601 ending in Z),
``run``, ``event_id``, ``tier``, ``credential``, ``provider`` (null when the
record is about a run or a tier), ``step``, ``outcome``, ``actor``, ``details``,
``prev``, ``hash``.

Vocabulary used by the workflows and checked by ``replay``:

steps
    ``run`` (the whole run), ``tier`` (one tier), ``precheck``, ``create``,
    ``supply`` (an operator delivers a value the provider cannot create),
    ``verify_new``, ``gate``, ``promote``, ``revoke_old``, ``confirm_revoked``,
    ``rollback``, ``notify`` (a webhook notification that could not be delivered),
    ``repair`` (a record about the log itself, not a run: see below).
outcomes
    ``started``, ``succeeded``, ``failed`` (for good), ``error`` (one attempt
    failed and will be retried; add the attempt to the event id), ``skipped``,
    ``cancelled``, ``rolled_back`` (the step's effect was undone), and for gates
    and supply ``opened``, then ``approved``, ``rejected``, ``passed``,
    ``timed_out``.
actor
    ``"worker"`` for activities, otherwise the principal who acted (approver,
    supplier).
details
    JSON values, never secrets: references, ids and ``sha256:`` fingerprints.
    Keys with a meaning for replay:

    - ``precheck``: ``{"strategy": "rotate" | "revoke-first"}``
    - ``revoke_old``: ``{"phase": "disable" | "delete"}``
    - ``gate``/``opened``: ``{"gate": "tier" | "create" | "promote" | "revoke",
      "approvers": [principals], "approvals": N, "distinct": bool,
      "requested_by": principal}``
    - ``gate``/``opened`` also carries ``"groups"``, and with a timeout
      ``"timeout"`` (e.g. ``"1h"``) and ``"on_timeout": "fail" | "reject"``
    - ``gate``/``approved``, ``rejected``, ``passed``, ``timed_out``:
      ``{"gate": ...}`` (the actor of ``approved``/``rejected`` is the principal);
      ``approved`` and ``rejected`` add ``"reason"`` and ``"at"`` (the decision
      time, UTC ISO-8601); a rejection by a gate's timeout (``on_timeout:
      reject``) has the actor ``"timeout"``
    - ``notify``/``failed``: ``{"event": ..., "target": index in spec.notify,
      "error": ...}`` and ``"url_env"`` (the variable's name, never the URL)
    - ``supply``: ``opened`` while waiting for an operator, ``succeeded`` with
      the operator as actor once the value is in the store

A ``repair`` record has run ``"audit-log"`` (``REPAIR_RUN``, which no run id can
be: run ids end in a timestamp and a random suffix), no tier, credential or
provider, outcome ``succeeded``, the repairer as actor (``user@host pid N`` for a
writer, or the user of ``keyturn audit repair``) and details ``{"reason",
"cut_bytes", "cut_sha256", "at_offset", "after_seq", "by": "writer" | "keyturn
audit repair"}``: the unterminated last line (an append that never completed, so
never acknowledged) that was cut from byte ``at_offset`` before this record was
written in its place, the SHA-256 of the cut bytes, and the seq it followed.

``event_id`` is derived with :func:`event_id` from the run, the credential, the
step and whatever else makes the transition unique (normally the outcome, for
approvals also the gate and the principal), so a retried activity maps to the
same id and the log stores it once. Add the attempt number to the parts when
every failed attempt must be recorded.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keyturn.errors import KeyturnError, PermanentError

GENESIS_PREV = "0" * 64
REPAIR_RUN = "audit-log"
"""The run of records about the log itself (step ``repair``)."""
RECORD_HASH_PREFIX = b"\x00"

FIELDS = (
    "seq", "ts", "run", "event_id", "tier", "credential", "provider",
    "step", "outcome", "actor", "details", "prev", "hash",
)  # fmt: skip

STEPS = frozenset({
    "run", "tier", "lock", "precheck", "create", "supply", "verify_new", "gate",
    "promote", "revoke_old", "confirm_revoked", "rollback", "notify", "repair",
})  # fmt: skip
OUTCOMES = frozenset({
    "started", "succeeded", "failed", "error", "skipped", "cancelled", "rolled_back",
    "opened", "approved", "rejected", "passed", "timed_out", "waiting",
})  # fmt: skip

# Detail keys that can only mean a secret value; refusing them catches the
# mistake at the call site instead of in a compliance review.
FORBIDDEN_DETAIL_KEYS = frozenset({
    "secret", "secret_value", "password", "private_key", "secret_access_key",
    "client_secret",
})  # fmt: skip

_NAME = r"^[a-z][a-z0-9_]*$"
_TS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"
_HEX64 = r"^[0-9a-f]{64}$"


class AuditError(KeyturnError):
    """Base for every audit failure; messages name the file, line or field at fault.

    Neither branch: a log that cannot be read or locked (`AuditLogError`) may
    work on another try, a malformed record (`AuditFormatError`) never will."""


class AuditFormatError(AuditError, PermanentError, ValueError):
    """A log line is not a well-formed audit record; the message says why."""


def canonical_json(value: Any) -> bytes:
    """The one byte encoding of a JSON value that keyturn hashes and writes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def event_id(run: str, credential: str | None, step: str, *extra: str | int | None) -> str:
    """A stable id for one transition: the same parts always give the same 32 hex digits."""
    return hashlib.sha256(canonical_json([run, credential, step, *extra])).hexdigest()[:32]


def format_ts(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds and a Z, the only timestamp form in the log."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _forbidden_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [k for k in value if k.lower() in FORBIDDEN_DETAIL_KEYS]
        return found + [k for v in value.values() for k in _forbidden_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in _forbidden_keys(v)]
    return []


class AuditEvent(BaseModel):
    """What a caller hands to ``AuditLog.append``: one transition, without chain fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run: str = Field(min_length=1)
    event_id: str = Field(min_length=1)
    step: str = Field(pattern=_NAME)
    outcome: str = Field(pattern=_NAME)
    actor: str = Field(min_length=1)
    tier: str | None = None
    credential: str | None = None
    provider: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    ts: str | None = Field(default=None, pattern=_TS)

    @field_validator("details")
    @classmethod
    def _json_only(cls, details: dict[str, Any]) -> dict[str, Any]:
        # Round-trip so the record hashes exactly what a reader will parse back
        # (tuples become lists, NaN and non-JSON types are refused).
        try:
            normalized = json.loads(canonical_json(details))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"details must be plain JSON values: {exc}") from exc
        forbidden = _forbidden_keys(normalized)
        if forbidden:
            raise ValueError(
                f"details must not carry secret values (key {forbidden[0]!r}); "
                "pass a reference or a sha256: fingerprint"
            )
        return normalized


class AuditRecord(BaseModel):
    """One line of the log: an ``AuditEvent`` plus its place in the chain."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    seq: int = Field(ge=1)
    ts: str = Field(pattern=_TS)
    run: str
    event_id: str
    tier: str | None
    credential: str | None
    provider: str | None
    step: str
    outcome: str
    actor: str
    details: dict[str, Any]
    prev: str = Field(pattern=_HEX64)
    hash: str = Field(pattern=_HEX64)

    def body(self) -> dict[str, Any]:
        """The record without ``hash``: the part the hash covers."""
        return self.model_dump(exclude={"hash"})

    def line(self) -> bytes:
        """The record's exact bytes in the log, newline included."""
        return canonical_json(self.model_dump()) + b"\n"

    def hash_ok(self) -> bool:
        return record_hash(self.body()) == self.hash


def record_hash(body: dict[str, Any]) -> str:
    """SHA-256(0x00 || prev || canonical_json(body)) as hex; ``body`` excludes ``hash``."""
    prev = body["prev"].encode("ascii")
    return hashlib.sha256(RECORD_HASH_PREFIX + prev + canonical_json(body)).hexdigest()


def make_record(event: AuditEvent, *, seq: int, prev: str, ts: str) -> AuditRecord:
    """Chain ``event`` after the record whose hash is ``prev``; ``event.ts`` wins over ``ts``."""
    body = event.model_dump(exclude={"ts"}) | {"seq": seq, "ts": event.ts or ts, "prev": prev}
    return AuditRecord(**body, hash=record_hash(body))


def parse_record(line: bytes) -> AuditRecord:
    """Parse one line (without its newline) and insist it is in canonical form."""
    try:
        data = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise AuditFormatError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise AuditFormatError(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise AuditFormatError("not a JSON object")
    missing = [f for f in FIELDS if f not in data]
    unexpected = sorted(set(data) - set(FIELDS))
    if missing or unexpected:
        raise AuditFormatError(f"wrong fields (missing {missing}, unexpected {unexpected})")
    try:
        record = AuditRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AuditFormatError(f"field {where}: {first['msg']}") from exc
    if record.line() != line + b"\n":
        raise AuditFormatError("bytes differ from the record's canonical form")
    return record
