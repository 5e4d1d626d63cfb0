"""A peer's local problem in an ADMM peer-to-peer market (docs/mechanisms/admm.md), held in
HiGHS.

The peer's own model (any kind: prosumer, EV, building) gets a net P2P purchase
s = Σ_m P_m in its energy balance (P_m: kW bought from counterparty m, − sold) and its
net import at the connection q = retail purchase − retail sale + s. Its cost stays its
retail bill; every round adds the market's augmented-Lagrangian terms

    Σ_t Δt [Σ_m (λ_m P_m + ρ/2 (P_m − a_m)²) + μ q + ρ/2 (q − y)²].

The trades enter the peer's physics only through their sum s, so for a given s the best
split is closed form: with v_m = a_m − λ_m/ρ and V = Σ_m v_m over the M counterparties,
P_m = v_m + (s − V)/M, and the trade terms equal ρ/(2M) (s − A)² + λ̄ s plus a constant
(A = Σ_m a_m: the agreed net purchase; λ̄: the mean pair price). The market therefore
sends A, λ̄ and M, the peer answers s, and the coordinator applies the split
(``coordinator.mechanisms.admm``). The peer's problem is its own model plus two
quadratic columns per period (s and q) — the same optimum as one column per
counterparty, at a fraction of the solve time (the per-trade bounds of that form would
only repeat the connection limits, which bound s and q). The model is built once a day;
a round rewrites the linear costs of s and q and, when ρ changes, their Hessian
diagonal. With ``qp: osqp`` (the default) the round's QP goes to OSQP, which keeps its
factorization and last iterates between rounds (``agents.qp``); a round OSQP does not
solve, and every round with ``qp: highs``, goes to HiGHS's active-set QP below.

ADMM needs a convex local problem, so the binaries are settled before the market opens.
The peer first plans its day without the market (the MILP, at retail); then

- ``relax`` (default): the indicator binaries (buy or sell, charge or discharge) become
  continuous in [0, 1]; genuine integer decisions (a flexible load's on/off) keep the
  values of that first plan. With retail buy above feed-in and lossy batteries, buying
  and selling at once or charging and discharging at once only burns money, so the
  relaxation is exact unless prices go negative; ``relaxation_conflicts`` counts the
  periods where the final plan does both;
- ``fix``: every binary keeps the first plan's value (the modes are fixed; the market
  can only move powers within them).

HiGHS's active-set QP solver cycles when the Hessian entries are five orders of
magnitude below the costs (ρ = 100 €/MW²h is 1e-4 €/kW²h): the objective goes to HiGHS
scaled by ``OBJECTIVE_SCALE``. It also cycles on a Hessian that is zero on most columns
(a battery's, a retail flow's: an LP face with many optimal vertices), so every round
adds a proximal term ε/2 Δt ‖x − x_prev‖² over every column (ε =
``PROXIMAL_EUR_PER_KW2H``), x_prev being the last round's solution and, in the first
round, the day planned without the market. It vanishes at the fixed point, so the market's
outcome is unchanged; without it in the first round 54 of faia2021's 90 peers hit
``QP_ITERATION_LIMIT`` (20,000 iterations against ~1,200 for a healthy solve). A QP that
still stalls is solved again by interior point (Clarabel, ``interior_point``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np

from lemgrid.agents.data import MODEL_BUILDS, AgentData, Schedule
from lemgrid.agents.diagnose import explain_infeasible
from lemgrid.agents.equipment import numbers_of, quadratic_terms
from lemgrid.agents.formulations import ModelNumbers
from lemgrid.agents.lazy import lazy
from lemgrid.agents.model import Variant, flow_columns, from_template
from lemgrid.agents.qp import QP_METHODS, KeptQP
from lemgrid.agents.solver import (
    BUILD_LOCK,
    FLOW_ON_KW,
    INFEASIBLE,
    OPTIMAL,
    AgentInfeasible,
    AgentSolveError,
    PersistentMILP,
    agent_kind,
    define_agent,
    schedule_from_values,
)
from lemgrid.coordinator.protocol import HEAT, KW_PER_MW

pyo = lazy("pyomo.environ")  # imported where a model is written in Pyomo


BINARIES = ("relax", "fix")
OBJECTIVE_SCALE = 1000.0  # € -> m€ in HiGHS (see the module docstring)
QP_ITERATION_LIMIT = 20_000  # ~10 × a healthy solve: a cycling QP stops here
PROXIMAL_EUR_PER_KW2H = 1e-5  # ε of the proximal term on every column (module docstring)
CONTINUOUS = highspy.HighsVarType.kContinuous


def connection_limits(data: AgentData) -> tuple[np.ndarray, np.ndarray]:
    """(import, export) limits at the agent's connection per period (kW): what it may buy
    and sell through the market (an EV only while plugged in). A day's data gives the day's
    periods; a run's data (several days: the network operator's) the run's."""
    pil = getattr(data, "pil_kw", None)
    away = getattr(data, "away", None)
    n = max([data.horizon.periods] + [np.size(x) for x in (pil, away) if x is not None])
    imp = np.full(n, float(data.buy_max_kw))
    exp = np.full(n, float(getattr(data, "sell_max_kw", 0.0)))
    if pil is not None:
        exp = np.minimum(exp, pil)
    if away is not None:
        plugged = ~np.asarray(away, bool)
        imp, exp = imp * plugged, exp * plugged
    return imp, exp


