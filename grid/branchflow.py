"""Branch-flow models of radial distribution feeders for network-aware market clearing.

Pure network model: numpy, scipy.sparse, cvxpy and pandapower only (no co-simulation, no
transport, no files). A pandapower net becomes a `RadialNetwork` (buses, the ext_grid root,
in-service lines oriented away from the root, per-unit impedances and current limits);
`add_network` writes its power-flow constraints over T periods as cvxpy constraints.

Units. The API speaks kW, kvar, kA, € and hours; inside, powers are per unit of the net's
`sn_mva` (1 pu = 1000·sn_mva kW), impedances per unit of z_base = vn_kv²/sn_mva, currents
per unit of i_base = sn_mva/(√3·vn_kv) kA, and `v` is the *squared* voltage magnitude
(pu²). A bus's power `p` is its net consumption (import positive, export negative).

Models, for each line i→j (i nearer the root) and period:

- ``"socp"``: the branch flow model of Baran & Wu (DistFlow) with the second-order-cone
  relaxation of Farivar & Low. P_ij = Σ_k P_jk + r·l_ij + p_j (Q likewise with x),
  v_j = v_i − 2(r·P_ij + x·Q_ij) + (r² + x²)·l_ij, and l_ij·v_i ≥ P_ij² + Q_ij² as the
  cone ‖(2P, 2Q, l − v_i)‖₂ ≤ l + v_i; l is the squared current, losses are Σ r·l. The
  relaxation is exact when the cone is tight, which an objective that prices losses (or
  import) gives on feeders whose upper voltage limits do not bind; `loss_gap_kw` in the
  results measures any slack in the cone (losses counted in l minus the physical r·I²).
  The loss price that keeps the cone tight is small, so the tightness is only as good as
  the solver's relative gap on the whole objective: observed gaps are below 1e-3 kW on
  case33bw, larger when the proximal terms dominate the objective.
- ``"lindistflow"``: the linear DistFlow approximation (Baran & Wu), an LP: no losses
  (l = 0), P_ij = Σ_k P_jk + p_j, v_j = v_i − 2(r·P_ij + x·Q_ij). The thermal limit
  P² + Q² ≤ S_max², S_max = I_max·v_min (the apparent power the ampacity carries at the
  lowest allowed voltage, so conservative), is replaced by the regular octagon *inscribed*
  in that circle with vertices on the P and Q axes: the 8 cuts |cos θ·P + sin θ·Q| ≤
  S_max·cos(π/8), θ = π/8, 3π/8, 5π/8, 7π/8. Every flow the octagon accepts is within the
  circle; unity-power-factor flows keep the full S_max, the worst direction 92.4 % of it.

Both models bound v_min² ≤ v ≤ v_max² at every bus but the root (held at the ext_grid's
vm_pu), and the squared current l ≤ I_max² (socp). Line shunt capacitance and conductance
are ignored (case33bw and feeder11 have none).

`OperatorModel` is the network block of an ADMM market: it chooses the network's view z of
every peer's net import, priced by the market's duals and a proximal term around the
peers' proposals y, built once with cvxpy Parameters and re-solved with Clarabel.
When no dispatch can meet the limits, `NetworkInfeasible` names the worst violation, found
by `explain_infeasible` (the same model with nonnegative slacks on the limits).
"""

import math
import time
import warnings
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

import cvxpy as cp
import numpy as np
import pandapower as pp
import scipy.sparse as sp

Model = Literal["socp", "lindistflow"]
MODELS = ("socp", "lindistflow")

# The operator's objective is a few € or less, its terms cents: Clarabel stalls near the
# optimum (NumericalError) at that scale, so the objective goes to it in m€.
OBJECTIVE_SCALE = 1000.0
RELAXED_CLARABEL = {"tol_gap_abs": 1e-6, "tol_gap_rel": 1e-6, "tol_feas": 1e-7}

# The SOCP relaxation is tight only if something prices the squared current l; an operator
# objective without a loss price would leave l free inside the cone (fake losses). Losses
# are therefore always priced at least this much (€/kWh, ~1 % of an energy price).
LOSS_TIGHTENING_EUR_PER_KWH = 1e-3
# Octagon inscribed in the circle P² + Q² ≤ S²: cut normals between the vertices at k·π/4.
OCTAGON_ANGLES = (math.pi / 8, 3 * math.pi / 8, 5 * math.pi / 8, 7 * math.pi / 8)
OCTAGON_FACTOR = math.cos(math.pi / 8)
# Slack below this (relative to the limit) is solver noise, not a violation.
VIOLATION_TOL = 1e-6
# Element tables this model cannot represent (in-service rows make radial_network refuse).
UNSUPPORTED = {
    "trafo3w": "three-winding transformers", "impedance": "impedance elements",
    "gen": "voltage-controlled generators (gen)", "shunt": "shunts", "ward": "wards",
    "xward": "extended wards", "storage": "storage units", "dcline": "DC lines",
    "asymmetric_load": "asymmetric loads", "asymmetric_sgen": "asymmetric static generators",
}
SOLVED = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)


