"""The market-design lab's figures (``lemgrid lab``): each one sets the runs of one
community under several mechanisms side by side, read from their results folders
(agents.parquet, grid_bus.parquet, market.parquet, config.yaml). One function per
figure, each a matplotlib ``Figure`` (no pyplot); a figure with nothing to show is None.

``runs`` is a list of ``(name, folder)`` pairs in the lab's order: the retail baseline
first where it ran, then the mechanisms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lemgrid.scenarios.results.figures import market_rounds, with_step
from lemgrid.scenarios.results.report import read_config, read_table

KIND_COLORS = {"prosumer": "#3969ac", "ev": "#e73f74", "building": "#11a579"}
BILL_PARTS = {  # agents.parquet column -> label: the parts of cost_eur
    "retail_eur": "retail energy", "fixed_eur": "fixed costs", "traded_eur": "market trades",
    "deviation_eur": "deviations", "violation_eur": "violations", "fuel_eur": "fuel"}
PART_COLORS = ["#7f3c8d", "#11a579", "#3969ac", "#f2b701", "#e73f74", "#80ba5a"]
Runs = list[tuple[str, Path]]


def _figure(size: tuple[float, float], title: str, xlabel: str, ylabel: str):
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _hours(folder: Path) -> tuple[int, float]:
    """The run's periods per day and period length (h), from its config.yaml."""
    horizon = read_config(folder)["horizon"]
    return int(horizon["periods"]), float(horizon["period_minutes"]) / 60.0


def bills(folder: Path) -> tuple[pd.Series, pd.Series]:
    """Each participant's bill over the run (€, Σ cost_eur) and its kind."""
    agents = read_table(folder, "agents")
    by = agents.groupby("agent")
    return by["cost_eur"].sum(), by["kind"].first()


def savings(runs: Runs, baseline: Path | None) -> Figure | None:
    """Each participant's saving against the retail baseline (€, baseline bill − bill)
    per mechanism: a box of the distribution and one point per participant, one colour
    per kind (points jittered by a fixed draw, so the same lab draws the same figure)."""
    if baseline is None or not runs:
        return None
    base = bills(baseline)[0]
    fig, ax = _figure((max(4.0, 1.1 * len(runs) + 2), 3.8),
                      "Saving per participant against retail", "", "€")
    ax.axhline(0, color="black", linewidth=0.8)
    jitter, seen = np.random.default_rng(0), set()
    for i, (_name, folder) in enumerate(runs):
        bill, kinds = bills(folder)
        saving = (base - bill).reindex(bill.index)
        ax.boxplot([saving.dropna().to_numpy(float)], positions=[i], widths=0.5,
                   showfliers=False, medianprops={"color": "black"})
        for kind in sorted(kinds.unique()):
            values = saving[kinds == kind].to_numpy(float)
            ax.scatter(i + jitter.uniform(-0.15, 0.15, len(values)), values, s=14, alpha=0.75,
                       color=KIND_COLORS.get(kind), label=None if kind in seen else kind,
                       zorder=3)
            seen.add(kind)
    ax.set_xticks(range(len(runs)), [n for n, _ in runs], rotation=30, ha="right")
    ax.legend(title="kind", fontsize="small")
    return fig


def bill_parts_eur(folder: Path) -> pd.Series:
    """The community's bill over the run split into its parts (€, summed over the
    participants; the parts a run does not have are 0)."""
    agents = read_table(folder, "agents")
    return pd.Series({c: float(agents[c].sum()) if c in agents else 0.0 for c in BILL_PARTS})


