"""``market.network_check: clearance`` (coordinator.mechanisms.network_check): any
mechanism's trades cleared by the network operator after its own market. Numbers worked by
hand from the double auction of a P2V market's positions and a scripted operator."""

import json

import numpy as np
import pandas as pd
import pytest

from lemgrid.agents.market_agent import MarketAgent, asks_planned_net
from lemgrid.coordinator.mechanisms.base import (
    MarketCore,
    MarketData,
    dump_market,
    load_market,
    zero_settlement,
)
from lemgrid.coordinator.mechanisms.network_check import bilateral_trades, checked
from lemgrid.coordinator.mechanisms.p2v_rules import CORE as P2V
from lemgrid.coordinator.mechanisms.p2v_rules import P2VParams
from lemgrid.coordinator.protocol import (
    NET,
    Clearing,
    ClearingBody,
    Meter,
    MeterBody,
    Offer,
    OfferBody,
    Register,
    RegisterBody,
    Signal,
    SignalBody,
    Terms,
)
from lemgrid.coordinator.session import MarketSession
from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.run.world import run_scenario
from lemgrid.scenarios.schema import ScenarioError, load_scenario

from .conftest import SCENARIOS

PRICE = 0.10  # €/kWh, the P2V price of the hand-worked case


def _register(session, name, kind):
    limits = {} if kind == "operator" else {"p2v": [10.0]}
    session.register(Register(sender=name, body=RegisterBody(kind=kind, periods=2, period_h=1.0,
                                                             limits_kw=limits)))


def _offer(session, name, body):
    session.offer(Offer(sender=name, round=session.round, body=body))


def _p2v_day(accepted):
    """A P2V day of prosumer A and EVs B and C (2 periods of 1 h) through the network check,
    the operator answering ``accepted``; the session after its clearing."""
    mech = checked(P2V)
    session = MarketSession(mech, P2VParams().with_data(MarketData(p2v_eur_per_kwh=PRICE)))
    for name, kind in (("A", "prosumer"), ("B", "ev"), ("C", "ev"), ("operator", "operator")):
        _register(session, name, kind)
    signals = session.start()
    assert set(signals) == {"A", "B", "C"}  # the operator sits the P2V rounds out
    for name, q in (("A", [3, 1]), ("B", [2, 1]), ("C", [1, 0])):
        _offer(session, name, OfferBody(quantities_kw={"p2v": q}))
    signals = session.close_round()  # balanced: the P2V market is done; the plan round
    assert set(signals) == {"A", "B", "C"}
    assert all(s.body.terms == {NET: Terms()} for s in signals.values())
    for name, net in (("A", [-3, -1]), ("B", [2, 1]), ("C", [1, 0])):
        _offer(session, name, OfferBody(quantities_kw={NET: net}))
    signals = session.close_round()
    assert list(signals) == ["operator"]
    body = signals["operator"].body
    assert [(t.seller, t.buyer, t.kw) for t in body.trades] == [("A", "B", [2.0, 1.0]),
                                                                ("A", "C", [1.0, 0.0])]
    assert body.by_counterparty[NET]["A"].target_kw == [-3.0, -1.0]
    _offer(session, "operator", OfferBody(quantities_kw={}, accepted_kw=accepted,
                                          binding={"0": ["trafo 0"]}))
    assert session.close_round() == {} and session.done
    session.clear()
    return session


def test_pooled_positions_matched_and_curtailed_by_hand():
    """Positions A −3, B +2, C +1 kW in period 0 and A −1, B +1 in period 1. The double
    auction (one price; buyers in roster order): A→B 2 and A→C 1 kW, then A→B 1 kW. The
    operator accepts 1 of A→B's 2 kW in period 0, everything else. By hand:
    positions A [−2, −1], B [1, 1], C [1, 0]; the P2V bill (0.10 €/kWh, 1 h) scaled by
    each agent's accepted/offered: A −0.30 × 2/3 = −0.20 and −0.10; B 0.20 × 1/2 = 0.10
    and 0.10; C 0.10 and 0. The curtailed 1 kWh of A and of B is retail."""
    session = _p2v_day([[1.0, 1.0], [1.0, 0.0]])
    positions = {n: c.position_kw for n, c in session.clearings.items()}
    assert positions == {"A": [-2.0, -1.0], "B": [1.0, 1.0], "C": [1.0, 0.0],
                         "operator": [0.0, 0.0]}
    assert session.clearings["A"].quantities_kw["p2v"] == pytest.approx([2.0, 1.0])
    for name, p in positions.items():  # realised as cleared
        for t in range(2):
            session.meter(Meter(sender=name, body=MeterBody(period=t, p_kw=p[t])))
    bills = session.settle()
    traded = {n: pytest.approx(b.body.traded_eur) for n, b in bills.items()}
    assert traded == {"A": [-0.20, -0.10], "B": [0.10, 0.10], "C": [0.10, 0.0],
                      "operator": [0.0, 0.0]}
    assert bills["B"].body.position_kw == [1.0, 1.0]
    record = session.state.records[-1]
    np.testing.assert_allclose(record.per_period["offered_kw"], [3, 1])
    np.testing.assert_allclose(record.per_period["accepted_kw"], [2, 1])
    assert json.loads(record.scalars["binding"]) == {"0": ["trafo 0"]}
    assert [r.round for r in session.state.records] == [1, 2, 3]
    # A quoted 3 kW of export in period 0 and lost 1 kW of sales: it may feed in 2 kW there
    caps = {n: c.export_limit_kw for n, c in session.clearings.items()}
    assert caps == {"A": {"0": 2.0}, "B": None, "C": None, "operator": None}


