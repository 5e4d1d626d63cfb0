"""The P2V market as a plug-in: prosumers sell PV surplus to EVs at a fixed price under
four coordination rules; its centralized counterpart is one MILP of all agents with the
P2V balance (``market.mode: centralized``)."""

from __future__ import annotations

from lemgrid.coordinator.mechanisms.p2v_rules import CORE
from lemgrid.scenarios.mechanisms.base import Mechanism


def run_centralized(*, scenario, start, actuals, progress, first_day, finished):
    from lemgrid.scenarios.run.inprocess import run_centralized as run
    return run(scenario, start, actuals, progress, first_day, finished)


MECHANISM = Mechanism(
    core=CORE,
    description="prosumers sell PV surplus to EVs at a fixed price, four coordination rules",
    citation="Faia, Soares, Fotouhi Ghazvini, Franco, Vale (2021), Frontiers in Energy "
    "Research 9:705066: a local electricity market of prosumers and EVs with "
    "prosumer-to-vehicle (P2V) trading",
    strategy="limits",
    run_centralized=run_centralized,
    kpis={"p2v_traded_kwh": ("market", "traded_kwh")},
    traded_label="P2V traded kWh",
)
