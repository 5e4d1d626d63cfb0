"""The scenario's market: its mechanism's plug-in, its core (checked by another
mechanism where ``market.network_check`` says so) and its parameters with the run's public
data, as the in-process runtime and the coordinator process both use them; and the
market's own agents (the network operator where it takes part)."""

from __future__ import annotations

import numpy as np

from lemgrid.agents.admm_peer import connection_limits
from lemgrid.agents.data import Horizon
from lemgrid.agents.operator import OperatorData
from lemgrid.coordinator.mechanisms.base import MarketCore, MarketData, MarketParams
from lemgrid.grid.networks import load_network
from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.community.builder import grid_prices, horizon_of, p2v_price
from lemgrid.scenarios.mechanisms import Mechanism
from lemgrid.scenarios.run.network import network_options
from lemgrid.scenarios.schema import Scenario

OPERATOR = "operator"  # the network operator's agent name


def plugin(s: Scenario) -> Mechanism:
    """The scenario's mechanism."""
    return mechanisms.get(s.market.mechanism)


def check_plugin(s: Scenario) -> Mechanism | None:
    """The mechanism that checks the market's trades against the network, if any."""
    return None if s.market.network_check == "none" else mechanisms.get(s.market.network_check)


def run_plugins(s: Scenario) -> list[Mechanism]:
    """The plug-ins of the run: its mechanism, then its network check."""
    return mechanisms.of_market(s.market.mechanism, s.market.network_check)


def market_params(s: Scenario) -> MarketParams:
    """The scenario's market parameters with the run's public data: the retail prices of
    every period and the P2V price."""
    buy, sell = grid_prices(s)
    data = MarketData(tuple(buy.tolist()), tuple(sell.tolist()), p2v_price(s))
    return s.market.with_data(data)


def mechanism_setup(s: Scenario) -> tuple[MarketCore, MarketParams]:
    """The market's core (checked where ``market.network_check`` says so) and its
    parameters."""
    core, check = plugin(s).core, check_plugin(s)
    return (core if check is None else check.check(core)), market_params(s)


def check_wrapper(s: Scenario):
    """The coordinator-side wrapper of the network check, or None."""
    check = check_plugin(s)
    return None if check is None else check.check


def needs_operator(s: Scenario) -> bool:
    return s.market.operator_takes_part()


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
    return OperatorData(name=OPERATOR, horizon=h, network=g.network,
                        network_options=network_options(s), v_min_pu=g.v_min_pu + margin,
                        v_max_pu=g.v_max_pu - margin, max_loading_pct=g.max_loading_pct,
                        buses=dict(bus_of), connections_kw=connections, background_kw=p.tolist(),
                        background_kvar=q.tolist(), power_factor=g.power_factor,
                        loss_price_eur_per_kwh=grid_prices(s)[0].tolist(),
                        model=s.market.network_model, reverse_flow_pct=g.reverse_flow_pct)
