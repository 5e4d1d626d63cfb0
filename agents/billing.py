"""An agent's bill for a day: the market's charges from the settlement plus the retail
bill of whatever the market did not cover, and the daily fixed cost.

Per period (€, + the agent pays):
  cost = traded + deviation + violation (the market's settlement)
       + retail(net − position)             (its own retail tariff)
       + fixed / periods
       + fuel                               (its generator's and CHP unit's running cost)
where ``net`` is the realised power at the connection (+ import) and ``position`` the
realised energy the market covered. Retail: import r⁺ at the buy price (a building pays
``cdl_factor`` × the price for import above its consumer demand limit), export r⁻ at
the feed-in price.
"""

from __future__ import annotations

import numpy as np

from lemgrid.coordinator.protocol import P2P, POWER, ClearingBody, SettlementBody

COST_COLUMNS = ("traded_eur", "deviation_eur", "violation_eur", "retail_eur", "fixed_eur",
                "fuel_eur")


def fuel_eur(day_data, flows: dict[str, np.ndarray]) -> np.ndarray:
    """The producers' running cost per period: Δt·(½a·g² + b·g + c) of the generator and
    Δt·(½a_p·p² + b_p·p + ½a_h·h² + b_h·h + c) of the CHP unit at their realised output."""
    n, h = day_data.horizon.periods, day_data.horizon.period_h
    cost = np.zeros(n)
    gen = getattr(day_data, "generator", None)
    if gen is not None:
        g = np.asarray(flows.get("gen_kw", np.zeros(n)), float)
        cost += h * (0.5 * gen.a_eur_per_kw2h * g * g + gen.b_eur_per_kwh * g + gen.c_eur_per_h)
    chp = getattr(day_data, "chp", None)
    if chp is not None:
        p = np.asarray(flows.get("chp_kw", np.zeros(n)), float)
        q = np.asarray(flows.get("chp_heat_kw", np.zeros(n)), float)
        cost += h * (0.5 * chp.a_p * p * p + chp.b_p * p + 0.5 * chp.a_h * q * q + chp.b_h * q
                     + chp.c)
    return cost


def retail_eur(day_data, r_kw: np.ndarray) -> np.ndarray:
    """The retail bill of net retail power ``r_kw`` in each period of the day."""
    tr, h = day_data.tariff, day_data.horizon.period_h
    buy, sell = np.maximum(r_kw, 0.0), np.maximum(-r_kw, 0.0)
    cost = h * (tr.buy_eur_per_kwh * buy - tr.sell_eur_per_kwh * sell)
    cdl = getattr(day_data, "cdl_kw", None)
    if cdl is not None:
        factor = getattr(day_data, "cdl_factor", 1.0)
        cost += h * (factor - 1.0) * tr.buy_eur_per_kwh * np.maximum(buy - cdl, 0.0)
    return cost


def day_bill(day_data, net_kw: np.ndarray, settlement: SettlementBody | None,
             flows: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The cost components and their total (``cost_eur``) per period; ``flows``: the
    realised flows (for the producers' running cost)."""
    n = day_data.horizon.periods
    if settlement is None:  # no market this day: everything is retail
        position = traded = deviation = violation = np.zeros(n)
    else:
        position, traded, deviation, violation = (
            np.asarray(getattr(settlement, k), float)
            for k in ("position_kw", "traded_eur", "deviation_eur", "violation_eur"))
    parts = {"traded_eur": traded, "deviation_eur": deviation, "violation_eur": violation,
             "retail_eur": retail_eur(day_data, net_kw - position),
             "fixed_eur": np.full(n, day_data.tariff.fixed_eur_per_day / n),
             "fuel_eur": fuel_eur(day_data, flows or {})}
    parts["cost_eur"] = sum(parts.values())
    parts["market_kw"] = position
    return parts


def settled_flows(realised: dict[str, np.ndarray], clearing: ClearingBody | None,
                  planned_p2v_kw: np.ndarray | None) -> dict[str, np.ndarray]:
    """Result flows of the day: realised flows, the cleared P2V quantity (or net P2P
    purchase, ``p2p_kw``), and retail purchase and feed-in (``buy_kw``, ``sell_kw``): the
    realised net less the market's position, split by sign."""
    net = realised["net_kw"]
    flows = dict(realised)
    p2v = np.zeros_like(net)
    p2v_signed = np.zeros_like(net)
    if clearing is not None and "p2v" in clearing.quantities_kw:
        p2v = np.asarray(clearing.quantities_kw["p2v"], float)
        p2v_signed = np.asarray(clearing.position_kw, float)
    elif clearing is not None and (P2P in clearing.quantities_kw
                                   or POWER in clearing.quantities_kw):  # bilateral trades
        p2v_signed = np.asarray(clearing.position_kw, float)
        flows["p2p_kw"] = p2v_signed
    flows["p2v_kw"] = p2v
    flows["p2v_offered_kw"] = p2v if planned_p2v_kw is None else planned_p2v_kw
    flows["buy_kw"] = np.maximum(net - p2v_signed, 0.0)
    flows["sell_kw"] = np.maximum(p2v_signed - net, 0.0)
    return flows
