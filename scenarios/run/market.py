"""The scenario's market: its mechanism and that mechanism's parameters (registered by
mechanism name), as the in-process runtime and the coordinator process both use them."""

from __future__ import annotations

from coordinator.mechanisms import Mechanism, get_mechanism
from coordinator.mechanisms.locality import LocalityParams
from coordinator.mechanisms.p2v_rules import P2VParams
from scenarios.community.builder import grid_prices, p2v_price
from scenarios.schema import Scenario


def _p2v(s: Scenario, community) -> P2VParams:
    return P2VParams(tolerance_kw=s.market.tolerance_kw, max_rounds=s.market.max_rounds,
                     price_eur_per_kwh=p2v_price(s))


def _locality(s: Scenario, community) -> LocalityParams:
    """The grid's prices (the agents' retail prices) and the locality's rules."""
    buy, sell = grid_prices(s)
    m = s.market
    return LocalityParams(grid_buy_eur_per_kwh=buy.tolist(), grid_sell_eur_per_kwh=sell.tolist(),
                          cdl_factor=m.cdl_factor, penalty_rate=m.penalty_rate,
                          demand_limit=m.demand_limit, injection_limit=m.pil,
                          price_rounds=m.price_rounds, tolerance_kw=m.tolerance_kw,
                          damping=m.damping)


PARAMS = {"p2v_rules": _p2v, "amc": _locality, "gdrmc": _locality, "p2g": _locality}


def mechanism_setup(s: Scenario, community) -> tuple[Mechanism, object]:
    return get_mechanism(s.market.mechanism), PARAMS[s.market.mechanism](s, community)
