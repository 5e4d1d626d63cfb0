"""DSO clearance of peer-to-peer trades on a low-voltage network (a DC power-flow LP).

Vieira Fernandes, Christin, Kar, "Peer-to-Peer (P2P) Electricity Markets for Low Voltage
Networks", SmartGridComm 2024, arXiv 2407.21403; authors' code github.com/d-vf/
P2PEnergyTrading. Pure: numpy, scipy, highspy and pandapower only (no files, no runtime).

The DSO receives trades t = (s_t, d_t, q_t) and accepts a fraction x_t of each:

    max Σ_t q_t·x_t   s.t.  0 ≤ x_t ≤ 1,
    p_i(x) = p⁰_i + Σ_{t: s_t = i} q_t·x_t − Σ_{t: d_t = i} q_t·x_t = Σ_j b_ij (θ_i − θ_j)
                                                   for every node i but the slack's,
    |b_k (θ_f − θ_t)| ≤ (V_f·V_t / X_k)·sin 30°      for every line k,
    −r_k·sn_mva_k ≤ b_k (θ_hv − θ_lv) ≤ sn_mva_k       for every transformer k,
    |θ_f − θ_t| ≤ π/6                                 for every branch, θ_slack = 0.

r_k ∈ [0, 1] is the share of its rating a transformer may feed back from its LV to its HV
side (a DSO's reverse-power limit; 1, the paper's symmetric capacity, by default).

p⁰ is the base (background) injection: the paper's "baseline without P2P", which the
authors' code builds (``correct_baseline``) as each bus's generation minus what it sold
and its load minus what it bought, each floored at zero (`residual_injection_mw`). A
trade therefore adds q·x at its seller and withdraws q·x at its buyer on top of p⁰; the
slack (the ext_grid) takes the mismatch, so the grid import −Σ_i p_i(x) = −Σ_i p⁰_i does
not depend on x.

Units and the DC model. Powers in MW, angles in rad. V is the nominal line-to-line
voltage of the bus in kV (|V| = 1 pu, as the authors' flat DC power flow gives) and X_k the
series reactance of the whole line in Ω (x_ohm_per_km·length_km / parallel), so
b_k = V_f·V_t / X_k is in MW/rad and V_f·V_t / X_k·sin 30° in MW. A transformer has
b_k = sn_mva·parallel / x_k with x_k = √(vk² − vkr²)/100 its per-unit reactance on its own
rating (tap neutral, phase shift ignored: on a radial network the shift moves angles,
not flows). Since the line capacity is b_k·sin 30° = 0.5·b_k and the angle limit
b_k·π/6 = 0.524·b_k, on lines the capacity always binds first; the angle limit binds
only on a transformer whose vk exceeds ≈ 52 %. The authors' code differs here: it takes
x_ohm_per_km without the length (and r as well, b = x/(r² + x²) per km), both in the
flow and in the capacity.

Topology. Closed bus-bus switches merge their buses into one node, open ones keep them
apart; an open line or transformer switch takes that branch out, as do in_service flags
(a branch whose ends a closed switch merges carries nothing in DC and is dropped). Every
in-service bus must reach the ext_grid (else ValueError naming the buses). The
authors' code ignores bus-bus switches, which on CIGRE LV leaves the ext_grid bus 0 cut
off from the three MV buses 1, 20 and 23.

Build → solve → extract: `define_clearance` writes the LP (θ of every non-slack node and
y_t = q_t·x_t in MW as columns, so no tiny q_t enters the matrix), `solve_clearance`
runs HiGHS and checks the status, `extract_clearance` reads x, flows and the binding
limits. `clear_trades` does the three. If the LP is infeasible the base injections alone
(every x_t = 0) already overload a branch; `ClearanceInfeasible` names it.
"""

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import highspy
import numpy as np
import pandapower as pp
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components

ANGLE_LIMIT_RAD = math.pi / 6  # |θ_i − θ_j| ≤ 30°
CAPACITY_SIN = math.sin(math.pi / 6)  # the paper's line capacity (V_i·V_j / x_ij)·sin 30°
BINDING_TOL_MW = 1e-7  # a branch within this of its limit binds (HiGHS feasibility 1e-7)
UNSUPPORTED = {"trafo3w": "three-winding transformers", "impedance": "impedance elements",
               "dcline": "DC lines"}
OPTIMAL = highspy.HighsModelStatus.kOptimal
INFEASIBLE = (highspy.HighsModelStatus.kInfeasible,
              highspy.HighsModelStatus.kUnboundedOrInfeasible)


