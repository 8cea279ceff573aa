"""Finding the inputs in a directory and reading each with the parser for its format.

Lockfiles are known by name; SBOMs by name (`*.cdx.json`, `*.spdx.json`,
`bom.json`, `sbom*.json`) or, given directly, by content; workflows are
`.github/workflows/*.yml|yaml`. `node_modules`, `.git` and virtualenvs are
not searched: what is installed there is what the lockfile says.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from keyturn.scope import npm_lock, pnpm_lock, python_locks, sbom, yarn_lock
from keyturn.scope.errors import ScopeError
from keyturn.scope.inventory import Inventory

Parser = Callable[[str, str], Inventory]
LOCKFILES: dict[str, Parser] = {
    "package-lock.json": npm_lock.parse,
    "npm-shrinkwrap.json": npm_lock.parse,
    "yarn.lock": yarn_lock.parse,
    "pnpm-lock.yaml": pnpm_lock.parse,
    "poetry.lock": python_locks.parse_poetry,
    "uv.lock": python_locks.parse_uv,
    "Pipfile.lock": python_locks.parse_pipfile,
}
_SBOM_NAMES = ("*.cdx.json", "*.spdx.json", "bom.json", "sbom*.json")
_SKIP = frozenset({"node_modules", ".git", ".venv", "venv", "__pycache__"})


def parser_for(name: str) -> Parser | None:
    """The parser for a file name, or None if the name is not one scope reads."""
    if name in LOCKFILES:
        return LOCKFILES[name]
    if fnmatch.fnmatch(name, "requirements*.txt"):
        return python_locks.parse_requirements
    if any(fnmatch.fnmatch(name, pattern) for pattern in _SBOM_NAMES):
        return sbom.parse
    return None


def walk(root: Path) -> Iterator[Path]:
    """Every file under `root`, skipping installed-package and VCS directories, sorted."""
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP)
        for name in sorted(files):
            yield Path(directory) / name


def read_text(path: Path, shown: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScopeError(shown, f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ScopeError(shown, "not UTF-8 text") from exc


def inventories(root: Path, label: str) -> Iterator[Inventory]:
    """Each lockfile and SBOM under a checkout; files are named `label/relative/path`."""
    for path in walk(root):
        parser = parser_for(path.name)
        if parser is not None:
            shown = f"{label}/{path.relative_to(root).as_posix()}"
            yield parser(read_text(path, shown), shown)


def workflow_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(path in the repository, file) of each workflow of a checkout."""
    directory = root / ".github" / "workflows"
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            if path.suffix in (".yml", ".yaml") and path.is_file():
                yield f".github/workflows/{path.name}", path


def sbom_files(root: Path) -> Iterator[Path]:
    """An SBOM given directly, or every JSON file under a directory given with --sbom."""
    if root.is_file():
        yield root
        return
    for path in walk(root):
        if path.suffix == ".json":
            yield path