def heat_limits(data: AgentData) -> tuple[np.ndarray, np.ndarray]:
    """(import, export) of heat per period (kW_th) a heat market may trade: the heat
    demand, and the most heat its CHP unit can make (0 without)."""
    n = data.horizon.periods
    demand = getattr(data, "heat_demand_kw", None)
    chp = getattr(data, "chp", None)
    most = max((h for _, h in chp.vertices), default=0.0) if chp is not None else 0.0
    return (np.zeros(n) if demand is None else np.asarray(demand, float)[:n].copy(),
            np.full(n, float(most)))


def _retail_net(m: pyo.Block, t: int):
    """Retail purchase minus retail sale in period ``t`` (P2V quantities are zero: the
    P2V limit is held at 0 in a P2P market)."""
    g = m.grid
    sell = g.component("sell_kw")
    return g.buy_kw[t] - (sell[t] if sell is not None else 0)


def define_peer(m: pyo.Block, d: AgentData, parametric: bool = False) -> None:
    """The peer's own model with its net P2P purchase s (``p2p_in_kw``, closed until the
    binaries are settled) and its net import q = retail purchase − sale + s within its
    connection's limits; no P2V trade (its limit and its most are 0: ``peer_numbers``)."""
    T = range(d.horizon.periods)
    m.p2p_in_kw = pyo.Var(T, bounds=(0, 0))  # opened once the binaries are settled
    define_agent(m, d, parametric)
    if m.component("p2v_limit_kw") is not None and not parametric:
        for t in T:  # a parametric model has them in its numbers
            m.p2v_limit_kw[t] = 0.0
            m.grid.p2v_kw[t].setub(0.0)
    imp, exp = connection_limits(d)
    v = numbers_of(m, {"q_import_kw": imp[:len(T)], "q_export_kw": exp[:len(T)]}, parametric)
    m.q_kw = pyo.Var(T, bounds=lambda m, t: (-v.q_export_kw[t], v.q_import_kw[t]))
    m.q_def = pyo.Constraint(T, rule=lambda m, t: m.q_kw[t]
                             == _retail_net(m, t) + m.p2p_in_kw[t])
    m.obj = pyo.Objective(expr=m.cost_eur)


def peer_numbers(d: AgentData, own: ModelNumbers) -> dict[str, np.ndarray]:
    """The numbers of ``define_peer``'s model: the agent's own (``own``) with no P2V
    trade, and its connection's limits."""
    numbers = own.flat()
    for name in ("p2v_limit_kw", "grid.p2v_max_kw", "grid.p2v_cap_kw"):
        if name in numbers:
            numbers[name] = np.zeros_like(numbers[name])
    imp, exp = connection_limits(d)
    n = d.horizon.periods
    numbers["q_import_kw"], numbers["q_export_kw"] = imp[:n], exp[:n]
    return numbers


def peer_columns(m: pyo.Block, milp: PersistentMILP) -> dict[str, np.ndarray]:
    """The peer's flows (``flow_columns``) and its P2P purchase, net import and heat
    purchase (``PEER_COLUMNS``)."""
    heat = m.find_component("heat_in_kw")
    return {**flow_columns(m, milp), "p2p:power": milp.columns(m.p2p_in_kw),
            "p2p:net": milp.columns(m.q_kw),
            "p2p:heat": milp.columns(heat) if heat is not None else np.zeros(0, np.int32)}


