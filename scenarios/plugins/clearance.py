"""P2P trades matched by double auction and cleared by the network operator's DC limits,
as a plug-in; it also checks any other mechanism's trades (``market.network_check:
clearance``)."""

from __future__ import annotations

from lemgrid.coordinator.mechanisms.clearance import CORE
from lemgrid.coordinator.mechanisms.network_check import checked
from lemgrid.scenarios.mechanisms.base import Mechanism, RunContext, lazy


def results(ctx: RunContext) -> dict:
    from lemgrid.scenarios.results.clearance import write_clearance
    return write_clearance(ctx.out, ctx.days, ctx.period_h)


def bench(*, scenario, runs, info, out) -> int:
    from lemgrid.scenarios.bench.clearance import run_clearance_bench
    return run_clearance_bench(runs, info, out)


MECHANISM = Mechanism(
    core=CORE,
    description="P2P trades matched by double auction, cleared by the network operator's "
    "DC limits",
    citation="Vieira Fernandes, Christin, Kar (2024), Peer-to-Peer (P2P) Electricity Markets "
    "for Low Voltage Networks, SmartGridComm 2024, arXiv 2407.21403",
    strategy="quote",
    results=results, tables=("clearance", "trades"),
    sections=lazy("lemgrid.scenarios.results.clearance:report_sections"),
    figures=lazy("lemgrid.scenarios.results.clearance:figure_specs"),
    bench=bench,
    kpis={"accepted_kwh": ("market", "accepted_kwh"),
          "curtailed_kwh": ("market", "curtailed_kwh")},
    check=checked,
)