@dataclass(frozen=True)
class Trade:
    """t = (s, d, q): the seller's bus s delivers q MW to the buyer's bus d (a market's
    proposal; its price does not enter the clearance)."""

    seller_bus: int
    buyer_bus: int
    q_mw: float
    price_eur_per_kwh: float = 0.0


class ClearanceInfeasible(ValueError):
    """No acceptance of trades meets the limits: the base injections overload a branch."""


class ClearanceSolveError(RuntimeError):
    """HiGHS stopped without an optimum or a proof of infeasibility."""


@dataclass(frozen=True)
class Branch:
    """A line or transformer between two nodes; flow is positive from_bus → to_bus."""

    kind: str  # "line" or "transformer"
    index: int  # pandapower line / trafo index
    from_bus: int  # line from_bus, trafo hv_bus
    to_bus: int  # line to_bus, trafo lv_bus
    b_mw_per_rad: float
    capacity_mw: float
    reverse_mw: float = math.inf  # the most it may carry to_bus → from_bus, if tighter

    @property
    def limit_mw(self) -> float:
        """The tighter of the capacity and the angle limit, as a flow."""
        return min(self.capacity_mw, self.b_mw_per_rad * ANGLE_LIMIT_RAD)

    @property
    def lower_mw(self) -> float:
        """The most negative flow allowed (to_bus → from_bus: a transformer's reverse flow)."""
        return -min(self.limit_mw, self.reverse_mw)

    def over_mw(self, flow_mw: float) -> float:
        """How far ``flow_mw`` lies outside [lower_mw, limit_mw] (≤ 0 inside)."""
        return max(flow_mw - self.limit_mw, self.lower_mw - flow_mw)

    def limit_kind(self, flow_mw: float) -> str:
        """The limit a flow in this direction meets: "reverse" (a transformer fed back
        beyond its reverse limit), "angle" or the branch's kind (its capacity)."""
        if flow_mw < 0 and self.reverse_mw < self.limit_mw:
            return "reverse"
        angle = self.b_mw_per_rad * ANGLE_LIMIT_RAD
        return "angle" if angle < self.capacity_mw else self.kind

    def limit_for(self, flow_mw: float) -> float:
        return -self.lower_mw if flow_mw < 0 else self.limit_mw

    @property
    def label(self) -> str:
        return f"{self.kind} {self.index} (bus {self.from_bus}-{self.to_bus})"


@dataclass(frozen=True, eq=False)
class DcNetwork:
    """Nodes (buses merged by closed bus-bus switches), the slack node and the branches."""

    name: str
    bus_node: dict[int, int]  # pandapower bus → node
    node_buses: tuple[tuple[int, ...], ...]  # node → its buses
    slack: int
    branches: tuple[Branch, ...]
    from_node: np.ndarray
    to_node: np.ndarray

    @property
    def n_nodes(self) -> int:
        return len(self.node_buses)

    def node(self, bus: int, what: str = "bus") -> int:
        if bus not in self.bus_node:
            raise ValueError(f"network {self.name} has no in-service {what} {bus}")
        return self.bus_node[bus]


@dataclass(frozen=True)
class Binding:
    """A limit the clearance meets: kind "line", "transformer" (capacity), "reverse" (a
    transformer's reverse-power limit) or "angle"."""

    kind: str
    branch: Branch
    flow_mw: float
    limit_mw: float
    shadow_mw_per_mw: float  # accepted MW gained per MW of extra limit

    @property
    def label(self) -> str:
        return f"{self.kind} limit of {self.branch.label}"


@dataclass(frozen=True, eq=False)
class Clearance:
    """The DSO's answer for one period; arrays are per trade or per branch."""

    trades: tuple[Trade, ...]
    x: np.ndarray  # accepted fraction of each trade
    accepted_mw: np.ndarray  # q_t·x_t
    flow_mw: np.ndarray  # per branch of the network, from_bus → to_bus
    theta_rad: np.ndarray  # per node
    grid_import_mw: float  # from the ext_grid into the network
    binding: tuple[Binding, ...]
    solve_time_s: float

    @property
    def offered_mw(self) -> float:
        return float(sum(t.q_mw for t in self.trades))

    @property
    def accepted_total_mw(self) -> float:
        return float(self.accepted_mw.sum())

    @property
    def curtailed_mw(self) -> float:
        return self.offered_mw - self.accepted_total_mw


@dataclass(eq=False)
class ClearanceLP:
    """A defined, not yet solved, clearance LP held in HiGHS."""

    network: DcNetwork
    trades: tuple[Trade, ...]
    p0_mw: np.ndarray  # base injection per node
    highs: highspy.Highs
    label: str


