"""The scenario's network: limits, agents placed on buses, the in-process grid model."""

from __future__ import annotations

import numpy as np

from lemgrid.grid.mapping import assign_buses
from lemgrid.grid.networks import load_network
from lemgrid.grid.powerflow import GridLimits, GridModel, PeriodResult, trafo_rating_mva
from lemgrid.scenarios.community.builder import network_buses
from lemgrid.scenarios.run.errors import RunError
from lemgrid.scenarios.schema import Scenario

BUS_SEED_STREAM = 1_000_003  # the rng stream of bus assignment: [seed, BUS_SEED_STREAM]


def grid_limits(s: Scenario) -> GridLimits:
    return GridLimits(s.grid.v_min_pu, s.grid.v_max_pu, s.grid.max_loading_pct,
                      s.grid.reverse_flow_pct)


def network_options(s: Scenario) -> dict:
    return {} if s.grid.ampacity_ka is None else {"ampacity_ka": s.grid.ampacity_ka}


def place_agents(s: Scenario, community) -> dict[str, int]:
    net = load_network(s.grid.network, **network_options(s))
    try:
        return assign_buses([d.name for d in community], net,
                            np.random.default_rng([s.seed, BUS_SEED_STREAM]),
                            {**network_buses(s), **s.grid.buses})
    except ValueError as exc:
        raise RunError(f"{s.name}: grid.buses: {exc}") from None


def grid_model(s: Scenario, bus_of: dict[str, int]) -> GridModel:
    net = load_network(s.grid.network, **network_options(s))
    if not s.grid.keep_network_loads:
        net.load.drop(net.load.index, inplace=True)
    background = np.full(len(net.bus), s.grid.background_kw_per_bus) \
        if s.grid.background_kw_per_bus else None
    return GridModel(net, bus_of, background, s.grid.power_factor, grid_limits(s),
                     solver=s.grid.solver)


def run_grid_inprocess(s: Scenario, days, bus_of, on_period=None) -> list[list[PeriodResult]]:
    """One AC power flow per period of every settled day (realised power at each agent's
    connection); one list of period results per day."""
    if not days:
        return []
    model = grid_model(s, bus_of)
    out = []
    for result in days:
        p_kw = {n: sc.flows_kw["net_kw"] for n, sc in result.schedules.items()}
        periods = []
        for t in range(s.horizon.periods):
            periods.append(model.step(t, {n: float(v[t]) for n, v in p_kw.items()}))
            if on_period:
                on_period(t)
        out.append(periods)
    return out


def trafo_ratings(s: Scenario) -> np.ndarray:
    """Each transformer's rating (MVA, sn_mva × parallel) of the scenario's network."""
    return trafo_rating_mva(load_network(s.grid.network, **network_options(s)))


def n_buses(network: str) -> int:
    return len(load_network(network).bus)
