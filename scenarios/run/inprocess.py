"""Run the scenario's days in this process, decentralized (agents and coordinator
exchanging protocol messages) or centralized (one MILP of all agents per day).

Each day: agents plan (from the energy the previous day left), the market clears, every
period each agent realises its power (its meter reading), and the market settles the
day. An agent that cannot plan a day leaves the run; finished days are kept.
"""

from __future__ import annotations

import time
from functools import partial

import numpy as np

from lemgrid.agents.days import day_slice
from lemgrid.agents.formulations import flow_components
from lemgrid.agents.market_agent import MarketAgent, settle_schedule
from lemgrid.agents.model import AgentModel
from lemgrid.agents.operator import OperatorAgent
from lemgrid.agents.realise import Actuals
from lemgrid.agents.solver import (
    OPTIMAL,
    AgentInfeasible,
    AgentSolveError,
    PersistentMILP,
    agent_kind,
    define_agent,
    schedule_from_values,
)
from lemgrid.coordinator.centralized import build_centralized
from lemgrid.coordinator.mechanisms.base import zero_settlement
from lemgrid.coordinator.protocol import ClearingBody
from lemgrid.coordinator.session import MarketSession
from lemgrid.scenarios.community.builder import p2v_price
from lemgrid.scenarios.results.outcome import DayResult, RoundStats
from lemgrid.scenarios.run.errors import RunError
from lemgrid.scenarios.run.market import (
    OPERATOR,
    mechanism_setup,
    needs_operator,
    operator_data,
    plugin,
)
from lemgrid.scenarios.run.network import place_agents
from lemgrid.scenarios.schema import Scenario

AGENT_ERRORS = (AgentInfeasible, AgentSolveError, ValueError)  # ValueError: data too short


def _answer(agent: MarketAgent, signal, session: MarketSession, stats: RoundStats) -> None:
    try:
        session.offer(agent.on_signal(signal))
    except AGENT_ERRORS as exc:
        session.fail(agent.name, f"day {session.day + 1}: {exc}")
        return
    stats.solve_s[agent.name] = agent.last_solve_s
    stats.cost_eur[agent.name] = agent.plan.objective_eur


def make_agents(s: Scenario, community, actuals: dict[str, Actuals], family: str):
    """The community's market agents, and the network operator where the market has one."""
    so = s.solver
    agents = {d.name: MarketAgent(d, family, actuals.get(d.name), so.mip_rel_gap,
                                  so.time_limit_s, so.lp_first,
                                  agent_models=so.agent_models,
                                  release_models=so.release_models, **s.market.agent_options())
              for d in community}
    if needs_operator(s):
        agents[OPERATOR] = OperatorAgent(operator_data(s, place_agents(s, community),
                                                             community))
    return agents


def _join(agents, session: MarketSession, gone: dict[str, str]) -> float:
    """Every agent still in the run builds its day model and registers; seconds taken."""
    t0 = time.perf_counter()
    for name, agent in agents.items():
        if name in gone:
            continue
        try:
            session.register(agent.register(session.day))
        except AGENT_ERRORS as exc:
            gone[name] = f"day {session.day + 1}: {exc}"
    return time.perf_counter() - t0


def _rounds(agents, session: MarketSession, progress) -> list[RoundStats]:
    signals, rounds = session.start(), []
    while signals:
        stats = RoundStats(None, {}, {})
        for name, sig in signals.items():
            _answer(agents[name], sig, session, stats)
        signals = session.close_round()
        stats.record = session.state.records[-1]
        rounds.append(stats)
        if progress:
            progress.on_round(stats.record.round, stats.record.error_kw)
    return rounds


def run_day(agents, mech, params, day: int, gone: dict[str, str], progress=None) -> DayResult:
    """One decentralized day: market, realisation, settlement."""
    session = MarketSession(mech, params, day=day)
    before = set(gone)
    build_s = _join(agents, session, gone)
    t0 = time.perf_counter()
    rounds = _rounds(agents, session, progress)
    for name, msg in session.clear().items():
        agents[name].on_clearing(msg)
    market_s = time.perf_counter() - t0
    cleared = list(session.clearings)
    for t in range(session.periods):
        for name in cleared:
            session.meter(agents[name].realise(t))
        if progress:
            progress.on_period(t)
    settled = {n: sched for n, m in session.settle().items()
               if (sched := agents[n].on_settlement(m)) is not None}  # the operator: none
    failed = {n: r for n, r in gone.items() if n not in before} | session.failed
    gone.update(failed)
    return DayResult(mode="decentralized", schedules=settled, rounds=rounds,
                     converged=bool(session.state.converged), failed=failed, messages=session.log,
                     market_s=market_s, build_s=build_s, day=day,
                     clearings=dict(session.clearings))


