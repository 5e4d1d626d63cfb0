"""Equipment blocks that add themselves to a Pyomo block: battery, PV unit, wind
turbine, flexible loads, grid connections, EV charger, generator, CHP unit and heat
balance.

Every block records three lists on the agent's top block so the solver wrapper can
prove an LP relaxation MILP-optimal (see ``agents.solver``):

- ``indicators``: ``(binary, flow)`` pairs of the form ``flow <= M * binary``;
- ``exclusive``: pairs of binaries with ``x_a + x_b <= 1``;
- ``integers``: binaries that are genuine decisions (not indicators of a flow); the LP
  solution must already be integral in them.

Producers with a quadratic cost also record ``quadratic``: ``(power, epigraph, a)``
triples (see ``add_epigraph``; read them with ``quadratic_terms``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyomo.environ as pyo

from lemgrid.agents.data import (
    BatterySpec,
    ChpSpec,
    FlexibleLoad,
    GeneratorSpec,
    Horizon,
    polygon_halfplanes,
)

EPIGRAPH_SEGMENTS = 24  # K: tangents of ½·a·x² at K + 1 evenly spaced points


def _register(top: pyo.Block, indicators=(), exclusive=(), integers=(), quadratic=()) -> None:
    top.indicators = [*getattr(top, "indicators", []), *indicators]
    top.exclusive = [*getattr(top, "exclusive", []), *exclusive]
    top.integers = [*getattr(top, "integers", []), *integers]
    top.quadratic = [*getattr(top, "quadratic", []), *quadratic]


def quadratic_terms(block: pyo.Block) -> list[tuple[pyo.Var, pyo.Var, float]]:
    """Every quadratic cost in ``block`` and its sub-blocks: (the power variable indexed by
    period, its epigraph variable indexed by period, a in €/kW²h). In the MILP each period
    costs Δt·z_t with z_t ≥ the tangents of ½·a·x_t²; the exact cost instead puts no cost
    on z and Δt·a on the Hessian diagonal of x."""
    return [term for blk in block.block_data_objects()
            for term in getattr(blk, "quadratic", [])]


def add_battery(
    top: pyo.Block,
    horizon: Horizon,
    spec: BatterySpec,
    drain_kwh: np.ndarray | None = None,
    with_discharge: bool = True,
) -> pyo.Block:
    """State of charge, charge and (optionally) discharge with mutual exclusion.

    E_t = E_{t-1} + Δt (η_c ch_t − dis_t / η_d) − drain_t, E_min ≤ E_t ≤ E_max,
    E_T ≥ E_end (RECON: a day must not end emptier than the scenario allows).
    """
    T, h = range(horizon.periods), horizon.period_h
    drain = np.zeros(horizon.periods) if drain_kwh is None else np.asarray(drain_kwh, float)
    top.battery = b = pyo.Block()
    b.ch_kw = pyo.Var(T, bounds=(0, spec.charge_max_kw))
    b.soc_kwh = pyo.Var(T, bounds=(spec.soc_min_kwh, spec.capacity_kwh))
    dis = {t: 0 for t in T}
    if with_discharge:
        b.dis_kw = pyo.Var(T, bounds=(0, spec.discharge_max_kw))
        b.x_ch = pyo.Var(T, domain=pyo.Binary)
        b.x_dis = pyo.Var(T, domain=pyo.Binary)
        b.ch_on = pyo.Constraint(T, rule=lambda b, t: b.ch_kw[t] <= spec.charge_max_kw * b.x_ch[t])
        b.dis_on = pyo.Constraint(
            T, rule=lambda b, t: b.dis_kw[t] <= spec.discharge_max_kw * b.x_dis[t]
        )
        b.one_mode = pyo.Constraint(T, rule=lambda b, t: b.x_ch[t] + b.x_dis[t] <= 1)
        dis = b.dis_kw
        _register(top, [(b.x_ch, b.ch_kw), (b.x_dis, b.dis_kw)], [(b.x_ch, b.x_dis)])

    def soc_rule(b, t):
        prev = spec.e0_kwh if t == 0 else b.soc_kwh[t - 1]
        gain = h * (spec.eta_charge * b.ch_kw[t] - dis[t] / spec.eta_discharge)
        return b.soc_kwh[t] == prev + gain - float(drain[t])

    b.soc = pyo.Constraint(T, rule=soc_rule)
    b.end = pyo.Constraint(expr=b.soc_kwh[horizon.periods - 1] >= spec.e_end_min_kwh)
    return b


def add_pv(top: pyo.Block, horizon: Horizon, pv_kw: np.ndarray) -> pyo.Block:
    """PV output, at most the available power (curtailment allowed, RECON)."""
    top.pv = b = pyo.Block()
    b.gen_kw = pyo.Var(range(horizon.periods), bounds=lambda b, t: (0, float(pv_kw[t])))
    return b


def add_wind(top: pyo.Block, horizon: Horizon, wind_kw: np.ndarray) -> pyo.Block:
    """Wind output, at most the available power (curtailment allowed, RECON)."""
    top.wind = b = pyo.Block()
    b.gen_kw = pyo.Var(range(horizon.periods), bounds=lambda b, t: (0, float(wind_kw[t])))
    return b


def add_flexible_loads(
    top: pyo.Block, horizon: Horizon, loads: Sequence[FlexibleLoad]
) -> pyo.Block:
    """Shiftable appliances: load f is on (``on[f, t] = 1``, drawing its rating) for
    exactly d_f periods of its window [α_f, β_f), and off outside it (RECON, §E).

    Σ_{t ∈ [α_f, β_f)} on[f, t] = d_f, kw_t = Σ_f rating_f · on[f, t].
    """
    T, F = range(horizon.periods), range(len(loads))
    window = [range(max(f.window_start, 0), min(f.window_end, horizon.periods)) for f in loads]
    top.flexible = b = pyo.Block()
    b.on = pyo.Var(F, T, domain=pyo.Binary,
                   bounds=lambda b, f, t: (0, 1 if t in window[f] else 0))
    b.duration = pyo.Constraint(
        F, rule=lambda b, f: sum(b.on[f, t] for t in window[f]) == loads[f].duration_periods
    )
    b.kw = pyo.Expression(T, rule=lambda b, t: sum(loads[f].rating_kw * b.on[f, t] for f in F))
    _register(top, integers=[b.on])
    return b


def add_p2v_limit(top: pyo.Block, horizon: Horizon, limit_kw: float) -> pyo.Param:
    """The coordinator's per-period P2V limit L_t, a mutable parameter."""
    top.p2v_limit_kw = pyo.Param(
        range(horizon.periods), initialize=float(limit_kw), mutable=True, within=pyo.Reals
    )
    return top.p2v_limit_kw


