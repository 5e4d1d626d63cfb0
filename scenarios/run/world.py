"""The composition root: scenario → community → market run → power flows → results."""

from __future__ import annotations

import time
from pathlib import Path

from lemgrid.grid.powerflow import grid_summary
from lemgrid.scenarios.community.builder import build_actuals, build_community
from lemgrid.scenarios.mechanisms import RunContext
from lemgrid.scenarios.results import checkpoint
from lemgrid.scenarios.results.checkpoint import carried_over
from lemgrid.scenarios.results.outcome import DayResult, failed_in
from lemgrid.scenarios.results.report import slowest_agent_s, write_report
from lemgrid.scenarios.results.tables import (
    scenario_config,
    trim_messages,
    write_config,
    write_grid,
    write_messages,
    write_results,
)
from lemgrid.scenarios.run.errors import (
    CheckedProgress,
    RunError,
    RunStopped,
    as_interrupt,
    deferred,
)
from lemgrid.scenarios.run.frozen import frozen
from lemgrid.scenarios.run.inprocess import run_decentralized
from lemgrid.scenarios.run.market import plugin, run_plugins
from lemgrid.scenarios.run.network import (
    grid_limits,
    place_agents,
    run_grid_inprocess,
    trafo_ratings,
)
from lemgrid.scenarios.run.progress import DayProgress
from lemgrid.scenarios.schema import Scenario, ScenarioError


def _distributed(s: Scenario) -> bool:
    return s.market.mode != "centralized" and s.runtime.kind != "inprocess"


def _days(s: Scenario, community, actuals, bus_of, out: Path, bar: DayProgress,
          kept: list, helpers=None):
    """The run's days after the ``kept`` ones in the scenario's mode and runtime; returns
    the new days, the distributed outcome (None in-process), the power flows of every
    day and their seconds, and the interrupt that stopped the run (or None). In-process,
    every finished day is checkpointed as it ends. ``helpers``: the distributed run's
    agent launcher, started early."""
    outcome, interrupted, new = None, None, []
    first, gone = len(kept), failed_in(kept)
    start = carried_over(community, kept)
    config = scenario_config(s)

    def finished(day: DayResult) -> None:
        new.append(day)
        checkpoint.save(out, config, kept + new)

    try:
        if s.market.mode == "centralized":
            with deferred():
                plugin(s).run_centralized(scenario=s, start=start, actuals=actuals,
                                          progress=CheckedProgress(bar), first_day=first,
                                          finished=finished)
        elif not _distributed(s):
            with deferred():
                run_decentralized(s, start, actuals, CheckedProgress(bar), first, gone,
                                  finished)
        else:
            from lemgrid.scenarios.run.distributed import run_distributed
            outcome = run_distributed(s, start, actuals, bus_of, out, bar=bar, first_day=first,
                                      gone=gone, helpers=helpers)
            new, interrupted = outcome.days, outcome.interrupted
            if new:
                checkpoint.save(out, config, kept + new)
    except KeyboardInterrupt as exc:
        interrupted = as_interrupt(exc)
    if new and interrupted:
        new[-1].notes.append(f"{interrupted} during day {first + len(new) + 1}")
    elif new and outcome is not None and outcome.aborted:
        new[-1].notes.append(f"the co-simulation stopped early ({outcome.aborted}); power "
                             "flows recomputed in-process from the settled days")
    t_grid = time.perf_counter()
    if outcome is not None and outcome.grid_results is not None:
        grid_days = run_grid_inprocess(s, kept, bus_of, bar.on_period) + outcome.grid_results
        return new, outcome, grid_days, outcome.grid_s, interrupted
    grid_days = run_grid_inprocess(s, kept + new, bus_of, bar.on_period)
    return new, outcome, grid_days, time.perf_counter() - t_grid, interrupted


def _precheck(ctx: RunContext) -> dict:
    """What the run's mechanisms check before the market opens (in a decentralized run):
    day -> centralized optimum known from it."""
    if ctx.scenario.market.mode != "decentralized":
        return {}
    known: dict = {}
    for mech in run_plugins(ctx.scenario):
        if mech.precheck is not None:
            known |= mech.precheck(ctx)
    return known


