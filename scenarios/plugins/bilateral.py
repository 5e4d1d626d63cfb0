"""Bilateral power and heat trades by consensus ADMM with the network operator's loss and
congestion penalties, as a plug-in; its centralized counterpart is one convex QP of every
peer and pair."""

from __future__ import annotations

from lemgrid.coordinator.mechanisms.bilateral import CORE
from lemgrid.scenarios.mechanisms.base import Mechanism, RunContext, lazy


def results(ctx: RunContext) -> dict:
    from lemgrid.scenarios.results.bilateral import write_bilateral
    from lemgrid.scenarios.run.central_bilateral import central_bilateral_days
    return write_bilateral(ctx.out, ctx.days, ctx.period_h,
                           central_bilateral_days(ctx.scenario, ctx.community, ctx.days,
                                                  ctx.bus_of))


def scenario_problems(scenario) -> list[str]:
    """Path penalties need paths: a radial feeder."""
    m = scenario.market
    if not m.path_penalties():
        return []
    from lemgrid.grid.networks import load_network
    from lemgrid.grid.paths import feeder_paths
    field = "loss_price" if m.loss_price > 0 else "congestion_price"
    network = scenario.grid.network  # its paths, whatever the lines' ampacities
    try:
        feeder_paths(load_network(network), network)
    except ValueError as exc:
        return [f"market.{field}: path penalties need a radial feeder; {exc}"]
    return []


MECHANISM = Mechanism(
    core=CORE,
    description="bilateral power and heat trades by consensus ADMM, with the network "
    "operator's loss and congestion penalties",
    citation="Vahidinasab, Nasimifar, Mohammadi-Ivatloo, Participation of Active Buildings in "
    "Peer-to-Peer and Local Transactive Energy Markets (book chapter 12)",
    strategy="commodity_consensus", commodities=frozenset({"power", "heat"}),
    results=results, tables=("bilateral_iterations", "trades"),
    sections=lazy("lemgrid.scenarios.results.bilateral:report_sections"),
    figures=lazy("lemgrid.scenarios.results.bilateral:figure_specs"),
    scenario_problems=scenario_problems,
    kpis={"gap_to_centralized_pct": ("market", "gap_to_centralized_pct"),
          "traded_kwh_heat": ("market", "traded_kwh_heat")},
)
