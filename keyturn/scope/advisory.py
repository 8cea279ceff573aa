"""The advisory: which package versions are compromised, from an OSV record or the command line.

An OSV record (a MAL-* entry of the OpenSSF malicious-packages database, or a
GHSA) lists `affected[]`: a package (ecosystem, name), explicit `versions` and
`ranges` of events (introduced, fixed, last_affected, limit) ordered either as
SEMVER or in the ECOSYSTEM's own order. A range that starts at "0" and never
ends covers every version: it is applied and flagged as over-broad. GIT ranges
need the repository's history and are not evaluated; listed commit SHAs are.
Entries of other ecosystems are kept out and reported as ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyturn.scope import versions
from keyturn.scope.errors import ScopeError
from keyturn.scope.versions import ACTIONS, VersionError

_EVENTS = ("introduced", "fixed", "last_affected", "limit")


@dataclass(frozen=True)
class Range:
    """One OSV range: its type and events, each a (kind, version) pair in record order."""

    type: str
    events: tuple[tuple[str, str], ...]

    @property
    def unbounded(self) -> bool:
        return any(kind == "introduced" and v == "0" for kind, v in self.events) and all(
            kind == "introduced" for kind, _ in self.events
        )

    def contains(self, eco: str, version: str) -> bool:
        """OSV's evaluation: the last introduced at or below `version` not closed since."""
        order = versions.NPM if self.type == "SEMVER" else eco
        try:
            if any(kind == "limit" and v != "*" and versions.compare(order, version, v) >= 0
                   for kind, v in self.events):
                return False
            affected = False
            for kind, v in sorted(self.events, key=lambda e: _event_key(order, e[1])):
                c = 1 if v == "0" else versions.compare(order, version, v)
                if kind == "introduced" and c >= 0:
                    affected = True
                elif (kind == "fixed" and c >= 0) or (kind == "last_affected" and c > 0):
                    affected = False
            return affected
        except VersionError:
            return False


def _event_key(eco: str, version: str) -> Any:
    return (0, "") if version == "0" else (1, versions.sort_key(eco)(version))


@dataclass(frozen=True)
class AffectedPackage:
    """One compromised package: versions listed, OSV ranges, or a native range (`--range`)."""

    ecosystem: str
    name: str
    versions: tuple[str, ...] = ()
    ranges: tuple[Range, ...] = ()
    native: str | None = None

    @property
    def over_broad(self) -> bool:
        """Every version is covered (introduced "0" with no end): likely wider than the attack."""
        return any(r.unbounded for r in self.ranges)

    def affects(self, version: str) -> bool:
        if any(versions.equal(self.ecosystem, version, listed) for listed in self.versions):
            return True
        if self.native is not None and versions.native_range(self.ecosystem, self.native)(version):
            return True
        return any(r.contains(self.ecosystem, version) for r in self.ranges)

    def describe(self) -> str:
        parts = list(self.versions)
        parts += [" ".join(f"{k} {v}" for k, v in r.events) for r in self.ranges]
        parts += [self.native] if self.native else []
        return f"{self.ecosystem}:{self.name} ({'; '.join(parts) or 'no versions'})"


