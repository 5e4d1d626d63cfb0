"""Network-constrained P2P trading by ADMM as a plug-in: peers trade bilaterally, the
network operator takes part with its network model; its centralized counterpart is the
same peers and network in one second-order cone program."""

from __future__ import annotations

from lemgrid.coordinator.mechanisms.admm import CORE
from lemgrid.scenarios.mechanisms.base import Mechanism, RunContext, lazy


def precheck(ctx: RunContext) -> dict:
    """The first day's centralized optimum before the market opens: limits no dispatch
    can meet are a one-line error here, not a market that cannot converge."""
    from lemgrid.grid.branchflow import NetworkInfeasible
    from lemgrid.scenarios.run.central_p2p import check_feasible
    from lemgrid.scenarios.run.errors import RunError
    first = len(ctx.days)  # the days before are finished (a resumed run)
    try:
        return {first: check_feasible(ctx.scenario, ctx.community, ctx.bus_of, first)}
    except NetworkInfeasible as exc:
        raise RunError(f"{ctx.scenario.name}: {exc}") from None


def results(ctx: RunContext) -> dict:
    """Iterations and trades; the gap to the centralized optimum and the network model's
    voltage gap to the AC power flow."""
    from lemgrid.scenarios.results.admm import write_admm
    from lemgrid.scenarios.run.central_p2p import central_days, relaxation_gap_pu
    s = ctx.scenario
    figures = write_admm(ctx.out, ctx.days,
                         central_days(s, ctx.community, ctx.days, ctx.bus_of, ctx.known))
    return figures | {"relaxation_gap_pu": relaxation_gap_pu(s, ctx.days, ctx.bus_of,
                                                             ctx.grid_days)}


def scenario_problems(scenario) -> list[str]:
    """The network operator's branch-flow model holds a single-voltage radial feeder."""
    if not scenario.market.network:
        return []
    from lemgrid.grid.branchflow import radial_network
    from lemgrid.grid.networks import load_network
    from lemgrid.scenarios.run.network import network_options

    g = scenario.grid
    try:
        radial_network(load_network(g.network, **network_options(scenario)), g.v_min_pu,
                       g.v_max_pu, g.max_loading_pct, name=g.network)
    except ValueError as exc:
        return [(f"market.network: the network operator's model needs a radial feeder; {exc}; "
                "allowed: a radial network (grid.network case33bw or feeder11), or "
                "market.network: false")]
    return []


def bench(*, scenario, runs, info, out) -> int:
    from lemgrid.scenarios.bench.admm import bench_admm
    return bench_admm(scenario, runs, info, out)


MECHANISM = Mechanism(
    core=CORE,
    description="bilateral P2P trades cleared by ADMM, with the network operator's limits",
    citation="Antunes, Soares, Morais (2024), P2P Markets to Support Trading in Smart Grids "
    "with Electric Vehicles (poster)",
    strategy="peer_consensus",
    precheck=precheck, results=results, tables=("admm_iterations", "trades"),
    sections=lazy("lemgrid.scenarios.results.admm:report_sections"),
    figures=lazy("lemgrid.scenarios.results.admm:figure_specs"),
    bench=bench, scenario_problems=scenario_problems,
    kpis={"gap_to_centralized_pct": ("market", "gap_to_centralized_pct"),
          "primal_residual": ("market", "primal_residual"),
          "dual_residual": ("market", "dual_residual")},
)
