"""Rebuild one run's timeline from its audit records and check the rotation invariants.

Pure: takes records, returns a ``Replay``. Records are taken in seq order; each
violation names the seq of the record that breaks the rule.

Invariants (vocabulary in ``keyturn.audit.record``):

``verified_before_promote``
    A credential's ``promote``/``succeeded`` needs a ``verify_new``/``succeeded``
    after its latest ``create`` or ``supply`` success (a rollback clears it).
``delivered_before_revoke``
    A ``revoke_old`` attempt (``started``, ``succeeded``, ``failed`` or
    ``error``: a failed revocation was still tried) needs the replacement delivered:
    ``promote``/``succeeded``, or, for operator-supplied values that skip promote,
    ``supply``/``succeeded`` then ``verify_new``/``succeeded``. Exception: when
    the credential's ``precheck`` declared ``{"strategy": "revoke-first"}``, a
    ``revoke_old`` with ``{"phase": "disable"}`` may come first; the delete
    phase still waits for delivery.
``approvals_valid``
    Each gate ``opened`` record lists its approvers, required approvals, whether
    they must be distinct and who requested it. Each ``approved`` must come from
    an allowed principal, at most once per gate, and not from the requester when
    distinct; a gate ``passed`` needs that many valid approvals. A gate is
    identified by (credential, gate name), or (tier, gate name) when the
    record has no credential.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from keyturn.audit.record import OUTCOMES, REPAIR_RUN, STEPS, AuditRecord
from keyturn.audit.verify import describe_repair

_ATTEMPTS = frozenset({"started", "succeeded", "failed", "error"})
INVARIANTS = ("verified_before_promote", "delivered_before_revoke", "approvals_valid")


@dataclass(frozen=True)
class Violation:
    invariant: str
    seq: int
    credential: str | None
    message: str


@dataclass(frozen=True)
class Replay:
    run: str
    records: tuple[AuditRecord, ...]
    by_credential: dict[str | None, tuple[AuditRecord, ...]]  # None: run and tier records
    violations: tuple[Violation, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def violations_of(self, invariant: str) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.invariant == invariant)


@dataclass
class _Credential:
    revoke_first: bool = False
    verified: bool = False  # the current replacement passed verify_new
    supplied: bool = False  # the current replacement came from an operator
    delivered: bool = False


@dataclass
class _Gate:
    opened_seq: int
    approvers: frozenset[str]
    required: int
    distinct: bool
    requested_by: str | None
    approved_by: set[str] = field(default_factory=set)


def _gate_key(record: AuditRecord) -> tuple[str, str | None, object]:
    if record.credential is not None:
        return ("credential", record.credential, record.details.get("gate"))
    return ("tier", record.tier, record.details.get("gate"))


def _open_gate(record: AuditRecord) -> _Gate | str:
    """A gate from its ``opened`` record, or why the record is malformed."""
    d = record.details
    approvers, required, distinct = d.get("approvers"), d.get("approvals"), d.get("distinct")
    if not isinstance(approvers, list) or not all(isinstance(a, str) for a in approvers):
        return "gate opened without an approvers list"
    if type(required) is not int or required < 1:
        return "gate opened without a positive number of required approvals"
    if not isinstance(distinct, bool):
        return "gate opened without a boolean 'distinct'"
    requested_by = d.get("requested_by")
    requested_by = requested_by if isinstance(requested_by, str) else None
    return _Gate(record.seq, frozenset(approvers), required, distinct, requested_by)


class _Checker:
    def __init__(self) -> None:
        self.credentials: dict[str | None, _Credential] = {}
        self.gates: dict[tuple[str, str | None, object], _Gate] = {}
        self.violations: list[Violation] = []

    def flag(self, invariant: str, record: AuditRecord, message: str) -> None:
        self.violations.append(Violation(invariant, record.seq, record.credential, message))

    def rotation(self, r: AuditRecord) -> None:
        c = self.credentials.setdefault(r.credential, _Credential())
        step, outcome = r.step, r.outcome
        if step == "precheck" and r.details.get("strategy") == "revoke-first":
            c.revoke_first = True
        elif step in ("create", "supply") and outcome == "succeeded":
            c.verified, c.supplied, c.delivered = False, step == "supply", False
        elif step == "verify_new" and outcome == "succeeded":
            c.verified = True
            c.delivered = c.delivered or c.supplied
        elif step == "promote" and outcome == "succeeded":
            if not c.verified:
                self.flag("verified_before_promote", r, "promoted before verify_new succeeded")
            c.delivered = True
        elif step == "revoke_old" and outcome in _ATTEMPTS and not c.delivered:
            self.early_revoke(r, c)
        if outcome == "rolled_back" or (step == "rollback" and outcome in ("started", "succeeded")):
            c.verified = c.delivered = False

    def early_revoke(self, r: AuditRecord, c: _Credential) -> None:
        if c.revoke_first and r.details.get("phase") == "disable":
            return  # break-glass: disabling the harvested credential first is the point
        why = " (revoke-first allows only the disable phase)" if c.revoke_first else ""
        self.flag(
            "delivered_before_revoke", r,
            f"revoke_old {r.outcome} before the replacement was delivered{why}",
        )  # fmt: skip

    def gate(self, r: AuditRecord) -> None:
        key, outcome, name = _gate_key(r), r.outcome, r.details.get("gate")
        if outcome == "opened":
            opened = _open_gate(r)
            if isinstance(opened, str):
                self.flag("approvals_valid", r, opened)
                self.gates.pop(key, None)
            else:
                self.gates[key] = opened
            return
        if outcome not in ("approved", "passed"):
            return
        gate = self.gates.get(key)
        if gate is None:
            self.flag("approvals_valid", r, f"gate {name!r} {outcome} but never opened")
        elif outcome == "passed" and len(gate.approved_by) < gate.required:
            self.flag(
                "approvals_valid", r,
                f"gate {name!r} passed with {len(gate.approved_by)} of {gate.required} "
                "required valid approvals",
            )  # fmt: skip
        elif outcome == "approved":
            self.approval(r, gate, name)

    def approval(self, r: AuditRecord, gate: _Gate, name: object) -> None:
        who = r.actor
        if who not in gate.approvers:
            allowed = ", ".join(sorted(gate.approvers))
            message = f"{who} is not an allowed approver of gate {name!r} (allowed: {allowed})"
            self.flag("approvals_valid", r, message)
        elif who in gate.approved_by:
            self.flag("approvals_valid", r, f"{who} approved gate {name!r} twice")
        elif gate.distinct and who == gate.requested_by:
            self.flag("approvals_valid", r, f"{who} requested gate {name!r} and cannot approve it")
        else:
            gate.approved_by.add(who)


def replay(records: Iterable[AuditRecord], run: str) -> Replay:
    """The timeline of ``run`` (its records in seq order) and every invariant violation.

    ``repair`` records among ``records`` (run ``REPAIR_RUN``) are not part of the
    timeline; one made while the run was writing is reported as a warning."""
    records = list(records)
    ordered = tuple(sorted((r for r in records if r.run == run), key=lambda r: r.seq))
    by_credential: dict[str | None, list[AuditRecord]] = {}
    warnings: list[str] = []
    if ordered:
        first, last = ordered[0].seq, ordered[-1].seq
        warnings += [
            f"seq {r.seq}: the log was repaired during this run: {describe_repair(r)}; "
            "a step whose record was cut wrote it again when it was retried"
            for r in records
            if r.step == "repair" and r.run == REPAIR_RUN and first < r.seq < last
        ]
    checker = _Checker()
    for r in ordered:
        by_credential.setdefault(r.credential, []).append(r)
        if r.step not in STEPS or r.outcome not in OUTCOMES:
            warnings.append(f"seq {r.seq}: unknown step/outcome {r.step}/{r.outcome}")
        if r.step == "gate":
            checker.gate(r)
        elif r.step != "notify":  # a webhook delivery says nothing about the rotation
            checker.rotation(r)
    return Replay(
        run=run,
        records=ordered,
        by_credential={k: tuple(v) for k, v in by_credential.items()},
        violations=tuple(checker.violations),
        warnings=tuple(warnings),
    )
