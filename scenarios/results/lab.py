"""The market-design lab's report: one scenario under every mechanism that serves it, read
back from the runs' results folders and set beside two yardsticks (``lemgrid lab``;
the runs themselves are made by ``scenarios.run.lab``). Nothing here recomputes a
mechanism: every number is a run's own (summary.json, agents.parquet, messages.jsonl) or
the community optimum's.

Writes ``lab.csv`` (one row per mechanism and yardstick), ``lab.md`` and ``lab.html``
(self-contained): one sentence per question first (which mechanism saves most, which is
fairest, which keeps the grid within limits, which is fastest), then the table, then the
figure of every participant's saving per mechanism, and a link to each run's report.

The yardsticks:

- the **retail baseline**: the run of the mechanism whose plug-in is marked
  ``retail_baseline`` (no local market: everyone at its own tariff);
- the **community optimum**: per day, one centralized model of the whole community
  trading freely (within the network's limits where the network model holds the
  network). Its bill ``B_opt`` is the objective minus the operator's loss cost: the
  peers' day bills (retail energy and the daily fixed cost) at the optimal dispatch, with
  the indicator binaries relaxed (a lower bound of what any dispatch of the community
  pays the retailer). Losses are not in any mechanism's bill, so they are not in it
  either; the optimum's losses are shown in the losses column.

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
- then each mechanism's own KPIs (its plug-in's ``kpis``), empty in the other rows.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lemgrid.scenarios.results import atomic
from lemgrid.scenarios.results.compare import mechanism_kpis, run_kpis
from lemgrid.scenarios.results.report import STYLE, read_summary, read_table
from lemgrid.scenarios.results.sections import format_value, markdown_table

BASELINE, OPTIMUM, MECHANISM = "retail baseline", "community optimum", "mechanism"
OK, NOT_CONVERGED = "ok", "not converged"
BETTER_EUR = 1e-6  # a participant is better off when its bill falls by more than this
QUANTILES = {"min": 0, "p10": 10, "median": 50, "p90": 90, "max": 100}
KIND_COLORS = {"prosumer": "#3969ac", "ev": "#e73f74", "building": "#11a579"}


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

def bills_of(folder: Path) -> tuple[pd.Series, pd.Series]:
    """Each participant's bill over the run (€) and its kind."""
    agents = read_table(folder, "agents")
    return (agents.groupby("agent")["cost_eur"].sum(),
            agents.groupby("agent")["kind"].first())


def message_load(folder: Path, participants: int) -> dict:
    """Messages (both directions) and their bytes (each message's compact JSON) per
    participant, from messages.jsonl; null where the run wrote none."""
    path = folder / "messages.jsonl"
    if not path.is_file() or not participants:
        return {"messages_per_participant": None, "bytes_per_participant": None}
    count = size = 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                msg = json.loads(line)["msg"]
            except (ValueError, KeyError, TypeError):
                continue
            count += 1
            size += len(json.dumps(msg, separators=(",", ":")).encode())
    return {"messages_per_participant": count / participants,
            "bytes_per_participant": size / participants}


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
    base_bills = bills_of(base.folder)[0] if base else None
    opt = next((o for o in outcomes if o.role == OPTIMUM and o.optimum), None)
    rows = []
    for o in outcomes:
        row = {"mechanism": o.name, "role": o.role, "status": o.status}
        if o.has_results:
            row |= run_row(o, extra)
            if base_bills is not None:
                bills, kinds = bills_of(o.folder)
                row |= fairness(bills, base_bills, kinds)
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
           "bytes_per_participant"]
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


# ---- the figure -------------------------------------------------------------------------

