"""Write a run's results: summary.json, config.yaml, agents.parquet, market.parquet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from agents.solver import agent_kind
from grid.powerflow import bus_table, line_table
from scenarios.results.outcome import DayResult
from scenarios.schema import Scenario

FLOW_COLUMNS = ["buy_kw", "sell_kw", "p2v_kw", "p2v_offered_kw", "pv_kw", "load_kw", "ch_kw",
                "dis_kw"]
KINDS = ("prosumer", "ev", "building", "consumer")


def write_messages(path: Path, messages: list) -> None:
    """messages.jsonl of an in-process run: every protocol message the session saw."""
    with path.open("w") as f:
        for msg in messages:
            f.write(json.dumps({"dir": "in" if msg.sender != "coordinator" else "out",
                                "peer": msg.sender, "msg": msg.model_dump(mode="json")}) + "\n")


def write_grid(out: Path, periods) -> None:
    """grid_bus.parquet (period, bus, vm_pu) and grid_line.parquet (period, line,
    loading_pct); NaN where the period's power flow did not converge."""
    bus_table(periods).to_parquet(out / "grid_bus.parquet", index=False)
    line_table(periods).to_parquet(out / "grid_line.parquet", index=False)


def agents_frame(result: DayResult, community, day: int = 0,
                 bus_of: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per agent and period; flows an agent does not have are 0."""
    frames = []
    for d in community:
        sc = result.schedules.get(d.name)
        if sc is None:
            continue
        n = d.horizon.periods
        bus = (bus_of or {}).get(d.name)
        cols = {"day": day, "agent": d.name, "kind": sc.kind, "bus": bus,
                "period": np.arange(n)}
        for key in FLOW_COLUMNS:  # a centralized schedule's offer is its P2V quantity
            fallback = sc.flows_kw["p2v_kw"] if key == "p2v_offered_kw" else np.zeros(n)
            cols[key] = sc.flows_kw.get(key, fallback)
        cols["soc_kwh"] = sc.soc_kwh if sc.soc_kwh is not None else np.full(n, np.nan)
        cols["cost_eur"] = sc.cost_eur
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def market_frame(result: DayResult, agents: pd.DataFrame, price: float, periods: int,
                 day: int = 0) -> pd.DataFrame:
    """One row per round and period: offered, matched and settled P2V quantities."""
    seller = agents["kind"] == "prosumer"
    settled = agents[seller].groupby("period")["p2v_kw"].sum().reindex(range(periods),
                                                                       fill_value=0.0)
    rows = []
    records = [r.record for r in result.rounds] or [None]
    for i, rec in enumerate(records):
        final = settled.to_numpy() if i == len(records) - 1 else np.full(periods, np.nan)
        sold = rec.sold_kw if rec else settled.to_numpy()
        bought = rec.bought_kw if rec else settled.to_numpy()
        rows.append(pd.DataFrame({
            "day": day, "round": rec.round if rec else 1, "period": np.arange(periods),
            "sold_kw": sold, "bought_kw": bought, "imbalance_kw": sold - bought,
            "matched_kw": np.minimum(sold, bought), "error_kw": rec.error_kw if rec else 0.0,
            "rule_applied": rec.rule if rec else None,
            "limits_changed": rec.limits_changed if rec else 0,
            "price_eur_per_kwh": price, "settled_kw": final}))
    return pd.concat(rows, ignore_index=True)


def rounds_frame(result: DayResult, community, day: int = 0) -> pd.DataFrame:
    """One row per round and agent: the agent's planned cost of the day in that round."""
    kinds = {d.name: agent_kind(d) for d in community}
    rows = [{"day": day, "round": r.record.round, "agent": name, "kind": kinds.get(name),
             "planned_cost_eur": cost}
            for r in result.rounds for name, cost in sorted(r.cost_eur.items())]
    return pd.DataFrame(rows, columns=["day", "round", "agent", "kind", "planned_cost_eur"])


def _mean_cost(agents: pd.DataFrame, kind: str) -> float | None:
    per_agent = agents[agents["kind"] == kind].groupby("agent")["cost_eur"].sum()
    return float(per_agent.mean()) if len(per_agent) else None


def summary(s: Scenario, result: DayResult, community, agents: pd.DataFrame,
            market: pd.DataFrame, wall_s: float, grid: dict | None = None,
            grid_s: float | None = None, processes: dict | None = None) -> dict:
    """summary.json: every key of DESIGN.md, null where not applicable."""
    h = s.horizon.period_minutes / 60
    decentral = result.mode == "decentralized"
    last = market[market["round"] == market["round"].max()]
    counts = {k: sum(1 for d in community if agent_kind(d) == k) for k in KINDS}
    return {
        "scenario": s.name, "mechanism": s.market.mechanism if s.market.p2v else None,
        "mode": result.mode, "agents": counts, "periods": s.horizon.periods,
        "costs_eur": {"total": float(agents["cost_eur"].sum()),
                      **{f"{k}_mean": _mean_cost(agents, k) for k in ("prosumer", "ev",
                                                                       "building")}},
        "market": {"traded_kwh": float(agents.loc[agents["kind"] == "prosumer",
                                                  "p2v_kw"].sum() * h),
                   "rounds": len(result.rounds) if decentral else None,
                   "converged": bool(result.converged),
                   "max_imbalance_kw": float(last["imbalance_kw"].abs().max())},
        "grid": grid or dict.fromkeys(("network", "v_min_pu", "v_max_pu", "max_loading_pct",
                                       "voltage_violations", "line_violations",
                                       "pf_failures", "losses_kwh")),
        "timing_s": {"wall": wall_s, "startup": result.build_s, "market": result.market_s,
                     "grid": grid_s,
                     "critical_path": result.critical_path_s if decentral else None},
        "processes": processes or {"agents": 1, "agent_peak_rss_mb": None},
        "failed_agents": result.failed,
        "notes": result.notes,
    }


def write_results(out: Path, s: Scenario, result: DayResult, community, price: float,
                  wall_s: float, bus_of=None, grid=None, grid_s=None, processes=None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    agents = agents_frame(result, community, bus_of=bus_of)
    market = market_frame(result, agents, price, s.horizon.periods)
    agents.to_parquet(out / "agents.parquet", index=False)
    market.to_parquet(out / "market.parquet", index=False)
    rounds_frame(result, community).to_parquet(out / "agent_rounds.parquet", index=False)
    config = s.model_dump(mode="json", by_alias=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    data = summary(s, result, community, agents, market, wall_s, grid, grid_s, processes)
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    return data