def _market_figures(ctx: RunContext) -> dict:
    """The run's mechanisms' own tables and summary figures (the network check's last:
    its trades are the cleared ones)."""
    figures: dict = {}
    for mech in run_plugins(ctx.scenario):
        if mech.results is not None:
            figures |= mech.results(ctx)
    return figures


def run_scenario(s: Scenario, out: Path, progress: bool = False,
                 t0: float | None = None, resume: bool = False) -> dict:
    """Run the scenario's days in its mode and runtime; write every result into ``out``.
    ``resume``: ``out`` holds the run's first days (its checkpoint); run the rest. A run
    stopped early (interrupted, or its coordinator gone) writes its finished days, then
    raises RunStopped."""
    with frozen():  # what exists before the run is no full collection's work
        return _run_scenario(s, out, progress, t0, resume)


def _run_scenario(s: Scenario, out: Path, progress: bool, t0: float | None,
                  resume: bool) -> dict:
    t0 = time.perf_counter() if t0 is None else t0
    try:
        community = build_community(s)
        actuals = build_actuals(s, community)
    except ScenarioError:
        raise
    except ValueError as exc:
        raise RunError(f"{s.name}: {exc}") from None
    helpers = None
    if _distributed(s):  # its imports and forks overlap the placing and the precheck
        from lemgrid.scenarios.run.distributed import start_agents
        helpers = start_agents(s)
    try:
        bus_of = place_agents(s, community)
        kept = checkpoint.load(out, scenario_config(s)) if resume else []
        out.mkdir(parents=True, exist_ok=True)
        if resume:
            trim_messages(out / "messages.jsonl", len(kept))
        else:
            (out / checkpoint.CHECKPOINT).unlink(missing_ok=True)
            write_config(out, s)
        known = _precheck(RunContext(scenario=s, out=out, community=carried_over(community, kept),
                                     bus_of=bus_of, days=kept))
        bar = DayProgress(s.name, s.horizon.periods, progress, s.horizon.days)
        try:
            new, outcome, grid_days, grid_s, interrupted = _days(
                s=s, community=community, actuals=actuals, bus_of=bus_of, out=out, bar=bar,
                kept=kept, helpers=helpers)
        finally:
            bar.close()
    except BaseException:
        if helpers is not None:  # stopped already where the run got that far
            helpers.stop(at_once=True)
        raise
    try:
        return _write_run(s=s, out=out, t0=t0, community=community, bus_of=bus_of, known=known,
                          kept=kept, new=new, outcome=outcome, grid_days=grid_days, grid_s=grid_s,
                          interrupted=interrupted)
    finally:
        if outcome is not None:  # the distributed helpers exited meanwhile: reap them
            outcome.finish()


def _write_run(*, s: Scenario, out: Path, t0: float, community, bus_of, known, kept, new,
               outcome, grid_days, grid_s, interrupted) -> dict:
    """Every result of the run into ``out``; RunStopped if it stopped early."""
    days = kept + new
    why = str(interrupted) if interrupted else (outcome.aborted if outcome and outcome.aborted
                                                 else "every agent left the run")
    code = 128 + interrupted.signum if interrupted else 1
    if not days:
        raise RunStopped(f"{why}; no day finished", code)
    if outcome is None:
        write_messages(out / "messages.jsonl", [m for d in days for m in d.messages])
    periods = [p for day in grid_days for p in day]
    grid = grid_summary(periods, grid_limits(s), s.grid.network, s.horizon.period_minutes / 60,
                        trafo_ratings(s))
    write_grid(out, grid_days)
    summary = write_results(out, s, days, community, time.perf_counter() - t0,
                            bus_of=bus_of, grid=grid, grid_s=grid_s,
                            processes={"agents": len(outcome.pids) if outcome else 1,
                                       "agent_peak_rss_mb": outcome and outcome.peak_rss_mb},
                            market_figures=_market_figures(RunContext(
                                scenario=s, out=out, community=community, bus_of=bus_of,
                                days=days, grid_days=grid_days, known=known)))
    write_report(out, slowest_agent_s(days))
    checkpoint.save(out, scenario_config(s), days, whole=True)
    if len(days) < s.horizon.days:
        raise RunStopped(f"{why}; days 1-{len(days)} of {s.horizon.days} kept in {out} "
                         f"(lemgrid run --resume {out} continues)", code)
    return summary
