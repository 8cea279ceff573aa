"""Tables that never cut what people copy: a table where it fits whole on a terminal, else
one plain line per row.

A `Sheet` is a renderable: on a terminal wide enough for every cell unwrapped
it is a rich table; on a narrow terminal, and whenever output goes to a pipe or
a CI log, each row becomes one line of `name  column=value ...`, with no box
drawing, so run ids, credential ids, key ids and paths are always whole (a line
longer than the width wraps between fields, never inside one). Cells are taken
literally: markup and emoji codes in names and errors are shown as typed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

Cell = str | Text


def literal(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


@dataclass
class _Row:
    cells: tuple[Cell, ...]
    indent: int = 0
    style: str | None = None


@dataclass
class Sheet:
    """Named columns and rows; `table` and `columns` hold rich options for the table form."""

    columns: list[str]
    title: Cell | None = None
    table: dict[str, Any] = field(default_factory=dict)
    column_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[_Row | None] = field(default_factory=list)  # None: a section break

    def add_row(self, *cells: Cell, indent: int = 0, style: str | None = None) -> None:
        self.rows.append(_Row(cells, indent, style))

    def add_section(self) -> None:
        self.rows.append(None)

    def as_table(self) -> Table:
        table = Table(title=literal(self.title) if self.title else None, **self.table)
        for name in self.columns:
            table.add_column(name, **self.column_options.get(name, {}))
        for row in self.rows:
            if row is None:
                table.add_section()
            else:
                table.add_row(*(literal(c) for c in row.cells), style=row.style)
        return table

    def as_lines(self) -> Iterator[Text]:
        if self.title:
            yield Text.assemble(literal(self.title).copy(), style="bold")
        for row in self.rows:
            if row is not None:
                yield self._line(row)
        if self.table.get("caption"):
            yield literal(self.table["caption"])

    def _line(self, row: _Row) -> Text:
        line = Text("  " * row.indent, style=row.style or "")
        named = False
        for name, cell in zip(self.columns, row.cells, strict=False):
            text = literal(cell)
            if not text.plain.strip():
                continue
            text = Text(" ").join(part for part in text.split("\n") if part.plain.strip())
            if named:
                line.append("  ")
                line.append(f"{name}=")
            named = True
            line.append_text(text)
        return line

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        table = self.as_table()
        needed = Measurement.get(console, options.update_width(1_000_000), table).maximum
        if console.is_terminal and needed <= options.max_width:
            yield table
            return
        yield from self.as_lines()
