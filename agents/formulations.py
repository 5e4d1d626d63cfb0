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

Every number a model takes from the agent's data comes from ``model_numbers`` (by block;
see ``agents.equipment``), so a model built ``parametric`` once per ``structure_key``
serves every agent of that structure (``agents.model``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lemgrid.agents.data import AgentData, BuildingData, EVData, ProsumerData, kind_of
from lemgrid.agents.equipment import (
    Numbers,
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
    battery_numbers,
    charger_numbers,
    chp_numbers,
    export_limit_numbers,
    flexible_numbers,
    flexible_windows,
    generation_numbers,
    generator_numbers,
    grid_numbers,
    numbers_of,
    p2v_limit_numbers,
    plugged_mask,
    price_numbers,
    retail_numbers,
)
from lemgrid.agents.lazy import lazy

pyo = lazy("pyomo.environ")  # imported where a model is written in Pyomo


MARKET_SET = ("p2v_limit_kw", "export_limit_kw")  # the agent's own numbers a market sets


@dataclass(frozen=True)
class ModelNumbers:
    """Every number of an agent's model by block (``""``: the agent's own block) and what
    else shapes the model (``structure``: a flexible load's window)."""

    blocks: dict[str, Numbers]
    structure: tuple = ()

    def flat(self) -> dict[str, np.ndarray]:
        """Each number by its parameter's name in a parametric model (``battery.e0_kwh``,
        ``prices.buy``, ``load_kw``), as an array (a scalar has shape ())."""
        return {(f"{block}.{name}" if block else name): np.asarray(value, float)
                for block, numbers in self.blocks.items() for name, value in numbers.items()}


def model_numbers(d: AgentData) -> ModelNumbers:
    """Every number of ``d``'s model (see ``ModelNumbers``)."""
    return NUMBERS[type(d)](d)


def structure_key(d: AgentData, numbers: ModelNumbers | None = None) -> tuple:
    """What two agents must share for one parametric model to serve both: kind, horizon,
    the blocks and their numbers' names and sizes, and the structure."""
    numbers = model_numbers(d) if numbers is None else numbers
    sizes = tuple((block, tuple((name, np.shape(v)) for name, v in n.items()))
                  for block, n in numbers.blocks.items())
    return (kind_of(d), d.horizon.periods, d.horizon.period_h, sizes, numbers.structure)


def _own(d, **more) -> Numbers:
    tr = d.tariff
    return {"fixed_eur_per_day": tr.fixed_eur_per_day, **more}


def prosumer_numbers(d: ProsumerData) -> ModelNumbers:
    blocks = {"": _own(d, load_kw=d.load_kw, p2v_eur_per_kwh=d.tariff.p2v_eur_per_kwh,
                       **p2v_limit_numbers(d.horizon, d.p2v_max_kw)),
              "pv": generation_numbers(d.pv_kw),
              "grid": grid_numbers(d.horizon, d.buy_max_kw, d.sell_max_kw, d.p2v_max_kw),
              "prices": price_numbers(d.tariff)}
    if d.battery is not None:
        blocks["battery"] = battery_numbers(d.horizon, d.battery)
    return ModelNumbers(blocks)


def ev_numbers(d: EVData) -> ModelNumbers:
    v2g = d.v2g
    sell = d.sell_max_kw if v2g else 0.0
    discharge = d.battery.discharge_max_kw * plugged_mask(d.horizon, d.away) if v2g else None
    return ModelNumbers({
        "": _own(d, p2v_eur_per_kwh=d.tariff.p2v_eur_per_kwh,
                 **p2v_limit_numbers(d.horizon, d.p2v_max_kw)),
        "battery": battery_numbers(d.horizon, d.battery, drain_kwh=d.trip_kwh,
                                   with_discharge=v2g, discharge_kw=discharge),
        "grid": charger_numbers(d.horizon, d.away, d.buy_max_kw, d.p2v_max_kw, sell),
        "prices": price_numbers(d.tariff)})


def building_numbers(d: BuildingData) -> ModelNumbers:
    own = _own(d, load_kw=d.load_kw, **export_limit_numbers(d.horizon, d.sell_max_kw, d.pil_kw))
    if d.has_heat:
        own["heat_demand_kw"] = (d.heat_demand_kw if d.heat_demand_kw is not None
                                 else np.zeros(d.horizon.periods))
    blocks = {"": own, "pv": generation_numbers(d.pv_kw), "wind": generation_numbers(d.wind_kw),
              "flexible": flexible_numbers(d.flexible),
              "grid": retail_numbers(d.horizon, d.buy_max_kw, d.sell_max_kw, d.cdl_kw),
              "prices": price_numbers(d.tariff, d.cdl_factor)}
    if d.battery is not None:
        blocks["battery"] = battery_numbers(d.horizon, d.battery)
    if d.generator is not None:
        blocks["generator"] = generator_numbers(d.generator)
    if d.chp is not None:
        blocks["chp"] = chp_numbers(d.chp)
    return ModelNumbers(blocks, structure=(flexible_windows(d.horizon, d.flexible),))


NUMBERS = {ProsumerData: prosumer_numbers, EVData: ev_numbers, BuildingData: building_numbers}


def p2p_supply(b: pyo.Block, t: int):
    """Net peer-to-peer purchase in period ``t`` where the block trades P2P, else 0."""
    p2p = b.component("p2p_in_kw")
    return 0 if p2p is None else p2p[t]


def define_prosumer(b: pyo.Block, d: ProsumerData, parametric: bool = False) -> pyo.Block:
    """min Σ Δt (λToU buy − λFiT sell − λP2V p2v) + fixed, s.t. the balance
    gen + dis + buy = load + ch + sell + p2v and the equipment constraints."""
    n = prosumer_numbers(d)
    T, h = range(d.horizon.periods), d.horizon.period_h
    own = numbers_of(b, n.blocks[""], parametric, mutable=MARKET_SET)
    pv = add_pv(b, d.horizon, n.blocks["pv"], parametric)
    g = add_grid_connection(b, d.horizon, n.blocks["grid"], parametric)
    bat = add_battery(b, d.horizon, n.blocks["battery"], parametric) \
        if "battery" in n.blocks else None

    def balance(b, t):
        ch = bat.ch_kw[t] if bat is not None else 0
        dis = bat.dis_kw[t] if bat is not None else 0
        supply = pv.gen_kw[t] + dis + g.buy_kw[t] + p2p_supply(b, t)
        return supply == own.load_kw[t] + ch + g.sell_kw[t] + g.p2v_kw[t]

    b.balance = pyo.Constraint(T, rule=balance)
    b.p2v_kw = pyo.Reference(g.p2v_kw)
    price = add_prices(b, n.blocks["prices"])
    b.cost_eur = pyo.Expression(
        expr=sum(
            h
            * (
                price.buy[t] * g.buy_kw[t]
                - price.sell[t] * g.sell_kw[t]
                - own.p2v_eur_per_kwh * g.p2v_kw[t]
            )
            for t in T
        )
        + own.fixed_eur_per_day
    )
    return b


def define_ev(b: pyo.Block, d: EVData, parametric: bool = False) -> pyo.Block:
    """min Σ Δt (λToU buy + λP2V p2v) + fixed, s.t. buy + p2v = ch, the trips drain
    the battery, and the EV charges only while plugged.

    A V2G EV (``d.sell_max_kw`` > 0) also discharges while plugged (never while charging)
    and sells at the feed-in price: min Σ Δt (λToU buy + λP2V p2v − λFiT sell) + fixed,
    s.t. buy + p2v = ch − dis + sell (``add_ev_charger``)."""
    n = ev_numbers(d)
    T, h = range(d.horizon.periods), d.horizon.period_h
    v2g = "sell_max_kw" in n.blocks["grid"]
    own = numbers_of(b, n.blocks[""], parametric, mutable=MARKET_SET)
    add_battery(b, d.horizon, n.blocks["battery"], parametric)
    g = add_ev_charger(b, d.horizon, n.blocks["grid"], p2p_in=lambda t: p2p_supply(b, t),
                       parametric=parametric)
    b.p2v_kw = pyo.Reference(g.p2v_kw)
    price = add_prices(b, n.blocks["prices"])

    def period_eur(t):
        eur = price.buy[t] * g.buy_kw[t] + own.p2v_eur_per_kwh * g.p2v_kw[t]
        return eur - price.sell[t] * g.sell_kw[t] if v2g else eur

    b.cost_eur = pyo.Expression(
        expr=sum(h * period_eur(t) for t in T) + own.fixed_eur_per_day
    )
    return b


def define_building(b: pyo.Block, d: BuildingData, parametric: bool = False) -> pyo.Block:
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
    n = building_numbers(d)
    T = range(d.horizon.periods)
    own_numbers = {k: v for k, v in n.blocks[""].items() if k != "heat_demand_kw"}
    own = numbers_of(b, own_numbers, parametric, mutable=MARKET_SET)
    pv = add_pv(b, d.horizon, n.blocks["pv"], parametric)
    wind = add_wind(b, d.horizon, n.blocks["wind"], parametric)
    flex = add_flexible_loads(b, d.horizon, n.blocks["flexible"], n.structure[0], parametric)
    g = add_retail_connection(b, d.horizon, n.blocks["grid"], parametric)
    bat = add_battery(b, d.horizon, n.blocks["battery"], parametric) \
        if "battery" in n.blocks else None
    producers = [add_generator(b, d.horizon, n.blocks["generator"], parametric)] \
        if "generator" in n.blocks else []
    if "chp" in n.blocks:
        producers.append(add_chp(b, d.horizon, n.blocks["chp"], parametric))
    if "heat_demand_kw" in n.blocks[""]:
        add_heat_balance(b, d.horizon, {"heat_demand_kw": n.blocks[""]["heat_demand_kw"]},
                         parametric)
    # A Var, not only the Expression flex.kw, so a Schedule can report it.
    b.flex_kw = pyo.Var(T, bounds=(0, None))
    b.flex_total = pyo.Constraint(T, rule=lambda b, t: b.flex_kw[t] == flex.kw[t])

    def balance(b, t):
        ch = bat.ch_kw[t] if bat is not None else 0
        dis = bat.dis_kw[t] if bat is not None else 0
        supply = pv.gen_kw[t] + wind.gen_kw[t] + dis + g.buy_kw[t] + p2p_supply(b, t)
        supply += sum(u.p_kw[t] for u in producers)
        return supply == own.load_kw[t] + b.flex_kw[t] + ch + g.sell_kw[t]

    b.balance = pyo.Constraint(T, rule=balance)
    b.net_kw = pyo.Expression(T, rule=lambda b, t: g.buy_kw[t] - g.sell_kw[t])
    price = add_prices(b, n.blocks["prices"])
    b.cost_eur = pyo.Expression(expr=_building_cost_eur(g, d, price, own)
                                + sum(u.cost_eur for u in producers))
    return b


def _building_cost_eur(g: pyo.Block, d: BuildingData, price: pyo.Block, own):
    h = d.horizon.period_h
    return sum(
        h
        * (
            price.buy[t] * g.buy_kw[t] + price.above_cdl[t] * g.above_cdl_kw[t]
            - price.sell[t] * g.sell_kw[t]
        )
        for t in range(d.horizon.periods)
    ) + own.fixed_eur_per_day


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
