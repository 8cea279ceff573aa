"""The `scope` audit record: one scoping, tied to its inputs and to the runbook it wrote.

Definition. A scope record says that a scoping of advisory A over window W,
from inputs whose SHA-256 digests are D, found these counts and wrote the
runbook whose SHA-256 is R (or none). Its run is `scope:A`; its event id is
derived from the digests and counts, so re-running the same scope on the same
inputs records it once. An auditor holding a runbook finds the scoping that
produced it by R.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from keyturn.audit.record import AuditEvent, event_id
from keyturn.scope.discover import walk
from keyturn.scope.report import Report

STEP = "scope"


def digest(path: Path) -> str:
    """sha256 of a file, or of a directory's sorted (relative path, file digest) lines."""
    if path.is_file():
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    lines = [f"{p.relative_to(path).as_posix()} {digest(p)}\n" for p in walk(path)]
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def event(report: Report, inputs: dict[str, Path], runbook: str | None, actor: str) -> AuditEvent:
    """The audit event of one scoping; `inputs` maps each option's value to its path."""
    digests = {name: digest(path) for name, path in sorted(inputs.items())}
    counts = {"affected": len(report.affected), "unmapped": len(report.unmapped)}
    for klass in ("delivered", "reachable", "excluded"):
        counts[klass] = sum(1 for e in report.exposures.values() if e.klass == klass)
    runbook_digest = ("sha256:" + hashlib.sha256(runbook.encode()).hexdigest()) if runbook else None
    run = f"scope:{report.advisory}"
    details = {
        "advisory": report.advisory,
        "window": str(report.window) if report.window else None,
        "inputs": digests,
        "counts": counts,
        "runbook_path": report.runbook,
        "runbook_sha256": runbook_digest,
    }
    eid = event_id(run, None, STEP, *digests.values(), *map(str, counts.values()),
                   runbook_digest)
    return AuditEvent(run=run, event_id=eid, step=STEP, outcome="succeeded", actor=actor,
                      details=details)
