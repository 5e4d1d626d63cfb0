"""The four coordinator rules and the settlement on toy offers worked out by hand."""

import numpy as np
import pytest

from lemgrid.coordinator.mechanisms.base import MarketData
from lemgrid.coordinator.mechanisms.p2v_rules import CORE
from lemgrid.coordinator.protocol import OfferBody, RegisterBody

MECH = CORE
PARAMS = MECH.params_type(tolerance_kw=0.001, max_rounds=5).with_data(
    MarketData(p2v_eur_per_kwh=0.0686))
# S_t (one seller p1): 2, 0, 1 kW. B_t (v1 + v2): 3+1, 1+0, 0+0 kW.
OFFERS = {"p1": [2.0, 0.0, 1.0], "v1": [3.0, 1.0, 0.0], "v2": [1.0, 0.0, 0.0]}


def start():
    roster = {"p1": RegisterBody(kind="prosumer", periods=3, period_h=0.5,
                                 limits_kw={"p2v": [3.0]}),
              "v1": RegisterBody(kind="ev", periods=3, period_h=0.5, limits_kw={"p2v": [7.0]}),
              "v2": RegisterBody(kind="ev", periods=3, period_h=0.5, limits_kw={"p2v": [7.0]})}
    return MECH.init(roster, PARAMS, 0)


def step(state, offers=OFFERS):
    return MECH.step({n: OfferBody(quantities_kw={"p2v": q}) for n, q in offers.items()},
                     state, PARAMS)


def limits(signals, name):
    return signals[name].terms["p2v"].limit_kw


def test_initial_limits_are_connection_limits():
    signals, _ = start()
    assert limits(signals, "p1") == [3.0] * 3 and limits(signals, "v2") == [7.0] * 3


def test_rule1_closes_buyer_periods_without_supply():
    """Error = |2−4| + |0−1| + |1−0| = 4 kW. S_1 = 0, so EVs get limit 0 in period 1."""
    signals, state, done = step(start()[1])
    assert not done and state.records[0].error_kw == pytest.approx(4.0)
    assert state.records[0].scalars["rule_applied"] == 1
    assert limits(signals, "v1") == [7.0, 0.0, 7.0] and limits(signals, "p1") == [3.0] * 3


def test_rule2_closes_seller_periods_without_demand():
    """Round 2 (same offers): B_2 = 0, so the prosumer gets limit 0 in period 2."""
    _, state, _ = step(start()[1])
    signals, state, _ = step(state)
    assert state.records[1].scalars["rule_applied"] == 2 and limits(signals, "p1") == [3.0, 3.0, 0.0]


def test_rule3_shares_supply_pro_rata():
    """Round 3: period 0 has S = 2, B = 4: v1 gets 2·3/4 = 1.5, v2 gets 2·1/4 = 0.5;
    periods with B = 0 get 0; period 1 has S = 0: 0."""
    state = start()[1]
    for _ in range(2):
        _, state, _ = step(state)
    signals, state, _ = step(state)
    assert limits(signals, "v1") == pytest.approx([1.5, 0.0, 0.0])
    assert limits(signals, "v2") == pytest.approx([0.5, 0.0, 0.0])


def test_rule4_shares_demand_pro_rata():
    """Round 4 offers obey rule 3 (EVs 1.5 + 0.5 = 2 in period 0) but the prosumer still
    offers 1 kW in period 2 (B = 0): limit B·q/S = 2·2/2 = 2, 0, 0."""
    state = start()[1]
    for _ in range(3):
        _, state, _ = step(state)
    offers = {"p1": [2.0, 0.0, 1.0], "v1": [1.5, 0.0, 0.0], "v2": [0.5, 0.0, 0.0]}
    signals, state, done = step(state, offers)
    assert state.records[-1].error_kw == pytest.approx(1.0) and not done
    assert limits(signals, "p1") == pytest.approx([2.0, 0.0, 0.0])


def test_converges_and_stops_at_tolerance():
    """Balanced offers (error 0.0005 kW ≤ 0.001) stop the market in round 1."""
    offers = {"p1": [2.0, 0.0, 0.0], "v1": [1.5, 0.0, 0.0], "v2": [0.4995, 0.0, 0.0]}
    _, state, done = step(start()[1], offers)
    assert done and state.converged


def test_stops_after_five_rounds_and_settles_balanced():
    """Unchanged offers never converge: 5 rounds, then the clearing scales buyers to
    supply in period 0 (2 of 4 kW: v1 1.5, v2 0.5); the rest of each offer is retail
    (the position is the cleared quantity, + for a buyer, − for a seller). The bill:
    v1 pays 1.5 kW × 0.5 h × 0.0686 €/kWh = 0.05145 € in period 0, p1 gets 2 × 0.5 ×
    0.0686 = 0.0686 €; no deviation or violation cost whatever the meters say."""
    state = start()[1]
    for r in range(5):
        _, state, done = step(state)
    assert done and not state.converged and state.round == 5
    clearing = MECH.clear(state, PARAMS)
    assert clearing["v1"].quantities_kw["p2v"] == pytest.approx([1.5, 0, 0])
    assert clearing["v1"].position_kw == pytest.approx([1.5, 0, 0])
    assert clearing["p1"].quantities_kw["p2v"] == pytest.approx([2, 0, 0])
    assert clearing["p1"].position_kw == pytest.approx([-2, 0, 0])
    sold = np.array(clearing["p1"].quantities_kw["p2v"])
    bought = sum(np.array(clearing[v].quantities_kw["p2v"]) for v in ("v1", "v2"))
    assert np.abs(sold - bought).max() == pytest.approx(0.0)
    bills = MECH.settle(state, PARAMS, {"v1": np.array([9.0, 9.0, 9.0])})
    assert bills["v1"].traded_eur == pytest.approx([0.05145, 0, 0], abs=1e-12)
    assert bills["p1"].traded_eur == pytest.approx([-0.0686, 0, 0], abs=1e-12)
    assert bills["v1"].deviation_eur == [0, 0, 0] and bills["v1"].violation_eur == [0, 0, 0]


def test_missing_offer_counts_as_zero():
    """v2 never answers: B = 3, 1, 0 and the error is |2−3| + 1 + 1 = 3."""
    offers = {"p1": OFFERS["p1"], "v1": OFFERS["v1"]}
    _, state, _ = step(start()[1], offers)
    assert state.records[0].error_kw == pytest.approx(3.0)
