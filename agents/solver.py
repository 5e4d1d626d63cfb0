"""Persistent HiGHS solves of agent models (and of any model built from agent blocks).

Build (``define_*``) → persistent HiGHS instance (limits are mutable parameters, so a
new limit only rewrites coefficients) → solve → extract a typed ``Schedule``.

Once HiGHS holds the model, an ``AgentModel`` lets go of its Pyomo model (half of an
agent's memory: 1.6 of 3.1 MB for a faia2021 household): ``ParameterMap`` records, at
build time, every HiGHS entry a mutable parameter sets (a constraint coefficient, a row
bound, a cost, the objective's offset) as an affine function of the parameters, and
writes those entries itself when a parameter changes.

A solve first relaxes the indicator binaries (``flow ≤ M·x``). A model without genuine
integer decisions is then an LP; one with them (a flexible load's on/off) a branch and
bound over those alone. Either optimum is a lower bound of the MILP; if setting every
indicator binary to 1 exactly where its flow is positive also satisfies every exclusion
``x_a + x_b ≤ 1``, the relaxed solution is feasible for the MILP and therefore
MILP-optimal. Otherwise the whole MILP is solved by branch and bound. A tems2023
building-day takes 11.6 ms this way against 29 ms for its LP relaxation (never integral
there) followed by the whole MILP (2026-12-07).
"""

from __future__ import annotations

import copy
import threading

import highspy
import numpy as np

from lemgrid.agents.data import AgentData, BuildingData, EVData, ProsumerData, Schedule, kind_of
from lemgrid.agents.formulations import (
    SIGNED,
    define_building,
    define_ev,
    define_prosumer,
)
from lemgrid.agents.lazy import lazy

pyo = lazy("pyomo.environ")  # imported where a model is written in Pyomo

FLOW_ON_KW = 1e-9  # a flow above this counts as "on" when the LP relaxation is checked
INTEGRAL_TOL = 1e-9  # an integer decision this close to an integer counts as integral
OBJECTIVE_TOL = 1e-9  # relative: a MILP solution's values must price at its objective
DEFINE = {ProsumerData: define_prosumer, EVData: define_ev, BuildingData: define_building}
BUILD_LOCK = threading.Lock()  # one agent model is built at a time in a process
# The integer-decisions-only branch and bound (see module docstring) of a small agent
# model is proved at the root: HiGHS's primal heuristics there cost more than they find
# (a tems2023 building-day 16.6 → 9.0 ms, the same optimum; 2026-12-07).
MIP_HEURISTICS = tuple(f"mip_heuristic_run_{h}"
                       for h in ("rins", "rens", "feasibility_jump", "root_reduced_cost"))
# HiGHS's threads for the agents' models; None: HiGHS's own choice (every core). A
# process of agent simulators, one of many on the machine, sets 1 before its first solve
# (``agents.launcher``): HiGHS's worker thread keeps a core busy while a MIP is solved,
# which in-process is a core nobody else needs and across 90 processes doubled the CPU
# of every MIP solve (measured on a 20-variable MIP: 7.5 ms of CPU for 3.5 ms of wall).
HIGHS_THREADS: int | None = None
OPTIMAL = highspy.HighsModelStatus.kOptimal
INFEASIBLE = (highspy.HighsModelStatus.kInfeasible,
              highspy.HighsModelStatus.kUnboundedOrInfeasible)


class AgentInfeasible(RuntimeError):
    """The agent's day cannot be planned; the message names the agent and the reason."""


class AgentSolveError(RuntimeError):
    """The solver stopped without an optimal plan (time limit, numerical trouble)."""


class NotAffine(ValueError):
    """A model whose parameters set HiGHS entries other than affinely (it keeps Pyomo)."""


SLOT_KINDS = ("coef", "cost", "offset", "row_lo", "row_hi", "col_lo", "col_hi")