@dataclass(frozen=True)
class Advisory:
    id: str
    summary: str = ""
    packages: tuple[AffectedPackage, ...] = ()
    ignored: tuple[str, ...] = field(default=())  # "ecosystem:name" entries not evaluated

    _index: dict[tuple[str, str], list[AffectedPackage]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for pkg in self.packages:
            key = (pkg.ecosystem, versions.normalize_name(pkg.ecosystem, pkg.name))
            self._index.setdefault(key, []).append(pkg)

    @property
    def ecosystems(self) -> set[str]:
        return {pkg.ecosystem for pkg in self.packages}

    def names(self, eco: str) -> set[str]:
        """The normalized names the advisory lists for an ecosystem."""
        return {name for key_eco, name in self._index if key_eco == eco}

    def match(self, eco: str, name: str, version: str) -> AffectedPackage | None:
        """The affected entry covering name@version, or None. Names compare as the ecosystem does."""
        candidates = self._index.get((eco, versions.normalize_name(eco, name)), ())
        return next((pkg for pkg in candidates if pkg.affects(version)), None)


def load_osv(path: str | Path) -> Advisory:
    """Read an OSV JSON record; ScopeError names the line (syntax) or the JSON path (shape)."""
    file = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScopeError(file, f"cannot read the advisory: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ScopeError(file, "the advisory is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise ScopeError(file, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    return parse_osv(data, file)


def parse_osv(data: Any, file: str) -> Advisory:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise ScopeError(file, "not an OSV record: expected an object with a string 'id'")
    affected = data.get("affected")
    if not isinstance(affected, list) or not affected:
        raise ScopeError(file, "affected: the record lists no affected packages")
    packages, ignored = [], []
    for i, entry in enumerate(affected):
        where = f"affected[{i}]"
        pkg = entry.get("package") if isinstance(entry, dict) else None
        if not isinstance(pkg, dict) or not all(
            isinstance(pkg.get(key), str) and pkg.get(key) for key in ("ecosystem", "name")
        ):
            raise ScopeError(file, f"{where}.package: needs 'ecosystem' and 'name'")
        eco = versions.ecosystem(pkg["ecosystem"])
        if eco is None:
            ignored.append(f"{pkg['ecosystem']}:{pkg['name']}")
            continue
        listed = entry.get("versions", [])
        if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
            raise ScopeError(file, f"{where}.versions: must be a list of strings")
        ranges = tuple(_ranges(entry.get("ranges", []), f"{where}.ranges", file))
        packages.append(AffectedPackage(eco, pkg["name"], tuple(listed), ranges))
    if not packages:
        raise ScopeError(file, f"no affected package in a supported ecosystem "
                               f"({', '.join(versions.ECOSYSTEMS)}); ignored: {', '.join(ignored)}")
    summary = data.get("summary") if isinstance(data.get("summary"), str) else ""
    return Advisory(data["id"], summary, tuple(packages), tuple(ignored))


def _ranges(raw: Any, where: str, file: str) -> list[Range]:
    if not isinstance(raw, list):
        raise ScopeError(file, f"{where}: must be a list")
    found = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or item.get("type") not in ("SEMVER", "ECOSYSTEM", "GIT"):
            raise ScopeError(file, f"{where}[{i}].type: must be SEMVER, ECOSYSTEM or GIT")
        events = item.get("events")
        if not isinstance(events, list) or not events:
            raise ScopeError(file, f"{where}[{i}].events: must be a non-empty list")
        pairs = []
        for j, event in enumerate(events):
            if not (isinstance(event, dict) and len(event) == 1 and next(iter(event)) in _EVENTS
                    and isinstance(next(iter(event.values())), str)):
                raise ScopeError(file, f"{where}[{i}].events[{j}]: must be one of "
                                       f"{', '.join(_EVENTS)} with a version string")
            pairs.append(next(iter(event.items())))
        if item["type"] != "GIT":
            found.append(Range(item["type"], tuple(pairs)))
    return found


def from_command_line(package: str, listed: list[str], native: str | None) -> Advisory:
    """`--package ECOSYSTEM:NAME` with `--versions` and/or `--range` (native syntax)."""
    eco_text, sep, name = package.partition(":")
    eco = versions.ecosystem(eco_text)
    if not sep or not name or eco is None:
        raise ScopeError("--package", f"expected ECOSYSTEM:NAME with ECOSYSTEM one of npm, "
                                      f"PyPI, actions; got {package!r}")
    if not listed and native is None:
        raise ScopeError("--package", "give --versions A,B or --range RANGE")
    if native is not None:
        try:
            versions.native_range(eco, native)
        except VersionError as exc:
            raise ScopeError("--range", str(exc)) from exc
    if eco == ACTIONS:
        listed = [v.lower() if versions.SHA.fullmatch(v.lower()) else v for v in listed]
    return Advisory(f"{eco}:{name}", "", (AffectedPackage(eco, name, tuple(listed), (), native),))
