"""The report's figures: one function per figure, each a matplotlib ``Figure`` built from
the results tables (agents, market, agent_rounds, grid_bus, grid_line). No pyplot (no
global state); ``Figure.savefig`` renders with the Agg backend. Powers are kW per period,
summed over the community unless the name says otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

WIDE_IN = (9.0, 3.6)  # figure size of a per-period plot, inches
FEW_AGENTS = 6  # up to this many agents of a kind, SoC is drawn per agent
NO_SOLUTION = "#bbbbbb"  # heat map cell of a period whose power flow did not converge
OVERLOADED = "#d62728"  # heat map cell of a line loaded above its limit
MARK = {"marker": "x", "color": "black", "s": 12, "linewidths": 0.8}  # an out-of-limit cell
T = "step"  # the time axis of every per-period figure: day × periods + period


def with_step(table: pd.DataFrame, periods: int) -> pd.DataFrame:
    """``table`` with its ``step`` column: the period counted from the run's start."""
    if "period" not in table:
        return table.assign(step=pd.Series(dtype=int))
    day = table.get("day", 0)
    return table.assign(step=day * periods + table["period"])


def _axes(size=WIDE_IN, title: str = "", xlabel: str = "period", ylabel: str = "kW"):
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def community_kw(agents: pd.DataFrame, column: str, kind: str | None = None) -> pd.Series:
    """``column`` summed over the agents (of ``kind``, if given), one value per period."""
    rows = agents if kind is None else agents[agents["kind"] == kind]
    periods = np.sort(agents[T].unique())
    return rows.groupby(T)[column].sum().reindex(periods, fill_value=0.0)


def consumption_rows(agents: pd.DataFrame) -> pd.Series:
    """Each row's consumption (kW): the agent's load, a building's flexible loads and an
    EV's charging (a stationary battery's charging is storage, not consumption)."""
    flex = agents["flex_kw"].fillna(0.0) if "flex_kw" in agents else 0.0
    ev_charge = agents["ch_kw"].where(agents["kind"] == "ev", 0.0).fillna(0.0)
    return agents["load_kw"].fillna(0.0) + flex + ev_charge


def consumption_kw(agents: pd.DataFrame) -> pd.Series:
    """Community consumption per period (``consumption_rows`` summed over the agents)."""
    periods = np.sort(agents[T].unique())
    return consumption_rows(agents).groupby(agents[T]).sum().reindex(periods, fill_value=0.0)


def traded_inside_kwh(agents: pd.DataFrame, period_h: float) -> pd.Series:
    """Energy traded inside the community each day (kWh): the P2V sales on a day with
    P2V trade, else what the market carried from exporters to importers (per period, the
    smaller of the power it took and the power it delivered)."""
    p2v = agents[agents["kind"] == "prosumer"].groupby("day")["p2v_kw"].sum()
    market = agents.groupby(["day", "period"])["market_kw"]
    pool = np.minimum(market.apply(lambda x: x[x > 0].sum()),
                      market.apply(lambda x: -x[x < 0].sum())).groupby(level="day").sum()
    p2v = p2v.reindex(pool.index, fill_value=0.0)
    return p2v.where(p2v > 0, pool) * period_h


def _day_rows(agents: pd.DataFrame, day: int | None) -> tuple[pd.DataFrame, int]:
    """The rows of ``day`` (default the run's first) and that day."""
    day = int(agents["day"].min()) if day is None else day
    return agents[agents["day"] == day], day


def _day_note(agents: pd.DataFrame, day: int) -> str:
    """'' for a one-day run, else ', day d of n' (days counted from 1)."""
    days = agents["day"].nunique()
    return "" if days <= 1 else f", day {day + 1} of {days}"


# a source's column in consumption_sources, the part of it that supplied the consumption
SOURCE_ORDER = (("generation_kw", "from_generation_kw"), ("import_kw", "from_import_kw"),
                ("ev_discharge_kw", "from_ev_kw"), ("battery_discharge_kw", "from_battery_kw"))


