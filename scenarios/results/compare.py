"""``lemgrid compare``: the key figures of several results folders side by side.

KPIs (one row each; a run where one does not apply has null):

- ``total_cost_eur``, ``{prosumer,ev,building}_mean_cost_eur``: summary.json ``costs_eur``;
- ``traded_kwh``: summary.json ``market.traded_kwh`` (what the market traded; the P2V
  market's settled P2V energy);
- ``grid_import_kwh`` = Σ_agents Σ_t buy_kw · Δt and ``grid_export_kwh`` = Σ sell_kw · Δt:
  energy bought from and fed in to the retailer (agents.parquet, Δt from config.yaml);
- ``self_sufficiency`` = 1 − grid_import_kwh / consumption_kwh, the share of the
  community's consumption met inside the community (PV, batteries, P2V), where
  consumption_kwh = Σ_t (Σ_agents load_kw + flex_kw + Σ_EVs ch_kw) · Δt: every agent's
  load, buildings' flexible loads and the EVs' charging (a stationary battery's charging
  is storage, its discharge a source);
- ``network_losses_kwh``: summary.json ``grid.losses_kwh`` (line and transformer losses
  summed over the periods whose power flow converged; null in older results);
- ``voltage_violations``, ``line_violations``, ``pf_failures``: summary.json ``grid``;
- ``trafo_violations``: summary.json ``grid`` (transformers overloaded or feeding back
  more than ``grid.reverse_flow_pct``; null in older results);
- ``rounds``, ``converged``: summary.json ``market``;
- ``wall_s``, ``market_s``, ``grid_s``: summary.json ``timing_s``;
- ``days``: summary.json ``days``; ``deviation_eur``, ``violation_eur``: the market's
  deviation and violation costs summed over agents and periods (agents.parquet).

Then the KPIs the compared runs' mechanisms add (their plug-ins' ``kpis``: e.g. the gap
to the centralized optimum), null in a run of another mechanism.

Beside the KPIs, the bills: each participant's bill over the whole run and the
locality's (the sum), one column per run, and each one's saving against a baseline run
(``--baseline``, default the first): 100 × (baseline − run) / |baseline| %.

A sweep (``--against FIELD``, a dotted scenario field such as ``market.loss_price``, read
from each run's config.yaml): the KPIs ``--plot`` names (default ``network_losses_kwh``
and ``total_cost_eur``) against the field's value, one figure each beside the CSV
(``compare_<kpi>.png``) and their points printed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lemgrid.scenarios.results.figures import consumption_kw, sweep, with_step
from lemgrid.scenarios.results.report import (
    ResultsMissing,
    format_value,
    read_config,
    read_summary,
    read_table,
    run_mechanisms,
)

SUMMARY_KPIS = {  # KPI -> (summary.json section, key)
    "total_cost_eur": ("costs_eur", "total"),
    "prosumer_mean_cost_eur": ("costs_eur", "prosumer_mean"),
    "ev_mean_cost_eur": ("costs_eur", "ev_mean"),
    "building_mean_cost_eur": ("costs_eur", "building_mean"),
    "traded_kwh": ("market", "traded_kwh"),
}
LATER_KPIS = {
    "network_losses_kwh": ("grid", "losses_kwh"),
    "voltage_violations": ("grid", "voltage_violations"),
    "line_violations": ("grid", "line_violations"),
    "trafo_violations": ("grid", "trafo_violations"),
    "pf_failures": ("grid", "pf_failures"),
    "rounds": ("market", "rounds"),
    "converged": ("market", "converged"),
    "days": ("days", None),
    "wall_s": ("timing_s", "wall"),
    "market_s": ("timing_s", "market"),
    "grid_s": ("timing_s", "grid"),
}


def energy_kpis(agents: pd.DataFrame, period_h: float) -> dict[str, float | None]:
    """Grid import and export (kWh) and self-sufficiency from agents.parquet."""
    import_kwh = float(agents["buy_kw"].sum() * period_h)
    consumption_kwh = float(consumption_kw(agents).sum() * period_h)
    return {"self_sufficiency": 1.0 - import_kwh / consumption_kwh if consumption_kwh else None,
            "grid_import_kwh": import_kwh,
            "grid_export_kwh": float(agents["sell_kw"].sum() * period_h)}


def _pick(summary: dict, kpis: dict) -> dict:
    return {name: summary.get(section) if key is None else summary[section].get(key)
            for name, (section, key) in kpis.items()}


def _market_costs(agents: pd.DataFrame) -> dict[str, float | None]:
    return {k: float(agents[k].sum()) if k in agents else None
            for k in ("deviation_eur", "violation_eur")}


def mechanism_kpis(folders: list[Path]) -> dict:
    """KPI -> summary.json (section, key) that the runs' mechanisms add, in registry order."""
    for f in folders:  # a folder without its summary is no results folder: said first
        read_summary(f)
    found = {m.name: m for f in folders for m in run_mechanisms(read_config(f))}
    return {k: v for m in found.values() for k, v in m.kpis.items()}


