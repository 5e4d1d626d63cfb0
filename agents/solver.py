"""Persistent HiGHS solves of agent models (and of any model built from agent blocks).

Build (``define_*``) → persistent HiGHS instance (limits are mutable parameters, so a
new limit only rewrites coefficients) → solve → extract a typed ``Schedule``.

A solve first runs the LP relaxation. Its optimum is a lower bound of the MILP; if
every genuine integer decision (a flexible load's on/off) is already integral and
setting every indicator binary to 1 exactly where its flow is positive also satisfies
every exclusion ``x_a + x_b ≤ 1``, that LP solution is feasible for the MILP and
therefore MILP-optimal. Otherwise the MILP is solved by branch and bound.
"""

from __future__ import annotations

import threading
import time

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.solvers.highs import Highs

from agents.data import AgentData, BuildingData, EVData, ProsumerData, Schedule, kind_of
from agents.diagnose import explain_infeasible
from agents.formulations import (
    SIGNED,
    define_building,
    define_ev,
    define_prosumer,
    flow_components,
)

FLOW_ON_KW = 1e-9  # a flow above this counts as "on" when the LP relaxation is checked
INTEGRAL_TOL = 1e-9  # an integer decision this close to an integer counts as integral
OBJECTIVE_TOL = 1e-9  # relative: a MILP solution's values must price at its objective
DEFINE = {ProsumerData: define_prosumer, EVData: define_ev, BuildingData: define_building}
BUILD_LOCK = threading.Lock()  # one agent model is built at a time in a process
OPTIMAL = highspy.HighsModelStatus.kOptimal
INFEASIBLE = (highspy.HighsModelStatus.kInfeasible,
              highspy.HighsModelStatus.kUnboundedOrInfeasible)


class AgentInfeasible(RuntimeError):
    """The agent's day cannot be planned; the message names the agent and the reason."""


class AgentSolveError(RuntimeError):
    """The solver stopped without an optimal plan (time limit, numerical trouble)."""