def consumption_sources(agents: pd.DataFrame, day: int | None = None) -> pd.DataFrame:
    """Where the community's consumption came from in each period of ``day`` (default the
    first), kW, summed over the agents. The community is one node (network losses aside):

    - consumption: loads, flexible loads and EV charging;
    - import_kw / export_kw: the agents' net imports (``net_kw``) summed, when positive /
      negative: what the community drew from / gave to the grid through its connections
      (energy one member exports and another imports stays inside);
    - generation_kw (PV and wind), ev_discharge_kw (V2G), battery_discharge_kw and
      battery_charge_kw (stationary storage, every storage that is not an EV's).

    The sources (generation, import, EV discharge, battery discharge) also supply the
    export and the battery charging; these are taken from generation first, then from the
    import, then from EV and battery discharge. What is left of each source supplied the
    consumption: ``from_*_kw``, which sum to the consumption (the agents' energy balances
    hold)."""
    rows, _ = _day_rows(agents, day)
    periods = np.sort(rows["period"].unique())
    ev = rows["kind"] == "ev"

    def total(column: str, mask=None) -> pd.Series:
        if column not in rows:
            return pd.Series(0.0, index=periods)
        part = rows if mask is None else rows[mask]
        return part.groupby("period")[column].sum().reindex(periods, fill_value=0.0)

    net = total("net_kw")
    mix = pd.DataFrame({
        "consumption_kw": total("load_kw") + total("flex_kw") + total("ch_kw", ev),
        "load_kw": total("load_kw") + total("flex_kw"),
        "import_kw": net.clip(lower=0.0), "export_kw": (-net).clip(lower=0.0),
        "generation_kw": total("pv_kw") + total("wind_kw"),
        "ev_discharge_kw": total("dis_kw", ev), "battery_discharge_kw": total("dis_kw", ~ev),
        "battery_charge_kw": total("ch_kw", ~ev)})
    mix.index.name = "period"
    other_uses = mix["export_kw"] + mix["battery_charge_kw"]
    for source, used in SOURCE_ORDER:
        taken = np.minimum(mix[source], other_uses)
        mix[used] = mix[source] - taken
        other_uses = other_uses - taken
    return mix


def ev_discharge_share(agents: pd.DataFrame, period_h: float,
                       day: int | None = None) -> dict[str, float | None]:
    """EV discharge (V2G, kWh) on ``day`` (None: over the run), the community's import
    from the grid (kWh, as in consumption_sources: the agents' net imports summed per
    period, when positive), the EV discharge as a percentage of that import (None
    without import) and the retail purchases (kWh, ``buy_kw`` summed: more than the
    import when members buy what other members resell)."""
    rows = agents if day is None else agents[agents["day"] == day]
    net = rows.groupby(["day", "period"])["net_kw"].sum()
    ev_kwh = float(rows.loc[rows["kind"] == "ev", "dis_kw"].sum()) * period_h
    import_kwh = float(net.clip(lower=0.0).sum()) * period_h
    return {"ev_discharge_kwh": ev_kwh, "import_kwh": import_kwh,
            "share_pct": 100 * ev_kwh / import_kwh if import_kwh > 0 else None,
            "retail_kwh": float(rows["buy_kw"].sum()) * period_h}


def inside_trades_kw(rows: pd.DataFrame, periods: pd.Index) -> dict[str, pd.Series]:
    """Trade inside the community per period, by label, where there is any: P2V sold by
    prosumers, P2P bought (the positive part of every agent's net P2P purchase)."""
    found = {}
    if "p2v_kw" in rows:
        sold = rows[rows["kind"] == "prosumer"]
        found["P2V (prosumers → EVs)"] = sold.groupby("period")["p2v_kw"].sum()
    if "p2p_kw" in rows:
        found["P2P bought inside"] = rows["p2p_kw"].clip(lower=0.0).groupby(
            rows["period"]).sum()
    found = {k: v.reindex(periods, fill_value=0.0) for k, v in found.items()}
    return {k: v for k, v in found.items() if v.abs().sum() > 0}


MIX_LAYERS = {"from_import_kw": ("import from the grid", "#7f7f7f"),
              "from_generation_kw": ("local PV", "#f2b701"),
              "from_ev_kw": ("EV discharge (V2G)", "#11a579"),
              "from_battery_kw": ("battery discharge", "#3969ac")}
OTHER_USES = {"export_kw": ("export (negative)", "#e73f74"),
              "battery_charge_kw": ("battery charging (negative)", "#80ba5a")}


