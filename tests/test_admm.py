"""The ADMM peer-to-peer market (coordinator.mechanisms.admm, agents.admm_peer).

Mechanism arithmetic is checked against updates worked out by hand; a small community's
ADMM clearing against a second method, the centralized MILP of the same agents with a
community balance solved by HiGHS in one model.
"""

import numpy as np
import pyomo.environ as pyo
import pytest

from lemgrid.agents.admm_peer import PeerModel, connection_limits
from lemgrid.agents.data import BatterySpec, EVData, Horizon, ProsumerData, Tariff
from lemgrid.agents.market_agent import MarketAgent
from lemgrid.agents.solver import OPTIMAL, PersistentMILP, define_agent
from lemgrid.coordinator.mechanisms.admm import CORE as ADMM
from lemgrid.coordinator.mechanisms.admm import (
    ADMMParams,
    _signals,
    init_admm,
    split_purchases,
    step_admm,
    trade_pairs,
)
from lemgrid.coordinator.mechanisms.base import MarketData
from lemgrid.coordinator.protocol import OfferBody, RegisterBody

from .conftest import run_session

H = Horizon(4, 1.0)
BUY = np.array([0.10, 0.20, 0.30, 0.10])
SELL = np.full(4, 0.04)


class EveryRound(ADMMParams):
    """ADMM parameters with residual balancing checked every round."""

    BALANCE_EVERY = 1


def _reg(imp, exp, kind="prosumer", periods=2):
    return RegisterBody(kind=kind, periods=periods, period_h=1.0,
                        limits_kw={"import": [imp], "export": [exp]})


def test_pairs_only_where_one_can_sell_and_the_other_buy():
    roster = {"a": _reg(5, 5), "b": _reg(5, 0), "c": _reg(5, 0)}
    # b and c only buy: the pairs are a-b and a-c (by hand)
    assert trade_pairs(roster, ["a", "b", "c"], 2).tolist() == [[0, 1], [0, 2]]


def test_one_round_by_hand():
    """A sells to B. Round-1 offers P_AB = [−3, −1], P_BA = [2, 1] (kW), ρ = 100 €/MW²h
    = 1e-4 €/kW²h. By hand: a = (P_AB − P_BA)/2 = [−2.5, −1]; λ = 0.1 + 1e-4·(P_AB +
    P_BA)/2 = [0.09995, 0.1]. Scaled primal residual = ‖[−0.5, 0, −0.5, 0]‖ /
    max(‖[−3, −1, 2, 1]‖, ‖[a, a]‖) = √0.5/√15 = 0.182574; scaled dual residual =
    1e-4·‖[a, a]‖/‖[λ, λ]‖ = 1e-4·√14.5/√(2(0.09995² + 0.1²)) = 3.807887e-4/0.19995 = 1.904420e-3. The primal
    is above 10 × the dual, so ρ doubles to 200 (balancing checked every round here)."""
    roster = {"A": _reg(5, 5), "B": _reg(5, 0)}
    params = EveryRound(network=False).with_data(MarketData((0.1, 0.1), (0.1, 0.1)))
    signals, state = init_admm(roster, params)
    assert signals["A"].terms["p2p"].price_eur_per_kwh == [0.1, 0.1]
    assert signals["A"].counterparties == 1
    offers = {"A": OfferBody(quantities_kw={"net": [-3, -1], "p2p": [-3, -1]}),
              "B": OfferBody(quantities_kw={"net": [2, 1], "p2p": [2, 1]})}
    signals, state, done = step_admm(offers, state, params)
    assert not done
    np.testing.assert_allclose(state.a, [[-2.5, -1.0]])
    np.testing.assert_allclose(state.price, [[0.09995, 0.1]])
    rec = state.records[-1].scalars
    assert rec["primal_residual"] == pytest.approx(0.1825742, rel=1e-6)
    assert rec["dual_residual"] == pytest.approx(1.904420e-3, rel=1e-5)
    assert rec["rho"] == 100.0 and state.rho == 200.0
    assert signals["A"].terms["p2p"].target_kw == [-2.5, -1.0]
    assert signals["B"].terms["p2p"].target_kw == [2.5, 1.0]
    assert signals["B"].terms["p2p"].price_eur_per_kwh == pytest.approx([0.09995, 0.1])