def dc_network(net: pp.pandapowerNet, name: str | None = None,
               reverse_flow_pct: float = 100.0) -> DcNetwork:
    """The switch-aware DC model of a pandapower net (module docstring, "Topology");
    transformers may feed back ``reverse_flow_pct`` % of their rating (r_k)."""
    if not 0 <= reverse_flow_pct <= 100:
        raise ValueError(f"reverse_flow_pct must be in [0, 100], got {reverse_flow_pct}")
    name = name or net.name or "net"
    for table, what in UNSUPPORTED.items():
        if table in net and len(net[table]) and net[table]["in_service"].astype(bool).any():
            raise ValueError(f"network {name} has {what}; the clearance model has lines "
                             f"and two-winding transformers only")
    buses = [int(b) for b in net.bus.index[net.bus["in_service"].astype(bool)]]
    parent = {b: b for b in buses}
    for bus, other in _closed_bus_switches(net, parent):
        ra, rb = _root(parent, bus), _root(parent, other)
        parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for bus in buses:
        groups.setdefault(_root(parent, bus), []).append(bus)
    node_buses = tuple(tuple(groups[r]) for r in sorted(groups))
    bus_node = {b: k for k, group in enumerate(node_buses) for b in group}
    branches = [br for br in _lines(net, bus_node) + _trafos(net, bus_node, reverse_flow_pct)
                if bus_node[br.from_bus] != bus_node[br.to_bus]]
    slack = _slack(net, name, bus_node)
    network = DcNetwork(name, bus_node, node_buses, slack, tuple(branches),
                        np.array([bus_node[br.from_bus] for br in branches], dtype=int),
                        np.array([bus_node[br.to_bus] for br in branches], dtype=int))
    _check_connected(network)
    return network


def _root(parent: dict[int, int], bus: int) -> int:
    while parent[bus] != bus:
        bus = parent[bus]
    return bus


def _closed_bus_switches(net: pp.pandapowerNet, parent: dict[int, int]):
    if "switch" not in net or not len(net.switch):
        return []
    sw = net.switch[(net.switch["et"] == "b") & net.switch["closed"].astype(bool)]
    return [(int(a), int(b)) for a, b in zip(sw["bus"], sw["element"])
            if int(a) in parent and int(b) in parent]


def _opened(net: pp.pandapowerNet, et: str) -> set[int]:
    if "switch" not in net or not len(net.switch):
        return set()
    sw = net.switch[(net.switch["et"] == et) & ~net.switch["closed"].astype(bool)]
    return {int(e) for e in sw["element"]}


def _lines(net: pp.pandapowerNet, bus_node: dict[int, int]) -> list[Branch]:
    opened, out = _opened(net, "l"), []
    for k, row in net.line.iterrows():
        a, b = int(row["from_bus"]), int(row["to_bus"])
        if not row["in_service"] or k in opened or a not in bus_node or b not in bus_node:
            continue
        x_ohm = float(row["x_ohm_per_km"]) * float(row["length_km"]) / float(row["parallel"])
        if not x_ohm > 0:
            raise ValueError(f"line {k} (bus {a}-{b}) has no positive reactance ({x_ohm} ohm)")
        b_mw = float(net.bus.at[a, "vn_kv"]) * float(net.bus.at[b, "vn_kv"]) / x_ohm
        out.append(Branch("line", int(k), a, b, b_mw, b_mw * CAPACITY_SIN))
    return out


def _trafos(net: pp.pandapowerNet, bus_node: dict[int, int],
            reverse_flow_pct: float = 100.0) -> list[Branch]:
    opened, out = _opened(net, "t"), []
    for k, row in net.trafo.iterrows():
        a, b = int(row["hv_bus"]), int(row["lv_bus"])
        if not row["in_service"] or k in opened or a not in bus_node or b not in bus_node:
            continue
        x_pu = math.sqrt(max(float(row["vk_percent"]) ** 2 - float(row["vkr_percent"]) ** 2,
                             0.0)) / 100.0
        if not x_pu > 0:
            raise ValueError(f"transformer {k} (bus {a}-{b}) has no positive reactance")
        sn_mva = float(row["sn_mva"]) * float(row["parallel"])
        reverse = sn_mva * reverse_flow_pct / 100.0 if reverse_flow_pct < 100 else math.inf
        out.append(Branch("transformer", int(k), a, b, sn_mva / x_pu, sn_mva, reverse))
    return out