def supply_mix(agents: pd.DataFrame, period_h: float, day: int | None = None) -> Figure:
    """Where the community's consumption came from per period of ``day`` (default the
    first; a multi-day run names the day in the title): consumption_sources's parts
    stacked as bars above zero (their top is the consumption), export and battery
    charging below zero; the loads alone (EV charging is the gap to the consumption) and
    P2V / P2P trade inside the community as lines. Layers and lines that are zero all
    day are left out."""
    rows, day = _day_rows(agents, day)
    mix = consumption_sources(agents, day)
    hours = mix.index.to_numpy() * period_h
    edges = np.append(hours, hours[-1] + period_h)
    fig, ax = _axes(title=f"Community supply mix{_day_note(agents, day)}",
                    xlabel="hour of the day", ylabel="kW")
    if "wind_kw" in rows and rows["wind_kw"].abs().sum() > 0:
        layers = {**MIX_LAYERS, "from_generation_kw": ("local PV and wind", "#f2b701")}
    else:
        layers = MIX_LAYERS
    for parts, sign in ((layers, 1.0), (OTHER_USES, -1.0)):
        base = np.zeros(len(mix))
        for column, (label, color) in parts.items():
            v = sign * mix[column].to_numpy()
            if np.abs(v).sum() > 0:
                ax.bar(hours, v, width=period_h, align="edge", bottom=base, color=color,
                       label=label, alpha=0.85)
                base = base + v
    ax.stairs(mix["consumption_kw"].to_numpy(), edges, color="black", lw=1.2,
              label="consumption (loads + EV charging)")
    if (mix["consumption_kw"] - mix["load_kw"]).abs().sum() > 0:
        ax.stairs(mix["load_kw"].to_numpy(), edges, color="black", lw=0.8, ls=":",
                  label="loads (without EV charging)")
    for label, kw in inside_trades_kw(rows, mix.index).items():
        ax.stairs(kw.to_numpy(), edges, color="black", ls="--", lw=1.0, label=label)
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlim(edges[0], edges[-1])
    fig.legend(fontsize=7, loc="outside right upper")
    return fig


def p2v_trades(agents: pd.DataFrame) -> Figure:
    """P2V sold by prosumers and bought by EVs per period, settled and last offered."""
    fig, ax = _axes(title="P2V trades")
    periods = np.sort(agents[T].unique())
    for kind, verb, color in (("prosumer", "sold", "#e68310"), ("ev", "bought", "#11a579")):
        ax.plot(periods, community_kw(agents, "p2v_kw", kind), color=color, lw=1.5,
                label=f"{verb}, settled")
        ax.plot(periods, community_kw(agents, "p2v_offered_kw", kind), color=color, lw=1,
                ls=":", label=f"{verb}, offered (last round)")
    ax.legend(fontsize=7)
    return fig


def _total(values: pd.Series) -> float:
    """The sum; NaN where every value is (a round without the quantity)."""
    return values.sum(min_count=1)


# market_rounds' columns: how each is taken from a round's rows of market.parquet
ROUND_COLUMNS = {"error_kw": "first", "sold_kw": _total, "bought_kw": _total,
                 "rule_applied": "first", "limits_changed": "first"}


def market_rounds(market: pd.DataFrame, day: int | None = None) -> pd.DataFrame:
    """One row per round (of ``day``, default the first): the round's error and its
    offers summed over the periods (the paper's Eq. 35 quantities), the rule it applied
    and the limits it changed. NaN where a round has none (a network check's rounds have
    no P2V offers), and in a column the run did not write: market.parquet leaves out a
    column no round filled (``rule_applied`` where the first round ended the market, as
    without P2V trade)."""
    day = market["day"].min() if day is None else day
    rows = market[market["day"] == day]
    found = {c: (c, how) for c, how in ROUND_COLUMNS.items() if c in rows}
    return rows.groupby("round").agg(**found).reindex(columns=list(ROUND_COLUMNS))


