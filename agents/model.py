"""An agent's model (``AgentModel``), built once per structure and instantiated by numbers.

Building an agent's model in Pyomo and handing it to HiGHS costs tens of milliseconds
(62 ms for a faia2021 household of 96 periods); a community of thousands, or a year of
days, pays it again and again. Yet two agents of the same structure (``structure_key``:
kind, horizon, equipment, sizes) have the same matrix pattern and differ only in numbers
(``model_numbers``). So the model is written once in Pyomo with every number a mutable
parameter (``parametric``), handed to HiGHS once, and read back as arrays plus the
affine map from the numbers to every entry they set (``ParameterMap``). Each agent is
then its numbers θ, the entries c0 + G·θ written into copies of those arrays, and one
``passModel``: the same LP, entry for entry, as building it directly.

``from_template`` gives the ``PersistentMILP`` an ``AgentModel`` solves; a process keeps
one template per structure it has met (``template_for``). ``build="pyomo"``
(the scenario's ``solver.agent_models``) builds each agent's model directly instead, as
before templates: the reference the templates are measured and tested against.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import highspy
import numpy as np

from lemgrid.agents.data import MODEL_BUILDS, AgentData, Schedule
from lemgrid.agents.diagnose import explain_infeasible
from lemgrid.agents.equipment import quadratic_terms
from lemgrid.agents.formulations import (
    ModelNumbers,
    flow_components,
    model_numbers,
    structure_key,
)
from lemgrid.agents.lazy import lazy
from lemgrid.agents.solver import (
    BUILD_LOCK,
    INFEASIBLE,
    OPTIMAL,
    AgentInfeasible,
    AgentSolveError,
    ParameterMap,
    PersistentMILP,
    agent_kind,
    define_agent,
    schedule_from_values,
)

pyo = lazy("pyomo.environ")  # imported where a model is written in Pyomo


_TEMPLATES: dict[tuple, ModelTemplate] = {}
_READ: dict[str, int] = {}  # template files read into _TEMPLATES -> how many they held
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Variant:
    """A model around an agent's own: ``define`` fills a Pyomo model with it (objective
    included; every number a parameter where parametric), ``numbers`` gives its numbers
    by parameter name from the agent's data and its own model's numbers
    (``model_numbers``), ``columns`` its column groups by name."""

    name: str
    define: Callable[[pyo.Block, AgentData, bool], None]
    numbers: Callable[[AgentData, ModelNumbers], dict[str, np.ndarray]]
    columns: Callable[[pyo.Block, PersistentMILP], dict[str, np.ndarray]]


def _define_agent_model(m: pyo.Block, data: AgentData, parametric: bool) -> None:
    define_agent(m, data, parametric)
    m.obj = pyo.Objective(expr=m.cost_eur)


def flow_columns(m: pyo.Block, milp: PersistentMILP) -> dict[str, np.ndarray]:
    """The columns of the flows a Schedule reports (``flow_components``)."""
    return {k: milp.columns(v) for k, v in flow_components(m).items()}


AGENT = Variant("agent", _define_agent_model, lambda d, own: own.flat(), flow_columns)


class ModelTemplate:
    """One model structure, built parametric from a representative agent."""

    def __init__(self, data: AgentData, variant: Variant = AGENT):
        m = pyo.ConcreteModel(name="template")
        variant.define(m, data, True)
        milp = PersistentMILP(m)
        self.columns = variant.columns(m, milp)
        self.export = m.component("export_limit_kw") is not None
        # quadratic costs: (power columns, epigraph columns, the name of a's number)
        self.quadratic = [(milp.columns(x), milp.columns(z), a)
                          for x, z, a in quadratic_terms(m, named=True)]
        self.layout = milp.layout()
        self.map = ParameterMap(milp._opt)
        lp = milp.highs.getLp()
        self.num_col, self.num_row = int(lp.num_col_), int(lp.num_row_)
        self.offset = float(lp.offset_)
        self.col_cost = np.asarray(lp.col_cost_, float)
        self.col_lower = np.asarray(lp.col_lower_, float)
        self.col_upper = np.asarray(lp.col_upper_, float)
        self.row_lower = np.asarray(lp.row_lower_, float)
        self.row_upper = np.asarray(lp.row_upper_, float)
        self.integrality = np.asarray(lp.integrality_, np.int32)
        if len(self.integrality) != self.num_col:
            self.integrality = np.zeros(self.num_col, np.int32)
        self._var_types()
        self._pattern(lp)
        self._families(data, variant)

    def _pattern(self, lp) -> None:
        """The matrix's entries, the fixed ones and those the map sets, column-wise: an
        entry a parameter zeroes at the template's numbers is in the pattern all the same."""
        a = lp.a_matrix_
        start, index, value = (np.asarray(a.start_, np.int64), np.asarray(a.index_, np.int64),
                               np.asarray(a.value_, float))
        outer = np.repeat(np.arange(len(start) - 1), np.diff(start))
        if a.format_ == highspy.MatrixFormat.kColwise:
            rows, cols = index, outer
        else:
            rows, cols = outer, index
        coef = self.map.coefficient_entries.astype(np.int64)
        set_by_map = {(int(r), int(c)) for r, c in coef}
        fixed = np.array([(int(r), int(c)) not in set_by_map for r, c in zip(rows, cols)],
                         bool)
        rows = np.concatenate([rows[fixed], coef[:, 0]])
        cols = np.concatenate([cols[fixed], coef[:, 1]])
        order = np.lexsort((rows, cols))  # column-wise, rows ascending within a column
        self._rows, self._cols = rows[order].astype(np.int32), cols[order]
        where = np.empty(len(order), np.int64)
        where[order] = np.arange(len(order))
        n_fixed = int(fixed.sum())
        self._fixed_at, self._fixed_value = where[:n_fixed], value[fixed]
        self._coef_at = where[n_fixed:]

    def _var_types(self) -> None:
        self._integrality = [highspy.HighsVarType(int(k)) for k in self.integrality]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_integrality"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._var_types()

    def _families(self, data: AgentData, variant: Variant) -> None:
        """Where each number goes in θ: per parameter family, θ's positions and the
        flattened indices of the number that fill them."""
        numbers = variant.numbers(data, model_numbers(data))
        by_name: dict[str, tuple[list, list]] = {}
        for (name, idx), k in self.map.index.items():
            shape = numbers[name].shape
            flat = 0 if idx is None else int(np.ravel_multi_index(np.atleast_1d(idx), shape))
            pos, at = by_name.setdefault(name, ([], []))
            pos.append(k)
            at.append(flat)
        self._plan = [(name, np.asarray(pos, np.int64), np.asarray(at, np.int64))
                      for name, (pos, at) in by_name.items()]

    def theta(self, numbers: dict[str, np.ndarray]) -> np.ndarray:
        """An agent's parameters (its ``numbers``) in the map's order."""
        theta = np.empty(len(self.map.theta))
        for name, pos, at in self._plan:
            theta[pos] = np.ravel(numbers[name])[at]
        return theta

    def instantiate(self, numbers: dict[str, np.ndarray], mip_rel_gap: float = 1e-6,
                    time_limit_s: float = 60.0) -> PersistentMILP:
        """The model of an agent with these ``numbers`` (its variant's) in a new HiGHS
        instance, its parameters in a ``ParameterMap``."""
        params = self.map.instance(self.theta(numbers))
        return PersistentMILP.held(self.highs_for(params), self.layout, params, mip_rel_gap,
                                   time_limit_s, rebuild=self.highs_for)

    def highs_for(self, params: ParameterMap) -> highspy.Highs:
        """A new HiGHS instance holding this structure's model at ``params``' values."""
        params.sync()
        cost = self.col_cost.copy()
        col_lo, col_hi = self.col_lower.copy(), self.col_upper.copy()
        row_lo, row_hi = self.row_lower.copy(), self.row_upper.copy()
        coefficients, offset = params.fill(cost, col_lo, col_hi, row_lo, row_hi)
        offset = self.offset if offset is None else offset
        value = np.empty(len(self._rows))
        value[self._fixed_at] = self._fixed_value
        value[self._coef_at] = coefficients
        keep = value != 0  # as the direct build: a zero coefficient is no entry
        start = np.zeros(self.num_col + 1, np.int32)
        np.cumsum(np.bincount(self._cols[keep], minlength=self.num_col), out=start[1:])
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_, lp.offset_ = self.num_col, self.num_row, offset
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, col_lo, col_hi
        lp.row_lower_, lp.row_upper_ = row_lo, row_hi
        lp.integrality_ = self._integrality
        a = lp.a_matrix_
        a.format_, a.num_col_, a.num_row_ = highspy.MatrixFormat.kColwise, self.num_col, \
            self.num_row
        a.start_, a.index_, a.value_ = start, self._rows[keep], value[keep]
        lp.a_matrix_ = a
        h = highspy.Highs()
        h.passModel(lp)
        return h

    def quadratic_costs(self, numbers: dict[str, np.ndarray]) -> list:
        """(power columns, epigraph columns, a) of an agent's quadratic costs."""
        return [(x, z, float(numbers[a])) for x, z, a in self.quadratic]