def _slack(net: pp.pandapowerNet, name: str, bus_node: dict[int, int]) -> int:
    grids = net.ext_grid[net.ext_grid["in_service"].astype(bool)]
    nodes = {bus_node[int(b)] for b in grids["bus"] if int(b) in bus_node}
    if len(nodes) != 1:
        raise ValueError(f"network {name} needs exactly one in-service ext_grid (slack) "
                         f"node, has {len(nodes)}")
    return nodes.pop()


def _check_connected(network: DcNetwork) -> None:
    n = network.n_nodes
    adj = sp.coo_matrix((np.ones(len(network.branches)), (network.from_node, network.to_node)),
                        shape=(n, n))
    _, labels = connected_components(adj, directed=False)
    islanded = sorted(b for k, group in enumerate(network.node_buses)
                      if labels[k] != labels[network.slack] for b in group)
    if islanded:
        raise ValueError(f"network {network.name}: buses {islanded} are not connected to the "
                         f"ext_grid (islanded by open switches or out-of-service branches)")


def residual_injection_mw(gen_mw: Mapping[int, float], load_mw: Mapping[int, float],
                          trades: Sequence[Trade]) -> dict[int, float]:
    """The paper's base injection p⁰ per bus: (gen − sold)⁺ − (load − bought)⁺, in MW."""
    sold: dict[int, float] = {}
    bought: dict[int, float] = {}
    for t in trades:
        sold[t.seller_bus] = sold.get(t.seller_bus, 0.0) + t.q_mw
        bought[t.buyer_bus] = bought.get(t.buyer_bus, 0.0) + t.q_mw
    return {bus: max(float(gen_mw.get(bus, 0.0)) - sold.get(bus, 0.0), 0.0)
            - max(float(load_mw.get(bus, 0.0)) - bought.get(bus, 0.0), 0.0)
            for bus in {*gen_mw, *load_mw}}


def node_injection_mw(network: DcNetwork, injection_mw: Mapping[int, float]) -> np.ndarray:
    """Per-node sum of per-bus injections; ValueError for a bus the network lacks."""
    p = np.zeros(network.n_nodes)
    for bus, value in injection_mw.items():
        if not math.isfinite(value):
            raise ValueError(f"base injection at bus {bus} is not finite: {value}")
        p[network.node(int(bus))] += value
    return p


def _susceptance(network: DcNetwork) -> sp.csr_matrix:
    """Nodes × nodes B with p = B·θ (flow out of each node)."""
    b = np.array([br.b_mw_per_rad for br in network.branches])
    f, t, n = network.from_node, network.to_node, network.n_nodes
    rows = np.concatenate([f, t, f, t])
    cols = np.concatenate([f, t, t, f])
    return sp.csr_matrix((np.concatenate([b, b, -b, -b]), (rows, cols)), shape=(n, n))


def _branch_rows(network: DcNetwork) -> sp.csr_matrix:
    """Branches × nodes: flow_k = b_k (θ_from − θ_to)."""
    b = np.array([br.b_mw_per_rad for br in network.branches])
    m = len(b)
    return sp.csr_matrix((np.concatenate([b, -b]),
                          (np.tile(np.arange(m), 2),
                           np.concatenate([network.from_node, network.to_node]))),
                         shape=(m, network.n_nodes))


def _trade_incidence(network: DcNetwork, trades: Sequence[Trade]) -> sp.csr_matrix:
    """Nodes × trades: +1 at the seller's node, −1 at the buyer's."""
    for t in trades:
        if not (math.isfinite(t.q_mw) and t.q_mw > 0):
            raise ValueError(f"trade {t.seller_bus}->{t.buyer_bus} needs a positive q_mw, "
                             f"got {t.q_mw}")
    s = [network.node(t.seller_bus, "seller bus") for t in trades]
    d = [network.node(t.buyer_bus, "buyer bus") for t in trades]
    n_t = len(trades)
    return sp.csr_matrix((np.concatenate([np.ones(n_t), -np.ones(n_t)]),
                          (np.array(s + d, dtype=int), np.tile(np.arange(n_t), 2))),
                         shape=(network.n_nodes, n_t))


