"""The run's summary table (terminal) and its report: ``report.md`` and ``report.html``
(self-contained: its figures embedded, its style and table-sorting script inline) and
``figures/*.png``. Both open with the headline (the community's bill, what the run says
about its saving against retail, the traded energy, the grid's violations and lowest
voltage, the market's convergence, the wall time), then the key figures, then the tables
(every summary.json key in words and units), then the other figures. The report is
read back from the results folder, so ``lemgrid report DIR`` and the end of ``lemgrid run``
write the same one. A run of the ADMM market (``admm_iterations.parquet``, and
``trades.parquet`` where written) adds its section: residuals per round, per day."""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from lemgrid.coordinator.records import read_days
from lemgrid.grid.networks import load_network
from lemgrid.grid.powerflow import REVERSE_TOLERANCE_MW, GridLimits, trafo_rating_mva
from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.results import atomic, figures
from lemgrid.scenarios.results.sections import (
    FIGURES_SECTION,
    SORT_SCRIPT,
    STYLE,
    FigureSpec,
    format_value,
    html_table,
    key_words,
    markdown_table,
)

FIGURE_DPI = 100
TABLES = ("agents", "market", "agent_rounds", "grid_bus", "grid_line")
TRAFO_COLUMNS = {"day": int, "period": int, "trafo": int, "p_kw": float, "loading_pct": float}
CONVERGENCE_HEADER = ["round", "error kW", "sold kW", "bought kW", "rule applied",
                      "limits changed", "slowest agent s"]
VIOLATION_HEADER = ["day", "period", "element", "value", "limit"]


class ResultsMissing(Exception):
    """A results folder or one of its files does not exist; the message names it."""


def results_file(out: Path, name: str) -> Path:
    if not out.is_dir():
        raise ResultsMissing(f"{out}: no such results folder")
    path = out / name
    if not path.is_file():
        raise ResultsMissing(f"{path}: missing (not a complete lemgrid results folder)")
    return path


def read_summary(out: Path) -> dict:
    return json.loads(results_file(out, "summary.json").read_text())


def read_config(out: Path) -> dict:
    return yaml.safe_load(results_file(out, "config.yaml").read_text())


def read_table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(results_file(out, f"{name}.parquet"))


def read_trafo_table(out: Path) -> pd.DataFrame:
    """grid_trafo.parquet; without rows in older results, which have none."""
    if (out / "grid_trafo.parquet").is_file():
        return read_table(out, "grid_trafo")
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in TRAFO_COLUMNS.items()})


@dataclass
class Run:
    """A results folder read back: summary, resolved scenario and the result tables (an
    optional table the run did not write is None)."""

    out: Path
    summary: dict
    config: dict
    agents: pd.DataFrame
    market: pd.DataFrame
    agent_rounds: pd.DataFrame
    grid_bus: pd.DataFrame
    grid_line: pd.DataFrame
    grid_trafo: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # the mechanisms' own

    @classmethod
    def load(cls, out: Path) -> Run:
        summary = read_summary(out)  # first: a folder without it is no results folder
        config = read_config(out)
        periods = config["horizon"]["periods"]
        tables = {n: read_table(out, n) for n in TABLES} | {"grid_trafo": read_trafo_table(out)}
        for name in ("agents", "grid_bus", "grid_line", "grid_trafo"):
            tables[name] = figures.with_step(tables[name], periods)
        own = {n: read_table(out, n) for m in run_mechanisms(config) for n in m.tables
               if (out / f"{n}.parquet").is_file()}
        return cls(out, summary, config, **tables, tables=own)

    @property
    def periods(self) -> int:
        return self.config["horizon"]["periods"]

    @property
    def period_h(self) -> float:
        return self.config["horizon"]["period_minutes"] / 60

    @property
    def has_rounds(self) -> bool:
        """A decentralized run of a mechanism with P2V offer totals per round."""
        return (self.summary["market"]["rounds"] is not None and len(self.agent_rounds) > 0
                and "sold_kw" in self.market)

    @property
    def mechanisms(self) -> list:
        """The plug-ins of the run's market (its mechanism, then its network check)."""
        return run_mechanisms(self.config)


def run_mechanisms(config: dict) -> list:
    """The registered plug-ins a run's resolved config names (its mechanism and its
    network check; one no longer installed is left out)."""
    market = config.get("market", {})
    return mechanisms.of_market(market.get("mechanism"), market.get("network_check", "none"))


# ---- tables ------------------------------------------------------------------------------

def agent_counts(summary: dict) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in summary["agents"].items() if n)