class NetworkInfeasible(ValueError):
    """No dispatch (or the given loads) can meet the network's voltage and line limits."""


@dataclass(frozen=True, eq=False)
class RadialNetwork:
    """A radial single-voltage feeder in per unit; arrays are over buses (n) or lines (m).

    Buses keep their pandapower indices (`buses`, `bus_index` maps them to positions);
    line k (pandapower index `lines[k]`) runs from bus position `from_pos[k]` (nearer the
    root) to `to_pos[k]`.
    `loads_kw`/`loads_kvar` are the net's own loads minus its static generators per bus,
    for callers that keep them as background.
    """

    name: str
    sn_mva: float
    buses: np.ndarray
    bus_index: dict[int, int]
    root: int
    v_root_pu: float
    lines: np.ndarray
    from_pos: np.ndarray
    to_pos: np.ndarray
    r_pu: np.ndarray
    x_pu: np.ndarray
    i_max_pu: np.ndarray
    i_base_ka: np.ndarray
    v_min_pu: float
    v_max_pu: float
    loads_kw: np.ndarray
    loads_kvar: np.ndarray

    @property
    def n_buses(self) -> int:
        return len(self.buses)

    @property
    def n_lines(self) -> int:
        return len(self.lines)

    @property
    def kw_per_pu(self) -> float:
        return 1000.0 * self.sn_mva

    @property
    def i_max_ka(self) -> np.ndarray:
        return self.i_max_pu * self.i_base_ka

    def line_label(self, k: int) -> str:
        """'line 0 (bus 0-1)': pandapower line index, then its buses from the root side."""
        a, b = self.buses[self.from_pos[k]], self.buses[self.to_pos[k]]
        return f"line {self.lines[k]} (bus {a}-{b})"


def radial_network(net: pp.pandapowerNet, v_min_pu: float, v_max_pu: float,
                   max_loading_pct: float = 100.0, name: str | None = None) -> RadialNetwork:
    """Read a radial feeder from a pandapower net; ValueError if the model cannot hold it.

    In-service buses and lines (lines opened by a line switch count as out of service),
    one in-service ext_grid as root, per-unit r and x on net.sn_mva, current limits
    max_i_ka·df·parallel·max_loading_pct/100. Refuses loops, islands, transformers and the
    other elements of `UNSUPPORTED`.
    """
    name = name or net.name or "net"
    if not 0 < v_min_pu < v_max_pu:
        raise ValueError(f"need 0 < v_min_pu < v_max_pu, got {v_min_pu}, {v_max_pu}")
    if max_loading_pct <= 0:
        raise ValueError(f"max_loading_pct must be positive, got {max_loading_pct}")
    _check_supported(net, name)
    buses = net.bus.index[net.bus["in_service"].to_numpy(dtype=bool)].to_numpy(dtype=int)
    bus_index = {int(bus): k for k, bus in enumerate(buses)}
    root_bus, v_root = _root(net, name, bus_index)
    lines = _live_lines(net, bus_index)
    oriented = _orient(name, root_bus, buses, lines)
    loads_kw, loads_kvar = _own_loads(net, bus_index)
    return RadialNetwork(
        name=name, sn_mva=float(net.sn_mva), buses=buses, bus_index=bus_index,
        root=bus_index[root_bus], v_root_pu=v_root, lines=lines.index.to_numpy(dtype=int),
        from_pos=np.array([bus_index[oriented[line][0]] for line in lines.index], dtype=int),
        to_pos=np.array([bus_index[oriented[line][1]] for line in lines.index], dtype=int),
        v_min_pu=float(v_min_pu), v_max_pu=float(v_max_pu), loads_kw=loads_kw,
        loads_kvar=loads_kvar, **_line_data(net, name, lines, oriented, max_loading_pct))


def _line_data(net: pp.pandapowerNet, name: str, lines, oriented: dict[int, tuple[int, int]],
               max_loading_pct: float) -> dict[str, np.ndarray]:
    """Per-unit r, x and current limit (and the kA current base) of each line."""
    ends = np.array([oriented[line] for line in lines.index], dtype=int).reshape(-1, 2)
    vn_kv = net.bus.loc[ends[:, 0], "vn_kv"].to_numpy(dtype=float)
    if not np.allclose(vn_kv, net.bus.loc[ends[:, 1], "vn_kv"].to_numpy(dtype=float)):
        raise ValueError(f"network {name} has lines between buses of different vn_kv; "
                         f"the branch-flow model covers single-voltage radial feeders")
    sn_mva = float(net.sn_mva)
    km_per_circuit = lines["length_km"].to_numpy(dtype=float) / lines["parallel"].to_numpy(dtype=float)
    z_base = vn_kv ** 2 / sn_mva
    i_base_ka = sn_mva / (math.sqrt(3.0) * vn_kv)
    i_max_ka = (lines["max_i_ka"].to_numpy(dtype=float) * lines["df"].to_numpy(dtype=float)
                * lines["parallel"].to_numpy(dtype=float) * max_loading_pct / 100.0)
    return {"r_pu": lines["r_ohm_per_km"].to_numpy(dtype=float) * km_per_circuit / z_base,
            "x_pu": lines["x_ohm_per_km"].to_numpy(dtype=float) * km_per_circuit / z_base,
            "i_max_pu": i_max_ka / i_base_ka, "i_base_ka": i_base_ka}


