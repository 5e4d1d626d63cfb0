"""The centralized counterpart of the ADMM market
(docs/mechanisms/admm.md#centralized-counterpart): the same peers and the same network in
one second-order cone program (cvxpy + Clarabel).

Every peer's local problem enters as its matrices (``agents.admm_peer.local_lp``: the
binaries settled the way the market settles them), the peers' net P2P purchases sum to
zero in every period (bilateral reciprocity, summed: how the trades split between pairs
does not change any cost), and their net imports load the operator's network model with
its loss cost. Its optimum is what ADMM converges to; ``gap_to_centralized_pct``
compares them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from lemgrid.agents.admm_peer import PeerModel, bound_constraints, local_lp
from lemgrid.agents.data import OperatorData
from lemgrid.agents.days import day_slice
from lemgrid.agents.operator import bus_background, day_loss_price, operator_network
from lemgrid.grid.branchflow import (
    OBJECTIVE_SCALE,
    NetworkInfeasible,
    add_network,
    clarabel,
    explain_infeasible,
    loss_price,
    radial_network,
)
from lemgrid.grid.networks import load_network


@dataclass(frozen=True)
class CentralResult:
    objective_eur: float  # the peers' retail bills + the operator's loss cost
    net_kw: dict[str, np.ndarray]  # each peer's net import per period
    losses_kw: np.ndarray
    v_pu: np.ndarray | None  # buses × periods
    seconds: float
    status: str
    end_kwh: dict[str, float]  # each battery's energy at the end of the day


def _quadratic(lp, x):
    """½ Σ quad_diag·x² over the columns that have a quadratic cost (producers')."""
    nz = np.flatnonzero(lp.quad_diag)
    return 0.5 * lp.quad_diag[nz] @ cp.square(x[nz]) if len(nz) else 0.0


def solve_central(day_data: list, operator: OperatorData | None, day: int = 0,
                  binaries: str = "relax") -> CentralResult:
    """One day of the whole market in one problem; ``operator`` None: no network."""
    start = time.perf_counter()
    peers = [PeerModel(d, 1, binaries=binaries) for d in day_data]
    lps = [local_lp(p) for p in peers]
    periods, h = day_data[0].horizon.periods, day_data[0].horizon.period_h
    xs = [cp.Variable(len(lp.cost)) for lp in lps]
    cons = [c for lp, x in zip(lps, xs) for c in bound_constraints(
        x, lp.a, lp.col_lower, lp.col_upper, lp.row_lower, lp.row_upper)]
    cons.append(sum(x[lp.p2p] for lp, x in zip(lps, xs)) == 0)
    cost = sum(lp.cost @ x + lp.offset + _quadratic(lp, x) for lp, x in zip(lps, xs))
    block = None
    if operator is not None:
        net = operator_network(operator)
        bus = [net.bus_index[operator.buses[lp.name]] for lp in lps]
        place = sp.csr_matrix((np.ones(len(lps)), (bus, np.arange(len(lps)))),
                              shape=(net.n_buses, len(lps)))
        q = cp.vstack([x[lp.net] for lp, x in zip(lps, xs)])
        tan_phi = float(np.tan(np.arccos(operator.power_factor)))
        load = place @ q + bus_background(operator, operator.background_kw, net.n_buses)
        kvar = tan_phi * (place @ q) + bus_background(operator, operator.background_kvar,
                                                      net.n_buses)
        block = add_network(net, load, kvar, operator.model)
        cons += block.constraints
        price = loss_price(day_loss_price(operator, day), periods, operator.model)
        cost = cost + h * price @ block.losses_kw
    problem = cp.Problem(cp.Minimize(OBJECTIVE_SCALE * cost), cons)
    try:
        clarabel(problem)
    except cp.error.SolverError as exc:
        raise RuntimeError(f"centralized model: Clarabel failed ({exc})") from None
    if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        why = None if block is None else explain_infeasible(
            net, load, kvar, operator.model, h, constraints=cons[:-len(block.constraints)])
        raise NetworkInfeasible(f"day {day + 1}: no dispatch of the peers meets the network's "
                                f"limits: {why or 'the peers cannot balance'}")
    losses = np.zeros(periods) if block is None else np.asarray(block.losses_kw.value)
    v = None if block is None else np.sqrt(np.maximum(np.asarray(block.v.value), 0))
    return CentralResult(float(problem.value) / OBJECTIVE_SCALE,
                         {lp.name: np.asarray(x.value)[lp.net] for lp, x in zip(lps, xs)},
                         losses, v, time.perf_counter() - start, problem.status,
                         {lp.name: float(np.asarray(x.value)[lp.soc[-1]])
                          for lp, x in zip(lps, xs) if len(lp.soc)})


def _day_of(data, day: int):
    """``data`` for ``day``, starting from the energy its battery holds (it was carried
    over to the start of that day)."""
    return day_slice(data, day, data.battery.e0_kwh if data.battery is not None else None)


def check_feasible(s, community, bus_of: dict[str, int], first_day: int = 0) -> float:
    """Before the market opens: the first day's centralized optimum, or NetworkInfeasible
    naming the hour and the limit no dispatch of the peers can meet."""
    from lemgrid.scenarios.run.market import needs_operator, operator_data

    operator = operator_data(s, bus_of, community) if needs_operator(s) else None
    data = [_day_of(d, first_day) for d in community]
    return solve_central(data, operator, first_day, s.market.binaries).objective_eur


def central_days(s, community, days, bus_of: dict[str, int], known: dict | None = None
                 ) -> list[float | None]:
    """The centralized optimum of each market day, from the batteries' state the day
    before left (None where it cannot be computed: the reason goes to the day's notes);
    ``known``: day -> an optimum already computed for the whole community."""
    from lemgrid.scenarios.results.checkpoint import carried_over
    from lemgrid.scenarios.run.market import needs_operator, operator_data

    operator = operator_data(s, bus_of, community) if needs_operator(s) else None
    out = []
    for k, day in enumerate(days):
        start = carried_over(community, days[:k])
        active = [d for d in start if d.name in day.schedules]
        if known and day.day in known and len(active) == len(community):
            out.append(known[day.day])
            continue
        data = [_day_of(d, day.day) for d in active]
        try:
            out.append(solve_central(data, operator, day.day, s.market.binaries).objective_eur
                       if data else None)
        except (RuntimeError, ValueError) as exc:
            day.notes.append(f"centralized counterpart of day {day.day + 1}: {exc}")
            out.append(None)
    return out


LIFTED_V_PU = (0.5, 1.5)  # the voltage band of a model whose limits are lifted
LIFTED_LOADING_PCT = 1e6  # and its line limit: a current no dispatch reaches


def relaxation_gap_pu(s, days, bus_of: dict[str, int], grid_days) -> float | None:
    """The operator's network model against the AC power flow at the realised dispatch:
    the largest |v_model − v_AC| over buses and periods, the model solved with every
    agent's realised power fixed at its bus (limits lifted, so a dispatch that breaks
    them is still measured). None without an operator."""
    from lemgrid.grid.branchflow import solve_flow
    from lemgrid.scenarios.run.market import needs_operator, operator_data
    from lemgrid.scenarios.run.network import network_options

    if not needs_operator(s) or not days:
        return None
    op = operator_data(s, bus_of, [])
    net = radial_network(load_network(s.grid.network, **network_options(s)), *LIFTED_V_PU,
                         max_loading_pct=LIFTED_LOADING_PCT)
    tan_phi = float(np.tan(np.arccos(s.grid.power_factor)))
    worst = 0.0
    for day, periods in zip(days, grid_days, strict=False):
        p = bus_background(op, op.background_kw, net.n_buses)
        q = bus_background(op, op.background_kvar, net.n_buses)
        for name, sched in day.schedules.items():
            row = net.bus_index[bus_of[name]]
            p[row] += sched.flows_kw["net_kw"]
            q[row] += tan_phi * sched.flows_kw["net_kw"]
        model = solve_flow(net, p, q, s.market.network_model)
        ac = np.array([r.vm_pu for r in periods], float).T  # buses × periods
        if ac.shape == model.v_pu.shape:
            worst = max(worst, float(np.nanmax(np.abs(model.v_pu - ac))))
    return worst
