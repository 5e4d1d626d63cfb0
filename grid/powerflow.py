"""AC power flow per period with limit checks: pure pandapower, no mosaik.

`GridModel` owns a private copy of a net, adds one pandapower `load` per agent (p_mw is
the agent's net consumption, negative when it exports) and optionally one background
load per bus, and runs one Newton-Raphson power flow per `step`. A power flow that does
not converge is recorded (`converged=False`, NaN arrays) and the model goes on. Bus
voltages, line loadings and the two-winding transformers' loading and power flow (reverse
flow from the LV to the HV side included) are checked against `GridLimits`.
"""

import copy
import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandapower as pp
import pandas as pd
from pandapower.powerflow import LoadflowNotConverged

from lemgrid.grid import POWER_FLOW_SOLVERS
from lemgrid.grid.newton import ArrayPowerFlow, ArrayResult

# Newton-Raphson, warm-started from the previous period's results (2 iterations instead of
# 4 from flat, ~20 % faster). numba off: it is not installed, and its JIT start-up would
# outweigh the gain over one day. Angles are not needed on radial nets without phase
# shifters (~25 % faster on CIGRE LV, no change on case33bw). pandapower's default
# tolerance 1e-8 stopped with a 6e-5 kW power mismatch on case33bw; 1e-10 costs at most
# one more iteration and closes the energy balance (slack = load + losses) to ~1e-9 kW.
# Between periods only the loads change: pandapower's `recycle` keeps the internal case
# and rewrites the loads' power (96 power flows of case33bw 4.7× faster, the same voltages
# to the last bit; `lemgrid bench --power-flow`). A load created since (a co-simulator's
# on a bus) makes the next run rebuild it. lightsim2grid only where the solver names it:
# pandapower's default ("auto") takes it wherever it is installed (its first run 0.28 s).
RUNPP_OPTIONS = {"algorithm": "nr", "calculate_voltage_angles": False, "numba": False,
                 "tolerance_mva": 1e-10, "lightsim2grid": False}
# Whatever ``numba`` says, pandapower compiles its selection of the elements in service
# with numba whenever numba imports (lemgrid installs it for the bilateral market's
# netting): its first power flow in a process then loads numba's compiler, 0.45 s of
# CPU (0.9 s in a forked grid process), for a loop over a few dozen elements. Its
# helpers are taken back to the Python functions they were compiled from.
NUMBA_HELPERS = {"pandapower.auxiliary": ("get_values", "set_elements_oos",
                                          "set_isolated_buses_oos"),
                 "pandapower.build_branch": ("get_values",)}
RECYCLE = {"bus_pq": True, "trafo": False, "gen": False}
ARRAYS = POWER_FLOW_SOLVERS[0]  # lemgrid's: Newton-Raphson on arrays (``grid.newton``)
SOLVER_OPTIONS = {ARRAYS: {}, "pandapower": {}, "lightsim2grid": {"lightsim2grid": True}}
BRANCH_TABLES = ("res_line", "res_trafo", "res_trafo3w", "res_impedance")
REVERSE_TOLERANCE_MW = 1e-9  # a reverse flow counts as a violation above its limit + this


def _uncompiled_helpers() -> None:
    for name, helpers in NUMBA_HELPERS.items():
        module = importlib.import_module(name)
        for helper in helpers:
            compiled = getattr(module, helper, None)
            if hasattr(compiled, "py_func"):  # a numba dispatcher
                setattr(module, helper, compiled.py_func)


_uncompiled_helpers()


