"""Prosumer and EV cost-minimisation models (docs/models.md, docs/mechanisms/p2v_rules.md;
RECON of Eqs 1–33) and the building's HEMS (docs/models.md#building, RECON).

``define_prosumer``, ``define_ev`` and ``define_building`` fill any Pyomo block, so the
same code builds a standalone agent model and a block of the centralized benchmark.
Each filled block exposes ``cost_eur`` (the agent's daily cost); prosumer and EV
blocks also ``p2v_kw`` (the market quantity) and ``p2v_limit_kw`` (the coordinator's
limit, mutable), a building block ``net_kw`` (its import minus export).

A caller that trades peer to peer declares ``b.p2p_in_kw`` (net P2P purchase per period,
kW) on the block before filling it: every kind's energy balance then counts it as
supply beside retail purchase (``p2p_supply``); the retail bill stays on ``buy_kw`` and
``sell_kw``.

A building with a CHP unit or heat demand also has ``b.heat_in_kw`` (net P2P heat
purchase per period, kW_th, − a sale), bounded to (0, 0) until a heat market opens it
(``add_heat_balance``). Producers' quadratic costs are tangent epigraphs in the MILP;
``agents.equipment.quadratic_terms`` lists them for an exact convex phase.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo

from lemgrid.agents.data import BuildingData, EVData, ProsumerData
from lemgrid.agents.equipment import (
    add_battery,
    add_chp,
    add_ev_charger,
    add_flexible_loads,
    add_generator,
    add_grid_connection,
    add_heat_balance,
    add_prices,
    add_pv,
    add_retail_connection,
    add_wind,
)


def p2p_supply(b: pyo.Block, t: int):
    """Net peer-to-peer purchase in period ``t`` where the block trades P2P, else 0."""
    p2p = b.component("p2p_in_kw")
    return 0 if p2p is None else p2p[t]


def define_prosumer(b: pyo.Block, d: ProsumerData) -> pyo.Block:
    """min Σ Δt (λToU buy − λFiT sell − λP2V p2v) + fixed, s.t. the balance
    gen + dis + buy = load + ch + sell + p2v and the equipment constraints."""
    T, h, tr = range(d.horizon.periods), d.horizon.period_h, d.tariff
    pv = add_pv(b, d.horizon, d.pv_kw)
    g = add_grid_connection(b, d.horizon, d.buy_max_kw, d.sell_max_kw, d.p2v_max_kw)
    bat = add_battery(b, d.horizon, d.battery) if d.battery is not None else None

    def balance(b, t):
        ch = bat.ch_kw[t] if bat is not None else 0
        dis = bat.dis_kw[t] if bat is not None else 0
        supply = pv.gen_kw[t] + dis + g.buy_kw[t] + p2p_supply(b, t)
        return supply == float(d.load_kw[t]) + ch + g.sell_kw[t] + g.p2v_kw[t]

    b.balance = pyo.Constraint(T, rule=balance)
    b.p2v_kw = pyo.Reference(g.p2v_kw)
    price = add_prices(b, d.horizon, tr)
    b.cost_eur = pyo.Expression(
        expr=sum(
            h
            * (
                price.buy[t] * g.buy_kw[t]
                - price.sell[t] * g.sell_kw[t]
                - tr.p2v_eur_per_kwh * g.p2v_kw[t]
            )
            for t in T
        )
        + tr.fixed_eur_per_day
    )
    return b


def define_ev(b: pyo.Block, d: EVData) -> pyo.Block:
    """min Σ Δt (λToU buy + λP2V p2v) + fixed, s.t. buy + p2v = ch, the trips drain
    the battery, and the EV charges only while plugged.

    A V2G EV (``d.sell_max_kw`` > 0) also discharges while plugged (never while charging)
    and sells at the feed-in price: min Σ Δt (λToU buy + λP2V p2v − λFiT sell) + fixed,
    s.t. buy + p2v = ch − dis + sell (``add_ev_charger``)."""
    T, h, tr = range(d.horizon.periods), d.horizon.period_h, d.tariff
    v2g = d.v2g
    add_battery(b, d.horizon, d.battery, drain_kwh=d.trip_kwh, with_discharge=v2g)
    g = add_ev_charger(b, d.horizon, d.away, d.buy_max_kw, d.p2v_max_kw,
                       p2p_in=lambda t: p2p_supply(b, t),
                       sell_max_kw=d.sell_max_kw if v2g else 0.0)
    b.p2v_kw = pyo.Reference(g.p2v_kw)
    price = add_prices(b, d.horizon, tr)

    def period_eur(t):
        eur = price.buy[t] * g.buy_kw[t] + tr.p2v_eur_per_kwh * g.p2v_kw[t]
        return eur - price.sell[t] * g.sell_kw[t] if v2g else eur

    b.cost_eur = pyo.Expression(
        expr=sum(h * period_eur(t) for t in T) + tr.fixed_eur_per_day
    )
    return b


def define_building(b: pyo.Block, d: BuildingData) -> pyo.Block:
    """An active household's HEMS MILP (docs/models.md#building). RECON: the paper's
    equations are images in the source; this is the standard formulation its text
    describes.

    min Σ_t Δt (λb_t buy_t + (κ − 1) λb_t above_t − λs_t sell_t) + fixed, s.t.
    pv_t + wind_t + dis_t + buy_t = load_t + flex_t + ch_t + sell_t,
    flex_t = Σ_f rating_f on_{f,t}, Σ_{t ∈ [α_f, β_f)} on_{f,t} = d_f, on ∈ {0, 1},
    above_t ≥ buy_t − CDL_t, above_t ≥ 0 (energy above the CDL costs κ λb_t in all),
    sell_t ≤ min(Smax, PIL_t)·xs_t, buy_t ≤ Bmax·xb_t, xb + xs ≤ 1, and the battery
    (charge / discharge / float). PV and wind may be curtailed.

    With a generator and a CHP unit
    (docs/models.md#producing-buildings-generator-chp-unit-and-heat) their power gen_t,
    chp_t joins the supply and their costs (``add_generator``, ``add_chp``) the objective;
    with a CHP unit or heat demand, chp_h_t + heat_in_t = heat_t (``add_heat_balance``).
    """
    T = range(d.horizon.periods)
    pv = add_pv(b, d.horizon, d.pv_kw)
    wind = add_wind(b, d.horizon, d.wind_kw)
    flex = add_flexible_loads(b, d.horizon, d.flexible)
    g = add_retail_connection(b, d.horizon, d.buy_max_kw, d.sell_max_kw, d.cdl_kw, d.pil_kw)
    bat = add_battery(b, d.horizon, d.battery) if d.battery is not None else None
    producers = [add_generator(b, d.horizon, d.generator)] if d.generator is not None else []
    if d.chp is not None:
        producers.append(add_chp(b, d.horizon, d.chp))
    if d.has_heat:
        demand = d.heat_demand_kw if d.heat_demand_kw is not None else np.zeros(len(T))
        add_heat_balance(b, d.horizon, demand)
    # A Var, not only the Expression flex.kw, so a Schedule can report it.
    b.flex_kw = pyo.Var(T, bounds=(0, None))
    b.flex_total = pyo.Constraint(T, rule=lambda b, t: b.flex_kw[t] == flex.kw[t])

    def balance(b, t):
        ch = bat.ch_kw[t] if bat is not None else 0
        dis = bat.dis_kw[t] if bat is not None else 0
        supply = pv.gen_kw[t] + wind.gen_kw[t] + dis + g.buy_kw[t] + p2p_supply(b, t)
        supply += sum(u.p_kw[t] for u in producers)
        return supply == float(d.load_kw[t]) + b.flex_kw[t] + ch + g.sell_kw[t]

    b.balance = pyo.Constraint(T, rule=balance)
    b.net_kw = pyo.Expression(T, rule=lambda b, t: g.buy_kw[t] - g.sell_kw[t])
    price = add_prices(b, d.horizon, d.tariff, d.cdl_factor)
    b.cost_eur = pyo.Expression(expr=_building_cost_eur(g, d, price)
                                + sum(u.cost_eur for u in producers))
    return b


def _building_cost_eur(g: pyo.Block, d: BuildingData, price: pyo.Block):
    h, tr = d.horizon.period_h, d.tariff
    return sum(
        h
        * (
            price.buy[t] * g.buy_kw[t] + price.above_cdl[t] * g.above_cdl_kw[t]
            - price.sell[t] * g.sell_kw[t]
        )
        for t in range(d.horizon.periods)
    ) + tr.fixed_eur_per_day


# Result column -> component path inside an agent's block, in report order; an agent
# reports the ones its block has.
REPORTED = (
    ("buy_kw", "grid.buy_kw"), ("p2v_kw", "grid.p2v_kw"), ("sell_kw", "grid.sell_kw"),
    ("pv_kw", "pv.gen_kw"), ("wind_kw", "wind.gen_kw"), ("flex_kw", "flex_kw"),
    ("ch_kw", "battery.ch_kw"), ("soc_kwh", "battery.soc_kwh"), ("dis_kw", "battery.dis_kw"),
    ("above_cdl_kw", "grid.above_cdl_kw"), ("gen_kw", "generator.p_kw"), ("chp_kw", "chp.p_kw"),
    ("chp_heat_kw", "chp.h_kw"), ("heat_in_kw", "heat_in_kw"),
)
SIGNED = ("heat_in_kw",)  # result columns that may be negative (a sale), never clipped


def flow_components(b: pyo.Block) -> dict[str, pyo.Var]:
    """The variables a Schedule reports, by result column name."""
    found = ((key, b.find_component(path)) for key, path in REPORTED)
    return {key: var for key, var in found if var is not None}
