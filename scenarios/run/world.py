"""The composition root: scenario → community → market run → power flows → results."""

from __future__ import annotations

import time
from pathlib import Path

from grid.powerflow import grid_summary
from scenarios.community.builder import build_community, p2v_price
from scenarios.results.report import slowest_agent_s, write_report
from scenarios.results.tables import write_grid, write_messages, write_results
from scenarios.run.errors import RunError
from scenarios.run.inprocess import run_centralized, run_decentralized
from scenarios.run.network import grid_limits, place_agents, run_grid_inprocess
from scenarios.run.progress import DayProgress
from scenarios.schema import Scenario


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
        from scenarios.run.distributed import run_distributed
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
