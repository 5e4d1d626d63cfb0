"""Prosumer and EV cost-minimisation models (MODELS.md §A; RECON of Eqs 1–33).

``define_prosumer`` and ``define_ev`` fill any Pyomo block, so the same code builds
a standalone agent model and a block of the centralized benchmark. Each filled block
exposes ``p2v_kw`` (the market quantity), ``p2v_limit_kw`` (the coordinator's limit,
mutable) and ``cost_eur`` (the agent's daily cost).
"""

from __future__ import annotations

import pyomo.environ as pyo

from agents.data import EVData, ProsumerData
from agents.equipment import add_battery, add_ev_charger, add_grid_connection, add_pv


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
        supply = pv.gen_kw[t] + dis + g.buy_kw[t]
        return supply == float(d.load_kw[t]) + ch + g.sell_kw[t] + g.p2v_kw[t]

    b.balance = pyo.Constraint(T, rule=balance)
    b.p2v_kw = pyo.Reference(g.p2v_kw)
    b.cost_eur = pyo.Expression(
        expr=sum(
            h
            * (
                float(tr.buy_eur_per_kwh[t]) * g.buy_kw[t]
                - float(tr.sell_eur_per_kwh[t]) * g.sell_kw[t]
                - tr.p2v_eur_per_kwh * g.p2v_kw[t]
            )
            for t in T
        )
        + tr.fixed_eur_per_day
    )
    return b


def define_ev(b: pyo.Block, d: EVData) -> pyo.Block:
    """min Σ Δt (λToU buy + λP2V p2v) + fixed, s.t. buy + p2v = ch, the trips drain
    the battery, and the EV charges only while plugged."""
    T, h, tr = range(d.horizon.periods), d.horizon.period_h, d.tariff
    add_battery(b, d.horizon, d.battery, drain_kwh=d.trip_kwh, with_discharge=False)
    g = add_ev_charger(b, d.horizon, d.away, d.buy_max_kw, d.p2v_max_kw)
    b.p2v_kw = pyo.Reference(g.p2v_kw)
    b.cost_eur = pyo.Expression(
        expr=sum(
            h * (float(tr.buy_eur_per_kwh[t]) * g.buy_kw[t] + tr.p2v_eur_per_kwh * g.p2v_kw[t])
            for t in T
        )
        + tr.fixed_eur_per_day
    )
    return b


def flow_components(b: pyo.Block) -> dict[str, pyo.Var]:
    """The variables a Schedule reports, by result column name."""
    named = {"buy_kw": b.grid.buy_kw, "p2v_kw": b.grid.p2v_kw}
    if hasattr(b, "pv"):
        named |= {"sell_kw": b.grid.sell_kw, "pv_kw": b.pv.gen_kw}
    if hasattr(b, "battery"):
        named |= {"ch_kw": b.battery.ch_kw, "soc_kwh": b.battery.soc_kwh}
        if hasattr(b.battery, "dis_kw"):
            named["dis_kw"] = b.battery.dis_kw
    return named