def test_split_of_a_net_purchase_by_hand():
    """Peer A sells to B and C; B and C may also buy from D. ρ = 1e-4 €/kW²h, prices and agreed
    trades a_AB = −1, a_AC = −2, a_BD (B buys from D) = 1 kW, λ_AB = 0.10, λ_AC = 0.12,
    λ_BD = 0.11 €/kWh (one period). By hand, for A (M = 2): v_AB = −1 − 0.10/1e-4 =
    −1001, v_AC = −2 − 1200 = −1202, V_A = −2203; A offers s_A = −3, so each pair gets
    (s − V)/2 = 1100 more: P_AB = 99, P_AC = −102 (sum −3 = s_A). Their mean price λ̄_A =
    0.11 and agreed purchase A_A = −3 are what A's signal carries."""
    reg = {"A": _reg(0, 5, periods=1), "B": _reg(5, 0, periods=1),
           "C": _reg(5, 0, periods=1), "D": _reg(0, 5, periods=1)}
    params = ADMMParams(network=False)
    _, state = init_admm(reg, params)
    pairs = {tuple(state.peers[i] for i in p): k for k, p in enumerate(state.pairs)}
    assert set(pairs) == {("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")}
    state.a[pairs["A", "B"]] = -1.0
    state.a[pairs["A", "C"]] = -2.0
    state.a[pairs["B", "D"]] = 1.0
    state.price[[pairs["A", "B"], pairs["A", "C"], pairs["B", "D"]], 0] = [0.10, 0.12, 0.11]
    s = np.zeros((4, 1))
    s[state.index["A"]] = -3.0
    p_nm, _ = split_purchases(state, s, 1e-4)
    assert p_nm[pairs["A", "B"], 0] == pytest.approx(99.0)
    assert p_nm[pairs["A", "C"], 0] == pytest.approx(-102.0)
    signal = _signals(state, params)["A"]
    assert signal.counterparties == 2
    assert signal.terms["p2p"].price_eur_per_kwh == pytest.approx([0.11])
    assert signal.terms["p2p"].target_kw == [-3.0]


def test_network_consensus_by_hand():
    """One peer, the operator: q = [4, 2], z = [2, 2] kW, ρ = 1e-4 €/kW²h, prices 0.
    By hand: y = (q + z)/2 = [3, 2]; μ = ρ(q − y) = [1e-4, 0]; ν = ρ(z − y) = −μ."""
    roster = {"p": _reg(5, 5), "op": RegisterBody(kind="operator", periods=2, period_h=1.0)}
    params = ADMMParams(network=True, residual_balancing=False)
    signals, state = init_admm(roster, params)
    assert set(signals) == {"p", "op"} and state.operator == "op"
    offers = {"p": OfferBody(quantities_kw={"net": [4, 2]}),
              "op": OfferBody(quantities_kw={}, by_counterparty_kw={"net": {"p": [2, 2]}})}
    signals, state, _ = step_admm(offers, state, params)
    np.testing.assert_allclose(state.y, [[3, 2]])
    np.testing.assert_allclose(state.mu, [[1e-4, 0]])
    np.testing.assert_allclose(state.nu, [[-1e-4, 0]])
    assert signals["op"].by_counterparty["net"]["p"].target_kw == [3, 2]


def test_each_group_balances_its_own_rho_by_hand():
    """Seller A, buyer B, the operator; ρ = 100 €/MW²h = 1e-4 €/kW²h for both groups,
    first prices 0, balancing checked every round. Offers: s_A = q_A = −1, s_B = q_B = 1
    (kW); the operator z = [0, 0]. By hand: the split gives P_AB = −1, P_BA = 1 (the
    trades agree: primal_trade = 0), a = −1; y = (q + z)/2 = [−0.5, 0.5], μ = ρ(q − y) =
    ρ[−0.5, 0.5], ν = −μ. Sizes over both groups: ‖[P_AB, P_BA, q, z]‖ = 2, ‖[a, a, y,
    y]‖ = √3, ‖[λ, λ, μ, ν]‖ = ρ. So primal_net = ‖[q − y, z − y]‖/2 = 0.5; dual_trade =
    ρ‖[Δa, Δa]‖/ρ = √2, dual_net = ρ‖[Δy, Δy]‖/ρ = 1. Trades: the dual is above 10 × the
    primal (0): ρ halves to 50; network: neither is 10 × the other: ρ_net stays 100."""
    roster = {"A": _reg(0, 5, periods=1), "B": _reg(5, 0, periods=1),
              "op": RegisterBody(kind="operator", periods=1, period_h=1.0)}
    params = EveryRound()
    _, state = init_admm(roster, params)
    offers = {"A": OfferBody(quantities_kw={"net": [-1], "p2p": [-1]}),
              "B": OfferBody(quantities_kw={"net": [1], "p2p": [1]}),
              "op": OfferBody(quantities_kw={}, by_counterparty_kw={"net": {"A": [0], "B": [0]}})}
    signals, state, _ = step_admm(offers, state, params)
    rec = state.records[-1].scalars
    assert rec["primal_trade"] == pytest.approx(0.0, abs=1e-12)
    assert rec["primal_net"] == pytest.approx(0.5)
    assert rec["dual_trade"] == pytest.approx(np.sqrt(2))
    assert rec["dual_net"] == pytest.approx(1.0)
    assert (rec["primal_residual"], rec["dual_residual"]) == pytest.approx((0.5, np.sqrt(2)))
    assert (state.rho, state.rho_net) == (50.0, 100.0)
    assert signals["A"].terms["net"].rho == 100.0 and signals["A"].rho == 50.0
    assert signals["op"].rho == 100.0