def _in_service(table) -> bool:
    return len(table) > 0 and bool(table["in_service"].astype(bool).any())


def _check_supported(net: pp.pandapowerNet, name: str) -> None:
    if "trafo" in net and _in_service(net.trafo):
        raise ValueError(f"network {name} has transformers; the branch-flow model covers "
                         f"single-voltage radial feeders")
    for table, what in UNSUPPORTED.items():
        if table in net and _in_service(net[table]):
            raise ValueError(f"network {name} has {what}; the branch-flow model covers "
                             f"radial feeders of lines, loads and static generators only")
    if "switch" in net and len(net.switch):
        bus_bus = net.switch[(net.switch["et"] == "b") & net.switch["closed"].astype(bool)]
        if len(bus_bus):
            raise ValueError(f"network {name} has closed bus-bus switches; merge those buses "
                             f"first, the branch-flow model does not")


def _root(net: pp.pandapowerNet, name: str, bus_index: dict[int, int]) -> tuple[int, float]:
    grids = net.ext_grid[net.ext_grid["in_service"].astype(bool)]
    if len(grids) != 1:
        raise ValueError(f"network {name} has {len(grids)} in-service ext_grids; the radial "
                         f"branch-flow model needs exactly one (the feeder's root)")
    bus = int(grids["bus"].iloc[0])
    if bus not in bus_index:
        raise ValueError(f"network {name}: the ext_grid's bus {bus} is out of service")
    return bus, float(grids["vm_pu"].iloc[0])


def _live_lines(net: pp.pandapowerNet, bus_index: dict[int, int]):
    """In-service lines between in-service buses, not opened by a line switch."""
    live = net.line["in_service"].astype(bool)
    live &= net.line["from_bus"].isin(bus_index) & net.line["to_bus"].isin(bus_index)
    if "switch" in net and len(net.switch):
        open_ = net.switch[(net.switch["et"] == "l") & ~net.switch["closed"].astype(bool)]
        live &= ~net.line.index.isin(open_["element"])
    return net.line[live]


def _orient(name: str, root_bus: int, buses: np.ndarray, lines) -> dict[int, tuple[int, int]]:
    """Breadth-first search from the root: line -> (bus nearer the root, the other bus)."""
    incident: dict[int, list[tuple[int, int]]] = {int(bus): [] for bus in buses}
    for line, a, b in zip(lines.index, lines["from_bus"], lines["to_bus"]):
        incident[int(a)].append((int(line), int(b)))
        incident[int(b)].append((int(line), int(a)))
    oriented: dict[int, tuple[int, int]] = {}
    parent: dict[int, tuple[int, int] | None] = {root_bus: None}  # bus -> (parent, line)
    queue = deque([root_bus])
    while queue:
        bus = queue.popleft()
        for line, other in incident[bus]:
            if line in oriented:
                continue
            if other in parent:
                loop = sorted(_path(parent, bus) ^ _path(parent, other) | {line})
                raise ValueError(f"network {name} is not radial: in-service lines "
                                 f"{', '.join(map(str, loop))} form a loop")
            oriented[line] = (bus, other)
            parent[other] = (bus, line)
            queue.append(other)
    islanded = sorted(set(incident) - set(parent))
    if islanded:
        raise ValueError(f"network {name} is not a connected radial feeder: buses {islanded} "
                         f"are not connected to the ext_grid")
    return oriented


def _path(parent: dict[int, tuple[int, int] | None], bus: int) -> set[int]:
    """Lines from `bus` up to the root in the search tree."""
    lines = set()
    while parent[bus] is not None:
        bus, line = parent[bus]
        lines.add(line)
    return lines


def _own_loads(net: pp.pandapowerNet, bus_index: dict[int, int]) -> tuple[np.ndarray, ...]:
    """kW and kvar per bus position: in-service loads minus in-service static generators."""
    p_kw, q_kvar = np.zeros(len(bus_index)), np.zeros(len(bus_index))
    for table, sign in (("load", 1.0), ("sgen", -1.0)):
        if table not in net or not len(net[table]):
            continue
        rows = net[table][net[table]["in_service"].astype(bool)
                          & net[table]["bus"].isin(bus_index)]
        where = [bus_index[int(bus)] for bus in rows["bus"]]
        scale = sign * 1000.0 * rows["scaling"].to_numpy(dtype=float)
        np.add.at(p_kw, where, scale * rows["p_mw"].to_numpy(dtype=float))
        np.add.at(q_kvar, where, scale * rows["q_mvar"].to_numpy(dtype=float))
    return p_kw, q_kvar


