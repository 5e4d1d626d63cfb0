"""What a report is made of, for the report, the lab and the mechanisms that add to
them: a table section (title, header, rows), a figure's specification, the cell format,
keys in words and units, and the HTML table (sortable, long ones collapsed) with the
style and the inline script it needs."""

from __future__ import annotations

import html
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


# ---- words for keys ----------------------------------------------------------------------

UNIT_WORDS = {"eur": "€", "kwh": "kWh", "kw": "kW", "mw": "MW", "pct": "%", "pu": "pu",
              "s": "s", "mb": "MB", "mva": "MVA"}


def key_words(key: str) -> tuple[str, str]:
    """A snake_case key in words and its unit, the unit read from its name's unit part
    (``max_reverse_flow_kw`` → ("max reverse flow", "kW"), ``saving_pct_p10`` →
    ("saving p10", "%")); for a key a label table does not name."""
    parts = key.split("_")
    units = [UNIT_WORDS[p] for p in parts[1:] if p in UNIT_WORDS]
    words = " ".join(p for i, p in enumerate(parts) if i == 0 or p not in UNIT_WORDS)
    return words, units[0] if units else ""


def with_unit(words: str, unit: str) -> str:
    """A column header: the words, then the unit in parentheses."""
    return f"{words} ({unit})" if unit else words


# ---- HTML --------------------------------------------------------------------------------

LONG_ROWS = 15  # a table with more rows than this is collapsed (<details>)
TOTAL = "total"  # a row whose first cell is this stays below the sorted rows

STYLE = ("body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}"
         "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
         "padding:.15em .5em;text-align:right}td:first-child{text-align:left}"
         "th{background:#eee}img{max-width:100%}figure{margin:1em 0}"
         "figcaption{font-style:italic}tfoot td{font-weight:bold}"
         ".headline{border:1px solid #9ab;background:#f3f7fb;padding:.2em 1em .6em;"
         "border-radius:4px}.headline h2{margin:.4em 0}.headline dl{display:grid;"
         "grid-template-columns:max-content auto;gap:.25em 1em;margin:0}"
         ".headline dt{font-weight:bold}.headline dd{margin:0}"
         "table.sortable th{cursor:pointer;user-select:none}"
         "table.sortable th[aria-sort=ascending]::after{content:' \\25B2'}"
         "table.sortable th[aria-sort=descending]::after{content:' \\25BC'}"
         "details>summary{cursor:pointer;margin:.3em 0}.wide{overflow-x:auto}")

# Sorts a table.sortable's body rows by the clicked header's column, ascending first, then
# descending: cells that are numbers (thousands commas allowed) numerically and before
# text, text in natural order ("bus 2" before "bus 10"), empty and "—" cells last.
SORT_SCRIPT = """<script>
(function () {
  function key(cell) {
    var text = cell ? cell.textContent.trim() : "";
    if (text === "" || text === "\\u2014") { return null; }
    var plain = text.replace(/,/g, "").replace(/^\\u2212/, "-");
    return /^[-+]?(\\d+\\.?\\d*|\\.\\d+)(e[-+]?\\d+)?$/i.test(plain) ? parseFloat(plain) : text;
  }
  function order(a, b) {
    if (typeof a === "number" && typeof b === "number") { return a - b; }
    if (typeof a === "number") { return -1; }
    if (typeof b === "number") { return 1; }
    return a.localeCompare(b, undefined, {numeric: true});
  }
  function sort(th) {
    var table = th.closest("table"), body = table.tBodies[0], column = th.cellIndex;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (c) {
      c.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows).map(function (row) {
      return {row: row, key: key(row.cells[column])};
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        return (a.key === null) - (b.key === null);
      }
      return ascending ? order(a.key, b.key) : order(b.key, a.key);
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
  }
  document.addEventListener("click", function (event) {
    var th = event.target.closest("table.sortable thead th");
    if (th) { sort(th); }
  });
})();
</script>"""


def html_table(header: list[str], rows: list, *, sortable: bool = True,
               links: list[str | None] | None = None, what: str = "rows") -> str:
    """A table, or ``<p>none</p>`` without rows. ``sortable``: a click on a header sorts
    the rows (SORT_SCRIPT; a last row whose first cell is "total" stays below them);
    ``links``: per row, where its first cell links to (None: no link). More than
    LONG_ROWS rows are collapsed under a line saying how many ``what`` there are."""
    if not rows:
        return "<p>none</p>"
    rows = [[str(c) for c in row] for row in rows]
    links = links or [None] * len(rows)
    foot = sortable and rows[-1][0] == TOTAL and len(rows) > 1

    def row_html(row, link) -> str:
        cells = [html.escape(c) for c in row]
        if link:
            cells[0] = f'<a href="{html.escape(link)}">{cells[0]}</a>'
        return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    body = [row_html(r, link) for r, link in zip(rows, links, strict=True)]
    tail = f"<tfoot>{body.pop()}</tfoot>" if foot else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    kind = " class='sortable'" if sortable else ""
    table = (f"<table{kind}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
             f"{tail}</table>")
    if len(rows) > LONG_ROWS:
        hint = ", sortable by a click on a column's header" if sortable else ""
        return (f"<details><summary>{len(rows)} {html.escape(what)}{hint}: show</summary>"
                f"<div class='wide'>{table}</div></details>")
    return f"<div class='wide'>{table}</div>"