KIND_WORDS = {"prosumer": "prosumer", "ev": "EV", "building": "building"}
SUMMARY_LABELS = {  # (summary.json section, key) -> (words, unit)
    ("costs_eur", "total"): ("the community's bill", "€"),
    **{("costs_eur", f"{kind}_mean"): (f"mean bill per {words}", "€")
       for kind, words in KIND_WORDS.items()},
    ("market", "traded_kwh"): ("energy traded inside the community", "kWh"),
    ("market", "rounds"): ("market rounds", ""),
    ("market", "converged"): ("market converged", ""),
    ("market", "max_imbalance_kw"): ("largest imbalance after the last round", "kW"),
    ("market", "primal_residual"): ("final primal residual", ""),
    ("market", "dual_residual"): ("final dual residual", ""),
    ("market", "rho"): ("final penalty ρ", "€/MW²h"),
    ("market", "rho_net"): ("final penalty ρ of the network operator", "€/MW²h"),
    ("market", "objective_eur"): ("the market's objective", "€"),
    ("market", "centralized_eur"): ("the centralized optimum's objective", "€"),
    ("market", "gap_to_centralized_pct"): ("gap to the centralized optimum", "%"),
    ("market", "relaxation_gap_pu"): ("network model's voltage gap to the AC power flow",
                                      "pu"),
    ("market", "offered_kwh"): ("energy offered to the network operator", "kWh"),
    ("market", "accepted_kwh"): ("energy the network operator accepted", "kWh"),
    ("market", "curtailed_kwh"): ("energy the network operator curtailed", "kWh"),
    ("market", "binding_periods"): ("periods with a binding network limit", ""),
    ("market", "infeasible_periods"): ("periods the network operator could not clear", ""),
    ("market", "traded_kwh_power"): ("power traded bilaterally", "kWh"),
    ("market", "traded_kwh_heat"): ("heat traded bilaterally", "kWh"),
    ("market", "congestion_checks"): ("congestion checks", ""),
    ("market", "congested_after_checks"): ("lines congested after the last check", ""),
    ("grid", "network"): ("network", ""),
    ("grid", "v_min_pu"): ("lowest bus voltage", "pu"),
    ("grid", "v_max_pu"): ("highest bus voltage", "pu"),
    ("grid", "max_loading_pct"): ("highest line loading", "%"),
    ("grid", "voltage_violations"): ("voltage violations (bus-periods)", ""),
    ("grid", "line_violations"): ("line overloads (line-periods)", ""),
    ("grid", "max_trafo_loading_pct"): ("highest transformer loading", "%"),
    ("grid", "max_reverse_flow_kw"): ("largest reverse flow through a transformer", "kW"),
    ("grid", "trafo_violations"): ("transformer violations (transformer-periods)", ""),
    ("grid", "pf_failures"): ("periods without a power-flow solution", ""),
    ("grid", "losses_kwh"): ("network losses", "kWh"),
    ("timing_s", "wall"): ("wall time", "s"),
    ("timing_s", "startup"): ("start-up time", "s"),
    ("timing_s", "market"): ("market time", "s"),
    ("timing_s", "grid"): ("power-flow time", "s"),
    ("timing_s", "critical_path"): ("critical path (slowest agent solve per round, summed)",
                                    "s"),
    ("processes", "agents"): ("agent processes", ""),
    ("processes", "agent_peak_rss_mb"): ("peak memory of an agent process", "MB"),
}
SUMMARY_SECTIONS = ("costs_eur", "market", "grid", "timing_s", "processes")
SECTION_UNITS = {"costs_eur": "€", "timing_s": "s"}  # a section's unit for a key without one


def summary_label(section: str, key: str) -> tuple[str, str]:
    """A summary.json key in words and its unit: SUMMARY_LABELS, else read from the key's
    name (a mechanism's own figure), the section's unit where the name has none."""
    if (section, key) in SUMMARY_LABELS:
        return SUMMARY_LABELS[(section, key)]
    words, unit = key_words(key)
    return words, unit or SECTION_UNITS.get(section, "")


def _summary_value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return format_value(value)


SUMMARY_HEADER = ["quantity", "value", "unit"]


def summary_rows(summary: dict) -> list[list[str]]:
    """Every figure of summary.json as a row: its words, its value, its unit."""
    rows = [["scenario", summary["scenario"], ""], ["mode", summary["mode"], ""],
            ["mechanism", format_value(summary["mechanism"]), ""],
            ["agents", agent_counts(summary), ""],
            ["days run", str(summary.get("days", 1)), ""],
            ["days planned", format_value(summary.get("days_planned")), ""],
            ["periods per day", format_value(summary.get("periods")), ""]]
    for section in SUMMARY_SECTIONS:
        rows += [[*summary_label(section, k)[:1], _summary_value(v),
                  summary_label(section, k)[1]] for k, v in summary[section].items()]
    rows.append(["failed agents", ", ".join(summary["failed_agents"]) or "none", ""])
    return rows


def round_seconds(out: Path) -> list[float] | None:
    """Each round's wall time of the first day of a distributed run (``rounds/``), else
    None."""
    days = read_days(out / "rounds")
    return [r["seconds"] for r in days[0]["rounds"]] if days else None


def _kw(value) -> str:
    """A round's P2V total; "—" in a round without one (a network check's rounds)."""
    return "—" if pd.isna(value) else f"{value:.3f}"