@dataclass(eq=False)
class NetworkBlock:
    """The cvxpy variables, constraints and results of one network over T periods.

    `v` (buses × T, squared voltage, pu²), `p_line`/`q_line` (lines × T, pu, flow leaving
    the root-side bus) and `l` (lines × T, squared current, pu²; None for lindistflow) are
    per unit; `losses_kw` and `import_kw` (T,) are in kW. `slacks` (only with slack=True)
    holds the nonnegative `under`/`over` voltage slacks (non-root buses × T, pu²) and the
    `line` slacks (lines × T: pu² of l for socp, pu of the octagon cut for lindistflow).
    """

    network: RadialNetwork
    model: str
    constraints: list
    v: cp.Variable
    p_line: cp.Variable
    q_line: cp.Variable
    l: cp.Variable | None
    losses_kw: cp.Expression
    import_kw: cp.Expression
    slacks: dict[str, cp.Variable] | None = None


def _incidence(network: RadialNetwork) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Lines × buses one-hot matrices of each line's root-side (from) and far (to) bus."""
    m, n = network.n_lines, network.n_buses
    rows, ones = np.arange(m), np.ones(m)
    a_from = sp.csr_matrix((ones, (rows, network.from_pos)), shape=(m, n))
    a_to = sp.csr_matrix((ones, (rows, network.to_pos)), shape=(m, n))
    return a_from, a_to


def _as_load(value, n: int, what: str) -> cp.Expression:
    """A (buses × T) expression from an expression or array; a 1-D array is one period."""
    if isinstance(value, cp.Expression):
        expr = value
    else:
        array = np.asarray(value, dtype=float)
        if not np.isfinite(array).all():
            raise ValueError(f"{what} must be finite")
        expr = cp.Constant(array[:, np.newaxis] if array.ndim == 1 else array)
    if expr.ndim != 2 or expr.shape[0] != n:
        raise ValueError(f"{what} must have shape (buses, periods) with {n} buses, "
                         f"got {expr.shape}")
    return expr


def add_network(network: RadialNetwork, net_kw, net_kvar=None, model: Model = "socp",
                slack: bool = False) -> NetworkBlock:
    """Power-flow constraints of `network` for bus net consumption `net_kw`/`net_kvar`.

    `net_kw` and `net_kvar` are cvxpy expressions or arrays of shape (buses, T) in kW and
    kvar (positive = consumption; net_kvar None means 0). With `slack`, the voltage bounds
    and line limits get nonnegative slacks (in `NetworkBlock.slacks`) for diagnosis.
    """
    if model not in MODELS:
        raise ValueError(f"unknown network model {model!r}; allowed: {', '.join(MODELS)}")
    n, m = network.n_buses, network.n_lines
    p = _as_load(net_kw, n, "net_kw") / network.kw_per_pu
    periods = p.shape[1]
    q = (cp.Constant(np.zeros((n, periods))) if net_kvar is None
         else _as_load(net_kvar, n, "net_kvar") / network.kw_per_pu)
    if q.shape != p.shape:
        raise ValueError(f"net_kvar has shape {q.shape}, net_kw {p.shape}")
    a_from, a_to = _incidence(network)
    child = (a_to @ a_from.T).tocsr()  # [k, c] = 1 if line c leaves line k's far bus
    v = cp.Variable((n, periods), name="v_pu2")
    p_line = cp.Variable((m, periods), name="p_line_pu")
    q_line = cp.Variable((m, periods), name="q_line_pu")
    r, x = network.r_pu[:, np.newaxis], network.x_pu[:, np.newaxis]
    drop = 2 * (cp.multiply(r, p_line) + cp.multiply(x, q_line))
    constraints = [v[network.root, :] == network.v_root_pu ** 2]
    if model == "socp":
        l = cp.Variable((m, periods), name="l_pu2", nonneg=True)
        v_from = a_from @ v
        constraints += [
            p_line - child @ p_line - cp.multiply(r, l) == a_to @ p,
            q_line - child @ q_line - cp.multiply(x, l) == a_to @ q,
            a_to @ v == v_from - drop + cp.multiply(r ** 2 + x ** 2, l),
            cp.SOC(_flat(l + v_from), cp.vstack([
                _flat(2 * p_line), _flat(2 * q_line), _flat(l - v_from)]), axis=0),
        ]
        losses_kw = network.kw_per_pu * (network.r_pu @ l)
    else:
        l = None
        constraints += [p_line - child @ p_line == a_to @ p,
                        q_line - child @ q_line == a_to @ q,
                        a_to @ v == a_from @ v - drop]
        losses_kw = cp.Constant(np.zeros(periods))
    slacks = _slacks(n, m, periods) if slack else None
    constraints += _voltage_limits(network, v, slacks)
    constraints += _line_limits(network, p_line, q_line, l, slacks)
    from_root = (network.from_pos == network.root).astype(float)
    import_kw = network.kw_per_pu * (from_root @ p_line + p[network.root, :])
    return NetworkBlock(network=network, model=model, constraints=constraints, v=v, p_line=p_line,
                        q_line=q_line, l=l, losses_kw=losses_kw, import_kw=import_kw,
                        slacks=slacks)


