"""The one error type of scope inputs: it names the file, and the line and column when known.

Lockfiles, manifests and workflows in YAML or line formats give a line; JSON
documents give a line for syntax errors and a JSON path for shape errors. The
catalog reuses the runbook's RunbookError (file:line:col), which the CLI treats
the same way: exit 2.
"""

from __future__ import annotations

from keyturn.errors import PermanentError


class ScopeError(PermanentError):
    """An input scope cannot read; str() is "file:line:col: reason" (or "file: reason")."""

    def __init__(self, file: str, reason: str, line: int | None = None, column: int | None = None):
        where = file if line is None else f"{file}:{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.reason = reason
        self.line = line
        self.column = column