def test_operator_accepting_everything_changes_nothing():
    session = _p2v_day([[2.0, 1.0], [1.0, 0.0]])
    assert session.clearings["A"].position_kw == [-3.0, -1.0]
    assert session.clearings["B"].position_kw == [2.0, 1.0]
    assert all(c.export_limit_kw is None for c in session.clearings.values())


def test_bilateral_trades_from_by_counterparty():
    """A buys 2 kW from B in period 0 and sells it 1 kW in period 1 (an ADMM clearing):
    one trade each way, at the pair's price."""
    a = ClearingBody(position_kw=[2, -1], converged=True,
                     by_counterparty_kw={"p2p": {"B": [2, -1]}},
                     by_counterparty_price={"p2p": {"B": [0.1, 0.2]}})
    b = ClearingBody(position_kw=[-2, 1], converged=True,
                     by_counterparty_kw={"p2p": {"A": [-2, 1]}},
                     by_counterparty_price={"p2p": {"A": [0.1, 0.2]}})
    pairs, kw, price = bilateral_trades({"A": a, "B": b}, ["A", "B"], 2)
    assert pairs == [(1, 0), (0, 1)]
    np.testing.assert_allclose(kw, [[2, 0], [0, 1]])
    np.testing.assert_allclose(price, [[0.1, 0], [0, 0.2]])


def test_params_file_keeps_the_check():
    amc, check = mechanisms.get("amc"), mechanisms.get("clearance").check
    params = amc.params(network_check="clearance")
    mech, loaded = load_market(dump_market(amc.core, params, check))
    assert "operator" in mech.kinds and loaded == params
    assert "operator" not in load_market(dump_market(amc.core, params))[0].kinds


def test_plan_round_answered_by_a_market_agent_without_replanning():
    """A tiny-community prosumer plans in the P2V round, then answers the empty ``net``
    term with that plan's net demand (the same plan object: no re-solve); an ADMM round's
    ``net`` terms (a target) are not such a question."""
    s = load_scenario(SCENARIOS / "tiny.yaml")
    agent = MarketAgent(build_community(s)[0], "limits")
    agent.register(0)
    agent.on_signal(Signal(sender="coordinator", body=SignalBody(terms={"p2v": Terms(limit_kw=[5.0] * 96)})))
    plan = agent.plan
    ask = Signal(sender="coordinator", round=2, body=SignalBody(terms={NET: Terms()}))
    assert asks_planned_net(ask)
    offer = agent.on_signal(ask)
    assert agent.plan is plan
    assert offer.body.quantities_kw == {NET: agent.planned_net_kw().tolist()}
    assert not asks_planned_net(Signal(sender="coordinator",
                                       body=SignalBody(terms={NET: Terms(target_kw=[0.0])})))


def test_market_agent_takes_the_operators_export_caps():
    """A clearing's export caps lower the agent's export limit in those periods only (the
    tighter of its own and the operator's), and realisation keeps to them; a cap for a
    period the day lacks is an error naming it."""
    s = load_scenario(SCENARIOS / "tiny.yaml")
    agent = MarketAgent(build_community(s)[0], "limits")
    agent.register(0)
    agent.solve_if_needed()
    own = agent.export_limit_kw.copy()
    t = int(np.argmin(agent.planned_net_kw()))  # its largest planned export
    assert -agent.planned_net_kw()[t] > 0.25
    clearing = ClearingBody(position_kw=[0.0] * 96, converged=True,
                            export_limit_kw={str(t): 0.25, "1": 1e6})
    agent.on_clearing(Clearing(sender="coordinator", body=clearing))
    expected = own.copy()
    expected[t] = min(own[t], 0.25)
    np.testing.assert_array_equal(agent.export_limit_kw, expected)
    assert agent.realise(t).body.p_kw[0] >= -0.25 - 1e-9
    with pytest.raises(ValueError, match=r"export limit for period '96', outside 0-95"):
        agent.on_clearing(Clearing(sender="coordinator", body=ClearingBody(
            position_kw=[0.0] * 96, converged=True, export_limit_kw={"96": 1.0})))


