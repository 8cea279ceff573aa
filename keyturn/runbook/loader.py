"""Load a runbook file into the `Runbook` model; every problem is a positioned RunbookError.

`load`/`loads` check YAML syntax and the model's shape. Checks across the whole
runbook (references, cycles, providers) are `validate.validate`; `check` in the
package does both.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Mapping
from pathlib import Path as FilePath
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from keyturn.runbook.models import Runbook, TierGate
from keyturn.runbook.source import Path, RunbookError, SourceMap
from keyturn.runbook.yaml_tree import parse


def load(path: str | os.PathLike[str]) -> Runbook:
    """Read and parse the runbook at `path`."""
    return loads(decode(read_bytes(path), str(path)), filename=str(path))


def loads(
    text: str, filename: str = "<string>", environ: Mapping[str, str] | None = None
) -> Runbook:
    """Parse runbook YAML; `${VAR}` is read from `environ` (default: the environment) now.

    Text from outside (the HTTP API) gets a narrow `environ`, so a runbook cannot
    read the server's secrets back through `${VAR}`.
    """
    data, source = parse(text, filename, os.environ if environ is None else environ)
    if not isinstance(data, dict):
        raise source.error((), "a runbook is a mapping that starts with 'apiVersion: keyturn/v1'")
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as err:
        raise first_error(err, source) from None
    runbook._source = source
    return runbook


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        return FilePath(path).read_bytes()
    except OSError as err:
        raise RunbookError(str(path), 1, 1, f"cannot read the file: {err.strerror}") from err


def decode(data: bytes, filename: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise RunbookError(filename, line, column, "the file is not UTF-8 text") from err


def first_error(
    exc: ValidationError, source: SourceMap, root: type[BaseModel] = Runbook
) -> RunbookError:
    """The model error that comes first in the file (ties: pydantic's order).

    `root` is the model validated from the document's top (the scope catalog
    uses this too).
    """
    errors = [_convert(error, source, root) for error in exc.errors(include_url=False)]
    return min(errors, key=lambda error: (error.line, error.column))


def _convert(error: Any, source: SourceMap, root: type[BaseModel]) -> RunbookError:
    loc = error["loc"]
    path, at_key = _locate(loc, source)
    if error["type"] == "missing":
        return source.error(path, f"missing required field '{loc[-1]}'")
    if error["type"] == "extra_forbidden":
        return source.error(path, _unknown_field(loc, root), key=True)
    reason = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
    label = next((seg for seg in reversed(path) if isinstance(seg, str)), None)
    if label and not at_key:
        reason = f"{label}: {reason}"
    return source.error(path, reason, key=at_key)


def _locate(loc: tuple[Any, ...], source: SourceMap) -> tuple[Path, bool]:
    """The document path a pydantic loc refers to, skipping union and validator tags."""
    path: Path = ()
    for seg in loc:
        if seg == "[key]":
            return path, True
        if (*path, seg) in source.values:
            path = (*path, seg)
    return path, False


def _unknown_field(loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    name = str(loc[-1])
    model = _model_at(loc[:-1], root)
    if model is TierGate and name == "before":
        return "a tier gate has no 'before': it is checked before the tier starts"
    allowed = [field.alias or key for key, field in model.model_fields.items()] if model else []
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"unknown field '{name}'; did you mean '{close[0]}'?"
    return f"unknown field '{name}'" + (f" (allowed: {', '.join(allowed)})" if allowed else "")


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class that validates the value at `loc`, by walking field annotations."""
    annotation: Any = root
    for seg in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {field.alias or key: field for key, field in annotation.model_fields.items()}
            annotation = fields[seg].annotation if seg in fields else None
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]
        else:
            return None
    annotation = _unwrap(annotation)
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and `| None` from an annotation."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        else:
            return annotation
