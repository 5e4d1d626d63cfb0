"""Paths between buses of a radial feeder: the lines a bilateral trade crosses and their
series resistance (docs/mechanisms/bilateral.md; Vahidinasab et al., eq. 12.11:
R_ij = Σ_{l ∈ Λ_ij} r_l).

Pure: pandapower in, numbers out. A trade from bus i to bus j is taken to flow along the
unique path between them on the radial feeder (``grid.branchflow.radial_network`` reads
the feeder and refuses loops, islands and transformers, naming them). R_ij is in Ω (the
lines' r_ohm_per_km × length_km / parallel); Λ_ij are pandapower line indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandapower as pp

from lemgrid.grid.branchflow import radial_network


@dataclass(frozen=True, eq=False)
class FeederPaths:
    """Every bus's line to its parent and the lines' resistance, to walk paths."""

    name: str
    parent_line: dict[int, int]  # bus -> the line towards the root (none for the root)
    parent_bus: dict[int, int]
    depth: dict[int, int]
    r_ohm: dict[int, float]  # line -> series resistance of the whole line

    def lines(self, a: int, b: int) -> tuple[int, ...]:
        """The lines between buses a and b (sorted), empty for a == b."""
        for bus in (a, b):
            if bus not in self.depth:
                raise ValueError(f"network {self.name} has no in-service bus {bus}")
        up_a, up_b = [], []
        while self.depth[a] > self.depth[b]:
            up_a.append(self.parent_line[a])
            a = self.parent_bus[a]
        while self.depth[b] > self.depth[a]:
            up_b.append(self.parent_line[b])
            b = self.parent_bus[b]
        while a != b:
            up_a.append(self.parent_line[a])
            up_b.append(self.parent_line[b])
            a, b = self.parent_bus[a], self.parent_bus[b]
        return tuple(sorted(up_a + up_b))

    def resistance_ohm(self, a: int, b: int) -> float:
        """R_ab: the series resistance of the path from bus a to bus b (Ω)."""
        return float(sum(self.r_ohm[line] for line in self.lines(a, b)))


def root_bus(net: pp.pandapowerNet) -> int:
    """The bus of the network's (first in-service) external grid: where retail paths end."""
    return int(net.ext_grid.loc[net.ext_grid["in_service"], "bus"].iloc[0])


def feeder_paths(net: pp.pandapowerNet, name: str | None = None) -> FeederPaths:
    """The paths of a radial feeder; ValueError (naming the network and why) otherwise."""
    name = name or net.name or "net"
    feeder = radial_network(net, 0.5, 1.5, name=name)  # the voltage band plays no part
    buses = [int(b) for b in feeder.buses]
    parent_line, parent_bus = {}, {}
    for k, line in enumerate(feeder.lines):
        child = buses[int(feeder.to_pos[k])]
        parent_line[child] = int(line)
        parent_bus[child] = buses[int(feeder.from_pos[k])]
    depth = {buses[feeder.root]: 0}
    pending = [b for b in buses if b not in depth]
    while pending:  # the parents come first on a tree; a few sweeps settle every bus
        for bus in pending:
            if parent_bus[bus] in depth:
                depth[bus] = depth[parent_bus[bus]] + 1
        pending = [b for b in pending if b not in depth]
    lines = net.line.loc[list(parent_line.values())]
    r = (lines["r_ohm_per_km"].to_numpy(dtype=float) * lines["length_km"].to_numpy(dtype=float)
         / lines["parallel"].to_numpy(dtype=float))
    return FeederPaths(name, parent_line, parent_bus, depth,
                       dict(zip((int(i) for i in lines.index), (float(v) for v in r))))


def path_matrix(paths: FeederPaths, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, list]:
    """(R per pair in Ω, the lines of each pair's path) for (bus, bus) pairs."""
    found = [paths.lines(a, b) for a, b in pairs]
    return np.array([sum(paths.r_ohm[line] for line in ls) for ls in found], float), found


def path_penalties(paths: FeederPaths, pairs: list[tuple[int, int]], peer_buses: list[int],
                   root_bus: int, alpha: np.ndarray, beta: np.ndarray,
                   congested: list[set[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The penalties of eqs. 12.12 and 12.16 per kWh, period by period (€/kWh):
    α_t·R_ij + β_t·θ_ij,t for every bus pair (pairs × periods) and for every peer's path to
    the root bus, its retail energy (peers × periods); θ_ij,t = 1 where the path crosses a
    line in ``congested[t]``."""
    periods = len(alpha)
    out = []
    for group in (pairs, [(bus, root_bus) for bus in peer_buses]):
        r, lines = path_matrix(paths, group)
        theta = np.array([[1.0 if congested[t] & set(ls) else 0.0 for t in range(periods)]
                          for ls in lines]).reshape(len(group), periods)
        out.append(np.outer(r, alpha) + theta * beta)
    return out[0], out[1]