PEER = Variant("peer", define_peer, peer_numbers, peer_columns)
PEER_COLUMNS = ("p2p:power", "p2p:net", "p2p:heat")


class PeerModel:
    """One peer's day in the ADMM market: build once, update the market's terms, solve.
    ``build`` as ``AgentModel``'s: from its structure's template or directly."""

    def __init__(self, data: AgentData, counterparties: int, mip_rel_gap: float = 1e-6,
                 time_limit_s: float = 60.0, binaries: str = "relax", heat: bool = False,
                 build: str = MODEL_BUILDS[0], qp: str = QP_METHODS[0]):
        if binaries not in BINARIES:
            raise ValueError(f"binaries {binaries!r}; allowed: {', '.join(BINARIES)}")
        if qp not in QP_METHODS:
            raise ValueError(f"qp {qp!r}; allowed: {', '.join(QP_METHODS)}")
        if build not in MODEL_BUILDS:
            raise ValueError(f"build {build!r}; allowed: {', '.join(MODEL_BUILDS)}")
        self.data, self.kind = data, agent_kind(data)
        self.counterparties = int(counterparties)
        self.heat = heat  # open the P2P heat purchase (a heat market)
        self.binaries = binaries
        self.m = None  # HiGHS holds the problem (as AgentModel)
        if build == "template":
            template, solver, numbers = from_template(data, PEER, mip_rel_gap, time_limit_s)
            self._hold(solver, template.columns, template.quadratic_costs(numbers),
                       time_limit_s)
        else:
            with BUILD_LOCK:
                m = pyo.ConcreteModel(name=data.name)
                define_peer(m, data)
                solver = PersistentMILP(m, mip_rel_gap, time_limit_s)
                quadratic = [(solver.columns(x), solver.columns(z), a)
                             for x, z, a in quadratic_terms(m)]
                self._hold(solver, peer_columns(m, solver), quadratic, time_limit_s)
                solver.drop_model()
        self._hessian = None  # the Hessian diagonal HiGHS holds (passed when it changes)
        self.x = None  # the last solution (at first the day planned without the market)
        self._settle_binaries()
        self.relaxation_conflicts = 0
        self.fallbacks = 0  # QP solves HiGHS stalled on, solved by Clarabel instead
        self.qp = qp  # the round's QP method: HiGHS from scratch, or OSQP kept (agents.qp)
        self._kept: KeptQP | None = None
        self._terms = (None, None)  # the round's (cost, Hessian diagonal), scaled as HiGHS's
        self.qp_fallbacks = 0  # rounds OSQP did not solve, solved by HiGHS instead

    @property
    def name(self) -> str:
        return self.data.name

    def _hold(self, solver: PersistentMILP, columns: dict[str, np.ndarray], quadratic: list,
              time_limit_s: float) -> None:
        """Take the model HiGHS holds: its columns, its retail bill as the costs."""
        d = self.data
        self.solver = solver
        self.highs = solver.highs
        self._flows = {k: c for k, c in columns.items() if k not in PEER_COLUMNS}
        self._p2p, self._q, self._heat = (columns[k] for k in PEER_COLUMNS)
        # quadratic costs (generators, CHP): (power columns, epigraph columns, a €/kW²h)
        self._quadratic = quadratic
        self._limits = connection_limits(d)
        lp = self.highs.getLp()
        self._cost = np.asarray(lp.col_cost_, float).copy()  # the retail bill
        self._offset = float(lp.offset_)
        self._ncols = int(lp.num_col_)
        self._quad_diag = np.zeros(self._ncols)  # the convex phase's exact ½·a·g² per period
        if self.heat and len(self._heat):  # open from the start: heat has no retail
            heat_imp, heat_exp = heat_limits(d)
            self.highs.changeColsBounds(len(self._heat), self._heat, -heat_exp, heat_imp)
        cols = np.arange(self._ncols, dtype=np.int32)
        self.highs.changeColsCost(self._ncols, cols, OBJECTIVE_SCALE * self._cost)
        self._time_limit_s = time_limit_s

    def _settle_binaries(self) -> None:
        """Plan the day without the market (MILP), keep the binaries as the mode says,
        make the problem continuous and open the trades."""
        status, _ = self.solver.solve(lp_first=True)
        if status in INFEASIBLE:
            raise AgentInfeasible(explain_infeasible(self.data))
        if status != OPTIMAL:
            raise AgentSolveError(f"{self.kind} {self.name}: solver stopped with status "
                                  f"{self.solver.status_text(status)}")
        h, s = self.highs, self.solver
        self.x = x = np.asarray(h.getSolution().col_value)
        fixed = s._binaries if self.binaries == "fix" else s._integers
        if len(s._binaries):
            n = len(s._binaries)
            h.changeColsIntegrality(n, s._binaries, np.full(n, CONTINUOUS))
            h.changeColsBounds(n, s._binaries, np.zeros(n), np.ones(n))
        if len(fixed):
            v = np.round(x[fixed])
            h.changeColsBounds(len(fixed), fixed, v, v)
        imp, exp = self._limits
        if self.counterparties:
            h.changeColsBounds(len(imp), self._p2p, -exp, imp)
        dt = self.data.horizon.period_h
        for power, epi, a in self._quadratic:  # exact from here on: no MILP left
            self._cost[epi] = 0.0
            self._quad_diag[power] += dt * a
        self._exclusive = [(s._flows[a], s._flows[b]) for a, b in s._exclusive]

    def set_terms(self, rho_eur_per_mw2h: float, trade=None, net=None,
                  rho_net_eur_per_mw2h: float | None = None, heat=None,
                  retail_penalty=None) -> None:
        """The round's terms: for the power trades (mean pair price λ̄ €/kWh, agreed net
        purchase A kW) and for the network (price μ, agreed net import y), each per period
        or None; ρ of the trades and of the network (default: the trades') in €/MW²h. A
        heat market's trades: (λ̄, A, their count); a path penalty on the retail energy
        (€/kWh per period)."""
        dt, n = self.data.horizon.period_h, self.data.horizon.periods
        rho = rho_eur_per_mw2h / KW_PER_MW ** 2
        M = self.counterparties
        heat_m = heat[2] if heat is not None and self.heat else 0
        if (M or heat_m) and rho <= 0:
            raise ValueError(f"{self.name}: an ADMM round needs ρ > 0, got {rho_eur_per_mw2h}")
        cols, costs, hess = [], [], []
        rho_net = rho if rho_net_eur_per_mw2h is None else rho_net_eur_per_mw2h / KW_PER_MW ** 2
        for c, terms, weight in ((self._p2p, trade if M else None, rho / max(M, 1)),
                                 (self._heat, heat[:2] if heat_m else None, rho / max(heat_m, 1)),
                                 (self._q, net, rho_net)):
            if terms is None:
                continue
            price, target = (np.broadcast_to(np.asarray(v, float), (n,)) for v in terms)
            cols.append(c)
            costs.append(dt * (price - weight * target))
            hess.append(np.full(n, dt * weight))
        cost = self._cost.copy()
        if retail_penalty is not None:
            pen = dt * np.broadcast_to(np.asarray(retail_penalty, float), (n,))
            for c in self.retail_columns():
                cost[c] += pen
        diag = self._quad_diag.copy()
        if PROXIMAL_EUR_PER_KW2H and self.x is not None:  # ε/2 Δt (x − x_prev)²
            cost -= dt * PROXIMAL_EUR_PER_KW2H * self.x
            diag += dt * PROXIMAL_EUR_PER_KW2H
        for c, k, q in zip(cols, costs, hess, strict=True):
            cost[c] += k
            diag[c] += q
        cost, diag = OBJECTIVE_SCALE * cost, OBJECTIVE_SCALE * diag
        # HiGHS holds every round's problem too: it solves a round OSQP does not, and
        # Clarabel reads the problem from it
        self.highs.changeColsCost(self._ncols, np.arange(self._ncols, dtype=np.int32), cost)
        if self._hessian is None or not np.array_equal(diag, self._hessian):
            self.pass_hessian(diag)
            self._hessian = diag
        self._terms = (cost, diag)

    def pass_hessian(self, diag: np.ndarray) -> None:
        """A diagonal Hessian over every column HiGHS holds (lower triangle, CSC)."""
        n = len(diag)
        nz = np.nonzero(diag)[0].astype(np.int32)
        start = np.searchsorted(nz, np.arange(n)).astype(np.int32)
        self.highs.passHessian(n, len(nz), highspy.HessianFormat.kTriangular, start, nz,
                               diag[nz])

    def convex_cost(self) -> np.ndarray:
        """The linear cost of the peer's own columns in the convex phase (€ per unit)."""
        return self._cost.copy()

    def quadratic_diag(self) -> np.ndarray:
        """The Hessian diagonal of its own costs (Δt·a on producers' power columns)."""
        return self._quad_diag.copy()

    def purchase_columns(self, key: str) -> np.ndarray:
        """The columns of its net P2P purchase of ``key`` (``heat``, else power) per period."""
        return self._heat if key == HEAT else self._p2p

    def retail_columns(self) -> list[np.ndarray]:
        """The columns of its retail purchase and sale (those it has) per period."""
        return [self._flows[f] for f in ("buy_kw", "sell_kw") if f in self._flows]

    def own(self, x: np.ndarray) -> np.ndarray:
        """Its own columns of a solution that may hold more."""
        return x[:self._ncols]

    def own_cost_eur(self, x: np.ndarray | None = None) -> float:
        """The peer's own cost at x (default: the last solution): its retail bill and its
        producers' costs."""
        own = self.own(self.x if x is None else x)
        return float(self._cost @ own + self._offset + 0.5 * self._quad_diag @ (own * own))

    def solve(self) -> Schedule:
        """Solve the round's problem; the Schedule's objective is the peer's retail bill
        (the market's terms and trade payments left out)."""
        start = time.perf_counter()
        x = self._kept_solve() if self.qp == "osqp" else None
        if x is not None:
            return self._plan(x, start)
        status = self._run()
        if status in INFEASIBLE:
            raise AgentInfeasible(explain_infeasible(self.data))
        if status == OPTIMAL:
            x = np.asarray(self.highs.getSolution().col_value)
        else:  # HiGHS's active-set QP solver cycled: the same QP by interior point
            self.fallbacks += 1
            self.highs.clearSolver()
            x = interior_point(self.highs, f"{self.kind} {self.name}")
        return self._plan(x, start)

    def _kept_solve(self) -> np.ndarray | None:
        """The round's QP by OSQP, kept from the last round (``agents.qp``); None where
        it did not solve (HiGHS then solves the round, counted in ``qp_fallbacks``)."""
        cost, diag = self._terms
        if cost is None:
            return None
        if self._kept is None:
            lp = self.highs.getLp()
            a = sparse_matrix(lp)
            self._kept = KeptQP(diag, cost, a, col_lower=lp.col_lower_,
                                col_upper=lp.col_upper_, row_lower=lp.row_lower_,
                                row_upper=lp.row_upper_, infinity=highspy.kHighsInf)
        else:
            self._kept.update(cost, diag)
        x = self._kept.solve()
        if x is None:
            self.qp_fallbacks += 1
        return x

    def _plan(self, x: np.ndarray, start: float) -> Schedule:
        self.x = x
        values = {k: x[c] for k, c in self._flows.items()}
        bill = self.own_cost_eur(x)
        plan = schedule_from_values(self.data, values, bill, "qp",
                                    time.perf_counter() - start)
        plan.flows_kw["p2p_kw"] = x[self._p2p]
        self.relaxation_conflicts = int(sum(
            np.sum((x[a] > FLOW_ON_KW) & (x[b] > FLOW_ON_KW)) for a, b in self._exclusive))
        return plan

    def _run(self):
        # HiGHS counts its time limit over every run of the instance: give each its own.
        self.highs.setOptionValue("time_limit", self.highs.getRunTime() + self._time_limit_s)
        self.highs.setOptionValue("qp_iteration_limit", QP_ITERATION_LIMIT)
        self.highs.run()
        return self.highs.getModelStatus()

    def purchase_kw(self) -> np.ndarray:
        """The planned net P2P purchase s (kW per period, − a net sale)."""
        return self.x[self._p2p]

    def net_kw(self, x: np.ndarray | None = None) -> np.ndarray:
        """Its net import per period at the last solution (or at ``x``)."""
        return (self.x if x is None else x)[self._q]