class ParameterMap:
    """Every HiGHS entry that depends on the model's mutable parameters, as c0 + Σ g·θ over
    the parameters θ (read from the persistent interface's update helpers at build time;
    the agent models' parameters enter linearly: coefficients ``limit·x``, prices, bounds;
    a variable bound is then held within its domain's). ``set(name, values)`` changes a
    parameter family (``p2v_limit_kw``, ``prices.buy``, ...); ``push`` writes the changed
    entries to HiGHS. ``instance(theta)`` is the same map at other parameter values (the
    arrays are shared): how a parametric model serves another agent (``agents.model``).
    """

    def __init__(self, opt):  # pyomo.contrib.solver.solvers.highs.Highs
        self.index: dict[tuple[str, object], int] = {}
        values: list[float] = []
        slots: list[tuple[str, tuple, object]] = []  # (kind, target, expression)
        con_row, var_col = opt._pyomo_con_to_solver_con_map, opt._pyomo_var_to_solver_var_map
        domain_lo, domain_hi = [], []  # a variable's domain bounds, per bound slot
        for var_id, (_, h) in opt._mutable_bounds.items():
            (lo, dom_lo), (hi, dom_hi) = h.lower_expr.args, h.upper_expr.args
            slots += [("col_lo", (var_col[var_id],), lo), ("col_hi", (var_col[var_id],), hi)]
            domain_lo.append(float(pyo.value(dom_lo)))
            domain_hi.append(float(pyo.value(dom_hi)))
        for con, helpers in opt._mutable_helpers.items():
            for h in helpers:
                row = con_row[con]
                if hasattr(h, "pyomo_var_id"):
                    slots.append(("coef", (row, var_col[h.pyomo_var_id]), h.expr))
                else:
                    slots += [("row_lo", (row,), h.lower_expr), ("row_hi", (row,), h.upper_expr)]
        objective = opt._mutable_objective
        if objective.quadratic_coefs:
            raise NotAffine("a quadratic objective")
        for h in objective.linear_coefs:
            slots.append(("cost", (var_col[h.pyomo_var_id],), h.expr))
        slots.append(("offset", (), objective.constant.expr))
        rows, cols, grads, c0 = [], [], [], []
        for i, (_, _, expr) in enumerate(slots):
            params = _parameters(expr)
            saved = [p.value for p in params]
            for p in params:  # exact for an affine expr: c0 at θ = 0, g from unit steps
                p.value = 0.0
            c0.append(pyo.value(expr))
            for p, old in zip(params, saved, strict=True):
                key = (p.parent_component().name, p.index())
                k = self.index.setdefault(key, len(values))
                if k == len(values):
                    values.append(float(old))
                p.value = 1.0
                rows.append(i)
                cols.append(k)
                grads.append(pyo.value(expr) - c0[-1])
                p.value = 0.0
            for p, old in zip(params, saved, strict=True):
                p.value = old
            if params:  # affine: the map gives the entry's value at the parameters' own
                given = c0[-1] + sum(g * old for g, old in
                                     zip(grads[len(grads) - len(params):], saved, strict=True))
                if not np.isclose(given, pyo.value(expr), rtol=1e-9, atol=1e-12):
                    raise NotAffine(f"{expr} is not affine in its parameters")
        self.theta = np.asarray(values, float)
        # ∂slot/∂θ as (slot, parameter, g) triples (no scipy: agent processes do not import
        # it, and a copy of it in each cost them 45 MB a process at 1000 agents)
        self._grad = (np.asarray(rows, np.int64), np.asarray(cols, np.int64),
                      np.asarray(grads, float))
        self.c0 = np.asarray(c0, float)
        kinds = [k for k, _, _ in slots]
        pick = {k: np.array([i for i, kind in enumerate(kinds) if kind == k], np.int64)
                for k in SLOT_KINDS}
        self._coef, self._cost, self._offset = pick["coef"], pick["cost"], pick["offset"]
        self._coef_at = np.array([slots[i][1] for i in self._coef], np.int32).reshape(-1, 2)
        self._cost_col = np.array([slots[i][1][0] for i in self._cost], np.int32)
        self._lo, self._hi = pick["row_lo"], pick["row_hi"]  # a row's two bounds, in pairs
        self._row = np.array([slots[i][1][0] for i in self._lo], np.int32)
        self._col_lo, self._col_hi = pick["col_lo"], pick["col_hi"]  # in pairs, as rows
        self._col = np.array([slots[i][1][0] for i in self._col_lo], np.int32)
        self._domain = (np.asarray(domain_lo, float), np.asarray(domain_hi, float))
        self._written = self.values()  # what HiGHS holds

    @property
    def coefficient_entries(self) -> np.ndarray:
        """(row, column) of each matrix coefficient the parameters set, in ``fill``'s
        order."""
        return self._coef_at

    def fill(self, cost: np.ndarray, col_lower: np.ndarray, col_upper: np.ndarray,
             row_lower: np.ndarray, row_upper: np.ndarray) -> tuple[np.ndarray, float | None]:
        """Write the costs and bounds the parameters set, at their values, into a model's
        arrays (in place); return the matrix coefficients they set (in
        ``coefficient_entries`` order) and the objective's offset (None: no parameter
        sets it)."""
        v = self._written
        cost[self._cost_col] = v[self._cost]
        col_lower[self._col], col_upper[self._col] = v[self._col_lo], v[self._col_hi]
        row_lower[self._row], row_upper[self._row] = v[self._lo], v[self._hi]
        offset = float(v[self._offset[0]]) if len(self._offset) else None
        return v[self._coef], offset

    def sync(self) -> None:
        """HiGHS is handed the model anew at the current values (``fill``): nothing is left
        for ``push`` to write."""
        self._written = self.values()

    def instance(self, theta: np.ndarray) -> ParameterMap:
        """This map at parameters ``theta`` (in ``index`` order); ``sync`` once HiGHS is
        handed the model at them (``agents.model``'s ``highs_for``)."""
        other = copy.copy(self)
        other.theta = np.asarray(theta, float).copy()
        return other

    def values(self) -> np.ndarray:
        rows, cols, grads = self._grad
        out = self.c0.copy()
        np.add.at(out, rows, grads * self.theta[cols])
        if len(self._col_lo):  # a variable's bound within its domain's
            out[self._col_lo] = np.maximum(out[self._col_lo], self._domain[0])
            out[self._col_hi] = np.minimum(out[self._col_hi], self._domain[1])
        return out

    def set(self, name: str, values) -> None:
        """Set parameter family ``name`` (indexed 0..n−1; a scalar: one value) to
        ``values``; a family no entry depends on is not recorded and changes nothing."""
        for t, v in enumerate(values):
            k = self.index.get((name, t), self.index.get((name, None)) if t == 0 else None)
            if k is not None:
                self.theta[k] = float(v)

    def push(self, highs: highspy.Highs) -> None:
        """Write the entries whose value changed since the last push."""
        value = self.values()
        changed = value != self._written
        for i in np.flatnonzero(changed[self._coef]):
            row, col = self._coef_at[i]
            highs.changeCoeff(int(row), int(col), float(value[self._coef[i]]))
        c = np.flatnonzero(changed[self._cost])
        if len(c):
            highs.changeColsCost(len(c), self._cost_col[c], value[self._cost[c]])
        if len(self._offset) and changed[self._offset[0]]:
            highs.changeObjectiveOffset(float(value[self._offset[0]]))
        r = np.flatnonzero(changed[self._lo] | changed[self._hi])
        if len(r):
            highs.changeRowsBounds(len(r), self._row[r], value[self._lo[r]], value[self._hi[r]])
        c = np.flatnonzero(changed[self._col_lo] | changed[self._col_hi])
        if len(c):
            highs.changeColsBounds(len(c), self._col[c], value[self._col_lo[c]],
                                   value[self._col_hi[c]])
        self._written = value