class PersistentMILP:
    """A Pyomo model held in HiGHS, solved LP-first (see module docstring)."""

    def __init__(self, model: pyo.Block, mip_rel_gap: float = 1e-6,
                 time_limit_s: float = 60.0):
        self._opt = Highs()
        self._opt.set_instance(model)
        self.highs = h = self._opt._solver_model
        # No "threads" option: HiGHS sizes its scheduler once per process and a later
        # instance asking for another thread count fails to run.
        for key, value in (("output_flag", False), ("mip_rel_gap", mip_rel_gap),
                           ("time_limit", time_limit_s)):
            h.setOptionValue(key, value)
        indicators, exclusive, integers = [], [], []
        for blk in model.block_data_objects():
            indicators += getattr(blk, "indicators", [])
            exclusive += getattr(blk, "exclusive", [])
            integers += getattr(blk, "integers", [])
        row = {id(x): k for k, (x, _) in enumerate(indicators)}
        self._flows = [self.columns(f) for _, f in indicators]
        self._exclusive = [(row[id(a)], row[id(b)]) for a, b in exclusive]
        self._integers = self._stack([self.columns(x) for x in integers])
        # Every column the LP relaxes: indicator binaries, then integer decisions.
        self._binaries = np.concatenate(
            [self._stack([self.columns(x) for x, _ in indicators]), self._integers]
        )

    @staticmethod
    def _stack(columns: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(columns or [np.empty(0, np.int32)]).astype(np.int32)

    def columns(self, var: pyo.Var) -> np.ndarray:
        """HiGHS column indices of an indexed variable, in index order."""
        vmap = self._opt._pyomo_var_to_solver_var_map
        return np.array([vmap[id(var[t])] for t in sorted(var.keys())], dtype=np.int32)

    def update_parameters(self) -> None:
        self._opt.update_parameters()

    def solve(self, lp_first: bool = True) -> tuple[object, str]:
        """Solve; return the HiGHS model status and the method that proved optimality."""
        if not len(self._binaries):
            return self._run(relax=False), "lp"
        if lp_first and self._run(relax=True) == OPTIMAL and self._lp_is_milp_feasible():
            return OPTIMAL, "lp"
        return self._run_milp(), "milp"

    def _run_milp(self):
        """Branch and bound. HiGHS 1.16 may take the preceding LP solution as a MIP start
        and then report the optimum's objective with the start's values; if the values
        do not price at the objective, clear that start and solve again."""
        status = self._run(relax=False)
        if status == OPTIMAL and not self._values_match_objective():
            self.highs.clearSolver()
            status = self._run(relax=False)
        return status

    def _values_match_objective(self) -> bool:
        lp = self.highs.getLp()
        x = np.asarray(self.highs.getSolution().col_value)
        value = float(np.dot(lp.col_cost_, x) + lp.offset_)
        return abs(value - self.objective()) <= OBJECTIVE_TOL * max(1.0, abs(value))

    def _run(self, relax: bool):
        if len(self._binaries):
            kind = highspy.HighsVarType.kContinuous if relax else highspy.HighsVarType.kInteger
            n = len(self._binaries)
            self.highs.changeColsIntegrality(n, self._binaries, np.full(n, kind))
        self.highs.run()
        return self.highs.getModelStatus()

    def _lp_is_milp_feasible(self) -> bool:
        x = np.asarray(self.highs.getSolution().col_value)
        ints = x[self._integers]
        if np.any(np.abs(ints - np.round(ints)) > INTEGRAL_TOL):
            return False
        on = [x[cols] > FLOW_ON_KW for cols in self._flows]
        return not any(np.any(on[a] & on[b]) for a, b in self._exclusive)

    def values(self, cols: np.ndarray) -> np.ndarray:
        return np.asarray(self.highs.getSolution().col_value)[cols]

    def objective(self) -> float:
        return float(self.highs.getInfo().objective_function_value)

    def status_text(self, status) -> str:
        return self.highs.modelStatusToString(status)


def schedule_from_values(data: AgentData, values: dict[str, np.ndarray],
                         objective_eur: float, method: str, seconds: float) -> Schedule:
    """A Schedule from per-variable value arrays (keys as in ``flow_components``); flows
    are clipped at 0 (solver noise) except the signed ones (``SIGNED``)."""
    flows = {k: v if k in SIGNED else np.clip(v, 0.0, None) for k, v in values.items()}
    soc = flows.pop("soc_kwh", None)
    kind = agent_kind(data)
    if kind in ("prosumer", "building"):
        flows["load_kw"] = np.asarray(data.load_kw, float)  # the non-flexible load
    return Schedule(agent=data.name, kind=kind, status="optimal", objective_eur=objective_eur,
                    method=method, solve_time_s=seconds, flows_kw=flows, soc_kwh=soc)


def agent_kind(data: AgentData) -> str:
    return kind_of(data)


def define_agent(block: pyo.Block, data: AgentData) -> pyo.Block:
    """Fill ``block`` with the agent's constraints and ``cost_eur`` expression."""
    return DEFINE[type(data)](block, data)


class AgentModel:
    """One agent's MILP, built once per day and re-solved as its P2V limit changes."""

    def __init__(self, data: AgentData, mip_rel_gap: float = 1e-6,
                 time_limit_s: float = 60.0):
        with BUILD_LOCK:  # Pyomo's model set-up is not thread-safe
            self._build(data, mip_rel_gap, time_limit_s)

    def _build(self, data: AgentData, mip_rel_gap: float, time_limit_s: float) -> None:
        self.data, self.kind = data, agent_kind(data)
        self.m = m = pyo.ConcreteModel(name=data.name)
        define_agent(m, data)
        m.obj = pyo.Objective(expr=m.cost_eur)
        self.solver = PersistentMILP(m, mip_rel_gap, time_limit_s)
        self._cols = {k: self.solver.columns(v) for k, v in flow_components(m).items()}

    @property
    def name(self) -> str:
        return self.data.name

    def set_p2v_limit(self, limit_kw) -> None:
        """Set the coordinator's per-period P2V limit (kW) and push it to HiGHS.

        A building takes no part in the P2V market and has no such limit: TypeError.
        """
        if self.kind == "building":
            raise TypeError(f"building {self.name}: has no P2V limit to set")
        param = self.m.p2v_limit_kw
        for t, value in enumerate(np.broadcast_to(limit_kw, (self.data.horizon.periods,))):
            param[t] = float(value)
        self.solver.update_parameters()

    def set_prices(self, buy_eur_per_kwh, sell_eur_per_kwh, demand_limit: bool = True) -> None:
        """Plan against a market's prices (per period) instead of the retail tariff; with
        ``demand_limit`` False the agent's own consumer demand limit is not billed (a
        locality market bills the locality's limit in its prices)."""
        p = self.m.prices
        factor = getattr(self.data, "cdl_factor", 1.0) if demand_limit else 1.0
        for t, (buy, sell) in enumerate(zip(buy_eur_per_kwh, sell_eur_per_kwh, strict=True)):
            p.buy[t], p.sell[t] = float(buy), float(sell)
            p.above_cdl[t] = (factor - 1.0) * float(buy)
        self.solver.update_parameters()

    def set_export_limit(self, limit_kw) -> None:
        """Set the per-period export limit (kW; a PIL, or the connection's limit where the
        utility imposes none), capped at the connection. A model without a settable export
        limit (prosumer, EV: their export limit is their contract's) is left as it is."""
        param = getattr(self.m, "export_limit_kw", None)
        if param is None:
            return
        cap = float(self.data.sell_max_kw)
        for t, value in enumerate(np.broadcast_to(limit_kw, (self.data.horizon.periods,))):
            param[t] = min(float(value), cap)
        self.solver.update_parameters()

    def solve(self, lp_first: bool = True) -> Schedule:
        """Solve for the current limits; raise AgentInfeasible or AgentSolveError."""
        start = time.perf_counter()
        status, method = self.solver.solve(lp_first)
        if status in INFEASIBLE:
            raise AgentInfeasible(explain_infeasible(self.data))
        if status != OPTIMAL:
            raise AgentSolveError(f"{self.kind} {self.name}: solver stopped with status "
                                  f"{self.solver.status_text(status)}")
        values = {k: self.solver.values(c) for k, c in self._cols.items()}
        return schedule_from_values(self.data, values, self.solver.objective(), method,
                                    time.perf_counter() - start)