@dataclass(frozen=True)
class LocalLP:
    """A peer's convex local problem without the market's terms, as matrices: min
    cost·x + ½ Σ quad_diag·x² + offset s.t. row_lower ≤ A x ≤ row_upper, col_lower ≤ x ≤
    col_upper (``quad_diag``: its producers' quadratic costs, zero elsewhere); ``net``
    and ``p2p`` are the columns of its net import q and net P2P purchase s per period,
    ``soc`` those of its battery's energy (empty without a battery)."""

    name: str
    cost: np.ndarray
    offset: float
    a: object  # scipy.sparse.csc_matrix
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    net: np.ndarray
    p2p: np.ndarray
    quad_diag: np.ndarray
    soc: np.ndarray


def local_lp(model: PeerModel) -> LocalLP:
    """The peer's settled local problem (binaries relaxed or fixed as in the market)."""
    lp = model.highs.getLp()
    a = sparse_matrix(lp)
    return LocalLP(name=model.name, cost=model._cost.copy(), offset=model._offset, a=a,
                   col_lower=np.asarray(lp.col_lower_, float),
                   col_upper=np.asarray(lp.col_upper_, float),
                   row_lower=np.asarray(lp.row_lower_, float),
                   row_upper=np.asarray(lp.row_upper_, float), net=model._q.copy(),
                   p2p=model._p2p.copy(), quad_diag=model.quadratic_diag(),
                   soc=model._flows.get("soc_kwh", np.zeros(0, np.int32)).copy())


