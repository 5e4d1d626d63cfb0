"""The QP a consensus peer keeps between rounds (agents.qp: OSQP with its factorization
and iterates kept) against optima worked out by hand and against HiGHS on a peer's own
problem (agents.admm_peer)."""

import numpy as np
import pytest
import scipy.sparse as sp

from lemgrid.agents.admm_peer import PeerModel
from lemgrid.agents.qp import KeptQP

from .test_admm import _community

INF = 1e30


def _two():
    """min ½ Σ h_i x_i² + c·x s.t. x1 + x2 = 1, 0 ≤ x ≤ 1."""
    return KeptQP([1.0, 1.0], [0.0, 0.0], sp.csc_matrix([[1.0, 1.0]]), col_lower=[0.0, 0.0],
                  col_upper=[1.0, 1.0], row_lower=[1.0], row_upper=[1.0], infinity=INF)


def test_kept_qp_by_hand():
    qp = _two()
    # h = (1, 1), c = 0: the split is even
    np.testing.assert_allclose(qp.solve(), [0.5, 0.5], atol=1e-6)
    first = qp.iterations
    # the same problem again starts at its solution: no more iterations than the first
    np.testing.assert_allclose(qp.solve(), [0.5, 0.5], atol=1e-6)
    assert qp.iterations <= first
    # c = (0.2, 0): stationarity x1 + 0.2 = x2, x1 + x2 = 1 -> (0.4, 0.6)
    qp.update([0.2, 0.0], [1.0, 1.0])
    np.testing.assert_allclose(qp.solve(), [0.4, 0.6], atol=1e-6)
    # h = (2, 1), c = 0 (the diagonal changed: refactored): 2 x1 = x2 -> (1/3, 2/3)
    qp.update([0.0, 0.0], [2.0, 1.0])
    np.testing.assert_allclose(qp.solve(), [1 / 3, 2 / 3], atol=1e-6)
    # c = (0, 3), h = (1, 1): x1 = x2 + 3 has x2 = −1 < 0, so the bound holds: (1, 0)
    qp.update([0.0, 3.0], [1.0, 1.0])
    np.testing.assert_allclose(qp.solve(), [1.0, 0.0], atol=1e-6)


def test_infeasible_qp_returns_none():
    """x1 + x2 = 3 cannot hold within 0 ≤ x ≤ 1: None, and the caller falls back."""
    qp = KeptQP([1.0, 1.0], [0.0, 0.0], sp.csc_matrix([[1.0, 1.0]]), col_lower=[0.0, 0.0],
                col_upper=[1.0, 1.0], row_lower=[3.0], row_upper=[3.0], infinity=INF)
    assert qp.solve() is None


ROUNDS = [  # (ρ €/MW²h, (λ̄ €/kWh, A kW), (μ €/kWh, y kW)) per period, as rounds send them
    (5e4, ([0.135] * 4, [-1.5] * 4), ([0.01] * 4, [-2.0] * 4)),
    (5e4, ([0.120, 0.14, 0.15, 0.12], [-1.0, -2.0, -1.0, 0.0]), ([0.0] * 4, [-1.0] * 4)),
    (1e5, ([0.120, 0.14, 0.15, 0.12], [-1.0, -2.5, -1.5, 0.0]), ([0.0] * 4, [-1.0] * 4)),
]


@pytest.mark.parametrize("who", [0, 1, 2])
def test_osqp_rounds_equal_highs_rounds(who):
    """Second method: the same peer's rounds solved by HiGHS's active-set QP from scratch
    and by OSQP kept between rounds (the third round changes ρ, so OSQP refactors): the
    same plans to 1e-3 kW and the same retail bills to 1e-6 €."""
    data = _community()[who]
    models = {qp: PeerModel(data, 2, qp=qp) for qp in ("highs", "osqp")}
    for rho, trade, net in ROUNDS:
        plans = {}
        for qp, model in models.items():
            model.set_terms(rho, trade, net)
            plans[qp] = model.solve()
        np.testing.assert_allclose(models["osqp"].x, models["highs"].x, atol=1e-3)
        assert plans["osqp"].objective_eur == pytest.approx(plans["highs"].objective_eur,
                                                            abs=1e-6)
    assert models["osqp"].qp_fallbacks == 0


def test_a_round_osqp_does_not_solve_goes_to_highs(monkeypatch):
    seller = _community()[0]
    kept, plain = PeerModel(seller, 2, qp="osqp"), PeerModel(seller, 2, qp="highs")
    monkeypatch.setattr(KeptQP, "solve", lambda self: None)
    for model in (kept, plain):
        model.set_terms(*ROUNDS[0])
        model.solve()
    assert kept.qp_fallbacks == 1
    np.testing.assert_allclose(kept.x, plain.x, atol=1e-9)
    with pytest.raises(ValueError, match="qp 'gurobi'; allowed: osqp, highs"):
        PeerModel(seller, 2, qp="gurobi")