def convergence(market: pd.DataFrame) -> Figure:
    """Sold and bought kW summed over the periods per round of the first day, the error
    on a second axis (as Fig. 5 of Faia et al. 2021)."""
    rounds = market_rounds(market)
    fig, ax = _axes(size=(6.5, 3.6), title="Convergence (day 1)", xlabel="round",
                    ylabel="kW summed over periods")
    ax.plot(rounds.index, rounds["sold_kw"], marker="o", color="#e68310", label="sold")
    ax.plot(rounds.index, rounds["bought_kw"], marker="s", color="#11a579", label="bought")
    err = ax.twinx()
    err.plot(rounds.index, rounds["error_kw"], marker="^", color="#cc503e", ls="--",
             label="error")
    err.set_ylabel("error kW")
    ax.set_xticks(rounds.index)
    lines = ax.get_legend_handles_labels()
    more = err.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8)
    return fig


def planned_cost(agent_rounds: pd.DataFrame) -> Figure:
    """Mean planned cost of the day per agent type in each round."""
    fig, ax = _axes(size=(6.5, 3.6), title="Mean planned cost per agent type",
                    xlabel="round", ylabel="€ per agent")
    first = agent_rounds[agent_rounds["day"] == agent_rounds["day"].min()]
    means = first.groupby(["kind", "round"])["planned_cost_eur"].mean()
    for kind, series in means.groupby(level="kind"):
        ax.plot(series.index.get_level_values("round"), series.to_numpy(), marker="o",
                label=kind)
    ax.set_xticks(np.sort(agent_rounds["round"].unique()))
    ax.legend(fontsize=8)
    return fig


def state_of_charge(agents: pd.DataFrame, period_h: float | None = None) -> Figure:
    """Stored energy at the end of each period, one panel per kind with a state of charge.
    EVs: every EV's line, thin, and their mean (a V2G discharge is a fall while the EV is
    home); other kinds: each agent's line when there are few, otherwise the mean and the
    min–max band. x: hours of the run when ``period_h`` is given, else periods."""
    kinds = [k for k, g in agents.groupby("kind") if g["soc_kwh"].notna().any()]
    fig = Figure(figsize=(WIDE_IN[0], 2.6 * len(kinds)), layout="constrained")
    days = agents["day"].nunique() if "day" in agents else 1
    xlabel = "period" if period_h is None else (
        "hour of the day (end of period)" if days <= 1 else "hour of the run (end of period)")
    for i, kind in enumerate(kinds):
        ax = fig.add_subplot(len(kinds), 1, i + 1)
        soc = agents[agents["kind"] == kind].pivot(index=T, columns="agent",
                                                   values="soc_kwh")
        x = soc.index.to_numpy() if period_h is None else (soc.index.to_numpy() + 1) * period_h
        few = soc.shape[1] <= FEW_AGENTS
        if kind == "ev":
            lines = ax.plot(x, soc.to_numpy(), lw=0.8 if few else 0.5,
                            alpha=0.9 if few else 0.45, color=None if few else "#11a579")
            for line, agent in zip(lines, soc.columns, strict=True):
                line.set_label(agent if few else "_each EV")
            if not few:
                lines[0].set_label(f"each of {soc.shape[1]} EVs")
            ax.plot(x, soc.mean(axis=1), lw=2, color="black", label="mean")
        elif few:
            for agent in soc.columns:
                ax.plot(x, soc[agent], lw=1.2, label=agent)
        else:
            ax.fill_between(x, soc.min(axis=1), soc.max(axis=1), alpha=0.3,
                            label="min–max")
            ax.plot(x, soc.mean(axis=1), lw=1.5, label=f"mean of {soc.shape[1]}")
        ax.set(title=f"State of charge: {kind}", xlabel=xlabel, ylabel="kWh")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncols=2)
    return fig


def _heat_map(table: pd.DataFrame, row: str, value: str, title: str, norm, cmap,
              outside: pd.DataFrame, label: str, extend: str = "both") -> Figure:
    grid = table.pivot(index=row, columns=T, values=value)
    height = min(2.0 + 0.09 * len(grid), 9.0)
    fig, ax = _axes(size=(WIDE_IN[0], height), title=title, ylabel=row)
    image = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", norm=norm,
                      cmap=cmap.with_extremes(bad=NO_SOLUTION),
                      interpolation="nearest",
                      extent=(grid.columns.min() - 0.5, grid.columns.max() + 0.5,
                              -0.5, len(grid) - 0.5))
    rows = {key: i for i, key in enumerate(grid.index)}
    ax.scatter(outside[T], outside[row].map(rows), label="outside limit", **MARK)
    ax.set_yticks(range(len(grid)), [str(k) for k in grid.index], fontsize=6)
    ax.grid(False)
    bar = fig.colorbar(image, ax=ax, label=label, extend=extend)
    bar.ax.ticklabel_format(useOffset=False)
    return fig


