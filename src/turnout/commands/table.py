"""Plain-text tables for the CLI that fit the terminal: optional columns are dropped, then the
widest cells are shortened, until a row fits."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence

__all__ = ["render_table", "terminal_width"]


def terminal_width() -> int | None:
    """The terminal's width when standard output is one (or ``$COLUMNS`` says so); None when
    the output goes to a pipe or a file, which then gets every column in full."""
    import os

    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((100, 24)).columns


def _widths(rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]


def render_table(
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    optional: Sequence[int] = (),
) -> str:
    """``rows[0]`` is the header. Columns in ``optional`` (most expendable first) are dropped
    while the table is wider than ``width``; then the widest column is shortened with '…'."""
    keep = list(range(len(rows[0])))
    table = [list(r) for r in rows]

    def total(ws: list[int]) -> int:
        return sum(ws) + 2 * (len(ws) - 1)

    if width is not None:
        for col in optional:
            if total(_widths([[r[i] for i in keep] for r in table])) <= width:
                break
            keep.remove(col)
    table = [[r[i] for i in keep] for r in table]
    widths = _widths(table)
    if width is not None:
        while total(widths) > width:
            widest = max(range(len(widths)), key=lambda i: widths[i])
            if widths[widest] <= 8:
                break
            widths[widest] -= 1
        for row in table:
            for i, cell in enumerate(row):
                if len(cell) > widths[i]:
                    row[i] = cell[: widths[i] - 1] + "…"
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    return "\n".join(lines)