def add_grid_connection(
    top: pyo.Block, horizon: Horizon, buy_max_kw: float, sell_max_kw: float, p2v_max_kw: float
) -> pyo.Block:
    """Retail purchase, feed-in and P2V sale of a prosumer (Eqs 3–7).

    buy ≤ Bmax·xb, sell ≤ Smax·xs, p2v ≤ L_t·xp, xb + xs ≤ 1, xb + xp ≤ 1.
    """
    T = range(horizon.periods)
    limit = add_p2v_limit(top, horizon, p2v_max_kw)
    top.grid = b = pyo.Block()
    b.buy_kw = pyo.Var(T, bounds=(0, buy_max_kw))
    b.sell_kw = pyo.Var(T, bounds=(0, sell_max_kw))
    b.p2v_kw = pyo.Var(T, bounds=(0, p2v_max_kw))
    b.x_buy, b.x_sell, b.x_p2v = (pyo.Var(T, domain=pyo.Binary) for _ in range(3))
    b.buy_on = pyo.Constraint(T, rule=lambda b, t: b.buy_kw[t] <= buy_max_kw * b.x_buy[t])
    b.sell_on = pyo.Constraint(T, rule=lambda b, t: b.sell_kw[t] <= sell_max_kw * b.x_sell[t])
    b.p2v_on = pyo.Constraint(T, rule=lambda b, t: b.p2v_kw[t] <= limit[t] * b.x_p2v[t])
    b.buy_or_sell = pyo.Constraint(T, rule=lambda b, t: b.x_buy[t] + b.x_sell[t] <= 1)
    b.buy_or_p2v = pyo.Constraint(T, rule=lambda b, t: b.x_buy[t] + b.x_p2v[t] <= 1)
    _register(
        top,
        [(b.x_buy, b.buy_kw), (b.x_sell, b.sell_kw), (b.x_p2v, b.p2v_kw)],
        [(b.x_buy, b.x_sell), (b.x_buy, b.x_p2v)],
    )
    return b


