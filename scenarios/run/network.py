"""The scenario's network: limits, agents placed on buses, the in-process grid model."""

from __future__ import annotations

import numpy as np

from agents.data import net_load_kw
from grid.mapping import assign_buses
from grid.networks import load_network
from grid.powerflow import GridLimits, GridModel, PeriodResult
from scenarios.run.errors import RunError
from scenarios.schema import Scenario

BUS_SEED_STREAM = 1_000_003  # the rng stream of bus assignment: [seed, BUS_SEED_STREAM]


def grid_limits(s: Scenario) -> GridLimits:
    return GridLimits(s.grid.v_min_pu, s.grid.v_max_pu, s.grid.max_loading_pct)


def network_options(s: Scenario) -> dict:
    return {} if s.grid.ampacity_ka is None else {"ampacity_ka": s.grid.ampacity_ka}


def place_agents(s: Scenario, community) -> dict[str, int]:
    net = load_network(s.grid.network, **network_options(s))
    try:
        return assign_buses([d.name for d in community], net,
                            np.random.default_rng([s.seed, BUS_SEED_STREAM]), s.grid.buses)
    except ValueError as exc:
        raise RunError(f"{s.name}: grid.buses: {exc}") from None


def grid_model(s: Scenario, bus_of: dict[str, int]) -> GridModel:
    net = load_network(s.grid.network, **network_options(s))
    if not s.grid.keep_network_loads:
        net.load.drop(net.load.index, inplace=True)
    background = np.full(len(net.bus), s.grid.background_kw_per_bus) \
        if s.grid.background_kw_per_bus else None
    return GridModel(net, bus_of, background, s.grid.power_factor, grid_limits(s))


def run_grid_inprocess(s: Scenario, result, bus_of, on_period=None) -> list[PeriodResult]:
    """One AC power flow per period of the settled schedules."""
    model = grid_model(s, bus_of)
    p_kw = {n: net_load_kw(sc.kind, sc.flows_kw) for n, sc in result.schedules.items()}
    periods = []
    for t in range(s.horizon.periods):
        periods.append(model.step(t, {n: float(v[t]) for n, v in p_kw.items()}))
        if on_period:
            on_period(t)
    return periods


def n_buses(network: str) -> int:
    return len(load_network(network).bus)