def savings_figure(outcomes: list[Outcome]) -> Figure | None:
    """Each participant's saving against the retail baseline (€, baseline − bill) per
    mechanism: one point per participant, one colour per kind."""
    runs = [o for o in outcomes if o.has_results and o.role == MECHANISM]
    base = next((o for o in outcomes if o.has_results and o.role == BASELINE), None)
    if base is None or not runs:
        return None
    base_bills = bills_of(base.folder)[0]
    fig = Figure(figsize=(max(4.0, 1.1 * len(runs) + 2), 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set(title="Each participant's saving against the retail baseline", ylabel="€")
    ax.grid(alpha=0.3)
    ax.axhline(0, color="black", linewidth=0.8)
    jitter = np.random.default_rng(0)  # fixed: the same lab draws the same figure
    seen = set()
    for i, o in enumerate(runs):
        bills, kinds = bills_of(o.folder)
        saving = (base_bills - bills).reindex(bills.index)
        for kind in sorted(kinds.unique()):
            values = saving[kinds == kind].to_numpy(float)
            ax.scatter(i + jitter.uniform(-0.15, 0.15, len(values)), values, s=14, alpha=0.75,
                       color=KIND_COLORS.get(kind), label=None if kind in seen else kind)
            seen.add(kind)
    ax.set_xticks(range(len(runs)), [o.name for o in runs], rotation=30, ha="right")
    ax.legend(title="kind", fontsize="small")
    return fig


# ---- writing ----------------------------------------------------------------------------

def _rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = [c for c in table.columns if c != "report"]
    return header, [[_format(c, v) for c, v in zip(header, row, strict=True)]
                    for row in table[header].itertuples(index=False)]


def _format(column: str, value) -> str:
    value = value.item() if isinstance(value, np.generic) else value
    if column in COUNTS and isinstance(value, float) and value.is_integer():
        value = int(value)
    return format_value(value)


def write_markdown(out: Path, title: str, sentences: list[str], table: pd.DataFrame,
                   notes: list[str]) -> Path:
    header, rows = _rows(table)
    lines = [f"# {title}", "", *[f"- {s}" for s in sentences], "",
             *markdown_table(header, rows)]
    lines += ["", "Each run's report: " + ", ".join(
        f"[{n}]({r})" for n, r in zip(table["mechanism"], table.get("report", []), strict=False)
        if isinstance(r, str))]
    lines += ["", *[f"- {n}" for n in notes]] if notes else []
    path = out / "lab.md"
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_html(out: Path, title: str, sentences: list[str], table: pd.DataFrame,
               notes: list[str], figure: Figure | None) -> Path:
    header, rows = _rows(table)
    reports = table["report"].tolist() if "report" in table else [None] * len(table)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td><a href="{html.escape(rep)}">{html.escape(c)}</a></td>' if j == 0 and
            isinstance(rep, str) else f"<td>{html.escape(c)}</td>" for j, c in enumerate(row))
        + "</tr>" for row, rep in zip(rows, reports, strict=True))
    parts = [(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
             f"{html.escape(title)}</title><style>{STYLE}.wide{{overflow-x:auto}}</style>"
             f"</head><body><h1>{html.escape(title)}</h1><ul>"),
             *[f"<li>{html.escape(s)}</li>" for s in sentences], "</ul>",
             ("<h2>Mechanisms and yardsticks</h2><p>A mechanism's name links to its run's own "
             "report.</p>"),
             (f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
             "</table></div>")]
    if figure is not None:
        parts.append(f"<figure><img alt='savings per participant' src='data:image/png;base64,"
                     f"{_png(figure)}'><figcaption>Each participant's saving against the "
                     "retail baseline (€, baseline bill − bill), one point per participant, "
                     "one colour per kind.</figcaption></figure>")
    if notes:
        parts += ["<h2>Notes</h2><ul>", *[f"<li>{html.escape(n)}</li>" for n in notes], "</ul>"]
    parts.append("</body></html>")
    path = out / "lab.html"
    atomic.write_text(path, "\n".join(parts) + "\n")
    return path


def write_lab(out: Path, scenario: str, outcomes: list[Outcome],
              notes: list[str]) -> pd.DataFrame:
    """lab.csv, lab.md and lab.html in ``out``; returns the table."""
    table = lab_table(outcomes)
    sentences = answers(table)
    title = f"lemgrid lab: {scenario}"
    table.to_csv(out / "lab.csv", index=False)
    write_markdown(out, title, sentences, table, notes)
    write_html(out, title, sentences, table, notes, savings_figure(outcomes))
    return table
