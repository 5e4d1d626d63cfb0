"""The composition root: scenario → community → market run → power flows → results."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from agents.data import net_load_kw
from grid.mapping import assign_buses
from grid.networks import load_network
from grid.powerflow import GridLimits, GridModel, PeriodResult, grid_summary
from scenarios.community import build_community, p2v_price
from scenarios.progress import DayProgress
from scenarios.report import slowest_agent_s, write_report
from scenarios.results import write_grid, write_messages, write_results
from scenarios.runtime import RunError, run_centralized, run_decentralized
from scenarios.schema import Scenario

BUS_SEED_STREAM = 1_000_003  # the rng stream of bus assignment: [seed, BUS_SEED_STREAM]


def grid_limits(s: Scenario) -> GridLimits:
    return GridLimits(s.grid.v_min_pu, s.grid.v_max_pu, s.grid.max_loading_pct)


def network_options(s: Scenario) -> dict:
    return {} if s.grid.ampacity_ka is None else {"ampacity_ka": s.grid.ampacity_ka}


def place_agents(s: Scenario, community) -> dict[str, int]:
    net = load_network(s.grid.network, **network_options(s))
    try:
        return assign_buses([d.name for d in community], net,
                            np.random.default_rng([s.seed, BUS_SEED_STREAM]), s.grid.buses)
    except ValueError as exc:
        raise RunError(f"{s.name}: grid.buses: {exc}") from None


def grid_model(s: Scenario, bus_of: dict[str, int]) -> GridModel:
    net = load_network(s.grid.network, **network_options(s))
    if not s.grid.keep_network_loads:
        net.load.drop(net.load.index, inplace=True)
    background = np.full(len(net.bus), s.grid.background_kw_per_bus) \
        if s.grid.background_kw_per_bus else None
    return GridModel(net, bus_of, background, s.grid.power_factor, grid_limits(s))


def run_grid_inprocess(s: Scenario, result, bus_of, on_period=None) -> list[PeriodResult]:
    """One AC power flow per period of the settled schedules."""
    model = grid_model(s, bus_of)
    p_kw = {n: net_load_kw(sc.kind, sc.flows_kw) for n, sc in result.schedules.items()}
    periods = []
    for t in range(s.horizon.periods):
        periods.append(model.step(t, {n: float(v[t]) for n, v in p_kw.items()}))
        if on_period:
            on_period(t)
    return periods


def _day(s: Scenario, community, bus_of, out: Path, price: float, bar: DayProgress):
    """The market day in the scenario's mode and runtime, and its power flows; returns
    the day, the distributed outcome (None in-process) and the power-flow seconds."""
    outcome = None
    if s.market.mode == "centralized":
        result = run_centralized(s, community)
    elif s.runtime.kind == "inprocess":
        result = run_decentralized(
            s, community, price, progress=lambda rec: bar.on_round(rec.round, rec.error_kw))
    else:
        from scenarios.distributed import run_distributed
        outcome = run_distributed(s, community, bus_of, out, price, bar)
        result = outcome.result
        if outcome.grid_results is not None:
            return result, outcome, outcome.grid_results, outcome.grid_s
        result.notes.append(f"the co-simulation stopped early ({outcome.aborted}); power "
                            "flows recomputed in-process from the settled days")
    t_grid = time.perf_counter()
    periods = run_grid_inprocess(s, result, bus_of, bar.on_period)
    return result, outcome, periods, time.perf_counter() - t_grid


def run_scenario(s: Scenario, out: Path, progress: bool = False,
                 t0: float | None = None) -> dict:
    """Run the scenario's day in its mode and runtime; write every result into ``out``."""
    t0 = time.perf_counter() if t0 is None else t0
    try:
        community = build_community(s)
    except ValueError as exc:
        raise RunError(f"{s.name}: {exc}") from None
    bus_of, price = place_agents(s, community), p2v_price(s)
    out.mkdir(parents=True, exist_ok=True)
    bar = DayProgress(s.name, s.horizon.periods, progress)
    try:
        result, outcome, periods, grid_s = _day(s, community, bus_of, out, price, bar)
    finally:
        bar.close()
    if outcome is None:
        write_messages(out / "messages.jsonl", result.messages)
    grid = grid_summary(periods, grid_limits(s), s.grid.network, s.horizon.period_minutes / 60)
    write_grid(out, periods)
    summary = write_results(out, s, result, community, price, time.perf_counter() - t0,
                            bus_of=bus_of, grid=grid, grid_s=grid_s,
                            processes={"agents": len(outcome.pids) if outcome else 1,
                                       "agent_peak_rss_mb": outcome and outcome.peak_rss_mb})
    write_report(out, slowest_agent_s(result))
    return summary
