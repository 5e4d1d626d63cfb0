"""The market-design lab's report: one scenario under every mechanism that serves it, read
back from the runs' results folders and set beside two yardsticks (``lemgrid lab``;
the runs themselves are made by ``scenarios.run.lab``). Nothing here recomputes a
mechanism: every number is a run's own (summary.json, agents.parquet, messages.jsonl) or
the community optimum's.

Writes ``lab.csv`` (one row per mechanism and yardstick), ``lab.md`` and ``lab.html``
(self-contained), with their figures in ``figures/lab_*.png``: first the headline, one
sentence per question (which mechanism saves most, which is fairest, which keeps the grid
within limits, which is fastest), then the figures (``lab_figures``: each participant's
saving, the bill's parts, the community's import and the lowest voltage per period, the
iterative mechanisms' convergence), then the table (its columns in words and units,
sortable by a click on a header), and a link to each run's report.

The yardsticks:

- the **retail baseline**: the run of the mechanism whose plug-in is marked
  ``retail_baseline`` (no local market: everyone at its own tariff);
- the **community optimum**: per day, one centralized model of the whole community
  trading freely (within the network's limits where the network model holds the
  network). Its bill ``B_opt`` is the objective minus the operator's loss cost: the
  peers' day bills (retail energy and the daily fixed cost) at the optimal dispatch, with
  the indicator binaries relaxed (a lower bound of what any dispatch of the community
  pays the retailer on that day). The days follow each other with the batteries' energy
  carried (``scenarios.run.lab.optimum_days``), as the participants plan them, so over
  several days it is the day-ahead optimum, not a bound on every multi-day dispatch.
  Losses are not in any mechanism's bill, so they are not in it either; the optimum's
  losses are shown in the losses column.

The columns (every money figure over the whole run, €):

- ``total_bill_eur`` = Σ agents.parquet ``cost_eur`` (traded, deviation, violation,
  retail and fixed parts): what the community pays, its internal payments cancelling;
- ``saving_pct`` = 100 × (B_base − bill) / |B_base|, the community's saving against the
  retail baseline;
- ``efficiency_pct`` = 100 × (B_base − bill) / (B_base − B_opt): the share of the saving
  the community optimum reaches that the mechanism reaches (100: the optimum's bill; 0:
  the baseline's; above 100 only where a mechanism beats the optimum, i.e. its dispatch
  breaks a network limit the optimum keeps, or its market pays out more than it takes);
- ``self_sufficiency``, ``traded_kwh`` (energy traded inside the community), the grid's
  violations and losses, ``rounds``, ``converged``, ``wall_s``: ``lemgrid compare``'s
  KPIs of the run (``scenarios.results.compare``); ``v_min_pu``, ``max_loading_pct``,
  ``critical_path_s``: summary.json;
- fairness (``fairness``): against each participant's bill in the baseline;
- ``messages_per_participant``, ``bytes_per_participant``: messages.jsonl's lines (both
  directions) and their messages' compact JSON size, over the participants;
  ``reveals`` and ``revealed_fields``: what the participants' own messages carried
  (``message_load``);
- then each mechanism's own KPIs (its plug-in's ``kpis``), empty in the other rows.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lemgrid.scenarios.results import atomic
from lemgrid.scenarios.results import lab_figures as figs
from lemgrid.scenarios.results.compare import mechanism_kpis, run_kpis
from lemgrid.scenarios.results.lab_figures import bills
from lemgrid.scenarios.results.report import HEADLINE, page_head, read_summary
from lemgrid.scenarios.results.sections import (
    FIGURES_SECTION,
    SORT_SCRIPT,
    STYLE,
    format_value,
    html_table,
    key_words,
    markdown_table,
    with_unit,
)

BASELINE, OPTIMUM, MECHANISM = "retail baseline", "community optimum", "mechanism"
OK, NOT_CONVERGED = "ok", "not converged"
BETTER_EUR = 1e-6  # a participant is better off when its bill falls by more than this
QUANTILES = {"min": 0, "p10": 10, "median": 50, "p90": 90, "max": 100}


@dataclass(frozen=True)
class Outcome:
    """One row's source: a mechanism's run (its folder, or why it has none) or the
    optimum (its figures)."""

    name: str
    role: str
    status: str  # OK, NOT_CONVERGED or "failed: <reason>"
    folder: Path | None = None
    optimum: dict | None = None

    @property
    def has_results(self) -> bool:
        return self.folder is not None and (self.folder / "summary.json").is_file()


# ---- fairness -------------------------------------------------------------------------

def fairness(bills: pd.Series, baseline: pd.Series, kinds: pd.Series) -> dict:
    """Who wins and who loses against the baseline; every Series indexed by participant.

    - ``better_off_share``: the share of participants whose bill falls by more than
      BETTER_EUR;
    - ``saving_pct_{min,p10,median,mean,p90,max}``: the distribution of 100 × (baseline −
      bill) / baseline over the participants whose baseline bill is positive (numpy's
      linear percentiles);
    - ``worst_change_eur_<kind>``: per kind, the worst-off participant's bill − baseline
      (€; positive: it pays more);
    - ``apart_count``, ``apart_saving_eur_min``: the participants whose baseline bill is
      zero or negative (a percentage of it would have the wrong sign), and the least of
      their savings in € (baseline − bill).

    Worked by hand, three agents a (prosumer), b (prosumer), c (ev) with baseline bills
    10, 4, −2 € and bills 8, 5, −3 €: changes −2, +1, −1; better off a and c: 2/3;
    savings % over a and b (c's baseline is negative): 20 and −25, so min −25, p10
    −25 + 0.1 × 45 = −20.5, median and mean −2.5, p90 20 − 0.1 × 45 = 15.5, max 20; worst
    change prosumer +1 (b), ev −1 (c); apart: c alone, saving 1 €.
    """
    change = (bills - baseline).reindex(baseline.index)
    positive = baseline > 0
    pct = (100.0 * (baseline - bills) / baseline)[positive].dropna().to_numpy(float)
    out = {"better_off_share": float((change < -BETTER_EUR).mean()) if len(change) else None}
    for name, q in QUANTILES.items():
        out[f"saving_pct_{name}"] = float(np.percentile(pct, q)) if len(pct) else None
        if name == "median":
            out["saving_pct_mean"] = float(pct.mean()) if len(pct) else None
    for kind in sorted(kinds.unique()):
        out[f"worst_change_eur_{kind}"] = float(change[kinds == kind].max())
    apart = ~positive
    out["apart_count"] = int(apart.sum())
    out["apart_saving_eur_min"] = float(-change[apart].max()) if apart.any() else None
    return out


# ---- one row per run --------------------------------------------------------------------

BOOKKEEPING = {"kind", "periods", "period_h", "period"}  # message fields that reveal nothing
REVEAL_ORDER = ("limits", "quantities", "prices", "per-counterparty terms", "meter readings")


def reveal_category(msg_type: str, field: str) -> str:
    """What a message field sent by a participant reveals, by its name in the protocol
    (``coordinator.protocol``): limits, quantities, prices, per-counterparty terms (any
    field per counterparty) or meter readings (a meter message's power)."""
    if "counterparty" in field:
        return "per-counterparty terms"
    if "limit" in field:
        return "limits"
    if "price" in field or "penalt" in field:
        return "prices"
    return "meter readings" if msg_type == "meter" else "quantities"


def message_load(folder: Path, participants: int) -> dict:
    """From messages.jsonl: messages (both directions) and their bytes (each message's
    compact JSON) per participant, and what the participants revealed: ``reveals``, the
    categories of the fields they sent (``reveal_category``), and ``revealed_fields``,
    each message type's fields with the keys they carried (``offer.quantities_kw[net,
    p2p]``); the network operator's own messages are not a participant's. Null where the
    run wrote no messages."""
    path = folder / "messages.jsonl"
    if not path.is_file() or not participants:
        return dict.fromkeys(("messages_per_participant", "bytes_per_participant", "reveals",
                              "revealed_fields"))
    count = size = 0
    operators, fields = set(), {}
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
                msg = record["msg"]
                body = msg.get("body") or {}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            count += 1
            size += len(json.dumps(msg, separators=(",", ":")).encode())
            if record.get("dir") != "in" or not isinstance(body, dict):
                continue
            if msg.get("type") == "register" and body.get("kind") == "operator":
                operators.add(msg.get("sender"))
            for name, value in body.items():
                if value is not None and name not in BOOKKEEPING:
                    keys = fields.setdefault((msg.get("type"), name, msg.get("sender")), set())
                    keys |= set(value) if isinstance(value, dict) else set()
    shown: dict[tuple[str, str], set] = {}
    for (kind, name, sender), keys in fields.items():
        if sender not in operators:
            shown.setdefault((kind, name), set()).update(keys)
    found = {reveal_category(kind, name) for kind, name in shown}
    return {"messages_per_participant": count / participants,
            "bytes_per_participant": size / participants,
            "reveals": ", ".join(c for c in REVEAL_ORDER if c in found) or None,
            "revealed_fields": "; ".join(
                f"{kind}.{name}" + (f"[{', '.join(sorted(keys))}]" if keys else "")
                for (kind, name), keys in sorted(shown.items())) or None}


def run_row(outcome: Outcome, extra: dict) -> dict:
    """A finished run's figures: compare's KPIs, the grid's and the process's."""
    kpis = run_kpis(outcome.folder, extra)
    summary = read_summary(outcome.folder)
    grid, timing = summary["grid"], summary["timing_s"]
    return {"total_bill_eur": kpis["total_cost_eur"],
            "self_sufficiency": kpis["self_sufficiency"], "traded_kwh": kpis["traded_kwh"],
            "voltage_violations": kpis["voltage_violations"],
            "line_violations": kpis["line_violations"],
            "trafo_violations": kpis["trafo_violations"], "v_min_pu": grid["v_min_pu"],
            "max_loading_pct": grid["max_loading_pct"], "losses_kwh": kpis["network_losses_kwh"],
            "rounds": kpis["rounds"], "converged": kpis["converged"], "wall_s": kpis["wall_s"],
            "critical_path_s": timing.get("critical_path"),
            **message_load(outcome.folder, sum(summary["agents"].values())),
            **{k: kpis[k] for k in extra}}


def optimum_row(optimum: dict) -> dict:
    return {"total_bill_eur": optimum["bill_eur"], "losses_kwh": optimum["losses_kwh"],
            "wall_s": optimum["seconds"], "converged": True}


def versus(bill: float | None, base: float | None, best: float | None) -> dict:
    """The community's saving against the baseline and its efficiency against the
    optimum (module docstring)."""
    saving = None if bill is None or not base else 100.0 * (base - bill) / abs(base)
    reachable = None if base is None or best is None else base - best
    efficiency = (None if bill is None or not reachable
                  else 100.0 * (base - bill) / reachable)
    return {"saving_pct": saving, "efficiency_pct": efficiency}


def lab_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """One row per outcome, in the columns of the module docstring."""
    runs = [o for o in outcomes if o.has_results]
    extra = mechanism_kpis([o.folder for o in runs]) if runs else {}
    base = next((o for o in runs if o.role == BASELINE), None)
    base_bills = bills(base.folder)[0] if base else None
    opt = next((o for o in outcomes if o.role == OPTIMUM and o.optimum), None)
    rows = []
    for o in outcomes:
        row = {"mechanism": o.name, "role": o.role, "status": o.status}
        if o.has_results:
            row |= run_row(o, extra)
            if base_bills is not None:
                bill, kinds = bills(o.folder)
                row |= fairness(bill, base_bills, kinds)
            row["report"] = f"{o.folder.name}/report.html"
        elif o.optimum:
            row |= optimum_row(o.optimum)
        rows.append(row)
    table = pd.DataFrame(rows)
    base_bill = None if base is None else table.loc[table["role"] == BASELINE,
                                                    "total_bill_eur"].iloc[0]
    best = opt.optimum["bill_eur"] if opt else None
    scores = [versus(b if pd.notna(b) else None, base_bill, best)
              for b in table.get("total_bill_eur", pd.Series([None] * len(table)))]
    table["saving_pct"] = [s["saving_pct"] for s in scores]
    table["efficiency_pct"] = [s["efficiency_pct"] for s in scores]
    return table[ordered(table.columns, list(extra))]


COMMUNITY = ["mechanism", "role", "status", "total_bill_eur", "saving_pct", "efficiency_pct",
             "self_sufficiency", "traded_kwh"]
FAIRNESS_PREFIXES = ("better_off_share", "saving_pct_", "worst_change_eur_", "apart_")
GRID = ["voltage_violations", "line_violations", "trafo_violations", "v_min_pu",
        "max_loading_pct", "losses_kwh"]
PROCESS = ["rounds", "converged", "wall_s", "critical_path_s", "messages_per_participant",
           "bytes_per_participant", "reveals", "revealed_fields"]
COUNTS = {"voltage_violations", "line_violations", "trafo_violations", "rounds", "apart_count"}


def ordered(columns, extra: list[str]) -> list[str]:
    """The table's column order: community, fairness, grid, process, the mechanisms' own
    KPIs, the report's link."""
    fair = [c for c in columns if c.startswith(FAIRNESS_PREFIXES)]
    head = [c for c in [*COMMUNITY, *fair, *GRID, *PROCESS, *extra] if c in columns]
    return head + [c for c in columns if c not in head]


# ---- the four questions ----------------------------------------------------------------

def _cell(value, unit: str = "") -> str:
    return f"{format_value(value)}{unit}"


def answers(table: pd.DataFrame) -> list[str]:
    """One sentence per question, over the mechanisms' finished runs (the yardsticks are
    what they are measured against, not candidates)."""
    runs = table[(table["role"] == MECHANISM) & table["total_bill_eur"].notna()]
    if runs.empty:
        return ["No mechanism finished a run on this community: the table says why."]
    cheap = runs.loc[runs["total_bill_eur"].astype(float).idxmin()]
    out = [(f"Saves most: {cheap['mechanism']} (community bill "
           f"{_cell(cheap['total_bill_eur'], ' €')}, {_cell(cheap['saving_pct'], ' %')} below "
           f"the retail baseline, efficiency {_cell(cheap['efficiency_pct'], ' %')} of the "
           "community optimum's saving).")]
    worst = runs.filter(like="worst_change_eur_").astype(float).max(axis=1)
    worst = worst.where(worst.abs() > BETTER_EUR, 0.0)  # within BETTER_EUR: no change
    if worst.notna().any():
        fair = runs.assign(worst=worst).sort_values(
            ["worst", "better_off_share"], ascending=[True, False]).iloc[0]
        out.append(f"Fairest: {fair['mechanism']}, whose worst-off participant fares best "
                   f"against the retail baseline (its bill changes by "
                   f"{_cell(fair['worst'], ' €')}; {_cell(100 * fair['better_off_share'])} % "
                   "of the participants are better off).")
    else:
        out.append("Fairest: not measured (no retail baseline ran).")
    viol = runs[["voltage_violations", "line_violations", "trafo_violations"]].fillna(0)
    within = runs.loc[viol.sum(axis=1) == 0, "mechanism"].tolist()
    outside = runs.loc[viol.sum(axis=1) > 0, "mechanism"].tolist()
    out.append(f"Keeps the grid within limits: {', '.join(within) or 'none'} (no voltage, "
               f"line or transformer violation){'; not: ' + ', '.join(outside) if outside else ''}"
               ".")
    fast = runs.loc[runs["wall_s"].astype(float).idxmin()]
    out.append(f"Fastest: {fast['mechanism']} ({_cell(fast['wall_s'], ' s')} wall time, "
               f"{_format('rounds', fast['rounds'])} rounds).")
    return out


# ---- writing ----------------------------------------------------------------------------

LAB_LABELS = {  # column -> (words, unit)
    "mechanism": ("mechanism", ""), "role": ("role", ""), "status": ("status", ""),
    "total_bill_eur": ("community bill", "€"), "saving_pct": ("saving against retail", "%"),
    "efficiency_pct": ("efficiency against the optimum", "%"),
    "self_sufficiency": ("self-sufficiency", "share"),
    "traded_kwh": ("traded inside the community", "kWh"),
    "better_off_share": ("participants better off", "share"),
    **{f"saving_pct_{q}": (f"participant saving, {q}", "%") for q in [*QUANTILES, "mean"]},
    "apart_count": ("participants with a baseline bill ≤ 0", ""),
    "apart_saving_eur_min": ("their least saving", "€"),
    "voltage_violations": ("voltage violations", ""), "line_violations": ("line overloads", ""),
    "trafo_violations": ("transformer violations", ""), "v_min_pu": ("lowest voltage", "pu"),
    "max_loading_pct": ("highest line loading", "%"), "losses_kwh": ("network losses", "kWh"),
    "rounds": ("rounds", ""), "converged": ("converged", ""), "wall_s": ("wall time", "s"),
    "critical_path_s": ("critical path", "s"),
    "messages_per_participant": ("messages per participant", ""),
    "bytes_per_participant": ("bytes per participant", "B"),
    "reveals": ("what participants reveal", ""), "revealed_fields": ("fields revealed", ""),
    "gap_to_centralized_pct": ("gap to the centralized optimum", "%"),
    "p2v_traded_kwh": ("P2V traded", "kWh"),
}
WORST_CHANGE = "worst_change_eur_"


def column_label(column: str) -> str:
    """A lab column's header in words with its unit (LAB_LABELS; a worst-off change per
    kind, a mechanism's own KPI read from its name)."""
    if column.startswith(WORST_CHANGE):
        return with_unit(f"worst bill change, {column.removeprefix(WORST_CHANGE)}", "€")
    return with_unit(*LAB_LABELS.get(column, key_words(column)))


def _rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The table's header in words and its rows' cells (the report link left out)."""
    columns = [c for c in table.columns if c != "report"]
    return [column_label(c) for c in columns], [
        [_format(c, v) for c, v in zip(columns, row, strict=True)]
        for row in table[columns].itertuples(index=False)]


def _format(column: str, value) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    if column in COUNTS and isinstance(value, float) and value.is_integer():
        value = int(value)
    return format_value(value)


FIGURES_DIR = "figures"
CAPTIONS = {
    "lab_savings": ("Each participant's saving against the retail baseline (€, baseline bill − "
                    "bill) per mechanism: the box of their distribution and one point per "
                    "participant, one colour per kind."),
    "lab_bill_parts": ("The community's bill over the run in its parts (€; earnings below "
                       "zero), its total marked, the community optimum's bill dashed."),
    "lab_import": ("The community's purchase from the retailer per period (kW), the retail "
                   "baseline dashed."),
    "lab_voltage": ("The lowest bus voltage of the network per period (pu), the lower limit "
                    "dotted."),
    "lab_convergence": ("The error of each iterative mechanism per round of the first day (its "
                        "own stopping measure, log scale)."),
}


def lab_figures(outcomes: list[Outcome], v_min_pu: float | None) -> dict[str, tuple]:
    """The lab's figures (``scenarios.results.lab_figures``), by file stem: each a
    ``(Figure, caption)``; a figure with nothing to show is left out."""
    base = next((o.folder for o in outcomes if o.has_results and o.role == BASELINE), None)
    mechs = [(o.name, o.folder) for o in outcomes if o.has_results and o.role == MECHANISM]
    every = ([(o.name, o.folder) for o in outcomes if o.has_results and o.role == BASELINE]
             + mechs)
    best = next((o.optimum["bill_eur"] for o in outcomes if o.role == OPTIMUM and o.optimum),
                None)
    made = {"lab_savings": figs.savings(mechs, base),
            "lab_bill_parts": figs.bill_parts(every, best), "lab_import": figs.community_import(every),
            "lab_voltage": figs.lowest_voltage(every, v_min_pu),
            "lab_convergence": figs.convergence(mechs)}
    return {stem: (fig, CAPTIONS[stem]) for stem, fig in made.items() if fig is not None}


def write_figures(out: Path, figures: dict[str, tuple]) -> dict[str, Path]:
    """Each figure as ``out/figures/<stem>.png``."""
    (out / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
    paths = {}
    for stem, (fig, _caption) in figures.items():
        paths[stem] = out / FIGURES_DIR / f"{stem}.png"
        fig.savefig(paths[stem], dpi=100)
    return paths


TABLE_TITLE = "Mechanisms and yardsticks"


def write_markdown(out: Path, title: str, sentences: list[str], table: pd.DataFrame,
                   notes: list[str], figures: dict[str, tuple]) -> Path:
    """lab.md in lab.html's order: the four answers (the headline), the figures, the
    table, the runs' reports, the notes."""
    header, rows = _rows(table)
    lines = [f"# {title}", "", f"## {HEADLINE}", "", *[f"- {s}" for s in sentences]]
    if figures:
        lines += ["", f"## {FIGURES_SECTION}"]
    for stem, (_fig, caption) in figures.items():
        lines += ["", f"![{stem}]({FIGURES_DIR}/{stem}.png)", "", caption]
    lines += ["", f"## {TABLE_TITLE}", "", *markdown_table(header, rows)]
    lines += ["", "Each run's report: " + ", ".join(
        f"[{n}]({r})" for n, r in zip(table["mechanism"], table.get("report", []), strict=False)
        if isinstance(r, str))]
    lines += ["", "## Notes", "", *[f"- {n}" for n in notes]] if notes else []
    path = out / "lab.md"
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


def _png(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_html(out: Path, title: str, sentences: list[str], table: pd.DataFrame,
               notes: list[str], figures: dict[str, tuple], pngs: dict[str, Path]) -> Path:
    """lab.html: the four answers in the headline block, the figures, the table (sortable
    by a click on a header; a mechanism's name links to its run's report), the notes."""
    header, rows = _rows(table)
    reports = table["report"].tolist() if "report" in table else [None] * len(table)
    links = [rep if isinstance(rep, str) else None for rep in reports]
    parts = [page_head(title),
             (f"<section class='headline' id='headline'><h2>{HEADLINE}</h2><ul>"
              + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul></section>")]
    if figures:
        parts.append(f"<h2>{FIGURES_SECTION}</h2>")
    for stem, (_fig, caption) in figures.items():
        parts.append(f"<figure><img alt='{stem}' src='data:image/png;base64,{_png(pngs[stem])}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts += [(f"<h2>{TABLE_TITLE}</h2><p>A mechanism's name links to its run's own report; "
               "a click on a column's header sorts the rows.</p>"),
              html_table(header, rows, links=links, what="rows")]
    if notes:
        parts += ["<h2>Notes</h2><ul>", *[f"<li>{html.escape(n)}</li>" for n in notes], "</ul>"]
    parts += [SORT_SCRIPT, "</body></html>"]
    path = out / "lab.html"
    atomic.write_text(path, "\n".join(parts) + "\n")
    return path


def write_lab(out: Path, scenario: str, outcomes: list[Outcome], notes: list[str],
              v_min_pu: float | None = None) -> pd.DataFrame:
    """lab.csv, lab.md, lab.html and figures/lab_*.png in ``out``; returns the table."""
    table = lab_table(outcomes)
    sentences = answers(table)
    title = f"lemgrid lab: {scenario}"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "lab.csv", index=False)
    figures = lab_figures(outcomes, v_min_pu)
    pngs = write_figures(out, figures)
    write_markdown(out, title, sentences, table, notes, figures)
    write_html(out, title, sentences, table, notes, figures, pngs)
    return table


# ---- a sweep ------------------------------------------------------------------------------

SWEEP_KPIS = ("total_bill_eur", "saving_pct", "efficiency_pct", "better_off_share",
              "traded_kwh", "v_min_pu", "losses_kwh", "rounds", "wall_s")


def sweep_table(field: str, labs: list[tuple]) -> pd.DataFrame:
    """The labs' tables one under the other, each row with the swept value (``labs``:
    ``(value, folder, table)`` per value)."""
    columns = list(dict.fromkeys(c for _, _, table in labs for c in table.columns))
    return pd.concat([table.assign(value=[value] * len(table), lab=f"{folder.name}/lab.html")
                      for value, folder, table in labs], ignore_index=True)[
        ["value", *columns, "lab"]].rename(columns={"value": field})


def write_sweep(out: Path, scenario: str, field: str, labs: list[tuple]) -> pd.DataFrame:
    """``sweep.csv`` (every lab's rows with the value of ``field``), ``sweep.md`` and
    ``sweep.html``: the KPIs against the value, one line per mechanism and yardstick
    (figures ``figures/sweep_<kpi>.png``), and a link to each value's lab."""
    table = sweep_table(field, labs)
    table.to_csv(out / "sweep.csv", index=False)
    points = table.rename(columns={field: "value"})
    figures = {}
    for kpi in SWEEP_KPIS:
        if kpi in points and pd.to_numeric(points[kpi], errors="coerce").notna().any():
            figures[f"sweep_{kpi}"] = (figs.sweep(points, field, kpi), f"{kpi} against {field}")
    pngs = write_figures(out, figures)
    title = f"lemgrid lab: {scenario}, {field} swept"
    links = [(f"{field} = {value}", f"{folder.name}/lab.html") for value, folder, _ in labs]
    md = [f"# {title}", "", "Each value's lab: " + ", ".join(f"[{t}]({h})" for t, h in links)]
    for stem, (_fig, caption) in figures.items():
        md += ["", f"![{stem}]({FIGURES_DIR}/{stem}.png)", "", caption]
    atomic.write_text(out / "sweep.md", "\n".join(md) + "\n")
    page = [(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
             f"{html.escape(title)}</title><style>{STYLE}</style></head><body>"
             f"<h1>{html.escape(title)}</h1><p>Each value's lab: "),
            ", ".join(f'<a href="{html.escape(h)}">{html.escape(t)}</a>' for t, h in links),
            "</p>",
            *[f"<figure><img alt='{stem}' src='data:image/png;base64,{_png(pngs[stem])}'>"
              f"<figcaption>{html.escape(caption)}</figcaption></figure>"
              for stem, (_fig, caption) in figures.items()], "</body></html>"]
    atomic.write_text(out / "sweep.html", "\n".join(page) + "\n")
    return table