def add_retail_connection(
    top: pyo.Block,
    horizon: Horizon,
    buy_max_kw: float,
    sell_max_kw: float,
    cdl_kw: np.ndarray,
    pil_kw: np.ndarray | None = None,
) -> pyo.Block:
    """Retail purchase and feed-in of a building, with its demand and injection limits.

    buy ≤ Bmax·xb, sell ≤ S_t·xs with S_t = min(Smax, PIL_t) (Smax without a PIL),
    xb + xs ≤ 1; above_cdl_t ≥ buy_t − CDL_t, above_cdl_t ≥ 0 (no binary: the CDL
    penalty is convex, so the minimisation keeps above_cdl at its bound). S_t is a
    mutable parameter ``top.export_limit_kw`` (a market names the limit to plan under).
    """
    T = range(horizon.periods)
    cap = [sell_max_kw if pil_kw is None else min(sell_max_kw, float(pil_kw[t])) for t in T]
    top.export_limit_kw = pyo.Param(T, initialize=lambda m, t: cap[t], mutable=True,
                                    within=pyo.Reals)
    top.grid = b = pyo.Block()
    b.buy_kw = pyo.Var(T, bounds=(0, buy_max_kw))
    b.sell_kw = pyo.Var(T, bounds=(0, sell_max_kw))
    b.above_cdl_kw = pyo.Var(T, bounds=(0, None))
    b.x_buy, b.x_sell = (pyo.Var(T, domain=pyo.Binary) for _ in range(2))
    b.buy_on = pyo.Constraint(T, rule=lambda b, t: b.buy_kw[t] <= buy_max_kw * b.x_buy[t])
    b.sell_on = pyo.Constraint(
        T, rule=lambda b, t: b.sell_kw[t] <= top.export_limit_kw[t] * b.x_sell[t])
    b.buy_or_sell = pyo.Constraint(T, rule=lambda b, t: b.x_buy[t] + b.x_sell[t] <= 1)
    b.above_cdl = pyo.Constraint(
        T, rule=lambda b, t: b.above_cdl_kw[t] >= b.buy_kw[t] - float(cdl_kw[t])
    )
    _register(top, [(b.x_buy, b.buy_kw), (b.x_sell, b.sell_kw)], [(b.x_buy, b.x_sell)])
    return b


def add_ev_charger(
    top: pyo.Block, horizon: Horizon, away: np.ndarray, buy_max_kw: float, p2v_max_kw: float,
    p2p_in=lambda t: 0, sell_max_kw: float = 0.0,
) -> pyo.Block:
    """Charging from retail and P2V while plugged (Eqs 25, 28, 29).

    buy_t + p2v_t (+ p2p_t) = ch_t, buy_t ≤ Bmax·A_t, p2v_t ≤ L_t·A_t, with A_t = 0 on a
    trip; ``p2p_in(t)``: net peer-to-peer purchase where the EV trades P2P. The battery
    block must already exist on ``top``.

    With ``sell_max_kw`` > 0 (V2G; the battery block then has ``dis_kw``) the EV also
    exports: buy_t + p2v_t (+ p2p_t) = ch_t − dis_t + sell_t, sell_t ≤ Smax·A_t·xs_t,
    dis_t = 0 on a trip, buy_t ≤ Bmax·xb_t, p2v_t ≤ L_t·xp_t, xb + xs ≤ 1, xp + xs ≤ 1
    (it never buys to resell in the same period).
    """
    T = range(horizon.periods)
    plugged = [0.0 if away[t] else 1.0 for t in T]
    limit = add_p2v_limit(top, horizon, p2v_max_kw)
    bat = top.battery
    top.grid = b = pyo.Block()
    b.buy_kw = pyo.Var(T, bounds=(0, buy_max_kw))
    b.p2v_kw = pyo.Var(T, bounds=(0, p2v_max_kw))
    b.buy_plugged = pyo.Constraint(T, rule=lambda b, t: b.buy_kw[t] <= buy_max_kw * plugged[t])
    b.p2v_plugged = pyo.Constraint(T, rule=lambda b, t: b.p2v_kw[t] <= limit[t] * plugged[t])
    v2g = sell_max_kw > 0
    if v2g:
        _add_ev_export(top, b, T, plugged, buy_max_kw, sell_max_kw, limit)

    def feeds(b, t):
        supply = b.buy_kw[t] + b.p2v_kw[t] + p2p_in(t)
        if v2g:
            return supply == bat.ch_kw[t] - bat.dis_kw[t] + b.sell_kw[t]
        return supply == bat.ch_kw[t]

    b.feeds = pyo.Constraint(T, rule=feeds)
    return b