def write_templates(datas, variant: Variant, path: Path) -> int:
    """The templates of every structure among ``datas`` in ``variant``, built here and
    written to ``path`` for other processes (``read_templates``); how many."""
    templates = {}
    for d in datas:
        key = (variant.name, structure_key(d))
        if key not in templates:
            templates[key] = template_for(d, variant)
    partial = path.with_name(path.name + ".part")  # a reader never sees half a file
    with open(partial, "wb") as f:
        pickle.dump(templates, f, protocol=pickle.HIGHEST_PROTOCOL)
    partial.replace(path)
    return len(templates)


def read_templates(path: Path) -> int:
    """Take the templates ``write_templates`` wrote into this process's (once per file:
    a process forked after reading it has them); how many."""
    key = str(Path(path).resolve())
    with _LOCK:
        if key in _READ:
            return _READ[key]
    with open(path, "rb") as f:
        templates = pickle.load(f)  # written by this run's own runner
    with _LOCK:
        for name, template in templates.items():
            _TEMPLATES.setdefault(name, template)
        _READ[key] = len(templates)
    return len(templates)


def forget_templates() -> int:
    """Drop the process's templates (a benchmark's cold start); how many there were."""
    with _LOCK:
        count = len(_TEMPLATES)
        _TEMPLATES.clear()
        _READ.clear()
    return count