def voltage_heat_map(grid_bus: pd.DataFrame, v_min_pu: float, v_max_pu: float) -> Figure:
    """Bus voltage per period; the colour scale is centred at 1 pu and ends at the limits,
    crosses mark buses outside them, grey a period without a power flow solution."""
    outside = grid_bus[(grid_bus["vm_pu"] < v_min_pu) | (grid_bus["vm_pu"] > v_max_pu)]
    norm = TwoSlopeNorm(vcenter=1.0, vmin=v_min_pu, vmax=v_max_pu)
    return _heat_map(table=grid_bus, row="bus", value="vm_pu",
                     title=f"Bus voltage: limits {v_min_pu}–{v_max_pu} pu, observed " f"{grid_bus['vm_pu'].min():.4f}–{grid_bus['vm_pu'].max():.4f} pu",
                     norm=norm, cmap=colormaps["RdBu_r"], outside=outside, label="vm pu")


def loading_heat_map(grid_line: pd.DataFrame, max_loading_pct: float) -> Figure:
    """Line loading per period; the colour scale ends at the limit, crosses mark lines
    above it."""
    outside = grid_line[grid_line["loading_pct"] > max_loading_pct]
    return _heat_map(table=grid_line, row="line", value="loading_pct",
                     title=f"Line loading: limit {max_loading_pct} %, observed max " f"{grid_line['loading_pct'].max():.2f} %",
                     norm=Normalize(0.0, max_loading_pct),
                     cmap=colormaps["viridis"].with_extremes(over=OVERLOADED), outside=outside,
                     label="loading %", extend="max")


def cost_distribution(agents: pd.DataFrame) -> Figure:
    """Each agent's cost over the run, a box and the agents' points per kind."""
    per_agent = agents.groupby(["kind", "agent"])["cost_eur"].sum()
    kinds = sorted(per_agent.index.get_level_values("kind").unique())
    fig, ax = _axes(size=(6.5, 3.6), title="Cost per agent over the run", xlabel="",
                    ylabel="€")
    values = [per_agent[kind].to_numpy() for kind in kinds]
    ax.boxplot(values, tick_labels=kinds, showfliers=False)
    jitter = np.random.default_rng(0)  # fixed: the same run draws the same figure
    for i, v in enumerate(values, start=1):
        ax.scatter(i + jitter.uniform(-0.12, 0.12, len(v)), v, s=10, alpha=0.6)
    return fig


BILL_PARTS = {"traded_eur": ("market: traded", "#3969ac"),
              "deviation_eur": ("market: deviation", "#f2b701"),
              "violation_eur": ("market: violation", "#e73f74"),
              "retail_eur": ("retail", "#7f7f7f"), "fixed_eur": ("fixed", "#11a579")}


def daily_bills(agents: pd.DataFrame) -> Figure:
    """The community's bill per day, stacked by part (a negative part below zero), and
    the total as a line: the month view of a run of many days."""
    per_day = agents.groupby("day")[[k for k in BILL_PARTS if k in agents]].sum()
    days = per_day.index + 1
    fig, ax = _axes(size=(9.0, 3.6), title="Community bill per day", xlabel="day",
                    ylabel="€")
    up = np.zeros(len(days))
    down = np.zeros(len(days))
    for key, (label, color) in BILL_PARTS.items():
        if key not in per_day:
            continue
        v = per_day[key].to_numpy()
        base = np.where(v >= 0, up, down)
        ax.bar(days, v, bottom=base, color=color, label=label, width=0.8)
        up, down = up + np.maximum(v, 0), down + np.minimum(v, 0)
    ax.plot(days, agents.groupby("day")["cost_eur"].sum().to_numpy(), color="black",
            marker=".", lw=1, label="total")
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(fontsize=7, ncols=3)
    return fig