def convergence_table(run: Run, slowest_agent_s: list[float] | None):
    """Header and one row per round of the first day. The slowest agent's time is each
    round's wall time in
    a distributed run (rounds/), the slowest agent solve in-process (given by the run
    that has just finished); without either the column is left out."""
    slowest = slowest_agent_s or round_seconds(run.out)
    rows = []
    for i, (rnd, r) in enumerate(figures.market_rounds(run.market).iterrows()):
        rule = "—" if pd.isna(r["rule_applied"]) else str(int(r["rule_applied"]))
        changed = "—" if pd.isna(r["limits_changed"]) else str(int(r["limits_changed"]))
        rows.append([str(rnd), f"{r['error_kw']:.4f}", _kw(r["sold_kw"]), _kw(r["bought_kw"]),
                     rule, changed]
                    + ([f"{slowest[i]:.4f}"] if slowest else []))
    return (CONVERGENCE_HEADER if slowest else CONVERGENCE_HEADER[:-1]), rows


def reverse_limit_kw(run: Run) -> pd.Series:
    """Each grid_trafo row's reverse-flow limit (kW): grid.reverse_flow_pct % (GridLimits'
    default in older results, which lack it) of its transformer's rating, sn_mva ×
    parallel in the run's network."""
    trafo = run.grid_trafo
    if trafo.empty:
        return pd.Series(dtype=float, index=trafo.index)
    rating_kw = 1000.0 * trafo_rating_mva(load_network(run.config["grid"]["network"]))
    pct = run.config["grid"].get("reverse_flow_pct", GridLimits.max_reverse_pct)
    return pd.Series(pct / 100.0 * rating_kw[trafo["trafo"].to_numpy(dtype=int)],
                     index=trafo.index)


def trafo_violated(run: Run) -> tuple[pd.Series, pd.Series]:
    """Per grid_trafo row: loaded above max_loading_pct, and feeding back (−p_kw) more
    than its reverse-flow limit (+ GridModel's 1e-6 kW tolerance)."""
    trafo = run.grid_trafo
    over = trafo["loading_pct"] > run.config["grid"]["max_loading_pct"]
    return over, -trafo["p_kw"] > reverse_limit_kw(run) + 1000.0 * REVERSE_TOLERANCE_MW


def violations(run: Run) -> pd.DataFrame:
    """Every voltage outside [v_min_pu, v_max_pu], every line or transformer loading above
    max_loading_pct and every transformer feeding back more than its reverse-flow limit
    (value: the reverse flow, kW), by period (NaN, a power flow without solution, is no
    violation). A transformer over both its limits in a period has a row for each."""
    lim, bus, line, trafo = run.config["grid"], run.grid_bus, run.grid_line, run.grid_trafo
    overloaded, reversed_ = trafo_violated(run)
    back = trafo[reversed_]
    found = [(bus[bus["vm_pu"] < lim["v_min_pu"]], "bus", "bus", "vm_pu",
              f"≥ {lim['v_min_pu']} pu"),
             (bus[bus["vm_pu"] > lim["v_max_pu"]], "bus", "bus", "vm_pu",
              f"≤ {lim['v_max_pu']} pu"),
             (line[line["loading_pct"] > lim["max_loading_pct"]], "line", "line", "loading_pct",
              f"≤ {lim['max_loading_pct']} %"),
             (trafo[overloaded], "transformer", "trafo", "loading_pct",
              f"≤ {lim['max_loading_pct']} %"),
             (back.assign(reverse_kw=-back["p_kw"]), "transformer", "trafo", "reverse_kw",
              reverse_limit_kw(run)[reversed_].map(lambda kw: f"reverse flow ≤ {kw:.6g} kW"))]
    frames = [pd.DataFrame({"day": rows["day"] + 1, "period": rows["period"], "kind": kind,
                            "id": rows[key],
                            "value": rows[column], "limit": limit})
              for rows, kind, key, column, limit in found if len(rows)]
    if not frames:
        return pd.DataFrame(columns=VIOLATION_HEADER)
    table = pd.concat(frames).sort_values(["day", "period", "kind", "id"], ignore_index=True)
    return table.assign(element=table["kind"] + " " + table["id"].astype(str))[VIOLATION_HEADER]


DAY_HEADER = ["day", "bill €", "traded €", "deviation €", "violation €", "retail €",
              "import kWh", "export kWh", "traded inside kWh", "voltage viol.", "line viol.",
              "transformer viol."]
BILL_HEADER = ["agent", "kind", "bill €", "traded €", "deviation €", "violation €",
               "retail €", "fixed €"]


