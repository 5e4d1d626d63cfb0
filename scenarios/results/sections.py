"""What a report is made of, for the report and for the mechanisms that add to it: a
table section (title, header, rows), a figure's specification and the cell format."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

FIGURES_SECTION = "Figures"  # where a figure without a section of its own is drawn


class Section(NamedTuple):
    title: str
    header: list[str]
    rows: list


def format_value(value) -> str:
    """A table cell: — for null, 4 decimals below 100, else 2 (a value that rounds to 0
    is 0, without a sign: a sum of costs that cancel is often −1e-17)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        decimals = 4 if abs(value) < 100 else 2
        return f"{round(value, decimals) + 0.0:,.{decimals}f}"
    return str(value)


def markdown_table(header: list[str], rows: list) -> list[str]:
    """A Markdown table's lines; ``none`` without rows."""
    if not rows:
        return ["none"]
    return ([f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
            + [f"| {' | '.join(map(str, row))} |" for row in rows])


@dataclass
class FigureSpec:
    name: str
    caption: str
    build: Callable  # (Run) -> matplotlib Figure
    absent: Callable = lambda run: None  # (Run) -> why there is no figure, or None
    describe: Callable | None = None  # (Run) -> the caption's figures from the run
    section: str = FIGURES_SECTION  # the report section the figure is drawn in

    def full_caption(self, run) -> str:
        return self.caption if self.describe is None else f"{self.caption} {self.describe(run)}"