def daily_energy(agents: pd.DataFrame, period_h: float) -> Figure:
    """Energy per day: import and export at the agents' connections, local generation
    (PV, wind), consumption (load, flexible loads, EV charging), and the EVs' charging and
    discharge (V2G) where they have any."""
    cols = {"buy_kw": "import", "sell_kw": "export", "pv_kw": "PV", "wind_kw": "wind"}
    per_day = agents.groupby("day")[[c for c in cols if c in agents]].sum() * period_h
    consumption = (agents.groupby("day")[[c for c in ("load_kw", "flex_kw") if c in agents]]
                   .sum().sum(axis=1) + agents[agents["kind"] == "ev"].groupby("day")["ch_kw"]
                   .sum().reindex(per_day.index, fill_value=0.0)) * period_h
    fig, ax = _axes(size=(9.0, 3.6), title="Energy per day", xlabel="day", ylabel="kWh")
    for col, label in cols.items():
        if col in per_day and per_day[col].abs().sum() > 0:
            ax.plot(per_day.index + 1, per_day[col], marker=".", label=label)
    ax.plot(per_day.index + 1, consumption, color="black", marker=".", label="consumption")
    evs = agents[agents["kind"] == "ev"].groupby("day")[["ch_kw", "dis_kw"]].sum() * period_h
    evs = evs.reindex(per_day.index, fill_value=0.0)
    for col, label, style in (("ch_kw", "EV charging", "-"),
                              ("dis_kw", "EV discharge (V2G)", "--")):
        if evs[col].abs().sum() > 0:
            ax.plot(per_day.index + 1, evs[col], color="#11a579", ls=style, marker=".",
                    label=label)
    ax.legend(fontsize=7, ncols=3)
    return fig


def clearance(table: pd.DataFrame) -> Figure:
    """The clearance market per period of the run: the trades the double auction matched,
    what the network operator accepted, and the curtailed rest (kW)."""
    step = table["day"] * (table["period"].max() + 1) + table["period"]
    fig, ax = _axes(title="Trades matched and cleared", xlabel="period of the run",
                    ylabel="kW")
    ax.bar(step, 1e3 * table["accepted_mw"], color="#11a579", label="accepted")
    ax.bar(step, 1e3 * table["curtailed_mw"], bottom=1e3 * table["accepted_mw"],
           color="#e73f74", label="curtailed")
    ax.plot(step, 1e3 * table["total_load_mw"], color="black", lw=1, label="community load")
    ax.legend(fontsize=7, ncols=3)
    return fig


# A trade matrix names its sellers and buyers up to this many of each, and writes its
# values in up to this many cells: a 1000-peer market's matrix has up to 250,000 cells
# (their labels took the report minutes and gigabytes).
MATRIX_NAMED = 60
MATRIX_WRITTEN_CELLS = 900


def trade_matrix(matrix: pd.DataFrame, commodity: str) -> Figure:
    """Sellers (rows) × buyers (columns): the energy of ``commodity`` each pair traded over
    the run (kWh), as a heat map, with the names and values written in where the matrix
    is small enough to read them (``MATRIX_NAMED``, ``MATRIX_WRITTEN_CELLS``)."""
    values = matrix.to_numpy()
    height = min(2.0 + 0.25 * len(matrix), 9.0)
    fig, ax = _axes(size=(WIDE_IN[0], height), title=f"Bilateral {commodity} trades (kWh)",
                    xlabel=f"buyer ({len(matrix.columns)})",
                    ylabel=f"seller ({len(matrix.index)})")
    image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
    if max(values.shape) <= MATRIX_NAMED:
        ax.set_xticks(range(len(matrix.columns)), [str(c) for c in matrix.columns],
                      fontsize=6, rotation=90)
        ax.set_yticks(range(len(matrix.index)), [str(r) for r in matrix.index], fontsize=6)
    ax.grid(False)
    if values.size <= MATRIX_WRITTEN_CELLS:
        for (i, j), value in np.ndenumerate(values):
            if value > 0.005 * values.max():
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=5,
                        color="white")
    fig.colorbar(image, ax=ax, label="kWh")
    return fig