def test_operator_leaving_stops_the_market_and_says_so():
    roster = {"p": _reg(5, 5), "op": RegisterBody(kind="operator", periods=2, period_h=1.0)}
    params = ADMMParams()
    _, state = init_admm(roster, params)
    _, state, done = step_admm({"p": OfferBody(quantities_kw={"net": [1, 1]})}, state, params)
    assert done and not state.converged and "operator op left" in state.stopped


def _tariff():
    return Tariff(BUY, SELL, 0.0)


def _community():
    """A PV + battery prosumer with midday surplus, a consumer (a prosumer without PV or
    battery) and an EV that must charge 6 kWh while at home."""
    bat = BatterySpec(10.0, 1.0, 3.0, 3.0, 0.95, 0.95, 5.0, 5.0)
    seller = ProsumerData("s", H, _tariff(), np.array([1.0, 1.0, 1.0, 1.0]),
                          np.array([0.0, 6.0, 4.0, 0.0]), bat, 10.0, 5.0, 0.0)
    consumer = ProsumerData("c", H, _tariff(), np.array([2.0, 3.0, 2.0, 1.0]),
                            np.zeros(4), None, 10.0, 0.0, 0.0)
    ev_bat = BatterySpec(40.0, 4.0, 7.0, 0.0, 0.95, 0.95, 20.0, 25.7)
    ev = EVData("e", H, _tariff(), np.array([False, False, True, False]), np.zeros(4),
                ev_bat, 7.0, 0.0)
    return [seller, consumer, ev]


def _centralized_cost(community) -> float:
    """Second method: every agent's MILP in one model, their net P2P purchases summing
    to zero in every period (the community balance that reciprocity implies), each
    agent's physical exchange (retail + P2P) within its connection's limits."""
    m = pyo.ConcreteModel()
    m.agents = pyo.Block([d.name for d in community])
    for d in community:
        b = m.agents[d.name]
        b.p2p_in_kw = pyo.Var(range(4), bounds=(-20, 20))
        define_agent(b, d)
        if b.component("p2v_limit_kw") is not None:
            for t in range(4):
                b.grid.p2v_kw[t].setub(0.0)
        imp, exp = connection_limits(d)
        sell = b.grid.component("sell_kw")
        b.connection = pyo.Constraint(range(4), rule=lambda b, t, imp=imp, exp=exp, sell=sell:
                                      pyo.inequality(-float(exp[t]), b.grid.buy_kw[t]
                                                     - (sell[t] if sell is not None else 0)
                                                     + b.p2p_in_kw[t], float(imp[t])))
    m.balance = pyo.Constraint(range(4), rule=lambda m, t: sum(
        m.agents[d.name].p2p_in_kw[t] for d in community) == 0)
    m.obj = pyo.Objective(expr=sum(m.agents[d.name].cost_eur for d in community))
    solver = PersistentMILP(m)
    status, _ = solver.solve()
    assert status == OPTIMAL
    return solver.objective()


def _run_admm(community, params):
    agents = {d.name: MarketAgent(d, "peer_consensus", **params.agent_options())
              for d in community}
    return agents, run_session(agents, ADMM, params)


