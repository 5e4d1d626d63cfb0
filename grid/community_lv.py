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

The day of hourly clearances (matching, then the DSO's LP) is
`scenarios.bench.clearance.clear_day`; in a run, the market mechanism ``clearance``.
"""

import copy
import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.topology as top

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


def with_injections(net: pp.pandapowerNet, load_mw: Mapping[int, float],
                    gen_mw: Mapping[int, float]) -> pp.pandapowerNet:
    """A copy of `net` whose only loads and static generators are `load_mw` and `gen_mw`
    per bus, at the community's power factor."""
    out = copy.deepcopy(net)
    out.load.drop(out.load.index, inplace=True)
    out.sgen.drop(out.sgen.index, inplace=True)
    q_per_p = math.tan(math.acos(POWER_FACTOR))
    for bus, p in load_mw.items():
        pp.create_load(out, bus, p_mw=p, q_mvar=p * q_per_p)
    for bus, p in gen_mw.items():
        pp.create_sgen(out, bus, p_mw=p, q_mvar=p * q_per_p)
    return out


def community_net(net: pp.pandapowerNet, placement: Placement, profiles: Profiles, hour: int,
                  scale: float = 1.0) -> pp.pandapowerNet:
    """A copy of `net` whose loads and static generators are the community's for `hour`."""
    gen, load = hourly_mw(placement, profiles, hour, scale)
    return with_injections(net, load, gen)