def locality_prices(market: pd.DataFrame, periods: int) -> Figure:
    """A locality market's importer and exporter prices per period of the run beside the
    grid's buy and sell prices (last round of each day)."""
    last = market[market["round"] == market.groupby("day")["round"].transform("max")]
    last = last.assign(step=last["day"] * periods + last["period"]).sort_values("step")
    fig, ax = _axes(title="Locality prices", xlabel="period of the run", ylabel="€/kWh")
    for col, label, style in (("grid_buy_eur_per_kwh", "grid buy", ":"),
                              ("grid_sell_eur_per_kwh", "grid sell", ":"),
                              ("import_price_eur_per_kwh", "importers pay", "-"),
                              ("export_price_eur_per_kwh", "exporters get", "-")):
        ax.plot(last["step"], last[col], ls=style, lw=1, label=label)
    ax.legend(fontsize=7, ncols=4)
    return fig


MANY_DAYS = 4  # above this many days, the residual figure shows the first day only
PRIMAL, DUAL, RHO = "#3969ac", "#e68310", "#7f7f7f"


def positive(values: pd.Series) -> pd.Series:
    """``values`` with every value ≤ 0 as NaN (a gap on a log axis)."""
    return values.where(values > 0)


def residual_days(iterations: pd.DataFrame) -> list[int]:
    """The days the residual figure draws: every day, or the first above MANY_DAYS."""
    days = sorted(int(d) for d in iterations["day"].unique())
    return days if len(days) <= MANY_DAYS else days[:1]


def admm_residuals(iterations: pd.DataFrame, tolerance: float | None = None) -> Figure:
    """The ADMM market's scaled primal (solid) and dual (dashed) residuals per round on a
    log axis, one pair of lines per day (the first day only above MANY_DAYS days; the
    title says so), the stopping tolerance as a dotted line, and ρ (€/MW²h) on a second
    log axis. A residual of 0 is a gap (log axis)."""
    days = residual_days(iterations)
    many = iterations["day"].nunique() > len(days)
    note = f" (day 1 of {iterations['day'].nunique()})" if many else ""
    fig, ax = _axes(size=(6.5, 3.6), title=f"ADMM residuals per round{note}", xlabel="round",
                    ylabel="scaled residual")
    ax.set_yscale("log")
    rho = ax.twinx()
    rho.set_yscale("log")
    rho.set_ylabel("ρ €/MW²h")
    for i, day in enumerate(days):
        rows = iterations[iterations["day"] == day].sort_values("round")
        suffix = f", day {day + 1}" if len(days) > 1 else ""
        colors = (PRIMAL, DUAL) if len(days) == 1 else (f"C{i}", f"C{i}")
        ax.plot(rows["round"], positive(rows["primal_residual"]), color=colors[0], lw=1.3,
                label=f"primal{suffix}")
        ax.plot(rows["round"], positive(rows["dual_residual"]), color=colors[1], lw=1.3,
                ls="--", label=f"dual{suffix}")
        rho.plot(rows["round"], positive(rows["rho"]), color=RHO, lw=1, ls="-.",
                 drawstyle="steps-post", label="ρ trades" if i == 0 else "_ρ")
        if "rho_net" in rows and rows["rho_net"].notna().any():
            rho.plot(rows["round"], positive(rows["rho_net"]), color=RHO, lw=1, ls=":",
                     drawstyle="steps-post", label="ρ network" if i == 0 else "_ρn")
    if tolerance:
        ax.axhline(tolerance, color="black", lw=0.8, ls=":", label=f"tolerance {tolerance:g}")
    lines, more = ax.get_legend_handles_labels(), rho.get_legend_handles_labels()
    fig.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="outside lower center",
               ncols=4)
    return fig


def sweep(points: pd.DataFrame, field: str, kpi: str) -> Figure:
    """A KPI against a scenario setting across runs (``lemgrid compare --against``): one
    point per run (``points``: columns ``x``, ``y``, index the runs), labelled."""
    points = points.sort_values("x")
    fig, ax = _axes((6.4, 4.0), title=f"{kpi} against {field}", xlabel=field, ylabel=kpi)
    ax.plot(points["x"], points["y"], marker="o")
    for name, row in points.iterrows():
        ax.annotate(str(name), (row["x"], row["y"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    return fig
