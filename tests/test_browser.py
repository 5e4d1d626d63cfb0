"""report.html in a real browser (headless Chromium): tiny.yaml cut to 24 hourly periods
(test_lab's HOURLY) with grid limits tight enough to be violated (test_report's TIGHT),
run in-process; its report opened at 1280 px width. Checked in the page: no script or
console error, every image decodes, the headline block starts on the first screen, and a
click on a column's header sorts the rows (the expected orders worked out here from the
run's parquet files). Skipped only where no Chromium is installed.

As a script, the first screen (1280 × 800) of the shipped tiny run's report as a PNG:
``python -m tests.test_browser docs/img/report-first-screen.png``."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from lemgrid.scenarios.run.world import run_scenario
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS
from .test_lab import HOURLY
from .test_report import MAX_LOADING_PCT, TIGHT, V_MAX_PU, V_MIN_PU

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH_PX, SCREEN_PX = 1280, 800  # the window's width and the first screen's height
CHECK_ID = "browser-check"
BILLS = "Bills per participant over the run"
VIOLATIONS = "Grid limit violations"
SORTS = [(BILLS, "bill €"), (VIOLATIONS, "value"), (VIOLATIONS, "period")]

# Injected first into <head>, before the page's own script: collects every error, then
# after the load event (every image loaded or failed: naturalWidth 0 where it did not
# decode) reads the images' widths, clicks the headers of SORTS twice each (ascending,
# then descending) and writes what it found as JSON into <pre id="browser-check">.
CHECKER = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var where = e.target && e.target !== window ? e.target.outerHTML.slice(0, 80) : "";
  window.__errors.push("error: " + (e.message || where));
}, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__errors.push("unhandled rejection: " + e.reason);
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
function tableAfter(title) {
  var h2 = Array.from(document.querySelectorAll("h2")).find(function (h) {
    return h.textContent === title;
  });
  for (var next = h2 && h2.nextElementSibling; next && next.tagName !== "H2";
       next = next.nextElementSibling) {
    var table = next.matches("table") ? next : next.querySelector("table");
    if (table) { return table; }
  }
  return null;
}
function rows(table) {
  return Array.from(table.tBodies[0].rows).map(function (row) {
    return Array.from(row.cells).map(function (c) { return c.textContent; });
  });
}
window.addEventListener("load", function () {
  setTimeout(check, 0);
});
function check() {
  var images = Array.from(document.images);
  var headline = document.getElementById("headline");
  var found = {
    images: images.map(function (img) { return [img.alt.slice(0, 40), img.naturalWidth]; }),
    headline_top: headline ? headline.getBoundingClientRect().top + window.scrollY : null,
    width: window.innerWidth, sorts: []
  };
  (window.__sorts || []).forEach(function (spec) {
    var table = tableAfter(spec[0]);
    if (!table) { found.sorts.push({table: spec[0], missing: true}); return; }
    var th = Array.from(table.tHead.rows[0].cells).find(function (c) {
      return c.textContent === spec[1];
    });
    var result = {table: spec[0], header: spec[1], sortable: table.matches(".sortable"),
                  collapsed: table.closest("details") !== null,
                  index: th ? th.cellIndex : null, before: rows(table)};
    if (th) {
      th.click();
      result.ascending = rows(table);
      result.aria = th.getAttribute("aria-sort");
      th.click();
      result.descending = rows(table);
    }
    found.sorts.push(result);
  });
  found.errors = window.__errors;
  var pre = document.createElement("pre");
  pre.id = "%s";
  pre.textContent = JSON.stringify(found);
  document.body.appendChild(pre);
}
</script>""".replace("%s", CHECK_ID)