def run_decentralized(s: Scenario, community, actuals: dict[str, Actuals] | None = None,
                      progress=None, first_day: int = 0, gone: dict[str, str] | None = None,
                      on_day=None) -> list[DayResult]:
    """The run's days from ``first_day`` (the community's batteries hold what the day
    before left; ``gone``: agents that left the run before it); agents that fail a day
    leave the run. ``on_day(day_result)`` follows every finished day."""
    mech, params = mechanism_setup(s)
    agents = make_agents(s, community, actuals or {}, plugin(s).strategy)
    gone = dict(gone or {})
    days = []
    for day in range(first_day, s.horizon.days):
        if not [n for n in agents if n not in gone]:
            break
        if progress:
            progress.on_day(day)
        days.append(run_day(agents, mech, params, day, gone, progress))
        if on_day:
            on_day(days[-1])
    return days


# -- centralized ---------------------------------------------------------------------------

def run_centralized(s: Scenario, community, actuals: dict[str, Actuals] | None = None,
                    progress=None, first_day: int = 0, on_day=None) -> list[DayResult]:
    """One MILP of all agents per day with the P2V balance (coordinator.centralized), then
    the same realisation as the decentralized run; energy carries over between days."""
    actuals = actuals or {}
    soc = {d.name: (d.battery.e0_kwh if d.battery is not None else None) for d in community}
    days = []
    for day in range(first_day, s.horizon.days):
        if progress:
            progress.on_day(day)
        days.append(_centralized_day(s, community, actuals, soc, day))
        if on_day:
            on_day(days[-1])
    return days


def _centralized_day(s: Scenario, community, actuals, soc, day: int) -> DayResult:
    t0 = time.perf_counter()
    datas = [day_slice(d, day, soc[d.name]) for d in community]
    fillers = {d.name: partial(define_agent, data=d) for d in datas}
    sides = {d.name: "seller" if agent_kind(d) == "prosumer" else "buyer" for d in datas}
    m = build_centralized(fillers, sides, s.horizon.periods, balance=s.market.p2v)
    so = s.solver
    solver = PersistentMILP(m, so.centralized_mip_rel_gap, so.centralized_time_limit_s)
    build_s = time.perf_counter() - t0
    status, method = solver.solve(so.lp_first)
    seconds = time.perf_counter() - t0 - build_s
    if status != OPTIMAL:
        raise RunError(f"day {day + 1}: " + _centralized_failure(datas, solver.status_text(status)))
    schedules = {}
    for d in datas:
        block = m.agents[d.name]
        values = {k: solver.values(solver.columns(v)) for k, v in flow_components(block).items()}
        plan = schedule_from_values(d, values, float("nan"), method, seconds)
        schedules[d.name] = _realise_planned(d, plan, actuals.get(d.name), soc, day,
                                             sides[d.name], s)
    return DayResult("centralized", schedules, market_s=seconds, build_s=build_s,
                     objective_eur=solver.objective(), day=day)


def _realise_planned(d, plan, actuals, soc, day, side, s: Scenario):
    """A centrally planned day realised period by period and billed like a P2V day."""
    agent = MarketAgent(d, "limits", actuals)
    agent.soc_kwh = soc[d.name]
    agent.follow(day, d, plan)
    agent.realise_day()
    soc[d.name] = agent.soc_kwh
    p2v = np.asarray(plan.flows_kw.get("p2v_kw", np.zeros(d.horizon.periods)))
    position = p2v if side == "buyer" else -p2v
    price = p2v_price(s)
    clearing = ClearingBody(quantities_kw={"p2v": p2v.tolist()}, position_kw=position.tolist(),
                            prices_eur_per_kwh={"p2v": [price] * len(p2v)}, converged=True)
    settlement = zero_settlement(position, position * price * d.horizon.period_h)
    settled = settle_schedule(d, agent_kind(d), agent.realised, clearing, settlement, plan)
    settled.objective_eur = float(settled.cost_eur.sum())
    return settled


def _centralized_failure(community, status: str) -> str:
    """Name the first agent that is infeasible on its own, if any."""
    for d in community:
        try:
            AgentModel(d).solve()
        except (AgentInfeasible, AgentSolveError) as exc:
            return f"centralized model: {exc}"
    return f"centralized model: solver stopped with status {status}"