def day_rows(run: Run) -> list[list[str]]:
    """The month view: one row per day, then the run's total."""
    a, h = run.agents, run.period_h
    if a.empty:
        return []
    parts = ["cost_eur", "traded_eur", "deviation_eur", "violation_eur", "retail_eur"]
    per = a.groupby("day")[parts].sum()
    per["import"] = a.groupby("day")["buy_kw"].sum() * h
    per["export"] = a.groupby("day")["sell_kw"].sum() * h
    per["inside"] = figures.traded_inside_kwh(a, h)
    bus, line, lim = run.grid_bus, run.grid_line, run.config["grid"]
    per["v"] = ((bus["vm_pu"] < lim["v_min_pu"]) | (bus["vm_pu"] > lim["v_max_pu"])).groupby(
        bus["day"]).sum().reindex(per.index, fill_value=0)
    per["l"] = (line["loading_pct"] > lim["max_loading_pct"]).groupby(line["day"]).sum()\
        .reindex(per.index, fill_value=0)
    overloaded, reversed_ = trafo_violated(run)
    per["t"] = (overloaded | reversed_).groupby(run.grid_trafo["day"]).sum()\
        .reindex(per.index, fill_value=0)
    counts = ("v", "l", "t")
    rows = [[str(d + 1), *(f"{r[c]:.4f}" for c in parts), *(f"{r[c]:.2f}" for c in
            ("import", "export", "inside")), *(str(int(r[c])) for c in counts)]
            for d, r in per.iterrows()]
    total = per.sum()
    rows.append(["total", *(f"{total[c]:.4f}" for c in parts),
                 *(f"{total[c]:.2f}" for c in ("import", "export", "inside")),
                 *(str(int(total[c])) for c in counts)])
    return rows


MONTH_HEADER = ["month", "days", "bill €", "traded €", "retail €", "import kWh",
                "export kWh", "consumption kWh", "self-sufficiency %"]


def month_rows(run: Run) -> list[list[str]]:
    """The year view of a run on a calendar (horizon.start) over two months or more: one
    row per calendar month, then the run's total. Self-sufficiency = 1 − import ÷
    consumption (``figures.consumption_rows``)."""
    a, h, start = run.agents, run.period_h, run.config["horizon"].get("start")
    if a.empty or start is None:
        return []
    month = (pd.Timestamp(start) + pd.to_timedelta(a["day"], unit="D")).dt.strftime("%Y-%m")
    if month.nunique() < 2:
        return []
    frame = pd.DataFrame({"month": month, "day": a["day"], "bill": a["cost_eur"],
                          "traded": a["traded_eur"], "retail": a["retail_eur"],
                          "import": a["buy_kw"] * h, "export": a["sell_kw"] * h,
                          "use": figures.consumption_rows(a) * h})
    per = frame.groupby("month").agg(days=("day", "nunique"), bill=("bill", "sum"),
                                     traded=("traded", "sum"), retail=("retail", "sum"),
                                     imp=("import", "sum"), exp=("export", "sum"),
                                     use=("use", "sum"))
    per.loc["total"] = per.sum()

    def row(name, r):
        share = f"{100 * (1 - r['imp'] / r['use']):.1f}" if r["use"] > 0 else "—"
        return [name, str(int(r["days"])), *(f"{r[c]:.2f}" for c in ("bill", "traded",
                "retail", "imp", "exp", "use")), share]
    return [row(m, r) for m, r in per.iterrows()]


def bill_rows(run: Run) -> list[list[str]]:
    """Each participant's bill over the run, by part."""
    a = run.agents
    if a.empty:
        return []
    parts = ["cost_eur", "traded_eur", "deviation_eur", "violation_eur", "retail_eur",
             "fixed_eur"]
    per = a.groupby(["agent", "kind"])[parts].sum().reset_index()
    return [[r["agent"], r["kind"], *(f"{r[c]:.4f}" for c in parts)] for _, r in per.iterrows()]


def violation_rows(run: Run) -> list[list[str]]:
    return [[str(r.day), str(r.period), r.element, f"{r.value:.6g}", r.limit]
            for r in violations(run).itertuples()]


# ---- figures -----------------------------------------------------------------------------

def _no_rounds(run: Run) -> str | None:
    """Why a run has no P2V offer rounds to draw: a centralized run has no rounds, a
    market may clear in one round a day, or run its rounds without P2V offers."""
    if run.has_rounds:
        return None
    if run.tables:
        return "No P2V offer rounds: the market's own rounds are in its section above."
    summary = run.summary
    rounds, days = summary["market"]["rounds"], summary.get("days", 1)
    if rounds is None:
        return f"No market rounds: a {summary['mode']} run clears the market in one step."
    if rounds <= days:
        return (f"No market rounds: the {summary['mechanism']} market cleared "
                f"{'the day' if days == 1 else 'each day'} in one round.")
    return (f"No P2V offer rounds: the {summary['mechanism']} market's {rounds} rounds "
            "have no P2V offers to draw.")


def _no_offers(run: Run) -> str | None:
    """Why the convergence figure is absent: no rounds, or no round offered anything (P2V
    off, or no agent to sell or to buy)."""
    reason = _no_rounds(run)
    if reason:
        return reason
    rounds = figures.market_rounds(run.market)
    if (rounds[["sold_kw", "bought_kw"]].abs() > 0).any(axis=None):
        return None
    n = len(rounds)
    off = (" (market.p2v false: retail and export only)"
           if run.config["market"].get("p2v") is False else "")
    return (f"No P2V offers: nothing was offered to sell or buy in {n} round"
            f"{'' if n == 1 else 's'}{off}; the Convergence table lists the rounds.")