@dataclass(frozen=True)
class GridLimits:
    """Operating limits the violation counts are checked against. `max_reverse_pct`: the
    most active power a two-winding transformer may feed back from its LV to its HV side,
    in % of its rating (sn_mva × parallel)."""

    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    max_loading_pct: float = 100.0
    max_reverse_pct: float = 100.0

    def __post_init__(self):
        if not 0 < self.v_min_pu < self.v_max_pu:
            raise ValueError(f"need 0 < v_min_pu < v_max_pu, got {self.v_min_pu}, {self.v_max_pu}")
        if self.max_loading_pct <= 0:
            raise ValueError(f"max_loading_pct must be positive, got {self.max_loading_pct}")
        if not 0 <= self.max_reverse_pct <= 100:
            raise ValueError(f"max_reverse_pct must be in [0, 100], got {self.max_reverse_pct}")

    def count_voltage(self, vm_pu: np.ndarray) -> int:
        """Buses outside [v_min_pu, v_max_pu]; NaN (not solved) is no violation."""
        return int(np.count_nonzero((vm_pu < self.v_min_pu) | (vm_pu > self.v_max_pu)))

    def count_lines(self, loading_pct: np.ndarray) -> int:
        """Lines loaded above max_loading_pct; NaN is no violation."""
        return int(np.count_nonzero(loading_pct > self.max_loading_pct))

    def count_trafos(self, loading_pct: np.ndarray, p_mw: np.ndarray,
                     rating_mva: np.ndarray) -> int:
        """Transformers loaded above max_loading_pct or feeding back more than
        max_reverse_pct % of their rating: −p_mw (MW delivered into the LV network,
        negative in reverse flow) above max_reverse_pct/100 · rating_mva (MVA, sn_mva ×
        parallel) + REVERSE_TOLERANCE_MW. NaN is no violation."""
        reverse_limit_mw = self.max_reverse_pct / 100.0 * rating_mva + REVERSE_TOLERANCE_MW
        return int(np.count_nonzero((loading_pct > self.max_loading_pct)
                                    | (-p_mw > reverse_limit_mw)))


@dataclass(frozen=True)
class PeriodResult:
    """One period's power flow; arrays are NaN and counts 0 when it did not converge.
    `trafo_p_mw` is the active power each transformer delivers into its LV network at its
    LV terminal (MW, −res_trafo.p_lv_mw): positive when the LV network imports, negative
    in reverse flow."""

    period: int
    converged: bool
    vm_pu: np.ndarray  # per bus, in net.bus order
    loading_pct: np.ndarray  # per line, in net.line order
    voltage_violations: int
    line_violations: int
    losses_kw: float
    p_slack_kw: float
    trafo_p_mw: np.ndarray  # per two-winding transformer, in net.trafo order
    trafo_loading_pct: np.ndarray  # per two-winding transformer, in net.trafo order
    trafo_violations: int
    va_degree: np.ndarray | None = None  # per bus
    bus_p_mw: np.ndarray | None = None  # per bus: its net consumption (res_bus.p_mw)
    i_ka: np.ndarray | None = None  # per line: the larger end current


def trafo_rating_mva(net: pp.pandapowerNet) -> np.ndarray:
    """Each two-winding transformer's rating (MVA, sn_mva × parallel), in net.trafo order."""
    return (net.trafo["sn_mva"] * net.trafo["parallel"]).to_numpy(dtype=float)


def _background_array(background_kw, n_bus: int) -> np.ndarray | None:
    """Background load as a (periods, buses) kW array, or None; a 1-D array is constant."""
    if background_kw is None:
        return None
    array = np.asarray(background_kw, dtype=float)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[1] != n_bus or not np.isfinite(array).all():
        raise ValueError(f"background_kw must be finite, of shape (buses,) or (periods, buses) "
                         f"with {n_bus} buses; got shape {np.shape(background_kw)}")
    return array