def _flat(expr: cp.Expression) -> cp.Expression:
    return cp.vec(expr, order="F")


def _slacks(n: int, m: int, periods: int) -> dict[str, cp.Variable]:
    return {"under": cp.Variable((n - 1, periods), nonneg=True, name="v_under"),
            "over": cp.Variable((n - 1, periods), nonneg=True, name="v_over"),
            "line": cp.Variable((m, periods), nonneg=True, name="line_over")}


def _non_root(network: RadialNetwork) -> sp.csr_matrix:
    """(buses − 1) × buses selection of every bus but the root."""
    keep = np.delete(np.arange(network.n_buses), network.root)
    return sp.csr_matrix((np.ones(len(keep)), (np.arange(len(keep)), keep)),
                         shape=(len(keep), network.n_buses))


def _voltage_limits(network: RadialNetwork, v: cp.Variable, slacks) -> list:
    v_sel = _non_root(network) @ v
    low, high = network.v_min_pu ** 2, network.v_max_pu ** 2
    if slacks is None:
        return [v_sel >= low, v_sel <= high]
    return [v_sel >= low - slacks["under"], v_sel <= high + slacks["over"]]


def _line_limits(network: RadialNetwork, p_line, q_line, l, slacks) -> list:
    extra = 0 if slacks is None else slacks["line"]
    if l is not None:
        return [l <= (network.i_max_pu ** 2)[:, np.newaxis] + extra]
    s_max = network.i_max_pu * network.v_min_pu * OCTAGON_FACTOR
    return [cp.abs(math.cos(a) * p_line + math.sin(a) * q_line) <= s_max[:, np.newaxis] + extra
            for a in OCTAGON_ANGLES]


@dataclass(frozen=True, eq=False)
class FlowResult:
    """Values of a solved `NetworkBlock`: per bus or line × period, losses per period.

    `loss_gap_kw` is the losses the socp relaxation counts in l beyond the physical
    r·(P² + Q²)/v_from (0 when the cone is tight; always 0 for lindistflow).
    """

    v_pu: np.ndarray
    p_line_kw: np.ndarray
    q_line_kvar: np.ndarray
    i_ka: np.ndarray
    losses_kw: np.ndarray
    import_kw: np.ndarray
    loss_gap_kw: np.ndarray
    status: str
    solve_s: float


def block_values(block: NetworkBlock, status: str = cp.OPTIMAL,
                 solve_s: float = math.nan) -> FlowResult:
    """Read a solved block in physical units (voltages in pu, currents in kA)."""
    net = block.network
    v = np.maximum(block.v.value, 0.0)
    p, q = block.p_line.value, block.q_line.value
    s2 = p ** 2 + q ** 2
    v_from = np.maximum(v[net.from_pos], 1e-12)
    i_pu = np.sqrt(s2 / v_from)
    losses = np.asarray(block.losses_kw.value, dtype=float).reshape(-1)
    physical = net.kw_per_pu * (net.r_pu @ (s2 / v_from))
    gap = losses - physical if block.l is not None else np.zeros_like(losses)
    return FlowResult(
        v_pu=np.sqrt(v), p_line_kw=p * net.kw_per_pu, q_line_kvar=q * net.kw_per_pu,
        i_ka=i_pu * net.i_base_ka[:, np.newaxis], losses_kw=losses,
        import_kw=np.asarray(block.import_kw.value, dtype=float).reshape(-1),
        loss_gap_kw=gap, status=status, solve_s=solve_s)


def solve_flow(network: RadialNetwork, bus_load_kw, bus_load_kvar=None, model: Model = "socp",
               period_h: float = 1.0) -> FlowResult:
    """Power flow of fixed bus loads (buses × T, kW/kvar) by minimising the import.

    For socp, minimal import means minimal losses, which makes the relaxation exact on
    feeders without binding upper voltage limits. Raises NetworkInfeasible naming the
    worst violated limit when the loads cannot be served within the limits.
    """
    block = add_network(network, bus_load_kw, bus_load_kvar, model)
    problem = cp.Problem(cp.Minimize(cp.sum(block.import_kw) / network.kw_per_pu),
                         block.constraints)
    start = time.perf_counter()
    clarabel(problem)
    elapsed = time.perf_counter() - start
    if problem.status in INFEASIBLE:
        raise NetworkInfeasible(
            explain_infeasible(network, bus_load_kw, bus_load_kvar, model, period_h)
            or f"network {network.name}: the solver found the power flow infeasible")
    if problem.status not in SOLVED:
        raise RuntimeError(f"network {network.name}: power flow ended {problem.status}")
    return block_values(block, problem.status, elapsed)


