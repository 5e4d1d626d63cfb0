"""The clearance market (coordinator.mechanisms.clearance) and the network operator's
clearance (agents.operator): numbers worked out by hand from the double auction and the
network's transformer ratings."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lemgrid.agents.data import Horizon, OperatorData
from lemgrid.agents.operator import OperatorAgent
from lemgrid.coordinator.mechanisms.clearance import CORE as CLEARANCE
from lemgrid.coordinator.mechanisms.clearance import ClearanceParams, init_clearance, step_clearance
from lemgrid.coordinator.protocol import (
    Offer,
    OfferBody,
    ProtocolError,
    Register,
    RegisterBody,
    Signal,
    SignalBody,
)
from lemgrid.coordinator.session import MarketSession
from lemgrid.scenarios.bench.clearance import ac_residue
from lemgrid.scenarios.results.clearance import clearance_frame, trades_frame
from lemgrid.scenarios.results.outcome import DayResult, RoundStats
from lemgrid.scenarios.run.world import run_scenario
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS


def _reg(kind="prosumer", periods=2):
    return RegisterBody(kind=kind, periods=periods, period_h=1.0)


def _quotes(**nets):
    return {n: OfferBody(quantities_kw={"net": v}) for n, v in nets.items()}


def test_double_auction_without_the_network_by_hand():
    """A has 3 kW to spare in period 0, B and C need 2 kW each (equal bids: B, then C, in
    roster order). By hand: A→B 2 kW, A→C 1 kW at A's ask 0.05 €/kWh. Period 1: nobody
    sells, nothing trades. Positions A −3, B +2, C +1; B pays 2 × 0.05 = 0.10 €."""
    roster = {"A": _reg(), "B": _reg(), "C": _reg()}
    params = ClearanceParams(network=False)
    signals, state = init_clearance(roster, params)
    assert set(signals) == {"A", "B", "C"}
    signals, state, done = step_clearance(_quotes(A=[-3, 1], B=[2, 1], C=[2, 0]), state, params)
    assert done and signals == {} and state.converged
    pairs = {(state.peers[s], state.peers[b]): k for k, (s, b) in enumerate(state.pairs)}
    assert set(pairs) == {("A", "B"), ("A", "C")}
    np.testing.assert_allclose(state.accepted[pairs["A", "B"]], [2, 0])
    np.testing.assert_allclose(state.accepted[pairs["A", "C"]], [1, 0])
    mech = CLEARANCE
    clearing = mech.clear(state, params)
    assert clearing["A"].position_kw == [-3.0, 0.0]
    assert clearing["C"].by_counterparty_kw["p2p"]["A"] == [1.0, 0.0]
    bills = mech.settle(state, params, {})
    assert bills["B"].traded_eur == pytest.approx([0.10, 0.0])
    assert bills["A"].traded_eur == pytest.approx([-0.15, 0.0])


def test_the_operator_is_asked_alone_and_its_answer_clears():
    """Round 2 goes to the operator only; the session waits for it alone and refuses an
    offer from a participant it did not ask. The operator accepts 1.5 of A→B's 2 kW: the
    positions follow (A −1.5, B +1.5), and what it accepts above the offer is clipped."""
    roster = {"A": _reg(), "B": _reg(), "op": _reg("operator")}
    session = MarketSession(CLEARANCE, ClearanceParams())
    for name, body in roster.items():
        session.register(Register(sender=name, day=0, body=body))
    signals = session.start()
    assert set(signals) == {"A", "B"}
    for name, q in (("A", [-2, 0]), ("B", [2, 0])):
        session.offer(Offer(sender=name, day=0, round=1,
                            body=OfferBody(quantities_kw={"net": q})))
    signals = session.close_round()
    assert set(signals) == {"op"} and session.waiting_for == ["op"]
    trade = signals["op"].body.trades[0]
    assert (trade.seller, trade.buyer, trade.kw) == ("A", "B", [2.0, 0.0])
    with pytest.raises(ProtocolError, match="not asked"):
        session.offer(Offer(sender="A", day=0, round=2, body=OfferBody(quantities_kw={})))
    session.offer(Offer(sender="op", day=0, round=2, body=OfferBody(
        quantities_kw={}, accepted_kw=[[1.5, 3.0]], binding={"0": ["line 1 (bus 1-2)"]})))
    assert session.close_round() == {} and session.done
    clearing = session.clear()
    assert clearing["A"].body.position_kw == [-1.5, 0.0]
    assert clearing["B"].body.position_kw == [1.5, 0.0]


def test_a_silent_operator_clears_nothing_and_says_so():
    roster = {"A": _reg(), "B": _reg(), "op": _reg("operator")}
    params = ClearanceParams()
    _, state = init_clearance(roster, params)
    signals, state, done = step_clearance(_quotes(A=[-2, 0], B=[2, 0]), state, params)
    assert set(signals) == {"op"} and not done
    _, state, done = step_clearance({}, state, params)
    assert done and not state.converged and "did not answer" in state.stopped
    np.testing.assert_allclose(state.accepted, 0.0)


def _operator(buses):
    data = OperatorData(name="op", horizon=Horizon(2, 1.0), network="cigre_lv", buses=buses)
    agent = OperatorAgent(data)
    agent.start_day(0)
    return agent


def test_operator_clears_across_cigre_feeders_by_the_transformer_rating():
    """CIGRE LV: bus 36 is on the commercial feeder (its 0.30 MVA transformer 23-24),
    bus 12 on the residential one (0.50 MVA, 1-2). A 500 kW trade 36 → 12 with the
    seller's whole surplus and the buyer's whole deficit traded leaves no base injection,
    so in DC the trade's 0.5 MW crosses both transformers: the 0.30 MVA one admits 300 kW
    (x = 0.6), by hand. Period 1: a 100 kW trade fits whole."""
    agent = _operator({"s": 36, "b": 12})
    body = SignalBody(by_counterparty={"net": {"s": {"target_kw": [-500, -100]},
                                               "b": {"target_kw": [500, 100]}}},
                      trades=[{"seller": "s", "buyer": "b", "kw": [500, 100]}])
    offer = agent.on_signal(Signal(sender="coordinator", day=0, round=2, body=body))
    np.testing.assert_allclose(offer.body.accepted_kw, [[300.0, 100.0]], atol=1e-6)
    assert list(offer.body.binding) == ["0"]
    assert any("transformer 2" in label for label in offer.body.binding["0"])


def test_an_overloaded_base_accepts_nothing_and_names_the_limit():
    """400 kW of the seller's surplus stays outside the trade: the commercial feeder's
    base injection alone (0.4 MW) overloads its 0.30 MVA transformer."""
    agent = _operator({"s": 36, "b": 12})
    body = SignalBody(by_counterparty={"net": {"s": {"target_kw": [-500, 0]},
                                               "b": {"target_kw": [100, 0]}}},
                      trades=[{"seller": "s", "buyer": "b", "kw": [100, 0]}])
    offer = agent.on_signal(Signal(sender="coordinator", day=0, round=2, body=body))
    assert offer.body.accepted_kw == [[0.0, 0.0]]
    (label,) = offer.body.binding["0"]
    assert label.startswith("infeasible") and "transformer 2" in label


def test_results_tables_from_the_last_round():
    roster = {"A": _reg(), "B": _reg()}
    params = ClearanceParams(network=False)
    _, state = init_clearance(roster, params)
    _, state, _ = step_clearance(_quotes(A=[-3, 0], B=[2, 0]), state, params)
    day = DayResult("decentralized", {}, [RoundStats(state.records[-1], {}, {})])
    table = clearance_frame([day], 1.0)
    assert table["offered_mw"].tolist() == [0.002, 0.0]
    assert table["curtailed_mw"].tolist() == [0.0, 0.0]
    trades = trades_frame([day])
    assert trades[["seller", "buyer", "offered_kw", "kw"]].values.tolist() == [["A", "B", 2.0,
                                                                                2.0]]


def test_the_cigre_run_reproduces_the_published_day(tmp_path):
    """A whole run of fernandes2024_cigre (agents quoting, the coordinator's double
    auction, the operator's LP) against the authors' published hours
    (tests/data/fernandes2024_published.json: their accepted P2P = "Top Line of Stack"
    − "Inverted Slack Power Adjustments", and "Total Load"), to 1e-6 MW."""
    s = load_scenario(SCENARIOS / "fernandes2024_cigre.yaml", ["runtime.kind=inprocess"])
    summary = run_scenario(s, tmp_path)
    published = json.loads((Path(__file__).parent / "data" /
                            "fernandes2024_published.json").read_text())["cigre_lv"]
    table = pd.read_parquet(tmp_path / "clearance.parquet")
    p2p = np.subtract(published["grid_import_plus_p2p_mw"], published["grid_import_mw"])
    np.testing.assert_allclose(table["accepted_mw"], p2p, atol=1e-6)
    np.testing.assert_allclose(table["total_load_mw"], published["total_load_mw"], atol=1e-6)
    assert (table["curtailed_mw"].abs() < 1e-9).all() and (table["binding"] == "").all()
    assert summary["market"]["curtailed_kwh"] == pytest.approx(0.0, abs=1e-6)


def test_an_ac_power_flow_shows_what_the_dc_clearance_misses():
    """village_1 at 6 × the profiles: the clearance curtails 1.114 kW at hour 8, where
    the DC flow sits at the transformer's rating; pandapower's AC power flow of the same
    injections (power factor 0.99) loads it above 100 % (reactive power and losses) and
    finds voltages below 0.95 pu, which the DC model does not see."""
    (row,) = ac_residue("village_1", 6.0)
    assert row["hour"] == 8 and row["curtailed_mw"] == pytest.approx(0.001114, abs=1e-6)
    assert row["dc_flow_over_rating_pct"] == pytest.approx(100.0, abs=1e-4)
    assert row["ac_trafo_loading_pct"] > 100.0 and row["ac_v_min_pu"] < 0.95


def test_a_scale_the_network_cannot_carry_is_named_and_the_run_goes_on(tmp_path):
    """village_1 at 10 × the profiles: in most hours the loads alone overload the 0.25 MVA
    transformer (the 20 load buses draw 10 × 20 × 1.49 kW = 0.298 MW at night, by hand
    from Cluster_0's smallest hour); the operator refuses those hours' trades and says
    why, the run completes and its summary names the first such period."""
    s = load_scenario(SCENARIOS / "fernandes2024_village.yaml",
                      ["runtime.kind=inprocess", "community.scale=10"])
    summary = run_scenario(s, tmp_path)
    table = pd.read_parquet(tmp_path / "clearance.parquet")
    refused = table[table["binding"].str.startswith("infeasible:")]
    assert summary["market"]["infeasible_periods"] == len(refused) > 0
    assert (refused["accepted_mw"] == 0).all()
    (note,) = summary["notes"]
    assert "refused every trade" in note and "transformer 0 (bus 0-1)" in note