def sparse_matrix(lp: highspy.HighsLp):
    """The constraint matrix HiGHS holds (column-wise) as a scipy CSC matrix."""
    from scipy import sparse

    return sparse.csc_matrix((lp.a_matrix_.value_, lp.a_matrix_.index_, lp.a_matrix_.start_),
                             shape=(lp.num_row_, lp.num_col_))


def bound_constraints(x, a, col_lower, col_upper, row_lower, row_upper) -> list:
    """cvxpy constraints of an LP's bounds: col_lower ≤ x ≤ col_upper and row_lower ≤
    a x ≤ row_upper (equalities where the bounds meet; infinite bounds left out)."""
    cons = []
    for vec, lo, hi in ((x, col_lower, col_upper), (a @ x, row_lower, row_upper)):
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        eq = lo == hi
        if eq.any():
            cons.append(vec[eq] == lo[eq])
        low = (lo > -highspy.kHighsInf) & ~eq
        high = (hi < highspy.kHighsInf) & ~eq
        if low.any():
            cons.append(vec[low] >= lo[low])
        if high.any():
            cons.append(vec[high] <= hi[high])
    return cons


def interior_point(highs: highspy.Highs, who: str) -> np.ndarray:
    """Solve the convex QP held in ``highs`` (diagonal Hessian) with Clarabel, called
    directly (no modelling layer: this runs in agent processes, where importing cvxpy and
    the network models would cost seconds and hundreds of MB); its solution, or
    AgentSolveError.

    Clarabel's form: min ½xᵀPx + qᵀx s.t. Ax + s = b, s in a cone; equal bounds go to the
    zero cone, finite one-sided bounds to the nonnegative cone (−x ≤ −lo, x ≤ hi)."""
    import clarabel
    from scipy import sparse

    model = highs.getModel()
    lp, hess = model.lp_, model.hessian_
    n = lp.num_col_
    a = sparse_matrix(lp)
    diag = np.zeros(n)
    start = list(hess.start_) + [len(hess.value_)]
    for j in range(min(hess.dim_, n)):
        for k in range(start[j], start[j + 1]):
            if hess.index_[k] == j:
                diag[j] = hess.value_[k]
    eq_rows, eq_rhs, ineq_rows, ineq_rhs = [], [], [], []
    for mat, lo, hi in ((sparse.identity(n, format="csr"), lp.col_lower_, lp.col_upper_),
                        (a.tocsr(), lp.row_lower_, lp.row_upper_)):
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        eq = lo == hi
        low = (lo > -highspy.kHighsInf) & ~eq
        high = (hi < highspy.kHighsInf) & ~eq
        eq_rows.append(mat[eq])
        eq_rhs.append(lo[eq])
        ineq_rows += [-mat[low], mat[high]]
        ineq_rhs += [-lo[low], hi[high]]
    A = sparse.vstack(eq_rows + ineq_rows, format="csc")
    b = np.concatenate(eq_rhs + ineq_rhs)
    n_eq = sum(m.shape[0] for m in eq_rows)
    cones = [clarabel.ZeroConeT(n_eq), clarabel.NonnegativeConeT(A.shape[0] - n_eq)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solver = clarabel.DefaultSolver(sparse.diags(diag, format="csc"),
                                    np.asarray(lp.col_cost_, float), A, b, cones, settings)
    solution = solver.solve()
    if solution.status not in (clarabel.SolverStatus.Solved,
                               clarabel.SolverStatus.AlmostSolved):
        raise AgentSolveError(f"{who}: the market round's QP failed in HiGHS and Clarabel "
                              f"(Clarabel: {solution.status})")
    return np.asarray(solution.x)