def _no_agents(run: Run) -> str | None:
    return None if len(run.agents) else "No agent results."


def _days_shown(run: Run) -> tuple[int, int]:
    """The first day of the run and how many days it has."""
    return int(run.agents["day"].min()), int(run.agents["day"].nunique())


def supply_mix_caption(run: Run) -> str:
    """Which day is shown, the definitions, and the EVs' discharge beside the import."""
    first, days = _days_shown(run)
    shown = "" if days <= 1 else f"Day 1 of {days} shown. "
    text = (f"{shown}Consumption: loads, flexible loads and EV charging. Import: the "
            "agents' net imports (net_kw) summed each period, when positive: what the "
            "community drew through its connections, network losses aside (energy one "
            "member exports and another imports stays local). Local PV: generation less "
            "what was exported or charged into stationary batteries (these are taken from "
            "generation first, then from the import, then from EV and battery discharge). "
            "EV discharge: the EVs' dis_kw (V2G).")
    if not (run.agents["kind"] == "ev").any():
        return text + " No EVs."
    parts = [("on the day shown", figures.ev_discharge_share(run.agents, run.period_h,
                                                              first if days > 1 else None))]
    if days > 1:
        parts.append(("over the run", figures.ev_discharge_share(run.agents, run.period_h)))
    for when, d in parts:
        share = "—" if d["share_pct"] is None else f"{d['share_pct']:.2f} %"
        text += (f" EVs discharged {d['ev_discharge_kwh']:,.1f} kWh {when}, {share} of the "
                 f"community's import ({d['import_kwh']:,.1f} kWh; retail purchases "
                 f"{d['retail_kwh']:,.1f} kWh).")
    return text


def _no_soc(run: Run) -> str | None:
    return _no_agents(run) or (None if run.agents["soc_kwh"].notna().any()
                               else "No agent has a storage.")


def _no_power_flow(run: Run) -> str | None:
    return None if run.grid_bus["vm_pu"].notna().any() else "No power flow converged."


FIGURES = [
    FigureSpec("supply_mix", "Where the community's consumption came from per period (kW): "
               "import, local PV, EV discharge (V2G) and battery discharge stacked; export "
               "and battery charging below zero.",
               lambda run: figures.supply_mix(run.agents, run.period_h), _no_agents,
               supply_mix_caption),
    FigureSpec("p2v_trades", "P2V sold and bought per period, settled and offered (kW)",
               lambda run: figures.p2v_trades(run.agents), _no_agents),
    FigureSpec("convergence", "Convergence per round: offers summed over periods and error",
               lambda run: figures.convergence(run.market), _no_offers),
    FigureSpec("planned_cost", "Mean planned cost of the day per agent type and round",
               lambda run: figures.planned_cost(run.agent_rounds), _no_rounds),
    FigureSpec("state_of_charge", "Battery and EV state of charge at the end of each period "
               "(kWh): every EV's as a thin line and the EVs' mean (an EV's falls while it "
               "drives or discharges, V2G).",
               lambda run: figures.state_of_charge(run.agents, run.period_h), _no_soc),
    FigureSpec("voltage", "Bus voltage per period, limits marked",
               lambda run: figures.voltage_heat_map(run.grid_bus, run.config["grid"]["v_min_pu"],
                                                    run.config["grid"]["v_max_pu"]),
               _no_power_flow),
    FigureSpec("loading", "Line loading per period, limit marked",
               lambda run: figures.loading_heat_map(run.grid_line,
                                                    run.config["grid"]["max_loading_pct"]),
               _no_power_flow),
    FigureSpec("cost_distribution", "Cost per agent over the run, by kind",
               lambda run: figures.cost_distribution(run.agents), _no_agents),
    FigureSpec("daily_bills", "The community's bill per day, by part",
               lambda run: figures.daily_bills(run.agents), _no_agents),
    FigureSpec("daily_energy", "Energy per day",
               lambda run: figures.daily_energy(run.agents, run.period_h), _no_agents),
    FigureSpec("locality_prices", "Locality market prices beside the grid's",
               lambda run: figures.locality_prices(run.market, run.periods),
               lambda run: None if "import_price_eur_per_kwh" in run.market else
               "No locality market prices in this run."),
]


def figure_specs(run: Run) -> list[FigureSpec]:
    """The figures of the run's mechanisms, then every run's."""
    return [f for m in run.mechanisms if m.figures for f in m.figures()] + FIGURES


def _mechanism_figure_names() -> set[str]:
    return {f.name for m in mechanisms.registry().values() if m.figures for f in m.figures()}


@dataclass
class Rendered:
    spec: FigureSpec
    content: bytes | str  # PNG, or the sentence saying why the figure is absent
    caption: str