def _add_ev_export(top: pyo.Block, b: pyo.Block, T: range, plugged: list[float],
                   buy_max_kw: float, sell_max_kw: float, limit: pyo.Param) -> None:
    """A V2G EV's feed-in, discharge only while plugged, and purchase/sale exclusion."""
    dis = top.battery.dis_kw
    b.sell_kw = pyo.Var(T, bounds=(0, sell_max_kw))
    b.x_buy, b.x_sell, b.x_p2v = (pyo.Var(T, domain=pyo.Binary) for _ in range(3))
    b.buy_on = pyo.Constraint(T, rule=lambda b, t: b.buy_kw[t] <= buy_max_kw * b.x_buy[t])
    b.p2v_on = pyo.Constraint(T, rule=lambda b, t: b.p2v_kw[t] <= limit[t] * b.x_p2v[t])
    b.sell_on = pyo.Constraint(
        T, rule=lambda b, t: b.sell_kw[t] <= sell_max_kw * plugged[t] * b.x_sell[t])
    b.dis_plugged = pyo.Constraint(
        T, rule=lambda b, t: dis[t] == 0 if not plugged[t] else pyo.Constraint.Skip)
    b.buy_or_sell = pyo.Constraint(T, rule=lambda b, t: b.x_buy[t] + b.x_sell[t] <= 1)
    b.p2v_or_sell = pyo.Constraint(T, rule=lambda b, t: b.x_p2v[t] + b.x_sell[t] <= 1)
    _register(
        top,
        [(b.x_buy, b.buy_kw), (b.x_sell, b.sell_kw), (b.x_p2v, b.p2v_kw)],
        [(b.x_buy, b.x_sell), (b.x_p2v, b.x_sell)],
    )


def add_prices(top: pyo.Block, horizon: Horizon, tariff, cdl_factor: float = 1.0) -> pyo.Block:
    """The prices an agent plans with, mutable per period (€/kWh): ``buy``, ``sell`` and
    ``above_cdl`` (the extra price of import above a consumer demand limit, (κ − 1) × buy).
    A market that announces its own prices rewrites them (objective coefficients only)."""
    T = range(horizon.periods)
    top.prices = b = pyo.Block()
    buy, sell = tariff.buy_eur_per_kwh, tariff.sell_eur_per_kwh
    b.buy = pyo.Param(T, initialize=lambda m, t: float(buy[t]), mutable=True, within=pyo.Reals)
    b.sell = pyo.Param(T, initialize=lambda m, t: float(sell[t]), mutable=True,
                       within=pyo.Reals)
    b.above_cdl = pyo.Param(T, initialize=lambda m, t: (cdl_factor - 1.0) * float(buy[t]),
                            mutable=True, within=pyo.Reals)
    return b


def add_epigraph(top: pyo.Block, b: pyo.Block, name: str, x: pyo.Var, lo_kw: float,
                 hi_kw: float, a: float) -> pyo.Var:
    """z_t ≥ ½·a·x_t² for x_t ∈ [lo, hi] as K + 1 tangents (K = ``EPIGRAPH_SEGMENTS``) at
    x_k = lo + k·Δ, Δ = (hi − lo)/K (a MILP solver takes no quadratic cost): z_t ≥
    a·x_k·x_t − ½·a·x_k². At its optimum z_t is the largest tangent: exact at the x_k and
    below ½·a·x_t² between them, by at most a·Δ²/8 (midway between two of them). Adds ``b.<name>``
    (€/h per period) and registers (x, z, a) on ``top`` (``quadratic_terms``)."""
    T = sorted(x.keys())
    K = EPIGRAPH_SEGMENTS if hi_kw > lo_kw else 0
    points = [lo_kw + k * (hi_kw - lo_kw) / max(K, 1) for k in range(K + 1)]
    z = pyo.Var(T)
    b.add_component(name, z)
    b.add_component(f"{name}_tangent", pyo.Constraint(
        T, range(K + 1), rule=lambda b, t, k: z[t] >= a * points[k] * x[t]
        - 0.5 * a * points[k] ** 2))
    _register(top, quadratic=[(x, z, float(a))])
    return z


