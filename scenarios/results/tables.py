"""Write a run's results: summary.json, config.yaml, agents.parquet, market.parquet,
agent_rounds.parquet and the grid tables, one row per day and period (and agent, round,
bus, line or transformer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lemgrid.agents.billing import COST_COLUMNS
from lemgrid.agents.solver import agent_kind
from lemgrid.coordinator.protocol import KINDS
from lemgrid.grid.powerflow import bus_table, line_table, trafo_table
from lemgrid.scenarios.results import atomic
from lemgrid.scenarios.results.figures import traded_inside_kwh
from lemgrid.scenarios.results.outcome import DayResult, failed_in
from lemgrid.scenarios.schema import Scenario

FLOW_COLUMNS = ["buy_kw", "sell_kw", "p2v_kw", "p2v_offered_kw", "pv_kw", "wind_kw", "load_kw",
                "flex_kw", "ch_kw", "dis_kw", "gen_kw", "chp_kw", "chp_heat_kw", "heat_in_kw",
                "net_kw", "quote_kw", "market_kw"]
AGENT_KINDS = tuple(k for k in KINDS if k != "operator")


def write_messages(path: Path, messages: list) -> None:
    """messages.jsonl of an in-process run: every protocol message the sessions saw."""
    def write(tmp: Path) -> None:
        with tmp.open("w") as f:
            for msg in messages:
                f.write(json.dumps({"dir": "in" if msg.sender != "coordinator" else "out",
                                    "peer": msg.sender, "msg": msg.model_dump(mode="json")})
                        + "\n")
    atomic.write_atomic(path, write)


def trim_messages(path: Path, days: int) -> None:
    """Keep only the first ``days`` days' lines of a coordinator's messages.jsonl (a run
    resumed after them logs the rest again)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            day = json.loads(line)["msg"]["day"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(day, int) and day < days:
            kept.append(line)
    atomic.write_text(path, "".join(kept))


def _with_day(frames: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat([f.assign(day=d) for d, f in enumerate(frames)], ignore_index=True)
    return out[["day", *[c for c in out.columns if c != "day"]]]


def write_grid(out: Path, grid_days) -> None:
    """grid_bus.parquet (day, period, bus, vm_pu), grid_line.parquet (day, period, line,
    loading_pct) and grid_trafo.parquet (day, period, trafo, p_kw, loading_pct; p_kw the
    power delivered into the LV network, negative in reverse flow; no rows on a network
    without transformers); NaN where the period's power flow did not converge."""
    atomic.write_parquet(out / "grid_bus.parquet", _with_day([bus_table(p) for p in grid_days]))
    atomic.write_parquet(out / "grid_line.parquet",
                         _with_day([line_table(p) for p in grid_days]))
    atomic.write_parquet(out / "grid_trafo.parquet",
                         _with_day([trafo_table(p) for p in grid_days]))


def agents_frame(days: list[DayResult], community, bus_of: dict[str, int] | None = None
                 ) -> pd.DataFrame:
    """One row per day, agent and period; flows and costs an agent does not have are 0."""
    frames = []
    for result in days:
        for d in community:
            sc = result.schedules.get(d.name)
            if sc is None:
                continue
            n = d.horizon.periods
            cols = {"day": result.day, "agent": d.name, "kind": sc.kind,
                    "bus": (bus_of or {}).get(d.name), "period": np.arange(n)}
            for key in FLOW_COLUMNS:
                cols[key] = sc.flows_kw.get(key, np.zeros(n))
            cols["soc_kwh"] = sc.soc_kwh if sc.soc_kwh is not None else np.full(n, np.nan)
            for key in COST_COLUMNS:
                cols[key] = sc.costs_eur.get(key, np.zeros(n))
            cols["cost_eur"] = sc.cost_eur
            frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True) if frames else no_agents()


def no_agents() -> pd.DataFrame:
    """``agents_frame``'s columns without a row: a run in which every agent failed (its
    report and comparisons read the columns they expect, and find no agent)."""
    cols = {"day": int, "agent": str, "kind": str, "bus": float, "period": int,
            **dict.fromkeys((*FLOW_COLUMNS, "soc_kwh", *COST_COLUMNS, "cost_eur"), float)}
    return pd.DataFrame({k: pd.Series(dtype=t) for k, t in cols.items()})


def market_frame(days: list[DayResult], periods: int) -> pd.DataFrame:
    """One row per day, round and period: the mechanism's per-period figures of the
    round (e.g. offered supply and demand, prices), its error and round-level figures."""
    rows = []
    for result in days:
        for stats in result.rounds:
            rec = stats.record
            cols = {"day": result.day, "round": rec.round, "period": np.arange(periods),
                    "error_kw": rec.error_kw}
            cols |= {k: np.asarray(v) for k, v in rec.per_period.items()}
            cols |= {k: v for k, v in rec.scalars.items()}
            rows.append(pd.DataFrame(cols))
    if not rows:
        return pd.DataFrame({"day": pd.Series(dtype=int), "round": pd.Series(dtype=int),
                             "period": pd.Series(dtype=int), "error_kw": pd.Series(dtype=float)})
    # a column a round left empty (e.g. P2V totals in a network check's rounds) is absent
    # there, NaN after the concatenation, and does not decide the column's type
    return pd.concat([r.dropna(axis=1, how="all") for r in rows], ignore_index=True)


def rounds_frame(days: list[DayResult], community) -> pd.DataFrame:
    """One row per day, round and agent: the agent's planned cost of the day then."""
    kinds = {d.name: agent_kind(d) for d in community}
    rows = [{"day": result.day, "round": r.record.round, "agent": name, "kind": kinds.get(name),
             "planned_cost_eur": cost}
            for result in days for r in result.rounds for name, cost in sorted(r.cost_eur.items())]
    return pd.DataFrame(rows, columns=["day", "round", "agent", "kind", "planned_cost_eur"])


def _mean_cost(agents: pd.DataFrame, kind: str) -> float | None:
    per_agent = agents[agents["kind"] == kind].groupby("agent")["cost_eur"].sum()
    return float(per_agent.mean()) if len(per_agent) else None


def summary(s: Scenario, days: list[DayResult], community, agents: pd.DataFrame,
            market: pd.DataFrame, wall_s: float, grid: dict | None = None,
            grid_s: float | None = None, processes: dict | None = None,
            market_figures: dict | None = None) -> dict:
    """summary.json: every key docs/reference/results.md#summaryjson documents, null where
    not applicable."""
    h = s.horizon.period_minutes / 60
    decentral = bool(days) and days[0].mode == "decentralized"
    counts = {k: sum(1 for d in community if agent_kind(d) == k) for k in AGENT_KINDS}
    imbalance = None
    if "imbalance_kw" in market:  # the last round that has one (a network check's have none)
        m = market.dropna(subset=["imbalance_kw"])
        last = m[m["round"] == m.groupby("day")["round"].transform("max")]
        imbalance = last["imbalance_kw"].abs().max()
    return {
        "scenario": s.name,
        "mechanism": s.market.mechanism if s.market.market_open() else None,
        "mode": days[0].mode if days else s.market.mode, "agents": counts,
        "days": len(days), "days_planned": s.horizon.days, "periods": s.horizon.periods,
        "costs_eur": {"total": float(agents["cost_eur"].sum()) if len(agents) else 0.0,
                      **{f"{k}_mean": _mean_cost(agents, k) if len(agents) else None
                         for k in AGENT_KINDS}},
        "market": {"traded_kwh": float(traded_inside_kwh(agents, h).sum()) if len(agents)
                   else 0.0,
                   "rounds": sum(len(d.rounds) for d in days) if decentral else None,
                   "converged": all(d.converged for d in days),
                   "max_imbalance_kw": None if imbalance is None or np.isnan(imbalance)
                   else float(imbalance), **(market_figures or {})},
        "grid": grid or dict.fromkeys(("network", "v_min_pu", "v_max_pu", "max_loading_pct",
                                       "voltage_violations", "line_violations",
                                       "max_trafo_loading_pct", "max_reverse_flow_kw",
                                       "trafo_violations", "pf_failures", "losses_kwh")),
        "timing_s": {"wall": wall_s, "startup": sum(d.build_s for d in days),
                     "market": sum(d.market_s for d in days), "grid": grid_s,
                     "critical_path": sum(d.critical_path_s for d in days) if decentral
                     else None},
        "processes": processes or {"agents": 1, "agent_peak_rss_mb": None},
        "failed_agents": failed_in(days),
        "notes": [n for d in days for n in d.notes],
    }


def scenario_config(s: Scenario) -> dict:
    """The scenario as run (config.yaml)."""
    return s.model_dump(mode="json", by_alias=True)


def write_config(out: Path, s: Scenario) -> None:
    atomic.write_text(out / "config.yaml", yaml.safe_dump(scenario_config(s), sort_keys=False))


def write_results(out: Path, s: Scenario, days: list[DayResult], community, wall_s: float,
                  bus_of=None, grid=None, grid_s=None, processes=None,
                  market_figures: dict | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    agents = agents_frame(days, community, bus_of=bus_of)
    market = market_frame(days, s.horizon.periods)
    atomic.write_parquet(out / "agents.parquet", agents)
    atomic.write_parquet(out / "market.parquet", market)
    atomic.write_parquet(out / "agent_rounds.parquet", rounds_frame(days, community))
    data = summary(s=s, days=days, community=community, agents=agents, market=market,
                   wall_s=wall_s, grid=grid, grid_s=grid_s, processes=processes,
                   market_figures=market_figures)
    atomic.write_text(out / "summary.json", json.dumps(data, indent=2) + "\n")
    return data
