"""The scenario's market: its mechanism and that mechanism's parameters (registered by
mechanism name), as the in-process runtime and the coordinator process both use them;
and the market's own agents (the network operator where the mechanism has one)."""

from __future__ import annotations

import numpy as np

from agents.admm_peer import connection_limits
from agents.data import Horizon
from agents.operator import OperatorData
from coordinator.mechanisms import Mechanism, get_mechanism
from coordinator.mechanisms.admm import ADMMParams
from coordinator.mechanisms.bilateral import BilateralParams
from coordinator.mechanisms.clearance import ClearanceParams
from coordinator.mechanisms.locality import LocalityParams
from coordinator.mechanisms.p2v_rules import P2VParams
from grid.networks import load_network
from scenarios.community.builder import grid_prices, horizon_of, p2v_price
from scenarios.run.network import network_options
from scenarios.schema import Scenario

OPERATOR = "operator"  # the network operator's agent name
DEFAULT_ROUNDS = {"p2v_rules": 5, "admm": 500, "bilateral": 2000}


def max_rounds(s: Scenario) -> int:
    """The scenario's round bound, or its mechanism's default."""
    return s.market.max_rounds or DEFAULT_ROUNDS.get(s.market.mechanism, 5)


def _p2v(s: Scenario, community) -> P2VParams:
    return P2VParams(tolerance_kw=s.market.tolerance_kw, max_rounds=max_rounds(s),
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


def _admm(s: Scenario, community) -> ADMMParams:
    """The first round's trade prices are the midpoint of the public retail buy and
    feed-in prices."""
    buy, sell = grid_prices(s)
    m = s.market
    return ADMMParams(rho0=m.rho0, mu=m.balancing_mu, tau=m.balancing_tau,
                      residual_balancing=m.residual_balancing, tolerance=m.residual_tolerance,
                      max_rounds=max_rounds(s), network=m.network,
                      price0_eur_per_kwh=((buy + sell) / 2).tolist())


def _clearance(s: Scenario, community) -> ClearanceParams:
    m = s.market
    return ClearanceParams(bid_eur_per_kwh=m.bid_eur_per_kwh, ask_eur_per_kwh=m.ask_eur_per_kwh,
                           min_trade_kw=m.min_trade_kw, network=m.network)


def _bilateral(s: Scenario, community) -> BilateralParams:
    m = s.market
    return BilateralParams(rho0=m.rho0, mu=m.balancing_mu, tau=m.balancing_tau,
                           residual_balancing=m.residual_balancing,
                           tolerance=m.residual_tolerance, max_rounds=max_rounds(s),
                           loss_price=m.loss_price, congestion_price=m.congestion_price,
                           congestion_rounds=m.congestion_rounds, pool=m.pool,
                           relaxation=m.relaxation)


PARAMS = {"p2v_rules": _p2v, "amc": _locality, "gdrmc": _locality, "p2g": _locality,
          "admm": _admm, "clearance": _clearance, "bilateral": _bilateral}
NETWORK_MECHANISMS = ("admm", "clearance")  # with a network operator unless market.network


def mechanism_setup(s: Scenario, community) -> tuple[Mechanism, object]:
    """The mechanism (its trades cleared by the network operator where
    ``market.network_check`` says so) and its parameters."""
    return (get_mechanism(s.market.mechanism, s.market.network_check),
            PARAMS[s.market.mechanism](s, community))


def needs_operator(s: Scenario) -> bool:
    m = s.market
    return ((m.mechanism in NETWORK_MECHANISMS and m.network)
            or (m.mechanism == "bilateral" and (m.loss_price > 0 or m.congestion_price > 0))
            or m.network_check != "none")


def operator_data(s: Scenario, bus_of: dict[str, int], community) -> OperatorData:
    """The network operator: the scenario's network and limits (voltages kept
    ``market.network_margin_pu`` inside the grid's band), the agents' buses, the
    background load the grid simulator adds (the network's own loads where kept, with
    their reactive power; a flat load per bus at the grid's power factor) and the loss
    price (the retail buy price)."""
    g = s.grid
    net = load_network(g.network, **network_options(s))
    p = np.zeros(len(net.bus))
    q = np.zeros(len(net.bus))
    pos = {bus: i for i, bus in enumerate(net.bus.index)}
    if g.keep_network_loads:
        for _, load in net.load[net.load.in_service].iterrows():
            p[pos[load.bus]] += 1000 * load.p_mw * load.scaling
            q[pos[load.bus]] += 1000 * load.q_mvar * load.scaling
    if g.background_kw_per_bus:
        tan_phi = float(np.tan(np.arccos(g.power_factor)))
        p += g.background_kw_per_bus
        q += g.background_kw_per_bus * tan_phi
    h: Horizon = horizon_of(s)
    connections = {}
    for d in community:
        imp, exp = connection_limits(d)
        connections[d.name] = [float(imp.max()), float(exp.max())]
    margin = s.market.network_margin_pu
    return OperatorData(OPERATOR, h, g.network, network_options(s), g.v_min_pu + margin,
                        g.v_max_pu - margin,
                        g.max_loading_pct, dict(bus_of), connections, p.tolist(), q.tolist(),
                        g.power_factor, grid_prices(s)[0].tolist(), s.market.network_model,
                        g.reverse_flow_pct)
