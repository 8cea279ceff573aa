"""What scoping found: affected installs, exposed secret locations by class, and the unmapped.

`Report.to_json()` is the `--output json` contract: `affected` ({package,
version, file, path}), `exposures` ({secret, class, credential, evidence}),
`unmapped` (location strings) and `runbook` (path or null), plus the
advisory, the window and notes. An exposure's evidence is a list of chains,
each a list of steps from the advisory to the catalog credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Klass = Literal["delivered", "reachable", "excluded"]
RANK = {"delivered": 0, "reachable": 1, "excluded": 2}
MAX_CHAINS = 10  # per exposure; the count of the rest is kept


@dataclass(frozen=True)
class Window:
    """The interval the malicious versions were installable: [start, end)."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def __str__(self) -> str:
        return f"{_iso(self.start)}/{_iso(self.end)}"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse_window(text: str) -> Window:
    """`A/B` in ISO 8601 (e.g. 2025-08-26T22:30Z/2025-08-27T03:00Z); ValueError otherwise."""
    start_text, sep, end_text = text.partition("/")
    try:
        start, end = datetime.fromisoformat(start_text), datetime.fromisoformat(end_text)
    except ValueError:
        start = end = None
    if not sep or start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"{text!r} is not a window: write START/END in ISO 8601 with a time "
                         "zone, e.g. 2025-08-26T22:30Z/2025-08-27T03:00Z")
    if end <= start:
        raise ValueError(f"the window {text!r} ends before it starts")
    return Window(start, end)


@dataclass(frozen=True)
class Affected:
    ecosystem: str
    package: str
    version: str
    file: str
    line: int | None
    path: tuple[str, ...]

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_json(self) -> dict[str, Any]:
        return {"ecosystem": self.ecosystem, "package": self.package, "version": self.version,
                "file": self.file, "line": self.line, "path": list(self.path)}


@dataclass
class Exposure:
    secret: str
    klass: Klass
    credential: str | None
    evidence: list[list[str]] = field(default_factory=list)
    reason: str | None = None  # why an excluded exposure is excluded
    more: int = 0  # chains left out beyond MAX_CHAINS

    def add(self, chain: list[str]) -> None:
        if chain in self.evidence:
            return
        if len(self.evidence) < MAX_CHAINS:
            self.evidence.append(chain)
        else:
            self.more += 1

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"secret": self.secret, "class": self.klass,
                                "credential": self.credential, "evidence": self.evidence}
        if self.reason:
            data["reason"] = self.reason
        if self.more:
            data["more_evidence"] = self.more
        return data


@dataclass
class Report:
    advisory: str
    window: Window | None
    affected: list[Affected] = field(default_factory=list)
    exposures: dict[tuple[str, str | None], Exposure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runbook: str | None = None

    def expose(self, secret: str, klass: Klass, credential: str | None, chain: list[str],
               reason: str | None = None) -> None:
        """Record one chain; a location keeps its strongest class (delivered first)."""
        key = (secret, credential)
        current = self.exposures.get(key)
        if current is None or RANK[klass] < RANK[current.klass]:
            replaced = Exposure(secret, klass, credential, reason=reason)
            self.exposures[key] = replaced
            current = replaced
        if klass == current.klass:
            current.add(chain)

    def add_affected(self, affected: Affected) -> None:
        if affected not in self.affected:
            self.affected.append(affected)

    def sorted_exposures(self) -> list[Exposure]:
        return sorted(self.exposures.values(),
                      key=lambda e: (RANK[e.klass], e.credential is None, e.secret))

    @property
    def unmapped(self) -> list[str]:
        return sorted({e.secret for e in self.exposures.values()
                       if e.credential is None and e.klass != "excluded"})

    def exposed_credentials(self, delivered_only: bool = False) -> dict[str, list[Exposure]]:
        """Catalog credential id -> its delivered (and, unless delivered_only, reachable) exposures."""
        found: dict[str, list[Exposure]] = {}
        for exposure in self.sorted_exposures():
            wanted = ("delivered",) if delivered_only else ("delivered", "reachable")
            if exposure.credential is not None and exposure.klass in wanted:
                found.setdefault(exposure.credential, []).append(exposure)
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "advisory": self.advisory,
            "window": str(self.window) if self.window else None,
            "affected": [a.to_json() for a in self.affected],
            "exposures": [e.to_json() for e in self.sorted_exposures()],
            "unmapped": self.unmapped,
            "runbook": self.runbook,
            "notes": self.notes,
        }