def _parameters(expr) -> list:
    """The mutable parameters in ``expr`` (a number has none; a parameter is its own)."""
    if isinstance(expr, int | float):
        return []
    if not expr.is_expression_type():
        return [expr] if expr.is_parameter_type() and not expr.is_constant() else []
    from pyomo.core.expr.visitor import identify_mutable_parameters

    return list(identify_mutable_parameters(expr))


class PersistentMILP:
    """A Pyomo model held in HiGHS, solved LP-first (see module docstring)."""

    def __init__(self, model: pyo.Block, mip_rel_gap: float = 1e-6,
                 time_limit_s: float = 60.0):
        from pyomo.contrib.solver.solvers.highs import Highs

        self._opt = Highs()
        self._opt.set_instance(model)
        self.highs = self._opt._solver_model
        self._rebuild, self._basis = None, None  # built here, it is never released
        self._options(mip_rel_gap, time_limit_s)
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

    def layout(self) -> tuple:
        """What the LP-first proof needs besides the numbers (``held``)."""
        return self._flows, self._exclusive, self._integers, self._binaries

    @classmethod
    def held(cls, highs: highspy.Highs, layout: tuple, params: ParameterMap,
             mip_rel_gap: float = 1e-6, time_limit_s: float = 60.0,
             rebuild=None) -> PersistentMILP:
        """A model HiGHS already holds (``agents.model``), its parameters set through
        ``params``, its LP-first layout as ``layout`` gives it; ``rebuild(params)``: a new
        HiGHS instance holding the model at the parameters' values (``release``)."""
        self = cls.__new__(cls)
        self._opt, self.highs, self.params = None, highs, params
        self._flows, self._exclusive, self._integers, self._binaries = layout
        self._rebuild, self._basis = rebuild, None
        self._options(mip_rel_gap, time_limit_s)
        return self

    def _options(self, mip_rel_gap: float, time_limit_s: float) -> None:
        # "threads" only where the process says (``HIGHS_THREADS``): HiGHS sizes its
        # scheduler once per process, and a later instance asking for another thread
        # count than the first one's fails to run (asking for none, 0, runs).
        threads = (("threads", HIGHS_THREADS),) if HIGHS_THREADS else ()
        self._settings = (("output_flag", False), ("mip_rel_gap", mip_rel_gap),
                          ("time_limit", time_limit_s), *threads)
        self._apply_settings()

    def _apply_settings(self) -> None:
        for key, value in self._settings:
            self.highs.setOptionValue(key, value)

    def release(self) -> None:
        """Let go of the HiGHS instance until the next solve, keeping its basis: a solved
        instance holds the solver's workspace (1.2 of a faia2021 household's 1.4 MB), and
        a process solves its agents one at a time. The next solve starts from a new
        instance (``rebuild``, 0.8 ms) at the same basis, as fast as the kept one. Only a
        model that can be rebuilt (one from a template) is released."""
        if self._rebuild is None or self.highs is None:
            return
        basis = self.highs.getBasis()
        self._basis = basis if basis.valid else None
        self.highs = None

    def _hold(self) -> highspy.Highs:
        """The HiGHS instance, rebuilt (at the last basis) if ``release`` let it go."""
        if self.highs is None:
            self.highs = self._rebuild(self.params)
            self._apply_settings()
            if self._basis is not None:
                self.highs.setBasis(self._basis)
                self._basis = None
        return self.highs

    @staticmethod
    def _stack(columns: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(columns or [np.empty(0, np.int32)]).astype(np.int32)

    def columns(self, var: pyo.Var) -> np.ndarray:
        """HiGHS column indices of an indexed variable, in index order."""
        vmap = self._opt._pyomo_var_to_solver_var_map
        return np.array([vmap[id(var[t])] for t in sorted(var.keys())], dtype=np.int32)

    def release_model(self) -> bool:
        """Let go of the Pyomo model: parameters are set through a ``ParameterMap`` from
        here on (``set_parameters``); ``columns`` is no longer available. A model the map
        cannot hold keeps Pyomo (False)."""
        try:
            self.params = ParameterMap(self._opt)
        except NotAffine:
            return False
        self._opt = None
        return True

    def set_parameters(self, block: pyo.Block | None, families: dict[str, object]) -> None:
        """Set mutable parameter families (name → values per index; components of
        ``block``, e.g. ``prices.buy``) and rewrite what they set in HiGHS, once. A family
        the model does not use anywhere changes nothing."""
        if self._opt is None:
            for name, values in families.items():
                self.params.set(name, values)
            if self.highs is not None:  # else the rebuilt instance takes them all
                self.params.push(self.highs)
            return
        for name, values in families.items():
            param = block.find_component(name)
            for t, value in enumerate(values):
                param[t] = float(value)
        self._opt.update_parameters()

    def drop_model(self) -> None:
        """Let go of the Pyomo model without a parameter map (a model whose parameters
        never change after the build)."""
        self._opt = None

    def solve(self, lp_first: bool = True) -> tuple[object, str]:
        """Solve; return the HiGHS model status and the method that proved optimality
        (module docstring): ``lp`` the relaxation, ``milp-integers`` branch and bound
        over the genuine integer decisions alone, ``milp`` over the whole MILP."""
        self._hold()
        if not len(self._binaries):
            return self._run(integral=()), "lp"
        if lp_first:
            if len(self._integers):
                first, method = self._branch_and_bound(self._integers, heuristics=False), \
                    "milp-integers"
            else:
                first, method = self._run(integral=()), "lp"
            if first == OPTIMAL and self._lp_is_milp_feasible():
                return OPTIMAL, method
        return self._branch_and_bound(self._binaries), "milp"

    def _branch_and_bound(self, integral: np.ndarray, heuristics: bool = True):
        """Branch and bound over the columns ``integral``. HiGHS 1.16 may take the
        preceding solution as a MIP start and then report the optimum's objective with
        the start's values; if the values do not price at the objective, clear that
        start and solve again."""
        status = self._run(integral, heuristics)
        if status == OPTIMAL and not self._values_match_objective():
            self.highs.clearSolver()
            status = self._run(integral, heuristics)
        return status

    def _values_match_objective(self) -> bool:
        lp = self.highs.getLp()
        x = np.asarray(self.highs.getSolution().col_value)
        value = float(np.dot(lp.col_cost_, x) + lp.offset_)
        return abs(value - self.objective()) <= OBJECTIVE_TOL * max(1.0, abs(value))

    def _run(self, integral: np.ndarray | tuple, heuristics: bool = True):
        """One HiGHS run with the columns ``integral`` integer and every other binary
        relaxed, with or without HiGHS's primal heuristics (``MIP_HEURISTICS``)."""
        if len(self._binaries):
            kinds = np.full(len(self._binaries), highspy.HighsVarType.kContinuous)
            kinds[np.isin(self._binaries, integral)] = highspy.HighsVarType.kInteger
            self.highs.changeColsIntegrality(len(kinds), self._binaries, kinds)
        for key in MIP_HEURISTICS:
            self.highs.setOptionValue(key, heuristics)
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


def define_agent(block: pyo.Block, data: AgentData, parametric: bool = False) -> pyo.Block:
    """Fill ``block`` with the agent's constraints and ``cost_eur`` expression (every number
    a mutable parameter where ``parametric``: ``agents.model``)."""
    return DEFINE[type(data)](block, data, parametric)