def period_label(t: int, period_h: float) -> str:
    """'hour 4.5 (period 18)': the period's start hour is t·period_h."""
    return f"hour {t * period_h:g} (period {t})"


def loss_price(price, periods: int, model: Model) -> np.ndarray:
    """The price of losses per period (€/kWh; None: 0), raised for socp to at least
    LOSS_TIGHTENING_EUR_PER_KWH so that the cone stays tight."""
    array = np.zeros(periods) if price is None else np.broadcast_to(
        np.asarray(price, dtype=float), (periods,)).copy()
    if not np.isfinite(array).all():
        raise ValueError("loss_price_eur_per_kwh must be finite")
    if model == "socp":
        array = np.maximum(array, LOSS_TIGHTENING_EUR_PER_KWH)
    return array


def clarabel(problem: cp.Problem, **settings) -> None:
    """Solve with Clarabel; an inaccurate solution is in ``problem.status`` (cvxpy's
    warning about it is not repeated on stderr)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        problem.solve(solver=cp.CLARABEL, **settings)


def explain_infeasible(network: RadialNetwork, bus_load_kw, bus_load_kvar=None,
                       model: Model = "socp", period_h: float = 1.0,
                       constraints: list | None = None) -> str | None:
    """One line naming the worst limit the loads cannot meet, or None if they meet all.

    Solves the model with nonnegative slacks on the voltage bounds and line limits,
    minimising the total slack (plus a tiny loss price, to keep the socp cone tight).
    `bus_load_kw` may be an expression with free variables (an operator's dispatch): the
    slacks are then minimised over them too, so only limits no dispatch can meet remain;
    ``constraints`` bound those variables (what the loads themselves can do).
    """
    block = add_network(network, bus_load_kw, bus_load_kvar, model, slack=True)
    total = sum(cp.sum(s) for s in block.slacks.values())
    tighten = 1e-3 * cp.sum(block.losses_kw) / network.kw_per_pu
    free = _variables(bus_load_kw, bus_load_kvar)
    regular = 1e-10 * sum(cp.sum_squares(var) for var in free) if free else 0
    problem = cp.Problem(cp.Minimize(total + tighten + regular),
                         block.constraints + list(constraints or []))
    clarabel(problem)
    if problem.status not in SOLVED:
        return (f"network {network.name}: no power flow exists for these loads even with "
                f"the voltage and line limits relaxed ({problem.status}); the loads exceed "
                f"what the feeder can carry")
    found = _violations(block, period_h)
    if not found:
        return None
    worst = max(found, key=lambda item: item[0])[1]
    more = f" ({len(found)} limit violations over all buses, lines and periods)" if len(found) > 1 else ""
    return f"network {network.name}, {worst}{more}"


def _variables(*values) -> list[cp.Variable]:
    found = {}
    for value in values:
        if isinstance(value, cp.Expression):
            found.update({var.id: var for var in value.variables()})
    return list(found.values())


def _violations(block: NetworkBlock, period_h: float) -> list[tuple[float, str]]:
    """(relative excess, message) of every violated limit in the solved slack problem."""
    net, found = block.network, []
    keep = np.delete(np.arange(net.n_buses), net.root)
    v = np.sqrt(np.maximum(block.v.value[keep], 0.0))
    for key, limit, word in (("under", net.v_min_pu, "below v_min"),
                             ("over", net.v_max_pu, "above v_max")):
        for k, t in zip(*np.nonzero(block.slacks[key].value > VIOLATION_TOL * limit ** 2)):
            what = (f"bus {net.buses[keep[k]]} voltage needs {v[k, t]:.3f} pu, "
                    f"{word} {limit:.3f} pu")
            found.append((abs(v[k, t] - limit) / limit, f"{period_label(t, period_h)}: {what}"))
    ratio, limit_ka = _line_ratio(block), net.i_max_ka
    for k, t in zip(*np.nonzero(ratio > 1 + VIOLATION_TOL)):
        what = (f"{net.line_label(k)} needs {ratio[k, t] * limit_ka[k]:.3g} kA, "
                f"above its limit {limit_ka[k]:.3g} kA")
        found.append((ratio[k, t] - 1, f"{period_label(t, period_h)}: {what}"))
    return found


def _line_ratio(block: NetworkBlock) -> np.ndarray:
    """Each line's current over its limit as the model sees it (l, or the octagon cuts)."""
    net = block.network
    if block.l is not None:
        return np.sqrt(np.maximum(block.l.value, 0.0)) / net.i_max_pu[:, np.newaxis]
    p, q = block.p_line.value, block.q_line.value
    gauge = np.max([np.abs(math.cos(a) * p + math.sin(a) * q) for a in OCTAGON_ANGLES], axis=0)
    return gauge / (net.i_max_pu * net.v_min_pu * OCTAGON_FACTOR)[:, np.newaxis]


@dataclass(frozen=True, eq=False)
class OperatorResult:
    """One operator solve: z_kw (peers × T), per-period losses/import (kW), voltages (pu)
    and line currents (kA) per bus/line × T; `compile_s` is cvxpy's compilation time of
    this solve, `solve_s` the whole solve call."""

    z_kw: np.ndarray
    losses_kw: np.ndarray
    import_kw: np.ndarray
    v_pu: np.ndarray
    i_ka: np.ndarray
    loss_gap_kw: np.ndarray
    objective_eur: float
    solve_s: float
    compile_s: float
    status: str


class OperatorModel:
    """The network operator's block of an ADMM market, built once and re-solved every
    round; cvxpy compiles it afresh each time (``ignore_dpp``): its DPP cache, a parameter
    tensor, grew as (peers·T)² (4.2 GB and 9.4 s at 90 peers, 30 GB asked at 300), where a
    fresh compilation takes 0.07 s at 90 peers and 0.3 s at 300 (370–450 MB).

    z (peers × T, kW) is the network's view of each peer's net import; each bus consumes
    the z of its peers plus `background_kw`, and tan φ·z plus `background_kvar` reactive.
    `update` minimises (€) Σ_t Δt·[loss_price_t·losses_t + Σ_n dual_nt·z_nt
    + ρ/2·(z_nt − y_nt)²] over the network's limits (ρ > 0). With the square completed,
    dual·z + ρ/2·(z − y)² = ρ/2·(z − (y − dual/ρ))² + dual·y − dual²/(2ρ), written as
    ‖s·z − w‖² with Parameters s = √(ρ/2) and w = s·(y − dual/ρ) (no price Parameter
    multiplies z entry by entry); ``objective_eur`` adds the constant back. For socp
    the loss price is raised to at least LOSS_TIGHTENING_EUR_PER_KWH to keep the cone tight.
    ``z_min_kw`` / ``z_max_kw`` (one value per peer): the connections' limits, which the
    operator knows; they keep the interior-point solver's iterates in a physical range.
    """

    def __init__(self, network: RadialNetwork, periods: int, period_h: float,
                 bus_of: list[int], model: Model = "socp", background_kw=None,
                 background_kvar=None, peer_tan_phi: float = 0.0,
                 loss_price_eur_per_kwh=None, z_min_kw=None, z_max_kw=None):
        if periods < 1 or period_h <= 0:
            raise ValueError(f"need periods >= 1 and period_h > 0, got {periods}, {period_h}")
        unknown = sorted({int(b) for b in bus_of} - set(network.bus_index))
        if not bus_of or unknown:
            raise ValueError(f"bus_of must name at least one peer, on buses of network "
                             f"{network.name}; unknown buses: {unknown}")
        self.network, self.periods, self.period_h, self.model = network, periods, period_h, model
        self._args = {"periods": periods, "period_h": period_h, "bus_of": bus_of,
                      "background_kw": background_kw, "background_kvar": background_kvar,
                      "peer_tan_phi": peer_tan_phi,
                      "loss_price_eur_per_kwh": loss_price_eur_per_kwh,
                      "z_min_kw": z_min_kw, "z_max_kw": z_max_kw}
        self._fallback: OperatorModel | None = None
        self.fallbacks = 0  # SOCP solves that ended in a numerical error and fell back
        self.n_peers = len(bus_of)
        # z in per unit inside (well scaled for Clarabel), in kW outside
        self.z_pu = cp.Variable((self.n_peers, periods), name="z_pu")
        self.z = network.kw_per_pu * self.z_pu
        place = sp.csr_matrix(
            (np.ones(self.n_peers), ([network.bus_index[int(b)] for b in bus_of],
                                     np.arange(self.n_peers))),
            shape=(network.n_buses, self.n_peers))
        shape = (network.n_buses, periods)
        self.bus_kw = place @ self.z + _background(background_kw, shape, "background_kw")
        self.bus_kvar = (peer_tan_phi * (place @ self.z)
                         + _background(background_kvar, shape, "background_kvar"))
        self.block = add_network(network, self.bus_kw, self.bus_kvar, model)
        self._scale = cp.Parameter(nonneg=True, name="sqrt_half_rho")
        self._target = cp.Parameter((self.n_peers, periods), name="sqrt_half_rho_target")
        price = self._loss_price(loss_price_eur_per_kwh)
        objective = OBJECTIVE_SCALE * period_h * (
            price @ self.block.losses_kw + cp.sum_squares(self._scale * self.z - self._target))
        bounds = []
        if z_min_kw is not None:
            bounds.append(self.z >= _matrix(np.asarray(z_min_kw, float)[:, None],
                                            (self.n_peers, periods), "z_min_kw"))
        if z_max_kw is not None:
            bounds.append(self.z <= _matrix(np.asarray(z_max_kw, float)[:, None],
                                            (self.n_peers, periods), "z_max_kw"))
        self.problem = cp.Problem(cp.Minimize(objective), self.block.constraints + bounds)

    def _loss_price(self, price) -> np.ndarray:
        return loss_price(price, self.periods, self.model)

    def update(self, y_kw, dual_eur_per_kwh, rho_eur_per_kw2h: float) -> OperatorResult:
        """Solve for z given the peers' proposals y (kW), duals (€/kWh) and ρ (€/kW²h)."""
        shape = (self.n_peers, self.periods)
        y = _matrix(y_kw, shape, "y_kw")
        if not (math.isfinite(rho_eur_per_kw2h) and rho_eur_per_kw2h > 0):
            raise ValueError(f"rho must be finite and positive, got {rho_eur_per_kw2h}")
        rho = rho_eur_per_kw2h
        scale = math.sqrt(rho / 2.0)
        dual = _matrix(dual_eur_per_kwh, shape, "dual_eur_per_kwh")
        self._scale.value = scale
        self._target.value = scale * (y - dual / rho)  # the square completed: see __doc__
        constant = self.period_h * float(np.sum(dual * y) - np.sum(dual * dual) / (2 * rho))
        if self._fallback is not None:  # the SOCP stalled earlier today: stay with the LP
            return self._lindistflow(y_kw, dual_eur_per_kwh, rho_eur_per_kw2h)
        start = time.perf_counter()
        try:
            clarabel(self.problem, ignore_dpp=True)
        except cp.error.SolverError:  # Clarabel's numerical error: once more, less strict
            try:
                clarabel(self.problem, ignore_dpp=True, **RELAXED_CLARABEL)
            except cp.error.SolverError:
                if self.model != "socp":
                    raise
                return self._lindistflow(y_kw, dual_eur_per_kwh, rho_eur_per_kw2h)
        elapsed = time.perf_counter() - start
        if self.problem.status in INFEASIBLE:
            raise NetworkInfeasible(self.infeasibility() or f"network {self.network.name}: "
                                    f"the operator problem is infeasible (solver status)")
        if self.problem.status not in SOLVED:
            raise RuntimeError(f"network {self.network.name}: operator problem ended "
                               f"{self.problem.status} (rho {rho_eur_per_kw2h})")
        flow = block_values(self.block, self.problem.status, elapsed)
        return OperatorResult(
            z_kw=np.array(self.z.value), losses_kw=flow.losses_kw, import_kw=flow.import_kw,
            v_pu=flow.v_pu, i_ka=flow.i_ka, loss_gap_kw=flow.loss_gap_kw,
            objective_eur=float(self.problem.value) / OBJECTIVE_SCALE + constant, solve_s=elapsed,
            compile_s=float(self.problem.compilation_time or 0.0), status=self.problem.status)

    def _lindistflow(self, y_kw, dual_eur_per_kwh, rho_eur_per_kw2h: float) -> OperatorResult:
        """The SOCP stalled numerically (flows so small against the feeder's rating that
        losses sit at the solver's tolerance, e.g. a few households on an MV feeder):
        this and every later round's answer from the LinDistFlow model (the same model
        every round, so ADMM keeps one network block), whose error is smallest exactly
        there; counted in ``fallbacks``."""
        if self._fallback is None:
            self._fallback = OperatorModel(self.network, model="lindistflow", **self._args)
        self.fallbacks += 1
        result = self._fallback.update(y_kw, dual_eur_per_kwh, rho_eur_per_kw2h)
        return replace(result, status=f"{result.status} (lindistflow fallback)")

    def infeasibility(self) -> str | None:
        """The worst limit no dispatch z can meet (background load at its buses), or None."""
        return explain_infeasible(self.network, self.bus_kw, self.bus_kvar, self.model,
                                  self.period_h)


def _matrix(value, shape: tuple[int, int], what: str) -> np.ndarray:
    try:
        array = np.broadcast_to(np.asarray(value, dtype=float), shape)
    except ValueError:
        raise ValueError(f"{what} must broadcast to {shape}, got {np.shape(value)}") from None
    if not np.isfinite(array).all():
        raise ValueError(f"{what} must be finite")
    return np.array(array)


def _background(value, shape: tuple[int, int], what: str) -> np.ndarray:
    """(buses × T) kW array; None is zeros and a (buses,) array is constant over periods."""
    if value is None:
        return np.zeros(shape)
    array = np.asarray(value, dtype=float)
    if array.ndim == 1:
        array = array[:, np.newaxis]
    return _matrix(array, shape, what)
