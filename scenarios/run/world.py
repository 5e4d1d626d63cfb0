"""The composition root: scenario → community → market run → power flows → results."""

from __future__ import annotations

import time
from pathlib import Path

from grid.powerflow import grid_summary
from scenarios.community.builder import build_actuals, build_community
from scenarios.results.report import slowest_agent_s, write_report
from scenarios.results.tables import write_grid, write_messages, write_results
from scenarios.run.errors import RunError
from scenarios.run.inprocess import run_centralized, run_decentralized
from scenarios.run.network import grid_limits, place_agents, run_grid_inprocess
from scenarios.run.progress import DayProgress
from scenarios.schema import Scenario, ScenarioError


def _days(s: Scenario, community, actuals, bus_of, out: Path, bar: DayProgress):
    """The run's days in the scenario's mode and runtime, and their power flows; returns
    the days, the distributed outcome (None in-process), the power flows per day and
    their seconds."""
    outcome = None
    if s.market.mode == "centralized":
        days = run_centralized(s, community, actuals, progress=bar)
    elif s.runtime.kind == "inprocess":
        days = run_decentralized(s, community, actuals, progress=bar)
    else:
        from scenarios.run.distributed import run_distributed
        outcome = run_distributed(s, community, actuals, bus_of, out, bar)
        days = outcome.days
        if outcome.grid_results is not None:
            return days, outcome, outcome.grid_results, outcome.grid_s
        days[-1].notes.append(f"the co-simulation stopped early ({outcome.aborted}); power "
                              "flows recomputed in-process from the settled days")
    t_grid = time.perf_counter()
    grid_days = run_grid_inprocess(s, days, bus_of, bar.on_period)
    return days, outcome, grid_days, time.perf_counter() - t_grid


def run_scenario(s: Scenario, out: Path, progress: bool = False,
                 t0: float | None = None) -> dict:
    """Run the scenario's days in its mode and runtime; write every result into ``out``."""
    t0 = time.perf_counter() if t0 is None else t0
    try:
        community = build_community(s)
        actuals = build_actuals(s, community)
    except ScenarioError:
        raise
    except ValueError as exc:
        raise RunError(f"{s.name}: {exc}") from None
    bus_of = place_agents(s, community)
    out.mkdir(parents=True, exist_ok=True)
    bar = DayProgress(s.name, s.horizon.periods, progress, s.horizon.days)
    try:
        days, outcome, grid_days, grid_s = _days(s, community, actuals, bus_of, out, bar)
    finally:
        bar.close()
    if outcome is None:
        write_messages(out / "messages.jsonl", [m for d in days for m in d.messages])
    periods = [p for day in grid_days for p in day]
    grid = grid_summary(periods, grid_limits(s), s.grid.network, s.horizon.period_minutes / 60)
    write_grid(out, grid_days)
    summary = write_results(out, s, days, community, time.perf_counter() - t0,
                            bus_of=bus_of, grid=grid, grid_s=grid_s,
                            processes={"agents": len(outcome.pids) if outcome else 1,
                                       "agent_peak_rss_mb": outcome and outcome.peak_rss_mb})
    write_report(out, slowest_agent_s(days))
    return summary