def bill_parts(runs: Runs, optimum_eur: float | None = None) -> Figure | None:
    """The community's bill per run in its parts (stacked bars: what is paid above zero,
    what is earned below), the total as a black mark, the community optimum's bill as a
    dashed line."""
    if not runs:
        return None
    parts = pd.DataFrame({name: bill_parts_eur(folder) for name, folder in runs}).T
    parts = parts.loc[:, (parts.abs() > 1e-9).any()]
    fig, ax = _figure((max(4.5, 1.0 * len(runs) + 3), 3.8), "The community's bill in its parts",
                      "", "€ over the run")
    x = np.arange(len(parts))
    up, down = np.zeros(len(parts)), np.zeros(len(parts))
    for column, color in zip(BILL_PARTS, PART_COLORS, strict=True):
        if column not in parts:
            continue
        values = parts[column].to_numpy(float)
        bottom = np.where(values >= 0, up, down)
        ax.bar(x, values, 0.6, bottom=bottom, color=color, label=BILL_PARTS[column])
        up, down = up + np.clip(values, 0, None), down + np.clip(values, None, 0)
    ax.scatter(x, parts.sum(axis=1), marker="_", s=400, color="black", zorder=3,
               label="total bill")
    if optimum_eur is not None:
        ax.axhline(optimum_eur, color="black", linestyle="--", linewidth=0.9,
                   label="community optimum")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, parts.index, rotation=30, ha="right")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def _per_step(runs: Runs, table: str, column: str, how: str) -> dict[str, pd.Series]:
    """``column`` of each run's ``table`` aggregated (``how``) per step, indexed by hours
    from the run's start."""
    out = {}
    for name, folder in runs:
        periods, period_h = _hours(folder)
        rows = with_step(read_table(folder, table), periods)
        if rows.empty:
            continue
        series = rows.groupby("step")[column].agg(how)
        series = pd.concat([series, series.iloc[-1:]])  # the last period drawn to its end
        out[name] = pd.Series(series.to_numpy(float), index=(
            np.append(series.index[:-1], series.index[-1] + 1) * period_h))
    return out


def _lines(series: dict[str, pd.Series], title: str, ylabel: str) -> tuple[Figure, object]:
    fig, ax = _figure((9.0, 3.6), title, "hours from the run's start", ylabel)
    for i, (name, values) in enumerate(series.items()):
        ax.step(values.index, values.to_numpy(), where="post", label=name, linewidth=1.1,
                linestyle="--" if i == 0 else "-")
    ax.legend(fontsize="small", ncols=2)
    return fig, ax


def community_import(runs: Runs) -> Figure | None:
    """The community's purchase from the retailer per period (Σ buy_kw over the
    participants, kW), one line per run (the first, dashed: the baseline)."""
    series = _per_step(runs, "agents", "buy_kw", "sum")
    if not series:
        return None
    return _lines(series, "The community's import from the retailer", "kW")[0]


def lowest_voltage(runs: Runs, v_min_pu: float | None = None) -> Figure | None:
    """The lowest bus voltage per period (pu, over every bus of the network), one line
    per run, the network's lower limit dotted; NaN where the power flow failed."""
    series = _per_step(runs, "grid_bus", "vm_pu", "min")
    if not series:
        return None
    fig, ax = _lines(series, "The lowest voltage of the network", "pu")
    if v_min_pu is not None:
        ax.axhline(v_min_pu, color="#cc503e", linestyle=":", linewidth=1.0, label="v_min")
        ax.legend(fontsize="small", ncols=2)
    return fig


def convergence(runs: Runs) -> Figure | None:
    """Each iterative mechanism's error per round on the first day (market.parquet's
    ``error_kw``: the quantity its own stopping rule measures), log scale; the
    mechanisms that clear in one round are left out."""
    fig, ax = _figure((6.8, 3.8), "Convergence per iterative mechanism (day 1)", "round",
                      "error (kW, each mechanism's own measure)")
    drawn = False
    for name, folder in runs:
        rounds = market_rounds(read_table(folder, "market"))["error_kw"].dropna()
        if len(rounds) < 2:
            continue
        ax.plot(rounds.index, rounds.clip(lower=1e-6).to_numpy(float), marker=".",
                label=f"{name} ({len(rounds)} rounds)")
        drawn = True
    if not drawn:
        return None
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    return fig


def sweep(table: pd.DataFrame, field: str, kpi: str) -> Figure:
    """A KPI against a swept setting (``lemgrid lab --sweep``): one line per mechanism
    (``table``: columns ``value``, ``mechanism`` and the KPI); values that are not all
    numbers are set at equal spacing in their order."""
    fig, ax = _figure((6.4, 4.0), f"{kpi} against {field}", field, kpi)
    values = list(dict.fromkeys(table["value"]))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    for name, rows in table.groupby("mechanism", sort=False):
        x = rows["value"] if numeric else [values.index(v) for v in rows["value"]]
        ax.plot(x, pd.to_numeric(rows[kpi], errors="coerce"), marker="o", label=name)
    if not numeric:
        ax.set_xticks(range(len(values)), [str(v) for v in values])
    ax.legend(fontsize="small")
    return fig