def render_figures(run: Run) -> list[Rendered]:
    """Each figure as PNG bytes (also written to ``figures/<name>.png``) with its caption,
    or the sentence saying why it is absent (its PNG of an earlier report removed, as is
    the PNG of a figure this run has no section for)."""
    folder = run.out / "figures"
    folder.mkdir(exist_ok=True)
    specs = figure_specs(run)
    for name in _mechanism_figure_names() - {s.name for s in specs}:
        (folder / f"{name}.png").unlink(missing_ok=True)
    rendered = []
    for spec in specs:
        path = folder / f"{spec.name}.png"
        reason = spec.absent(run)
        if reason:
            path.unlink(missing_ok=True)
            rendered.append(Rendered(spec, reason, spec.caption))
            continue
        buffer = io.BytesIO()
        spec.build(run).savefig(buffer, format="png", dpi=FIGURE_DPI)
        atomic.write_bytes(path, buffer.getvalue())
        rendered.append(Rendered(spec, buffer.getvalue(), spec.full_caption(run)))
    return rendered


# ---- the headline ------------------------------------------------------------------------

HEADLINE = "Headline"
KEY_FIGURES_SECTION = "Key figures"
KEY_FIGURES = ("supply_mix", "cost_distribution", "voltage", "convergence")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _clock(period: int, period_minutes: int) -> str:
    """A period's start as hh:mm (a day of periods starts at 00:00)."""
    minutes = period * period_minutes
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _joined(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def agents_in_words(summary: dict) -> str:
    """The participants by kind in words: "3 prosumers and 2 EVs"."""
    return _joined([_plural(n, KIND_WORDS.get(kind, kind))
                    for kind, n in summary["agents"].items() if n])


def _run_line(run: Run) -> str:
    summary = run.summary
    mech = mechanisms.registry().get(summary["mechanism"])
    market = (f"the {summary['mechanism']} market ({mech.description})" if mech else
              f"the {summary['mechanism']} market" if summary["mechanism"] else
              "no local market")
    return (f"{summary['scenario']}: {agents_in_words(summary)} in {market}, "
            f"{summary['mode']}; {_plural(summary.get('days', 1), 'day')} of "
            f"{run.periods} periods of {run.config['horizon']['period_minutes']} min")


def _bill_line(summary: dict) -> str:
    costs = summary["costs_eur"]
    days = summary.get("days", 1)
    means = [f"{format_value(costs[f'{kind}_mean'])} € per {words}"
             for kind, words in KIND_WORDS.items() if costs.get(f"{kind}_mean") is not None]
    text = f"{format_value(costs['total'])} € over {_plural(days, 'day')}"
    return text + (f"; on average {', '.join(means)}" if means else "")


def _saving_line(run: Run) -> str:
    """What a single run can say about the saving against retail: nothing to measure it
    against, unless the run is the retail baseline itself."""
    summary = run.summary
    mech = mechanisms.registry().get(summary["mechanism"])
    if mech is not None and mech.retail_baseline:
        return ("none by definition: this run is the retail baseline (no local market, every "
                "participant at its own tariff)")
    return ("not measured by a single run, nor the share of participants better off: "
            f"“lemgrid lab {summary['scenario']}” runs the retail baseline beside this "
            "market and reports both")


def _traded_line(summary: dict) -> str:
    words = traded_label(summary).removesuffix(" kWh")
    words = "traded inside the community" if words == "traded" else words
    return f"{format_value(summary['market']['traded_kwh'])} kWh {words}"


def _lowest_voltage(run: Run) -> str:
    """The lowest bus voltage, where and when (the first such bus and period)."""
    bus = run.grid_bus.dropna(subset=["vm_pu"])
    if bus.empty:
        return "no power flow converged"
    low = bus.loc[bus["vm_pu"].idxmin()]
    minutes = run.config["horizon"]["period_minutes"]
    day = f"day {int(low['day']) + 1}, " if run.summary.get("days", 1) > 1 else ""
    return (f"lowest voltage {low['vm_pu']:.4f} pu at bus {int(low['bus'])} ({day}period "
            f"{int(low['period'])}, {_clock(int(low['period']), minutes)}; lower limit "
            f"{run.config['grid']['v_min_pu']} pu)")


def _grid_line(run: Run) -> str:
    grid = run.summary["grid"]
    counts = [(grid.get("voltage_violations"), "voltage"), (grid.get("line_violations"), "line"),
              (grid.get("trafo_violations"), "transformer")]
    found = [f"{n} {what}" for n, what in counts if n]
    text = (f"{_joined(found)} violations (element-periods)" if found else
            "no voltage, line or transformer limit violated")
    if grid.get("pf_failures"):
        text += f"; no power-flow solution in {_plural(grid['pf_failures'], 'period')}"
    return f"{text}; {_lowest_voltage(run)}"


def _market_line(summary: dict) -> str:
    market, days = summary["market"], summary.get("days", 1)
    rounds = market["rounds"]
    if rounds is None:
        return "cleared in one centralized step (no market rounds)"
    over = f" over {_plural(days, 'day')}" if days > 1 else ""
    if market["converged"]:
        return f"converged in {_plural(rounds, 'round')}{over}"
    return f"did not converge: stopped after {_plural(rounds, 'round')}{over}"


def _wall_line(summary: dict) -> str:
    timing = summary["timing_s"]
    parts = [f"{what} {timing[key]:.1f} s" for key, what in
             (("market", "market"), ("grid", "power flow")) if timing.get(key) is not None]
    return f"{timing['wall']:.1f} s" + (f" ({', '.join(parts)})" if parts else "")


def headline(run: Run) -> list[tuple[str, str]]:
    """The run's answers first, each a label and a sentence in words and units: the run,
    the community's bill, its saving against retail (where the run can say it), the
    traded energy, the grid, the market's convergence, the wall time, failed agents."""
    summary = run.summary
    rows = [("Run", _run_line(run)), ("The community's bill", _bill_line(summary)),
            ("Saving against retail", _saving_line(run)),
            ("Traded energy", _traded_line(summary)), ("Grid", _grid_line(run)),
            ("Market", _market_line(summary)), ("Wall time", _wall_line(summary))]
    if summary["failed_agents"]:
        rows.append(("Failed agents", ", ".join(summary["failed_agents"])))
    return rows


# ---- documents ---------------------------------------------------------------------------

def _figure_html(figure: Rendered) -> str:
    spec, content = figure.spec, figure.content
    caption = f"<figcaption>{html.escape(figure.caption)}</figcaption>"
    if isinstance(content, str):
        return f"<figure>{caption}<p>{html.escape(content)}</p></figure>"
    data = base64.b64encode(content).decode("ascii")
    return (f'<figure id="{spec.name}"><img alt="{html.escape(spec.caption)}" '
            f'src="data:image/png;base64,{data}">{caption}</figure>')


def _figure_markdown(figure: Rendered) -> list[str]:
    if isinstance(figure.content, str):
        return [f"{figure.caption.rstrip('.')}: {figure.content}"]
    return [f"![{figure.spec.name}](figures/{figure.spec.name}.png)", "", figure.caption]


LONG_WHAT = {"Summary": "figures of summary.json",
             "Bills per participant over the run": "participants",
             "Grid limit violations": "violations", "Days": "days", "Months": "months",
             "Convergence": "rounds"}


def _sections(run: Run, slowest_agent_s) -> list[tuple[str, list[str], list]]:
    summary = run.summary
    found = violation_rows(run)
    failed = [[name, reason] for name, reason in summary["failed_agents"].items()]
    sections = [("Summary", SUMMARY_HEADER, summary_rows(summary))]
    if run.has_rounds:
        sections.append(("Convergence", *convergence_table(run, slowest_agent_s)))
    sections += [sec for m in run.mechanisms if m.sections for sec in m.sections(run)]
    months = month_rows(run)
    sections += [("Months", MONTH_HEADER, months)] if months else []
    sections += [("Days", DAY_HEADER, day_rows(run)),
                 ("Bills per participant over the run", BILL_HEADER, bill_rows(run)),
                 ("Grid limit violations", VIOLATION_HEADER, found),
                 ("Failed agents", ["agent", "reason"], failed),
                 ("Notes", ["note"], [[n] for n in summary["notes"]])]
    return sections


def place_figures(rendered: list[Rendered], titles: list[str]) -> dict[str, list[Rendered]]:
    """Where each figure is drawn: the key figures that exist first (KEY_FIGURES_SECTION),
    a figure of a table section under its table, every other under FIGURES_SECTION (a key
    figure that is absent too, with the sentence saying why)."""
    placed: dict[str, list[Rendered]] = {KEY_FIGURES_SECTION: [], FIGURES_SECTION: []}
    for name in KEY_FIGURES:
        placed[KEY_FIGURES_SECTION] += [f for f in rendered if f.spec.name == name
                                        and f.spec.section == FIGURES_SECTION
                                        and not isinstance(f.content, str)]
    for f in rendered:
        if f in placed[KEY_FIGURES_SECTION]:
            continue
        where = f.spec.section if f.spec.section in titles else FIGURES_SECTION
        placed.setdefault(where, []).append(f)
    return placed


def _title(run: Run) -> str:
    return f"lemgrid run: {run.summary['scenario']} ({run.summary['mode']})"


def write_markdown(run: Run, sections, rendered: list[Rendered]) -> Path:
    """report.md in report.html's order: headline, key figures, tables (each with its
    figures), the other figures; the figures as links to figures/*.png."""
    placed = place_figures(rendered, [t for t, _, _ in sections])
    lines = [f"# {_title(run)}", "", f"## {HEADLINE}", "",
             *[f"- **{label}**: {text}" for label, text in headline(run)]]
    lines += ["", f"## {KEY_FIGURES_SECTION}"]
    for figure in placed[KEY_FIGURES_SECTION]:
        lines += ["", *_figure_markdown(figure)]
    for title, header, rows in sections:
        lines += ["", f"## {title}", "", *markdown_table(header, rows)]
        for figure in placed.get(title, []):
            lines += ["", *_figure_markdown(figure)]
    lines += ["", f"## {FIGURES_SECTION}"]
    for figure in placed[FIGURES_SECTION]:
        lines += ["", *_figure_markdown(figure)]
    path = run.out / "report.md"
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


def headline_html(rows: list[tuple[str, str]], title: str = HEADLINE) -> str:
    """The headline block: a box of label and sentence pairs."""
    items = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>"
                    for label, text in rows)
    return (f"<section class='headline' id='headline'><h2>{html.escape(title)}</h2>"
            f"<dl>{items}</dl></section>")