def define_clearance(network: DcNetwork, trades: Sequence[Trade],
                     base_injection_mw: Mapping[int, float], label: str = "") -> ClearanceLP:
    """The LP of the module docstring in HiGHS; columns θ (non-slack nodes), then y = q·x."""
    trades = tuple(trades)
    p0 = node_injection_mw(network, base_injection_mw)
    keep = np.flatnonzero(np.arange(network.n_nodes) != network.slack)
    balance = sp.hstack([_susceptance(network)[keep][:, keep],
                         -_trade_incidence(network, trades)[keep]])
    flows = sp.hstack([_branch_rows(network)[:, keep],
                       sp.csr_matrix((len(network.branches), len(trades)))])
    a = sp.vstack([balance, flows]).tocsc()
    upper = np.array([br.limit_mw for br in network.branches])
    lower = np.array([br.lower_mw for br in network.branches])
    q = np.array([t.q_mw for t in trades])
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
    lp.col_cost_ = np.concatenate([np.zeros(len(keep)), np.ones(len(trades))])
    lp.col_lower_ = np.concatenate([np.full(len(keep), -highspy.kHighsInf), np.zeros(len(q))])
    lp.col_upper_ = np.concatenate([np.full(len(keep), highspy.kHighsInf), q])
    lp.row_lower_ = np.concatenate([p0[keep], lower])
    lp.row_upper_ = np.concatenate([p0[keep], upper])
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    return ClearanceLP(network, trades, p0, h, label)


def solve_clearance(lp: ClearanceLP) -> float:
    """Run HiGHS; the seconds it took. ClearanceInfeasible names the overloaded branches."""
    start = time.perf_counter()
    lp.highs.run()
    seconds = time.perf_counter() - start
    status = lp.highs.getModelStatus()
    if status in INFEASIBLE:
        raise ClearanceInfeasible(_infeasible_message(lp))
    if status != OPTIMAL:
        where = f"{lp.label}: " if lp.label else ""
        raise ClearanceSolveError(f"{where}clearance LP of network {lp.network.name} not "
                                  f"solved: {lp.highs.modelStatusToString(status)}")
    return seconds


def base_flows_mw(network: DcNetwork, p_mw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(branch flows, node angles) of the DC power flow with node injections p_mw."""
    keep = np.flatnonzero(np.arange(network.n_nodes) != network.slack)
    theta = np.zeros(network.n_nodes)
    if len(keep):
        theta[keep] = spla.spsolve(_susceptance(network)[keep][:, keep].tocsc(), p_mw[keep])
    return _branch_rows(network) @ theta, theta


def _infeasible_message(lp: ClearanceLP) -> str:
    where = f"{lp.label}: " if lp.label else ""
    flows, _ = base_flows_mw(lp.network, lp.p0_mw)
    over = [f"{br.label} carries {f:.6g} MW, over its {br.limit_kind(f)} limit "
            f"{br.limit_for(f):.6g} MW" for br, f in zip(lp.network.branches, flows)
            if br.over_mw(f) > BINDING_TOL_MW]
    return (f"{where}network {lp.network.name} is overloaded by its base injections alone "
            f"(every trade refused): " + ("; ".join(over) or "no single branch; numerical"))


def extract_clearance(lp: ClearanceLP, solve_time_s: float = 0.0) -> Clearance:
    """x, flows, angles and binding limits of a solved LP (status already checked)."""
    network, n_t = lp.network, len(lp.trades)
    solution = lp.highs.getSolution()
    col = np.asarray(solution.col_value)
    keep = np.flatnonzero(np.arange(network.n_nodes) != network.slack)
    theta = np.zeros(network.n_nodes)
    theta[keep] = col[:len(keep)]
    q = np.array([t.q_mw for t in lp.trades])
    accepted = np.clip(col[len(keep):], 0.0, q) if n_t else np.zeros(0)
    x = np.divide(accepted, q, out=np.ones(n_t), where=q > 0)
    flows = _branch_rows(network) @ theta
    duals = np.asarray(solution.row_dual)[len(keep):]
    binding = tuple(Binding(br.limit_kind(f), br, float(f), br.limit_for(f), abs(float(y)))
                    for br, f, y in zip(network.branches, flows, duals)
                    if br.over_mw(f) >= -BINDING_TOL_MW)
    return Clearance(trades=lp.trades, x=x, accepted_mw=accepted, flow_mw=flows, theta_rad=theta,
                     grid_import_mw=float(-lp.p0_mw.sum()), binding=binding,
                     solve_time_s=solve_time_s)


def clear_trades(network: DcNetwork, trades: Sequence[Trade],
                 base_injection_mw: Mapping[int, float], label: str = "") -> Clearance:
    """Define, solve and extract the clearance of `trades` over base injections (MW)."""
    start = time.perf_counter()
    lp = define_clearance(network, trades, base_injection_mw, label)
    solve_clearance(lp)
    return extract_clearance(lp, time.perf_counter() - start)