def add_generator(top: pyo.Block, horizon: Horizon, spec: GeneratorSpec) -> pyo.Block:
    """A generator's output p_t ∈ [p_min, p_max] (kW) and its cost
    ``cost_eur`` = Σ_t Δt (z_t + b·p_t + c), z_t ≥ ½·a·p_t² by tangents (``add_epigraph``;
    none for a = 0)."""
    T, h = range(horizon.periods), horizon.period_h
    top.generator = b = pyo.Block()
    b.p_kw = pyo.Var(T, bounds=(spec.p_min_kw, spec.p_max_kw))
    a = spec.a_eur_per_kw2h
    z = add_epigraph(top, b, "quad_eur_per_h", b.p_kw, spec.p_min_kw, spec.p_max_kw, a) \
        if a > 0 else {t: 0 for t in T}
    b.cost_eur = pyo.Expression(expr=sum(
        h * (z[t] + spec.b_eur_per_kwh * b.p_kw[t] + spec.c_eur_per_h) for t in T))
    return b


def add_chp(top: pyo.Block, horizon: Horizon, spec: ChpSpec) -> pyo.Block:
    """A CHP unit's power p_t (kW_el) and heat h_t (kW_th) inside its polygon, one
    half-plane cp·p_t + ch·h_t ≤ rhs per edge (``polygon_halfplanes``; Eqs 12.24–12.26),
    and its cost ``cost_eur`` = Σ_t Δt (zp_t + b_p·p_t + zh_t + b_h·h_t + c) with
    zp_t ≥ ½·a_p·p_t², zh_t ≥ ½·a_h·h_t² by tangents (``add_epigraph``)."""
    T, dt = range(horizon.periods), horizon.period_h
    (p_lo, p_hi), (h_lo, h_hi) = spec.power_range_kw(), spec.heat_range_kw()
    edges = polygon_halfplanes(spec.vertices)
    top.chp = b = pyo.Block()
    b.p_kw = pyo.Var(T, bounds=(p_lo, p_hi))
    b.h_kw = pyo.Var(T, bounds=(h_lo, h_hi))
    b.polygon = pyo.Constraint(T, range(len(edges)), rule=lambda b, t, e: edges[e][0]
                               * b.p_kw[t] + edges[e][1] * b.h_kw[t] <= edges[e][2])
    none = {t: 0 for t in T}
    zp = add_epigraph(top, b, "quad_p_eur_per_h", b.p_kw, p_lo, p_hi, spec.a_p) \
        if spec.a_p > 0 else none
    zh = add_epigraph(top, b, "quad_h_eur_per_h", b.h_kw, h_lo, h_hi, spec.a_h) \
        if spec.a_h > 0 else none
    b.cost_eur = pyo.Expression(expr=sum(
        dt * (zp[t] + spec.b_p * b.p_kw[t] + zh[t] + spec.b_h * b.h_kw[t] + spec.c)
        for t in T))
    return b


def add_heat_balance(top: pyo.Block, horizon: Horizon, demand_kw: np.ndarray) -> pyo.Block:
    """The heat balance chp_h_t + heat_in_t = demand_t (kW_th; no CHP: chp_h_t = 0).
    ``top.heat_in_kw`` is the net P2P heat purchase (− a sale), bounded to (0, 0): closed
    until a heat market opens it, so heat demand no CHP meets is infeasible until then.
    A CHP block, if any, must already exist on ``top``."""
    T = range(horizon.periods)
    chp = top.component("chp")
    top.heat_in_kw = pyo.Var(T, bounds=(0, 0))
    top.heat_balance = pyo.Constraint(T, rule=lambda top, t: (
        chp.h_kw[t] if chp is not None else 0) + top.heat_in_kw[t] == float(demand_kw[t]))
    return top.heat_balance