def page_head(title: str) -> str:
    """A self-contained page's start: its style inline, its title as the heading."""
    title = html.escape(title)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{title}</title><style>{STYLE}</style></head><body><h1>{title}</h1>")


def write_html(run: Run, sections, rendered: list[Rendered]) -> Path:
    """report.html: the headline, the key figures, the tables (each with its figures),
    the other figures; long tables collapsed, every table but the summary sortable."""
    placed = place_figures(rendered, [t for t, _, _ in sections])
    parts = [page_head(_title(run)), headline_html(headline(run)),
             f"<h2>{KEY_FIGURES_SECTION}</h2>",
             *[_figure_html(f) for f in placed[KEY_FIGURES_SECTION]]]
    for t, h, rows in sections:
        table = html_table(h, rows, sortable=t != "Summary", what=LONG_WHAT.get(t, "rows"))
        parts.append(f"<h2>{html.escape(t)}</h2>{table}")
        parts += [_figure_html(f) for f in placed.get(t, [])]
    parts.append(f"<h2>{FIGURES_SECTION}</h2>")
    parts += [_figure_html(f) for f in placed[FIGURES_SECTION]]
    parts += [SORT_SCRIPT, "</body></html>"]
    path = run.out / "report.html"
    atomic.write_text(path, "\n".join(parts) + "\n")
    return path


