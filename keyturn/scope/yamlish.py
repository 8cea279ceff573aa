"""YAML for scope: the line-level reader of the pnpm and yarn berry parsers, and
`documents` for files written by people (workflows, Kubernetes manifests).

Lockfiles are YAML written by one program in one layout (two-space indent,
one `key: value` or `key:` per line, keys quoted only when they must be). A
general YAML parser reads them an order of magnitude slower than this, so the
parsers walk lines and use `split_line` for each.
"""

from __future__ import annotations

from typing import Any

import yaml

from keyturn.scope.errors import ScopeError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def documents(text: str, file: str) -> list[Any]:
    """Every document of a YAML file (safe types only); ScopeError with the line if broken."""
    try:
        return list(yaml.load_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ScopeError(file, f"invalid YAML: {exc.problem}", mark.line + 1 if mark else None,
                         mark.column + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise ScopeError(file, f"invalid YAML: {exc}") from exc


def split_line(line: str, file: str, number: int, start: int) -> tuple[str, str]:
    """`key: value` (or `key:`) starting at column `start` as (key, value), both unquoted."""
    first = line[start]
    if first in "'\"":
        end = _closing_quote(line, start)
        if end < 0:
            raise ScopeError(file, "unterminated quoted key", number, start + 1)
        key = _unquote(line[start:end + 1])
        rest = line[end + 1:]
        if not rest.startswith(":"):
            raise ScopeError(file, "expected ':' after the key", number, end + 2)
        return key, unquote(rest[1:].strip())
    cut = line.find(": ", start)
    if cut < 0:
        if not line.endswith(":"):
            raise ScopeError(file, "expected 'key: value' or 'key:'", number, start + 1)
        return line[start:-1], ""
    return line[start:cut], unquote(line[cut + 2:].strip())


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return _unquote(value)
    return value


def _closing_quote(line: str, start: int) -> int:
    """The index of the quote closing the one at `start`, or -1 ('' and \\" are escapes)."""
    quote, at = line[start], start + 1
    while True:
        at = line.find(quote, at)
        if at < 0:
            return -1
        if quote == "'":
            if line.startswith("''", at):
                at += 2
                continue
            return at
        backslashes = len(line[start + 1:at]) - len(line[start + 1:at].rstrip("\\"))
        if backslashes % 2 == 0:
            return at
        at += 1


def _unquote(text: str) -> str:
    body = text[1:-1]
    if text[0] == "'":
        return body.replace("''", "'")
    return body.replace('\\"', '"').replace("\\\\", "\\")
