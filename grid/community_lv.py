"""The low-voltage community of Vieira Fernandes, Christin, Kar (SmartGridComm 2024, arXiv
2407.21403) and its day of hourly P2P clearances.

Placement, as the authors' code does it (github.com/d-vf/P2PEnergyTrading,
``implementation/P2P_24_hour_block_LP_DC_aprox_21072024.ipynb``): the leaves are the
degree-1 buses of ``pandapower.topology.create_nxgraph(net)`` in the graph's node order;
with h = ⌊leaves/2⌋, loads go on ``leaves[0::2][:h]`` and PV on ``leaves[1::2][:h]``.
Every load bus gets the same hourly profile (column ``Cluster_0`` of
``cluster_medians.csv``), every PV bus the same (``Cluster_1`` of
``cluster_medians_solar.csv``), kW → MW, times a scale factor K; power factor 0.99 (the
reactive power matters only to `community_net`, the DC clearance ignores it). On CIGRE LV
this puts loads on buses 12, 17, 19, 35, 37, 41 and PV on 16, 18, 22, 36, 40, 42; on
village_1 (whose 40 leaves end with the 20 kV ext_grid bus 0) loads on 20 buses and PV on
20, one of them bus 0.

Data: k-means cluster medians of NREL ResStock loads and Global Solar Atlas PV (3 kWp),
© 2024 Diana Vieira Fernandes, MIT licence (see the LICENSE next to the CSVs). This
module reads the CSVs from a directory it is given; nothing else touches files.

A day (`clear_day`): each hour, each bus's generation and load are matched by the double
auction of `grid.matching`, the base injections are the paper's residual baseline and
the DSO clears the trades with `grid.clearance`.
"""

import copy
import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.topology as top

from grid.clearance import (
    Clearance,
    ClearanceInfeasible,
    DcNetwork,
    clear_trades,
    residual_injection_mw,
)
from grid.matching import ASK_EUR_PER_KWH, BID_EUR_PER_KWH, MIN_TRADE_MW, match_buses

LOAD_CSV, LOAD_COLUMN = "cluster_medians.csv", "Cluster_0"
PV_CSV, PV_COLUMN = "cluster_medians_solar.csv", "Cluster_1"
POWER_FACTOR = 0.99
HOURS = 24
KW_PER_MW = 1000.0


@dataclass(frozen=True)
class Placement:
    load_buses: tuple[int, ...]
    pv_buses: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Profiles:
    """Hourly kW of one load bus and of one PV bus (hour 0..23)."""

    load_kw: np.ndarray
    pv_kw: np.ndarray


@dataclass(frozen=True)
class HourResult:
    """One hour of the community: totals in MW and the DSO's clearance (None if it failed).

    The authors' published columns are ``grid_import_mw`` ("Inverted Slack Power
    Adjustments"), ``grid_import_mw + accepted_mw`` ("Top Line of Stack (P2P trades)") and
    ``total_load_mw`` ("Total Load (MWh)").
    """

    hour: int
    total_load_mw: float
    total_pv_mw: float
    offered_mw: float
    accepted_mw: float
    grid_import_mw: float
    clearance: Clearance | None
    error: str | None = None


def leaf_buses(net: pp.pandapowerNet) -> list[int]:
    """Degree-1 buses of pandapower's graph of `net`, in the graph's node order."""
    graph = top.create_nxgraph(net)
    return [int(node) for node, degree in graph.degree() if degree == 1]


def place_community(net: pp.pandapowerNet) -> Placement:
    """Loads on every other leaf from the first, PV on the others, ⌊leaves/2⌋ of each."""
    leaves = leaf_buses(net)
    half = len(leaves) // 2
    return Placement(tuple(leaves[0::2][:half]), tuple(leaves[1::2][:half]))


def _column(path: Path, column: str) -> np.ndarray:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or column not in rows[0]:
        raise ValueError(f"{path} has no column {column!r}")
    hours = [int(r["Hour"]) for r in rows]
    if hours != list(range(HOURS)):
        raise ValueError(f"{path} must list hours 0..{HOURS - 1} in order, got {hours}")
    return np.array([float(r[column]) for r in rows])


def read_profiles(data_dir: str | Path, load_column: str = LOAD_COLUMN,
                  pv_column: str = PV_COLUMN) -> Profiles:
    """The authors' hourly profiles (kW) from the directory holding their CSVs."""
    data_dir = Path(data_dir)
    return Profiles(_column(data_dir / LOAD_CSV, load_column), _column(data_dir / PV_CSV,
                                                                       pv_column))


def hourly_mw(placement: Placement, profiles: Profiles, hour: int,
              scale: float = 1.0) -> tuple[dict[int, float], dict[int, float]]:
    """(generation, load) per bus in MW for one hour, every profile times `scale`."""
    pv = scale * float(profiles.pv_kw[hour]) / KW_PER_MW
    load = scale * float(profiles.load_kw[hour]) / KW_PER_MW
    return ({bus: pv for bus in placement.pv_buses},
            {bus: load for bus in placement.load_buses})


def community_net(net: pp.pandapowerNet, placement: Placement, profiles: Profiles, hour: int,
                  scale: float = 1.0) -> pp.pandapowerNet:
    """A copy of `net` whose loads and static generators are the community's for `hour`."""
    out = copy.deepcopy(net)
    out.load.drop(out.load.index, inplace=True)
    out.sgen.drop(out.sgen.index, inplace=True)
    q_per_p = math.tan(math.acos(POWER_FACTOR))
    gen, load = hourly_mw(placement, profiles, hour, scale)
    for bus, p in load.items():
        pp.create_load(out, bus, p_mw=p, q_mvar=p * q_per_p)
    for bus, p in gen.items():
        pp.create_sgen(out, bus, p_mw=p, q_mvar=p * q_per_p)
    return out


def clear_hour(network: DcNetwork, placement: Placement, profiles: Profiles, hour: int,
               scale: float = 1.0, bid_eur_per_kwh: float = BID_EUR_PER_KWH,
               ask_eur_per_kwh: float = ASK_EUR_PER_KWH, min_trade_mw: float = MIN_TRADE_MW,
               one_seller_per_buyer: bool = False) -> HourResult:
    """Match, then clear, one hour; ClearanceInfeasible names the hour and the branch."""
    gen, load = hourly_mw(placement, profiles, hour, scale)
    trades = match_buses(gen, load, bid_eur_per_kwh, ask_eur_per_kwh, min_trade_mw,
                         one_seller_per_buyer)
    base = residual_injection_mw(gen, load, trades)
    clearance = clear_trades(network, trades, base, label=f"hour {hour}")
    return HourResult(hour, sum(load.values()), sum(gen.values()), clearance.offered_mw,
                      clearance.accepted_total_mw, clearance.grid_import_mw, clearance)


def clear_day(network: DcNetwork, placement: Placement, profiles: Profiles,
              scale: float = 1.0, strict: bool = True, **options) -> list[HourResult]:
    """`clear_hour` for hours 0..23 (`options` go to it). With strict=False an infeasible
    hour is recorded (clearance None, error set) and the day goes on."""
    out = []
    for hour in range(HOURS):
        try:
            out.append(clear_hour(network, placement, profiles, hour, scale, **options))
        except ClearanceInfeasible as err:
            if strict:
                raise
            gen, load = hourly_mw(placement, profiles, hour, scale)
            nan = float("nan")
            out.append(HourResult(hour, sum(load.values()), sum(gen.values()), nan, nan, nan,
                                  None, str(err)))
    return out
