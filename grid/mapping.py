"""Agent-to-bus assignment: explicit where the scenario says, an even seeded spread elsewhere."""

import heapq

import numpy as np
import pandapower as pp


def load_buses(net: pp.pandapowerNet) -> list[int]:
    """Buses that may host agents: in service, not a slack (ext_grid) bus, and at the
    network's lowest nominal voltage (so CIGRE LV's 20 kV MV/LV-transformer buses are
    left out; single-voltage feeders keep every non-slack bus)."""
    buses = net.bus[net.bus["in_service"]]
    buses = buses[buses["vn_kv"] == buses["vn_kv"].min()]
    slack = set(net.ext_grid.loc[net.ext_grid["in_service"], "bus"])
    return [int(bus) for bus in buses.index if bus not in slack]


def _check_explicit(agent_names: list[str], net: pp.pandapowerNet,
                    explicit: dict[str, int]) -> dict[str, int]:
    known = set(agent_names)
    checked = {}
    for agent, bus in explicit.items():
        if agent not in known:
            raise ValueError(f"bus mapping names agent {agent!r}, which is not in the scenario")
        if bus not in net.bus.index:
            raise ValueError(f"agent {agent!r} is mapped to bus {bus}, which the network "
                             f"does not have (buses {min(net.bus.index)}-{max(net.bus.index)})")
        checked[agent] = int(bus)
    return checked


def assign_buses(agent_names: list[str], net: pp.pandapowerNet, rng: np.random.Generator,
                 explicit: dict[str, int] | None = None) -> dict[str, int]:
    """Map every agent to a bus.

    Agents in `explicit` keep their bus (which must exist). The others, in the order
    given, go one by one to the load bus (see `load_buses`) holding the fewest agents so
    far, explicit ones included; ties are broken by a seeded permutation of the load buses
    drawn from `rng`. Hence bus counts differ by at most one where the explicit mapping
    allows, and the same rng seed gives the same mapping.
    """
    if len(set(agent_names)) != len(agent_names):
        raise ValueError("agent names must be unique")
    bus_of = _check_explicit(agent_names, net, explicit or {})
    candidates = load_buses(net)
    if not candidates:
        raise ValueError("the network has no load bus to place agents on")
    order = [int(bus) for bus in rng.permutation(candidates)]
    counts = {bus: 0 for bus in order}
    for bus in bus_of.values():
        if bus in counts:
            counts[bus] += 1
    heap = [(counts[bus], rank, bus) for rank, bus in enumerate(order)]
    heapq.heapify(heap)
    for agent in agent_names:
        if agent in bus_of:
            continue
        count, rank, bus = heapq.heappop(heap)
        bus_of[agent] = bus
        heapq.heappush(heap, (count + 1, rank, bus))
    return {agent: bus_of[agent] for agent in agent_names}