def run_kpis(out: Path, extra: dict | None = None) -> dict:
    """The KPIs of one results folder (see the module docstring); ``extra``: the
    mechanisms' KPIs to add."""
    summary = read_summary(out)
    horizon = read_config(out)["horizon"]
    agents = with_step(read_table(out, "agents"), horizon["periods"])
    market = summary.get("market", {})
    return {"scenario": summary["scenario"], "mode": summary["mode"],
            **_pick(summary, SUMMARY_KPIS),
            **energy_kpis(agents, horizon["period_minutes"] / 60),
            **_market_costs(agents), **_pick(summary, LATER_KPIS),
            **{k: market.get(key) if section == "market" else summary.get(section, {}).get(key)
               for k, (section, key) in (extra or {}).items()}}


def column_names(folders: list[Path]) -> list[str]:
    """Each folder's name, or the path as given where two folders share a name."""
    names = [f.name or str(f) for f in folders]
    return [n if names.count(n) == 1 else str(f) for n, f in zip(names, folders, strict=True)]


def compare_table(folders: list[Path]) -> pd.DataFrame:
    """One row per KPI, one column per results folder."""
    extra = mechanism_kpis(folders)
    columns = {name: run_kpis(folder, extra)
               for name, folder in zip(column_names(folders), folders, strict=True)}
    return pd.DataFrame(columns, dtype=object)


def format_table(table: pd.DataFrame) -> str:
    cells = [["kpi", *table.columns]] + [[kpi, *map(format_value, row)] for kpi, row in
                                         zip(table.index, table.itertuples(index=False),
                                             strict=True)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                     for row in cells)


LOCALITY = "locality"  # the row of the bills table that sums every participant


def bills_table(folders: list[Path]) -> pd.DataFrame:
    """Each participant's bill over the run (€), one column per run, and the locality's
    (the sum of all participants) last."""
    columns = {}
    for name, folder in zip(column_names(folders), folders, strict=True):
        per = read_table(folder, "agents").groupby("agent")["cost_eur"].sum()
        columns[name] = pd.concat([per, pd.Series({LOCALITY: per.sum()})])
    return pd.DataFrame(columns)


def savings_table(bills: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """100 × (baseline − run) / |baseline| % per participant and run."""
    base = bills[baseline]
    return bills.apply(lambda col: 100.0 * (base - col) / base.abs().where(base != 0))


def _baseline(folders: list[Path], baseline: Path | None) -> str:
    names = column_names(folders)
    if baseline is None:
        return names[0]
    for name, folder in zip(names, folders, strict=True):
        if Path(folder).resolve() == Path(baseline).resolve() or name == str(baseline):
            return name
    raise ResultsMissing(f"--baseline {baseline}: not one of the compared folders")


SWEEP_KPIS = ("network_losses_kwh", "total_cost_eur")


def setting(config: dict, field: str, folder: Path):
    """A dotted scenario field's value in a run's config.yaml."""
    value = config
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ResultsMissing(f"{folder}/config.yaml: no field {field!r}")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsMissing(f"{folder}/config.yaml: {field} is {value!r}, not a number")
    return float(value)


def sweep_points(folders: list[Path], table: pd.DataFrame, field: str,
                 kpi: str) -> pd.DataFrame:
    """Per run, the field's value (x) and the KPI's (y)."""
    if kpi not in table.index:
        raise ResultsMissing(f"--plot {kpi}: not a KPI; known: {', '.join(table.index)}")
    x = [setting(read_config(f), field, f) for f in folders]
    y = pd.to_numeric(table.loc[kpi], errors="coerce")
    return pd.DataFrame({"x": x, "y": y.to_numpy(float)}, index=table.columns)


def write_sweeps(sweeps: dict[str, pd.DataFrame], field: str, csv_path: Path) -> list[Path]:
    written = []
    for kpi, points in sweeps.items():
        print(f"\n{kpi} against {field}")
        print(format_table(points.rename(columns={"x": field, "y": kpi}).T))
        path = csv_path.with_name(f"{csv_path.stem}_{kpi}.png")
        sweep(points, field, kpi).savefig(path, dpi=120)
        written.append(path)
    return written


def run_compare(folders: list[Path], csv_path: Path, baseline: Path | None = None,
                against: str | None = None, plot=None) -> pd.DataFrame:
    """Print the KPI table, the bills and the savings; write them as CSV (empty cells
    where a value is null): the KPIs to ``csv_path``, the bills and savings beside it;
    with ``against``, the sweep's figures (``plot``: their KPIs)."""
    base = _baseline(folders, baseline)
    table = compare_table(folders)
    sweeps = ({kpi: sweep_points(folders, table, against, kpi) for kpi in plot or SWEEP_KPIS}
              if against else {})
    print(format_table(table))
    table.to_csv(csv_path, index_label="kpi")
    bills = bills_table(folders)
    savings = savings_table(bills, base)
    print("\nbills € over the run (participants, then the locality)")
    print(format_table(bills.rename_axis("agent")).replace("kpi", "agent", 1))
    print(f"\nsavings % against {base}")
    print(format_table(savings).replace("kpi", "agent", 1))
    extra = csv_path.with_name(f"{csv_path.stem}_bills.csv")
    bills.join(savings, rsuffix=f"_saving_pct_vs_{base}").to_csv(extra, index_label="agent")
    figures = write_sweeps(sweeps, against, csv_path)
    print(f"written: {', '.join(map(str, [csv_path, extra, *figures]))}")
    return table