@pytest.mark.parametrize("qp", ["highs", "osqp"])
def test_admm_matches_the_centralized_optimum(qp):
    """Both QP methods of the peers' rounds (HiGHS from scratch, OSQP kept between
    rounds) reach the centralized MILP's cost."""
    community = _community()
    central = _centralized_cost(community)
    params = ADMMParams(network=False, max_rounds=500, residual_tolerance=1e-5,
                        qp=qp).with_data(MarketData(tuple(BUY.tolist()), tuple(SELL.tolist())))
    agents, session = _run_admm(community, params)
    assert session.state.converged, session.state.stopped
    assert all(a.model.qp == qp and a.model.qp_fallbacks == 0 for a in agents.values())
    admm = sum(a.plan.objective_eur for a in agents.values())
    # the retail bills' total: trade payments cancel between the peers
    assert admm == pytest.approx(central, abs=1e-3)
    clearing = session.clear()
    pos = sum(np.asarray(c.body.position_kw) for c in clearing.values())
    np.testing.assert_allclose(pos, 0.0, atol=1e-9)  # reciprocity of the agreed trades
    assert all(a.model.relaxation_conflicts == 0 for a in agents.values())
    # the seller's PV surplus at midday goes to its peers, not to retail at 0.04 €/kWh
    assert clearing["s"].body.quantities_kw["p2p"][1] < -1.0


def test_aggregated_terms_match_the_per_counterparty_problem():
    """Second method: the consumer's problem with one column per counterparty, min
    f(x) + Σ_m λ_m P_m + ρ/2 (P_m − a_m)² (built in Pyomo, solved by Clarabel via cvxpy
    on the same bounds), against the aggregated form the market sends (A = Σ a_m, λ̄ =
    mean λ_m, M = 2): the same net purchase s, and the coordinator's split of s gives the
    per-counterparty optimum's P_m."""
    import cvxpy as cp

    from lemgrid.agents.admm_peer import bound_constraints, local_lp
    from lemgrid.grid.branchflow import clarabel

    consumer = _community()[1]
    rho_mw, rho = 5e4, 5e4 / 1e6
    lam = np.array([[0.15] * 4, [0.12] * 4])
    a = np.array([[1.0] * 4, [0.5] * 4])
    model = PeerModel(consumer, 2)
    model.set_terms(rho_mw, (lam.mean(axis=0), a.sum(axis=0)))
    model.solve()
    s = model.purchase_kw()
    lp = local_lp(model)
    x = cp.Variable(len(lp.cost))
    p = cp.Variable((2, 4))
    cons = bound_constraints(x, lp.a, lp.col_lower, lp.col_upper, lp.row_lower, lp.row_upper)
    cons.append(cp.sum(p, axis=0) == x[lp.p2p])
    obj = lp.cost @ x + cp.sum(cp.multiply(lam, p)) + rho / 2 * cp.sum_squares(p - a)
    clarabel(cp.Problem(cp.Minimize(obj), cons))
    np.testing.assert_allclose(s, x.value[lp.p2p], atol=1e-3)
    v = a - lam / rho
    split = v + (s - v.sum(axis=0)) / 2
    np.testing.assert_allclose(split, p.value, atol=2e-3)


def test_fix_mode_keeps_the_plan_without_the_market():
    seller = _community()[0]
    fixed = PeerModel(seller, 1, binaries="fix")
    relaxed = PeerModel(seller, 1, binaries="relax")
    s = fixed.solver
    lp = fixed.highs.getLp()
    lower = np.asarray(lp.col_lower_)[s._binaries]
    upper = np.asarray(lp.col_upper_)[s._binaries]
    np.testing.assert_array_equal(lower, upper)  # every binary fixed
    rl = relaxed.highs.getLp()
    assert np.all(np.asarray(rl.col_upper_)[relaxed.solver._binaries] == 1.0)
    with pytest.raises(ValueError, match="binaries"):
        PeerModel(seller, 1, binaries="round")


def test_interior_point_solves_the_same_qp():
    """The fallback for a stalled HiGHS QP (Clarabel on the same matrices) reaches the
    objective HiGHS reaches (a second solver on the same problem)."""
    from lemgrid.agents.admm_peer import interior_point

    seller = _community()[0]
    model = PeerModel(seller, 2)
    model.set_terms(5e4, ([0.135] * 4, [-1.5] * 4), ([0.01] * 4, [-2.0] * 4))
    model.solve()
    h = model.highs
    lp = h.getLp()
    cost = np.asarray(lp.col_cost_)

    def objective(x):
        hess = h.getModel().hessian_
        return float(cost @ x + 0.5 * sum(
            v * x[i] ** 2 for i, v in zip(hess.index_, hess.value_)))
    x_highs = model.x
    x_clarabel = interior_point(h, "test")
    assert objective(x_clarabel) == pytest.approx(objective(x_highs), rel=1e-5, abs=1e-5)
