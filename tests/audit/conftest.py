"""Fixtures for the audit tests: a clean environment, event and chain builders, keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from keyturn.audit import GENESIS_PREV, AuditEvent, AuditRecord, event_id, generate_signing_key
from keyturn.audit.record import make_record

MakeEvent = Callable[..., AuditEvent]


@pytest.fixture(autouse=True)
def _clean_audit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KEYTURN_AUDIT_LOG", "KEYTURN_AUDIT_DSN", "KEYTURN_AUDIT_SIGNING_KEY",
                 "KEYTURN_AUDIT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "audit.jsonl"


@pytest.fixture
def make_event() -> MakeEvent:
    """An event whose id derives from (run, credential, step, outcome, *extra)."""

    def make(
        step: str = "create",
        outcome: str = "succeeded",
        *,
        run: str = "run-1",
        credential: str | None = "cred-a",
        actor: str = "worker",
        extra: Sequence[str | int] = (),
        **fields: object,
    ) -> AuditEvent:
        return AuditEvent(
            run=run,
            event_id=event_id(run, credential, step, outcome, *extra),
            step=step,
            outcome=outcome,
            credential=credential,
            actor=actor,
            **fields,
        )

    return make


@pytest.fixture
def chain() -> Callable[[Sequence[AuditEvent]], list[AuditRecord]]:
    """Chain events in memory, with fixed timestamps, as the appender would."""

    def build(events: Sequence[AuditEvent]) -> list[AuditRecord]:
        records: list[AuditRecord] = []
        for seq, event in enumerate(events, start=1):
            prev = records[-1].hash if records else GENESIS_PREV
            records.append(
                make_record(event, seq=seq, prev=prev, ts=f"2026-04-12T03:00:{seq % 60:02d}Z")
            )
        return records

    return build


@pytest.fixture
def signing_key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "audit-signing.pem"
    path.parent.mkdir()
    generate_signing_key(path)
    return path
