"""Run one market day, decentralized (agents and coordinator exchanging protocol
messages in this process) or centralized (one MILP of all agents)."""

from __future__ import annotations

import time
from functools import partial

from agents.data import EVData, ProsumerData
from agents.formulations import flow_components
from agents.market_agent import MarketAgent, period_costs_eur
from agents.solver import (
    OPTIMAL,
    AgentInfeasible,
    AgentModel,
    AgentSolveError,
    PersistentMILP,
    define_agent,
    schedule_from_values,
)
from coordinator.centralized import build_centralized
from coordinator.mechanisms import get_mechanism
from coordinator.session import MarketSession
from scenarios.results.outcome import DayResult, RoundStats
from scenarios.run.errors import RunError
from scenarios.schema import Scenario


def mechanism_params(s: Scenario, price_eur_per_kwh: float):
    mech = get_mechanism(s.market.mechanism)
    return mech, mech.params_type(tolerance_kw=s.market.tolerance_kw,
                                  max_rounds=s.market.max_rounds,
                                  price_eur_per_kwh=price_eur_per_kwh)


def _answer(agent: MarketAgent, signal, session: MarketSession, stats: RoundStats) -> None:
    try:
        session.offer(agent.on_signal(signal))
    except (AgentInfeasible, AgentSolveError) as exc:
        session.fail(agent.name, str(exc))
        return
    stats.solve_s[agent.name] = agent.last_solve_s
    stats.cost_eur[agent.name] = agent.plan.objective_eur


def run_decentralized(s: Scenario, community: list[ProsumerData | EVData],
                      price_eur_per_kwh: float, day: int = 0, progress=None) -> DayResult:
    """Agents answer the coordinator's signals round by round until the mechanism stops."""
    t0 = time.perf_counter()
    so = s.solver
    agents = {d.name: MarketAgent(d, so.mip_rel_gap, so.time_limit_s, so.lp_first)
              for d in community}
    build_s = time.perf_counter() - t0
    mech, params = mechanism_params(s, price_eur_per_kwh)
    session = MarketSession(mech, params, day=day)
    for a in agents.values():
        session.register(a.register(day))
    signals, rounds = session.start(), []
    while signals:
        stats = RoundStats(None, {}, {})
        for name, sig in signals.items():
            _answer(agents[name], sig, session, stats)
        signals = session.close_round()
        stats.record = session.state.records[-1]
        rounds.append(stats)
        if progress:
            progress(stats.record)
    settled = {n: agents[n].on_clearing(c) for n, c in session.settle().items()}
    return DayResult("decentralized", settled, rounds, session.state.converged,
                     dict(session.failed), session.log, time.perf_counter() - t0 - build_s,
                     build_s)


def run_centralized(s: Scenario, community: list[ProsumerData | EVData]) -> DayResult:
    """One MILP of all agents with the P2V balance (coordinator.centralized)."""
    t0 = time.perf_counter()
    fillers = {d.name: partial(define_agent, data=d) for d in community}
    sides = {d.name: "seller" if isinstance(d, ProsumerData) else "buyer" for d in community}
    m = build_centralized(fillers, sides, s.horizon.periods, balance=s.market.p2v)
    so = s.solver
    solver = PersistentMILP(m, so.centralized_mip_rel_gap, so.centralized_time_limit_s)
    build_s = time.perf_counter() - t0
    status, method = solver.solve(so.lp_first)
    seconds = time.perf_counter() - t0 - build_s
    if status != OPTIMAL:
        raise RunError(_centralized_failure(community, solver.status_text(status)))
    schedules = {}
    for d in community:
        block = m.agents[d.name]
        values = {k: solver.values(solver.columns(v)) for k, v in flow_components(block).items()}
        sched = schedule_from_values(d, values, float("nan"), method, seconds)
        sched.cost_eur = period_costs_eur(d, sched.flows_kw)
        sched.objective_eur = float(sched.cost_eur.sum())
        schedules[d.name] = sched
    return DayResult("centralized", schedules, market_s=seconds, build_s=build_s,
                     objective_eur=solver.objective())


def _centralized_failure(community, status: str) -> str:
    """Name the first agent that is infeasible on its own, if any."""
    for d in community:
        try:
            AgentModel(d).solve()
        except (AgentInfeasible, AgentSolveError) as exc:
            return f"centralized model: {exc}"
    return f"centralized model: solver stopped with status {status}"