def chromium() -> str | None:
    """The first Chromium (or Chrome) binary on the PATH."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def browse(binary: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium headless on a file, in a window WIDTH_PX wide, with a profile of its own
    (another Chromium's cannot lock it)."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--no-first-run", *args, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=False)


def check_page(binary: str, page: Path, sorts=(), folder: Path | None = None) -> dict:
    """Open a copy of ``page`` with CHECKER injected and return what it found."""
    folder = folder or page.parent
    copy = folder / f"checked_{page.name}"
    text = page.read_text(encoding="utf-8")
    inject = f"<script>window.__sorts = {json.dumps(list(sorts))};</script>{CHECKER}"
    head = re.search(r"<head[^>]*>", text)
    assert head, f"{page}: no <head>"
    copy.write_text(text[:head.end()] + inject + text[head.end():], encoding="utf-8")
    done = browse(binary, copy, f"--window-size={WIDTH_PX},900", "--virtual-time-budget=5000",
                  "--dump-dom")
    found = re.search(rf'<pre id="{CHECK_ID}">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"chromium wrote no result (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def run_tiny(out: Path, sets=()) -> Path:
    run_scenario(load_scenario(SCENARIOS / "tiny.yaml", ["runtime.kind=inprocess", *sets]),
                 out)
    return out


def first_screen(png: Path, binary: str | None = None) -> Path:
    """The first screen (WIDTH_PX × SCREEN_PX) of the report of tiny.yaml as shipped."""
    binary = binary or chromium()
    if binary is None:
        raise SystemExit(f"no Chromium found (looked for {', '.join(BROWSERS)})")
    png = png.resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = run_tiny(Path(tmp) / "tiny")
        done = browse(binary, out / "report.html", f"--window-size={WIDTH_PX},{SCREEN_PX}",
                      f"--screenshot={png}")
    if not png.is_file():
        raise SystemExit(f"chromium wrote no screenshot: {done.stderr[-2000:]}")
    return png


# ---- the tests ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> str:
    binary = chromium()
    if binary is None:
        pytest.skip(f"no Chromium binary on the PATH ({', '.join(BROWSERS)}); "
                    "`apt-get install chromium` (make browser)")
    return binary


@pytest.fixture(scope="module")
def checked(browser, tmp_path_factory):
    """The hourly tiny run with tight limits, and what the browser found in its report."""
    start = time.perf_counter()
    out = run_tiny(tmp_path_factory.mktemp("browser"), [*HOURLY, *TIGHT])
    ran = time.perf_counter()
    found = check_page(browser, out / "report.html", SORTS)
    print(f"\ntiny hourly run and report: {ran - start:.1f} s, "
          f"browser: {time.perf_counter() - ran:.1f} s")
    return out, found


def test_no_error_and_every_image_decodes(checked):
    out, found = checked
    assert found["errors"] == []
    embedded = len(re.findall(r"<img ", (out / "report.html").read_text()))
    assert embedded >= 4 and len(found["images"]) == embedded  # the key figures at least
    assert all(width > 0 for _alt, width in found["images"]), found["images"]


def test_the_headline_is_on_the_first_screen(checked):
    _out, found = checked
    assert found["width"] == WIDTH_PX
    assert found["headline_top"] is not None and 0 <= found["headline_top"] < SCREEN_PX


def _sort(found: dict, table: str, header: str) -> dict:
    return next(s for s in found["sorts"] if s["table"] == table and s["header"] == header)


def test_a_click_sorts_the_bills(checked):
    """The bills per participant (5 rows: not collapsed) by bill, ascending then
    descending: the agents in the order of their summed cost_eur in agents.parquet."""
    out, found = checked
    bills = pd.read_parquet(out / "agents.parquet").groupby("agent")["cost_eur"].sum()
    got = _sort(found, BILLS, "bill €")
    assert got["sortable"] and not got["collapsed"] and got["aria"] == "ascending"
    assert [row[0] for row in got["ascending"]] == bills.sort_values().index.tolist()
    assert [row[0] for row in got["descending"]] == bills.sort_values(
        ascending=False).index.tolist()


def test_a_click_sorts_the_collapsed_violations_numerically(checked):
    """The violations (more than 15: collapsed) by value and by period: the values are
    those of the buses and lines beyond the limits in the parquet files, in numeric order
    (line loadings of 0.1–0.2 % below bus voltages of about 1 pu), the periods by number
    (as text "10" would come before "8"), and every row keeps its cells."""
    out, found = checked
    bus = pd.read_parquet(out / "grid_bus.parquet")
    line = pd.read_parquet(out / "grid_line.parquet")
    values = pd.concat([bus.loc[(bus["vm_pu"] < V_MIN_PU) | (bus["vm_pu"] > V_MAX_PU),
                                "vm_pu"],
                        line.loc[line["loading_pct"] > MAX_LOADING_PCT, "loading_pct"]])
    by_value = _sort(found, VIOLATIONS, "value")
    assert by_value["sortable"] and by_value["collapsed"] and len(by_value["before"]) > 15
    column = by_value["index"]
    ascending = [float(row[column]) for row in by_value["ascending"]]
    assert ascending == pytest.approx(sorted(float(f"{v:.6g}") for v in values))
    assert [float(row[column]) for row in by_value["descending"]] == ascending[::-1]
    by_period = _sort(found, VIOLATIONS, "period")  # clicked after the values' sort
    index = by_period["index"]
    before = [int(row[index]) for row in by_period["before"]]
    periods = [int(row[index]) for row in by_period["ascending"]]
    assert before != sorted(before) and min(periods) < 10 <= max(periods)
    assert periods == sorted(periods)
    assert [int(row[index]) for row in by_period["descending"]] == sorted(periods, reverse=True)
    assert sorted(map(tuple, by_period["ascending"])) == sorted(map(tuple,
                                                                    by_period["before"]))


def test_the_checker_sees_errors_and_broken_images(browser, tmp_path):
    """The checks can fail: a page whose script throws and whose image is no PNG."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><title>broken</title></head><body>"
                    "<img alt='broken' src='data:image/png;base64,AAAA'>"
                    "<script>console.error('said'); undefinedFunction();</script></body></html>")
    found = check_page(browser, page)
    assert found["images"] == [["broken", 0]]
    assert found["headline_top"] is None
    assert any(e.startswith("console.error: said") for e in found["errors"])
    assert any("undefinedFunction" in e for e in found["errors"])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m tests.test_browser OUT.png")
    print(first_screen(Path(sys.argv[1])))
