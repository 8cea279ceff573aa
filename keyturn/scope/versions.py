"""Version order and native ranges per ecosystem: npm (node-semver), PyPI (PEP 440), Actions.

OSV ranges are evaluated in the ecosystem's own order (`compare`); `--range`
is read in the ecosystem's own syntax (`native_range`). Both count prereleases:
OSV orders 2.0.0-beta.1 between 1.9 and 2.0.0 and so covers it, while npm and
pip leave prereleases out of a plain range unless asked. A responder wants the
wider answer, so native ranges here include prereleases too (docs/scope.md).

GitHub Actions are versioned by git tags (`v4`, `v4.1.2`) or pinned by commit
SHA. Tags compare as dotted numbers after an optional `v`; a SHA only ever
equals itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cmp_to_key

import nodesemver
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from keyturn.errors import PermanentError

NPM, PYPI, ACTIONS = "npm", "PyPI", "GitHub Actions"
ECOSYSTEMS = (NPM, PYPI, ACTIONS)
SHA = re.compile(r"[0-9a-f]{40}")
_TAG = re.compile(r"v?(\d+(?:\.\d+)*)")
_ALIASES = {"npm": NPM, "pypi": PYPI, "github actions": ACTIONS, "actions": ACTIONS,
            "github-actions": ACTIONS}


class VersionError(PermanentError, ValueError):
    """A version or range that the ecosystem's syntax does not allow."""


def ecosystem(name: str) -> str | None:
    """The canonical ecosystem name for `name` (any case; `actions` for GitHub Actions)."""
    return _ALIASES.get(name.strip().lower())


def normalize_name(eco: str, name: str) -> str:
    """The name as the ecosystem compares it: PEP 503 for PyPI, lower case for actions."""
    if eco == PYPI:
        return canonicalize_name(name)
    if eco == ACTIONS:
        return name.lower()
    return name


def compare(eco: str, a: str, b: str) -> int:
    """-1, 0 or 1 as `a` sorts before, with or after `b`; VersionError if either is invalid."""
    if eco == NPM:
        return int(_semver(a).compare(_semver(b)))
    if eco == PYPI:
        left_v, right_v = _pep440(a), _pep440(b)
        return (left_v > right_v) - (left_v < right_v)
    left_t, right_t = _tag(a), _tag(b)
    return (left_t > right_t) - (left_t < right_t)


def sort_key(eco: str) -> Callable[[str], object]:
    return cmp_to_key(lambda a, b: compare(eco, a, b))


def equal(eco: str, a: str, b: str) -> bool:
    """Whether two version strings name the same version (1.0 == 1.0.0 on PyPI)."""
    if a == b:
        return True
    if eco == ACTIONS and (SHA.fullmatch(a.lower()) or SHA.fullmatch(b.lower())):
        return a.lower() == b.lower()
    try:
        return compare(eco, a, b) == 0
    except VersionError:
        return False


def native_range(eco: str, text: str) -> Callable[[str], bool]:
    """A predicate for `text` in the ecosystem's range syntax, prereleases included."""
    if eco == NPM:
        try:
            nodesemver.make_range(text, False)
        except (ValueError, TypeError) as exc:
            raise VersionError(f"not an npm semver range: {text!r}") from exc
        return lambda version: _npm_satisfies(version, text)
    if eco == PYPI:
        try:
            specifiers = SpecifierSet(text)
        except InvalidSpecifier as exc:
            raise VersionError(f"not a PEP 440 specifier: {text!r}") from exc
        return lambda version: _pep440_contains(specifiers, version)
    raise VersionError("GitHub Actions have no range syntax: list tags or SHAs with --versions")


def _npm_satisfies(version: str, text: str) -> bool:
    try:
        return bool(nodesemver.satisfies(version, text, loose=False, include_prerelease=True))
    except (ValueError, TypeError):
        return False


def _pep440_contains(specifiers: SpecifierSet, version: str) -> bool:
    try:
        return specifiers.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _semver(text: str) -> nodesemver.SemVer:
    try:
        return nodesemver.make_semver(text, True)
    except (ValueError, TypeError) as exc:
        raise VersionError(f"not a semantic version: {text!r}") from exc


def _pep440(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise VersionError(f"not a PEP 440 version: {text!r}") from exc


def _tag(text: str) -> tuple[int, ...]:
    match = _TAG.fullmatch(text)
    if not match:
        raise VersionError(f"not a version tag: {text!r}")
    parts = tuple(int(part) for part in match.group(1).split("."))
    return parts + (0,) * (3 - len(parts))