def write_report(out: Path, slowest_agent_s: list[float] | None = None) -> Path:
    """report.md, report.html and figures/ from the results in ``out``; returns the HTML's
    path. ``slowest_agent_s``: the slowest agent solve of each round, which only an
    in-process run knows (a distributed run's round times are in rounds/)."""
    run = Run.load(out)
    sections = _sections(run, slowest_agent_s)
    rendered = render_figures(run)
    write_markdown(run, sections, rendered)
    return write_html(run, sections, rendered)


def slowest_agent_s(days) -> list[float]:
    """The slowest agent solve of each round of a run's first day."""
    return [max(r.solve_s.values(), default=0.0) for r in days[0].rounds] if days else []


# ---- terminal ----------------------------------------------------------------------------

def _range(low, high, unit: str) -> str:
    return "—" if low is None else f"{low:.4f} – {high:.4f} {unit}"


def key_rows(summary: dict) -> list[tuple[str, str]]:
    """The run's key figures for the terminal (report.md has every key)."""
    costs, market, grid = summary["costs_eur"], summary["market"], summary["grid"]
    means = ", ".join(f"{kind} {costs[f'{kind}_mean']:.4f}" for kind in
                      ("prosumer", "ev", "building") if costs[f"{kind}_mean"] is not None)
    rounds = ("— (centralized)" if market["rounds"] is None else
              f"{market['rounds']}, {'converged' if market['converged'] else 'not converged'}")
    run = f"{summary['scenario']} ({summary['mode']}, {summary['mechanism'] or 'no P2V market'})"
    violated = (f"voltage {grid['voltage_violations']}, lines {grid['line_violations']}, "
                f"transformers {format_value(grid.get('trafo_violations'))}, "
                f"power flow failures {grid['pf_failures']}")
    return [
        ("scenario", run),
        ("agents", agent_counts(summary)),
        ("total cost €", format_value(costs["total"])),
        ("mean cost € per agent", means or "—"),
        ("days", str(summary.get("days", 1))),
        (traded_label(summary), format_value(market["traded_kwh"])),
        ("rounds", rounds),
        ("voltage", _range(grid["v_min_pu"], grid["v_max_pu"], "pu")),
        ("max line loading %", format_value(grid["max_loading_pct"])),
        ("violations", violated),
        ("wall time s", f"{summary['timing_s']['wall']:.1f}"),
        ("failed agents", ", ".join(summary["failed_agents"]) or "none"),
    ]


def traded_label(summary: dict) -> str:
    """What the run's market.traded_kwh is, in its mechanism's words."""
    mech = mechanisms.registry().get(summary["mechanism"])
    return mech.traded_label if mech else "traded kWh"


def print_summary(summary: dict, out: Path) -> None:
    rows = key_rows(summary)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"results: {out}  report: {out / 'report.html'}")