class GridModel:
    """Per-period AC power flow of agents (and background load) placed on a network.

    `background_kw` is per bus in net.bus order: shape (buses,) for a constant load or
    (periods, buses) for a profile. `power_factor` (lagging, applied to agents and
    background alike) gives q = p * tan(acos(pf)); the default 1.0 means q = 0. The net's
    own loads stay, constant, unless `keep_network_loads` is False; its generators stay.
    """

    def __init__(self, net: pp.pandapowerNet, bus_of: Mapping[str, int], background_kw=None,
                 power_factor: float = 1.0, limits: GridLimits | None = None,
                 keep_network_loads: bool = True, solver: str = POWER_FLOW_SOLVERS[0]):
        if not 0 < power_factor <= 1:
            raise ValueError(f"power_factor must be in (0, 1], got {power_factor}")
        if solver not in SOLVER_OPTIONS:
            raise ValueError(f"power-flow solver {solver!r}; allowed: "
                             f"{', '.join(POWER_FLOW_SOLVERS)}")
        self._options = RUNPP_OPTIONS | SOLVER_OPTIONS[solver]
        self._solver = solver
        self._arrays: ArrayPowerFlow | None = None  # built by the next pandapower run
        self.net = copy.deepcopy(net)
        if not keep_network_loads:
            self.net.load = self.net.load.drop(self.net.load.index)
        self.limits = limits or GridLimits()
        self.agents = list(bus_of)
        self._position = {agent: i for i, agent in enumerate(self.agents)}
        self._q_per_p = math.tan(math.acos(power_factor))
        self._background_kw = _background_array(background_kw, len(self.net.bus))
        self._n_own = len(self.net.load)
        self.trafo_rating_mva = trafo_rating_mva(self.net)
        self._add_loads(bus_of)
        self._external: list[int] = []  # buses with a co-simulator's load, in creation order
        self._rebuild = True  # the next power flow builds pandapower's internal case
        self._init = "flat"

    def _add_loads(self, bus_of: Mapping[str, int]) -> None:
        missing = {a: b for a, b in bus_of.items() if b not in self.net.bus.index}
        if missing:
            raise ValueError(f"agents mapped to buses the network does not have: {missing}")
        names, buses = list(bus_of), list(bus_of.values())
        if self._background_kw is not None:
            names += [f"background {bus}" for bus in self.net.bus.index]
            buses += list(self.net.bus.index)
        if names:
            pp.create_loads(self.net, buses, p_mw=0.0, name=names)
        self._own_p_mw = self.net.load["p_mw"].to_numpy()[:self._n_own].copy()
        self._own_q_mvar = self.net.load["q_mvar"].to_numpy()[:self._n_own].copy()

    @property
    def bus_ids(self) -> list[int]:
        return [int(bus) for bus in self.net.bus.index]

    @property
    def line_ids(self) -> list[int]:
        return [int(line) for line in self.net.line.index]

    @property
    def trafo_ids(self) -> list[int]:
        return [int(trafo) for trafo in self.net.trafo.index]

    def _added_p_kw(self, period: int, p_kw: Mapping[str, float]) -> np.ndarray:
        """kW of the added loads in creation order: agents, then background per bus."""
        unknown = sorted(set(p_kw) - set(self._position))
        if unknown:
            raise ValueError(f"power given for agents not on the grid: {unknown}")
        agents_kw = np.zeros(len(self.agents))
        for agent, value in p_kw.items():
            agents_kw[self._position[agent]] = value
        if not np.isfinite(agents_kw).all():
            bad = [agent for agent, value in zip(self.agents, agents_kw) if not np.isfinite(value)]
            raise ValueError(f"period {period}: non-finite p_kw from agents {bad}")
        if self._background_kw is None:
            return agents_kw
        profile = self._background_kw
        if len(profile) > 1 and not 0 <= period < len(profile):
            raise ValueError(f"period {period} is outside the background profile "
                             f"(0-{len(profile) - 1})")
        return np.concatenate([agents_kw, profile[period if len(profile) > 1 else 0]])

    def _external_kw(self, period: int, bus_kw: Mapping[int, float] | None) -> np.ndarray:
        """kW of the loads co-simulators put on buses (+ consumption, − generation), in
        creation order; a bus's load is created the first time it is given."""
        bus_kw = {int(b): float(v) for b, v in (bus_kw or {}).items()}
        unknown = sorted(set(bus_kw) - set(self.bus_ids))
        if unknown:
            raise ValueError(f"power given for buses the network does not have: {unknown}")
        bad = sorted(b for b, v in bus_kw.items() if not math.isfinite(v))
        if bad:
            raise ValueError(f"period {period}: non-finite p_kw on buses {bad}")
        new = [b for b in sorted(bus_kw) if b not in self._external]
        if new:
            pp.create_loads(self.net, new, p_mw=0.0, name=[f"external {b}" for b in new])
            self._external += new
            self._rebuild = True
        return np.array([bus_kw.get(b, 0.0) for b in self._external])

    def load_powers(self, period: int, p_kw: Mapping[str, float],
                    bus_kw: Mapping[int, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every load's p_mw and q_mvar in net.load order; agents missing from p_kw draw
        0, and ``bus_kw`` (kW per bus from co-simulators) is added at those buses."""
        external = self._external_kw(period, bus_kw)
        added_p_mw = np.concatenate([self._added_p_kw(period, p_kw), external]) / 1000.0
        return (np.concatenate([self._own_p_mw, added_p_mw]),
                np.concatenate([self._own_q_mvar, added_p_mw * self._q_per_p]))

    def prepare(self) -> None:
        """Build pandapower's internal case (and the arrays, with lemgrid's solver) before
        the first period, in a power flow of the net's own and background loads alone
        whose result is not kept: what the first period would otherwise do on its own
        (0.1-0.2 s on case33bw), so a simulator can do it while it waits. The first
        period then starts from that solution instead of a flat start (the same result
        to the power flow's tolerance)."""
        if self._rebuild:
            self.step(0, {})

    def step(self, period: int, p_kw: Mapping[str, float],
             bus_kw: Mapping[int, float] | None = None) -> PeriodResult:
        """Set the period's powers, run the power flow and check the limits: on arrays
        (``grid.newton``) once a pandapower run has built the internal case, where the
        solver is lemgrid's and the net allows it; else, and when that does not
        converge, pandapower's."""
        p_mw, q_mvar = self.load_powers(period, p_kw, bus_kw)
        if self._arrays is not None and not self._rebuild:
            result = self._arrays.run(p_mw, q_mvar)
            if result is not None:
                return self._from_arrays(period, result)
        self.net.load["p_mw"], self.net.load["q_mvar"] = p_mw, q_mvar
        recycle = None if self._rebuild or self._arrays is not None else RECYCLE
        self._rebuild = False
        try:
            pp.runpp(self.net, init=self._init, recycle=recycle, **self._options)
        except LoadflowNotConverged:
            self._init = "flat"  # the failed iterate is no starting point
            self._rebuild = True  # nor its internal case
            self._arrays = None
            return self._failed(period)
        self._init = "results"
        if self._solver == ARRAYS:
            self._arrays = ArrayPowerFlow.after(self.net, RUNPP_OPTIONS["tolerance_mva"])
        return self._converged(period)

    def _failed(self, period: int) -> PeriodResult:
        n_trafo, n_bus, n_line = len(self.net.trafo), len(self.net.bus), len(self.net.line)
        return PeriodResult(period=period, converged=False, vm_pu=np.full(n_bus, np.nan),
                            loading_pct=np.full(n_line, np.nan), voltage_violations=0,
                            line_violations=0, losses_kw=math.nan, p_slack_kw=math.nan,
                            trafo_p_mw=np.full(n_trafo, np.nan),
                            trafo_loading_pct=np.full(n_trafo, np.nan), trafo_violations=0,
                            va_degree=np.full(n_bus, np.nan), bus_p_mw=np.full(n_bus, np.nan),
                            i_ka=np.full(n_line, np.nan))

    def _from_arrays(self, period: int, r: ArrayResult) -> PeriodResult:
        lim = self.limits
        trafo_p_mw = -r.trafo_p_lv_mw
        return PeriodResult(
            period=period, converged=True, vm_pu=r.vm_pu, loading_pct=r.loading_pct,
            voltage_violations=lim.count_voltage(r.vm_pu),
            line_violations=lim.count_lines(r.loading_pct), losses_kw=r.losses_mw * 1000.0,
            p_slack_kw=r.p_slack_mw * 1000.0, trafo_p_mw=trafo_p_mw,
            trafo_loading_pct=r.trafo_loading_pct,
            trafo_violations=lim.count_trafos(r.trafo_loading_pct, trafo_p_mw,
                                              self.trafo_rating_mva),
            va_degree=r.va_degree, bus_p_mw=r.bus_p_mw, i_ka=r.i_ka)

    def _converged(self, period: int) -> PeriodResult:
        vm_pu = self.net.res_bus["vm_pu"].to_numpy(dtype=float).copy()
        loading_pct = self.net.res_line["loading_percent"].to_numpy(dtype=float).copy()
        trafo_p_mw = -self.net.res_trafo["p_lv_mw"].to_numpy(dtype=float)
        trafo_loading_pct = self.net.res_trafo["loading_percent"].to_numpy(dtype=float).copy()
        lim = self.limits
        losses_mw = sum(float(self.net[table]["pl_mw"].sum()) for table in BRANCH_TABLES
                        if table in self.net and len(self.net[table]))
        return PeriodResult(
            period=period, converged=True, vm_pu=vm_pu, loading_pct=loading_pct,
            voltage_violations=lim.count_voltage(vm_pu),
            line_violations=lim.count_lines(loading_pct),
            losses_kw=losses_mw * 1000.0,
            p_slack_kw=float(self.net.res_ext_grid["p_mw"].sum()) * 1000.0,
            trafo_p_mw=trafo_p_mw, trafo_loading_pct=trafo_loading_pct,
            trafo_violations=lim.count_trafos(trafo_loading_pct, trafo_p_mw,
                                              self.trafo_rating_mva),
            va_degree=self.net.res_bus["va_degree"].to_numpy(dtype=float).copy(),
            bus_p_mw=self.net.res_bus["p_mw"].to_numpy(dtype=float).copy(),
            i_ka=self.net.res_line["i_ka"].to_numpy(dtype=float).copy())


def bus_table(results: list[PeriodResult], bus_ids: list[int] | None = None):
    """Long table `period, bus, vm_pu` (NaN where the period did not converge)."""
    return _long_table(results, "vm_pu", "bus", bus_ids)


def line_table(results: list[PeriodResult], line_ids: list[int] | None = None):
    """Long table `period, line, loading_pct` (NaN where the period did not converge)."""
    return _long_table(results, "loading_pct", "line", line_ids)


def trafo_table(results: list[PeriodResult], trafo_ids: list[int] | None = None):
    """Long table `period, trafo, p_kw, loading_pct`: p_kw is the power the transformer
    delivers into its LV network (kW, negative in reverse flow); NaN where the period did
    not converge."""
    power = _long_table(results, "trafo_p_mw", "trafo", trafo_ids)
    loading = _long_table(results, "trafo_loading_pct", "trafo", trafo_ids)
    return pd.DataFrame({"period": power["period"], "trafo": power["trafo"],
                         "p_kw": power["trafo_p_mw"] * 1000.0,
                         "loading_pct": loading["trafo_loading_pct"]})


def _long_table(results: list[PeriodResult], attr: str, key: str, ids: list[int] | None):
    if not results:
        return pd.DataFrame({"period": pd.Series(dtype=int), key: pd.Series(dtype=int),
                             attr: pd.Series(dtype=float)})
    values = np.stack([getattr(result, attr) for result in results])
    n_periods, n_items = values.shape
    ids = np.arange(n_items) if ids is None else np.asarray(ids, dtype=int)
    return pd.DataFrame({
        "period": np.repeat([result.period for result in results], n_items),
        key: np.tile(ids, n_periods),
        attr: values.ravel(),
    })


def grid_summary(results: list[PeriodResult], limits: GridLimits, network_name: str,
                 period_h: float = 0.25, trafo_rating_mva=()) -> dict:
    """The `grid` block of summary.json: observed extremes over the converged periods (None
    if none converged), violation counts summed over periods, recounted against `limits`,
    and the network's losses over the converged periods (kWh; periods of ``period_h``).
    ``trafo_rating_mva``: each transformer's rating (`trafo_rating_mva(net)`), which the
    reverse-flow recount needs. `max_reverse_flow_kw` is the largest power fed back
    through a transformer (0.0 if none ever was; None without transformers).
    """
    rating = np.asarray(trafo_rating_mva, dtype=float)
    wrong = sorted({len(r.trafo_p_mw) for r in results} - {len(rating)})
    if wrong:
        raise ValueError(f"trafo_rating_mva has {len(rating)} transformers, the results "
                         f"{wrong[0]}")
    ok = [result for result in results if result.converged]

    def joined(attr: str) -> np.ndarray:
        return np.concatenate([getattr(result, attr) for result in ok]) if ok else np.array([])
    vm_pu, loading = joined("vm_pu"), joined("loading_pct")
    trafo_p_mw, trafo_loading = joined("trafo_p_mw"), joined("trafo_loading_pct")
    reverse_mw = _nan_extreme(np.nanmax, -trafo_p_mw)
    return {
        "network": network_name,
        "v_min_pu": _nan_extreme(np.nanmin, vm_pu),
        "v_max_pu": _nan_extreme(np.nanmax, vm_pu),
        "max_loading_pct": _nan_extreme(np.nanmax, loading),
        "voltage_violations": limits.count_voltage(vm_pu),
        "line_violations": limits.count_lines(loading),
        "max_trafo_loading_pct": _nan_extreme(np.nanmax, trafo_loading),
        "max_reverse_flow_kw": None if reverse_mw is None else max(0.0, reverse_mw) * 1000.0,
        "trafo_violations": limits.count_trafos(trafo_loading, trafo_p_mw,
                                                np.tile(rating, len(ok))),
        "pf_failures": len(results) - len(ok),
        "losses_kwh": float(np.nansum([r.losses_kw for r in ok]) * period_h) if ok else None,
    }


def _nan_extreme(function, values: np.ndarray) -> float | None:
    return float(function(values)) if np.isfinite(values).any() else None