def test_check_refused_where_the_network_already_takes_part(tmp_path):
    with pytest.raises(ScenarioError, match="the network operator already takes part"):
        load_scenario(SCENARIOS / "tiny.yaml",
                      ["market.mechanism=admm", "market.network_check=clearance"])


def test_tiny_p2v_run_with_the_check(tmp_path):
    """tiny.yaml (p2v_rules on case33bw) with the check: it completes and writes
    clearance.parquet; nothing is curtailed, since five households' few kW are a fraction
    of a percent of the 12.66 kV feeder's line and transformer ratings (its grid loading
    stays below 1 %), so the bills are those of the run without the check."""
    s = load_scenario(SCENARIOS / "tiny.yaml",
                      ["runtime.kind=inprocess", "market.network_check=clearance"])
    summary = run_scenario(s, tmp_path / "checked")
    table = pd.read_parquet(tmp_path / "checked" / "clearance.parquet")
    assert len(table) == 96 and table["offered_mw"].sum() > 0
    assert summary["market"]["curtailed_kwh"] == 0.0
    assert summary["market"]["accepted_kwh"] == pytest.approx(summary["market"]["traded_kwh"])
    plain = run_scenario(load_scenario(SCENARIOS / "tiny.yaml", ["runtime.kind=inprocess"]),
                         tmp_path / "plain")
    assert summary["costs_eur"]["total"] == pytest.approx(plain["costs_eur"]["total"], abs=1e-9)
    assert summary["market"]["rounds"] == plain["market"]["rounds"] + 2  # plan, operator


def _bilateral_mechanism():
    """A one-round bilateral market (admm-like): A buys from B 2 kW at 0.10 €/kWh in
    period 0 and 1 kW at 0.20 in period 1."""
    kw, price = np.array([2.0, 1.0]), np.array([0.10, 0.20])

    def clear(state, params):
        return {"A": ClearingBody(quantities_kw={"p2p": kw.tolist()}, position_kw=kw.tolist(),
                                  by_counterparty_kw={"p2p": {"B": kw.tolist()}},
                                  by_counterparty_price={"p2p": {"B": price.tolist()}},
                                  converged=True),
                "B": ClearingBody(quantities_kw={"p2p": (-kw).tolist()},
                                  position_kw=(-kw).tolist(),
                                  by_counterparty_kw={"p2p": {"A": (-kw).tolist()}},
                                  by_counterparty_price={"p2p": {"A": price.tolist()}},
                                  converged=True)}

    def settle(state, params, meters):
        return {"A": zero_settlement(kw, kw * price), "B": zero_settlement(-kw, -kw * price)}

    return MarketCore(params_type=dict, kinds=frozenset({"prosumer"}),
                      init=lambda roster, params, day=0: ({n: SignalBody() for n in roster},
                                                          None),
                      step=lambda offers, state, params: ({}, state, True), clear=clear,
                      settle=settle, check_offer=lambda body, periods: None)


def test_bilateral_curtailment_billed_at_the_trades_prices():
    """The operator accepts 1 of the 2 kW in period 0. By hand: A's position [1, 1], its
    trade with B [1, 1], its bill 1 × 0.10 and 1 × 0.20 = [0.10, 0.20] €; B the opposite."""
    mech = checked(_bilateral_mechanism())
    session = MarketSession(mech, {})
    for name, kind in (("A", "prosumer"), ("B", "prosumer"), ("operator", "operator")):
        _register(session, name, kind)
    session.start()
    for name in ("A", "B"):
        _offer(session, name, OfferBody(quantities_kw={"net": [0.0, 0.0]}))
    signals = session.close_round()
    for name, net in (("A", [2, 1]), ("B", [-2, -1])):
        _offer(session, name, OfferBody(quantities_kw={NET: net}))
    signals = session.close_round()
    assert [(t.seller, t.buyer, t.kw) for t in signals["operator"].body.trades] == [
        ("B", "A", [2.0, 1.0])]
    _offer(session, "operator", OfferBody(quantities_kw={}, accepted_kw=[[1.0, 1.0]]))
    session.close_round()
    clearings = session.clear()
    assert clearings["A"].body.position_kw == [1.0, 1.0]
    assert clearings["A"].body.by_counterparty_kw == {"p2p": {"B": [1.0, 1.0]}}
    assert clearings["B"].body.by_counterparty_kw == {"p2p": {"A": [-1.0, -1.0]}}
    for name in ("A", "B", "operator"):
        for t in range(2):
            session.meter(Meter(sender=name, body=MeterBody(period=t, p_kw=0.0)))
    bills = session.settle()
    assert bills["A"].body.traded_eur == pytest.approx([0.10, 0.20])
    assert bills["B"].body.traded_eur == pytest.approx([-0.10, -0.20])
    assert bills["B"].body.position_kw == [-1.0, -1.0]


