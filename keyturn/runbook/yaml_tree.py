"""YAML text to plain Python data plus a SourceMap, expanding ${VAR} on the way.

PyYAML composes the node tree (which keeps every node's position) and this
module builds the Python values itself, so that it can record a position for
every path, reject duplicate keys and non-string keys, and expand environment
variables in string scalars with an error that points at the scalar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from keyturn.runbook.source import Path, Position, RunbookError, SourceMap

MAX_NODES = 2_000_000
"""Values built, aliases expanded: a bound against alias bombs, far above 10,000 credentials."""

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")


def parse(text: str, filename: str, environ: Mapping[str, str]) -> tuple[Any, SourceMap]:
    """Parse one YAML document; raise RunbookError for anything that is not clean YAML."""
    try:
        root = _compose(text)
        if root is None:
            raise RunbookError(
                filename, 1, 1, "the file is empty; a runbook starts with 'apiVersion: keyturn/v1'"
            )
        if (size := _expanded_size(root, {})) > MAX_NODES:  # an alias bomb, refused at once
            raise RunbookError(filename, *_position(root),
                               f"the document expands to {size} values through aliases, "
                               f"more than {MAX_NODES}")
        builder = _Builder(filename, environ)
        return builder.build(root, ()), builder.source
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        context = f"{err.context}, " if err.context else ""
        raise RunbookError(filename, line, column, f"invalid YAML: {context}{err.problem}") from err
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        column = err.position - text.rfind("\n", 0, err.position)
        reason = f"invalid YAML: character #x{err.character:04x} is not allowed ({err.reason})"
        raise RunbookError(filename, line, column, reason) from err
    except RecursionError as err:
        raise RunbookError(
            filename, 1, 1, "the document is nested too deeply (or an alias refers to itself)"
        ) from err


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """How many values `node` becomes once every alias is expanded, counted over the node
    graph (an alias is the same node object), so a few hundred bytes that would expand to
    billions are measured in microseconds."""
    if id(node) not in sizes:
        sizes[id(node)] = 0  # an alias that refers to itself adds nothing (and is refused later)
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [child for pair in node.value for child in pair]
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


def _compose(text: str) -> Node | None:
    """The node tree, from libyaml when it is there (about 6x faster on big runbooks).

    On any YAML error the pure-Python parser runs again, so errors read the same
    everywhere and columns count characters (libyaml's reader counts bytes).
    """
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.compose(text, Loader=fast)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _position(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        self.source = SourceMap(filename)
        self.environ = environ
        self.constructor = SafeConstructor()
        self.count = 0

    def error(self, node: Node, reason: str) -> RunbookError:
        line, column = _position(node)
        return RunbookError(self.source.file, line, column, reason)

    def build(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.error(
                node, f"the document expands to more than {MAX_NODES} values through aliases"
            )
        self.source.values[path] = _position(node)
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self.error(node, f"unsupported YAML tag {node.tag!r} on a list")
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self.scalar(node)

    def mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        if node.tag != _MAP_TAG:
            raise self.error(node, f"unsupported YAML tag {node.tag!r} on a mapping")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                raise self.error(
                    key_node, "YAML merge keys (<<) are not supported; write the keys out"
                )
            key = self.scalar(key_node) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                raise self.error(key_node, "mapping keys must be strings; quote this key")
            if key in result:
                first_line = self.source.keys[(*path, key)][0]
                raise self.error(key_node, f"duplicate key '{key}' (first at line {first_line})")
            self.source.keys[(*path, key)] = _position(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result

    def scalar(self, node: ScalarNode) -> Any:
        try:
            value = self.constructor.construct_object(node)
        except (ValueError, TypeError) as err:  # e.g. "!!int abc"
            raise self.error(node, f"cannot read {node.value!r} as {node.tag}") from err
        if node.tag == _STR_TAG and isinstance(value, str):
            return _REFERENCE.sub(lambda match: self.substitute(match, node), value)
        return value

    def substitute(self, match: re.Match[str], node: ScalarNode) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if name is None:
            raise self.error(
                node,
                "malformed variable reference: write ${NAME} "
                "(letters, digits, underscore), or $${ for a literal ${",
            )
        if name not in self.environ:
            raise self.error(
                node, f"environment variable {name} is not set: export it (for the local stack, "
                f"`source .keyturn/dev.env` after `keyturn dev up`); write $${{ for a literal ${{"
            )
        return self.environ[name]