def template_for(data: AgentData, variant: Variant = AGENT,
                 own: ModelNumbers | None = None) -> ModelTemplate:
    """The process's template of ``data``'s structure in ``variant``, built the first time
    it is met (``own``: ``model_numbers(data)``, if at hand)."""
    key = (variant.name, structure_key(data, own))
    template = _TEMPLATES.get(key)
    if template is None:
        with _LOCK, BUILD_LOCK:
            template = _TEMPLATES.get(key)
            if template is None:
                template = _TEMPLATES[key] = ModelTemplate(data, variant)
    return template


def from_template(data: AgentData, variant: Variant = AGENT, mip_rel_gap: float = 1e-6,
                  time_limit_s: float = 60.0
                  ) -> tuple[ModelTemplate, PersistentMILP, dict[str, np.ndarray]]:
    """``data``'s model in ``variant`` from its structure's template: the template, the
    model, and the numbers it was filled in with (the agent's own computed once)."""
    own = model_numbers(data)
    template = template_for(data, variant, own)
    numbers = variant.numbers(data, own)
    return template, template.instantiate(numbers, mip_rel_gap, time_limit_s), numbers


class AgentModel:
    """One agent's MILP for a day, re-solved as its limits and prices change.

    ``build``: from its structure's template (default) or directly in Pyomo (module
    docstring). ``keep_pyomo``: build directly and keep the Pyomo model (``m``) to inspect
    it; otherwise ``m`` is None (HiGHS holds the model, ``agents.solver``). ``release``:
    let go of the HiGHS instance after each solve (``PersistentMILP.release``)."""

    def __init__(self, data: AgentData, mip_rel_gap: float = 1e-6,
                 time_limit_s: float = 60.0, keep_pyomo: bool = False,
                 build: str = MODEL_BUILDS[0], release: bool = False):
        self._release = release  # let go of HiGHS after each solve (``PersistentMILP.release``)
        if build not in MODEL_BUILDS:
            raise ValueError(f"build {build!r}; allowed: {', '.join(MODEL_BUILDS)}")
        if build == "template" and not keep_pyomo:
            self.data, self.kind, self.m = data, agent_kind(data), None
            template, self.solver, _ = from_template(data, AGENT, mip_rel_gap, time_limit_s)
            self._cols, self._export = template.columns, template.export
            return
        with BUILD_LOCK:  # Pyomo's model set-up is not thread-safe
            self._build(data, mip_rel_gap, time_limit_s)
            self._export = self.m.component("export_limit_kw") is not None
            if not keep_pyomo and self.solver.release_model():
                self.m = None

    def _build(self, data: AgentData, mip_rel_gap: float, time_limit_s: float) -> None:
        self.data, self.kind = data, agent_kind(data)
        self.m = m = pyo.ConcreteModel(name=data.name)
        AGENT.define(m, data, False)
        self.solver = PersistentMILP(m, mip_rel_gap, time_limit_s)
        self._cols = AGENT.columns(m, self.solver)

    @property
    def name(self) -> str:
        return self.data.name

    def _series(self, values) -> np.ndarray:
        return np.broadcast_to(np.asarray(values, float), (self.data.horizon.periods,))

    def set_p2v_limit(self, limit_kw) -> None:
        """Set the coordinator's per-period P2V limit (kW) and push it to HiGHS.

        A building takes no part in the P2V market and has no such limit: TypeError.
        """
        if self.kind == "building":
            raise TypeError(f"building {self.name}: has no P2V limit to set")
        self.solver.set_parameters(self.m, {"p2v_limit_kw": self._series(limit_kw)})

    def set_prices(self, buy_eur_per_kwh, sell_eur_per_kwh, demand_limit: bool = True) -> None:
        """Plan against a market's prices (per period) instead of the retail tariff; with
        ``demand_limit`` False the agent's own consumer demand limit is not billed (a
        locality market bills the locality's limit in its prices)."""
        factor = getattr(self.data, "cdl_factor", 1.0) if demand_limit else 1.0
        buy, sell = np.asarray(buy_eur_per_kwh, float), np.asarray(sell_eur_per_kwh, float)
        if len(buy) != len(sell):
            raise ValueError(f"{self.name}: {len(buy)} buy prices but {len(sell)} sell prices")
        self.solver.set_parameters(self.m, {"prices.buy": buy, "prices.sell": sell,
                                            "prices.above_cdl": (factor - 1.0) * buy})

    def set_export_limit(self, limit_kw) -> None:
        """Set the per-period export limit (kW; a PIL, or the connection's limit where the
        utility imposes none), capped at the connection. A model without a settable export
        limit (prosumer, EV: their export limit is their contract's) is left as it is."""
        if not self._export:
            return
        cap = float(self.data.sell_max_kw)
        self.solver.set_parameters(self.m, {"export_limit_kw":
                                            np.minimum(self._series(limit_kw), cap)})

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
        objective = self.solver.objective()
        if self._release:
            self.solver.release()  # until the next solve (a model from a template)
        return schedule_from_values(self.data, values, objective, method,
                                    time.perf_counter() - start)