def test_locality_market_checked_curtails_what_the_clearance_market_does(tmp_path):
    """fernandes2024_village at 6 × its profiles (fixed profiles: every quote is the
    participant's net demand) under amc with the check: its positions are the quotes, so
    the double auction matches the clearance market's trades and the operator curtails the
    same 38.67 kWh of 891.36 kWh in the same periods (10 binding, 9 refused outright)."""
    scale = ["runtime.kind=inprocess", "community.scale=6"]
    checked_run = run_scenario(load_scenario(
        SCENARIOS / "fernandes2024_village.yaml",
        [*scale, "market.mechanism=amc", "market.network_check=clearance"]), tmp_path / "amc")
    clearance_run = run_scenario(load_scenario(SCENARIOS / "fernandes2024_village.yaml", scale),
                                 tmp_path / "clearance")
    keys = ("offered_kwh", "accepted_kwh", "curtailed_kwh", "binding_periods",
            "infeasible_periods")
    assert {k: checked_run["market"][k] for k in keys} == pytest.approx(
        {k: clearance_run["market"][k] for k in keys})
    assert checked_run["market"]["curtailed_kwh"] == pytest.approx(38.6736, abs=1e-4)
    a, b = (pd.read_parquet(tmp_path / d / "clearance.parquet") for d in ("amc", "clearance"))
    np.testing.assert_allclose(a["accepted_mw"], b["accepted_mw"], atol=1e-9)


def test_faia2021_on_cigre_lv_the_check_removes_the_reverse_flows_the_trades_cause(tmp_path):
    """faia2021_cigre.yaml: the P2V community on CIGRE LV under a 1 % reverse-power limit
    (5, 1.5 and 3 kW for the 0.5, 0.15 and 0.3 MVA transformers). The second method is the
    AC power flow of the realised powers. Without the check the trades that cross feeders
    feed the selling feeders' transformers back beyond the limit; with it the operator's
    DC clearance curtails them, the sellers feed in only what it accepted, and the AC
    reverse flow stays within 5 kW (AC losses only lower it). What is left are forward
    overloads of the commercial transformer at 23:15-23:45 from the EVs' night charging,
    which no trade causes and the operator names (period 95: infeasible from the loads)."""
    runs = {}
    for check in ("none", "clearance"):
        s = load_scenario(SCENARIOS / "faia2021_cigre.yaml",
                          ["runtime.kind=inprocess", f"market.network_check={check}"])
        runs[check] = (run_scenario(s, tmp_path / check),
                       pd.read_parquet(tmp_path / check / "grid_trafo.parquet"))
    rating_kw = {0: 500.0, 1: 150.0, 2: 300.0}  # pandapower's CIGRE LV sn_mva

    def reverse(trafo):
        return trafo[-trafo["p_kw"] > trafo["trafo"].map(rating_kw) * 0.01 + 1e-6]

    plain, checked = runs["none"], runs["clearance"]
    assert len(reverse(plain[1])) > 10 and plain[0]["grid"]["max_reverse_flow_kw"] > 10.0
    assert reverse(checked[1]).empty
    assert checked[0]["grid"]["max_reverse_flow_kw"] <= 5.0 + 1e-6
    forward = checked[1][checked[1]["loading_pct"] > 100]
    assert set(forward["trafo"]) == {2} and set(forward["period"]) <= set(range(92, 96))
    assert checked[0]["grid"]["trafo_violations"] == len(forward)
    assert plain[0]["grid"]["trafo_violations"] == len(forward) + len(reverse(plain[1]))
    clearance = pd.read_parquet(tmp_path / "clearance" / "clearance.parquet")
    assert clearance["curtailed_mw"].sum() > 0
    assert clearance["binding"].str.contains("reverse limit of transformer").any()
    assert clearance.loc[clearance["period"] == 95, "binding"].str.startswith(
        "infeasible").all()
