"""Where things are in a runbook file, and the one error type that names the place.

The loader records a 1-based (line, column) for every value and every mapping
key, addressed by its path in the document, e.g. ("spec", "tiers", 0, "id").
Later stages (model validation, semantic checks) turn a path into a position
without ever seeing YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keyturn.errors import PermanentError

Path = tuple[str | int, ...]
Position = tuple[int, int]


class RunbookError(PermanentError):
    """A runbook problem; str() is "file:line:col: reason" so editors can jump to it."""

    code = "invalid_runbook"

    def __init__(self, file: str, line: int, column: int, reason: str) -> None:
        super().__init__(f"{file}:{line}:{column}: {reason}")
        self.file = file
        self.line = line
        self.column = column
        self.reason = reason

    def details(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column, "reason": self.reason}


@dataclass(frozen=True)
class SourceMap:
    """Positions of values and keys by document path. Unknown paths fall back to a parent."""

    file: str
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)

    def position(self, path: Path, *, key: bool = False) -> Position:
        """The position of `path`'s value (or its key), else of its nearest known parent."""
        if key and path in self.keys:
            return self.keys[path]
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, (1, 1))

    def error(self, path: Path, reason: str, *, key: bool = False) -> RunbookError:
        line, column = self.position(path, key=key)
        return RunbookError(self.file, line, column, reason)
