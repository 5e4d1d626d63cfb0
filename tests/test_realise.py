"""Real time and billing on tiny hand-worked cases: the battery tracks the plan's net
power against forecast errors, renewables are curtailed only at the export limit, and a
retail bill charges κ × the price above the consumer demand limit."""

import numpy as np
import pytest

from lemgrid.agents.billing import day_bill, retail_eur
from lemgrid.agents.data import BatterySpec, BuildingData, Horizon, ProsumerData, Tariff
from lemgrid.agents.realise import realise_period
from lemgrid.coordinator.mechanisms.base import MarketData
from lemgrid.coordinator.mechanisms.gdrmc import CORE as GDRMC
from lemgrid.coordinator.protocol import (
    OfferBody,
    RegisterBody,
    SettlementBody,
    Signal,
    SignalBody,
    decode,
    encode,
)

H1 = Horizon(1, 1.0)
# 10 kWh, charge ≤ 2 kW, discharge ≤ 0.5 kW, one-way 0.9 / 0.9, holding 5 kWh.
BATTERY = BatterySpec(10.0, 0.0, 2.0, 0.5, 0.9, 0.9, 5.0, 0.0)


def prosumer(pv_kw=2.0, load_kw=1.0, sell_max_kw=3.0):
    return ProsumerData("p", H1, Tariff(np.array([0.2]), 0.05, 0.0), np.array([load_kw]),
                        np.array([pv_kw]), BATTERY, 6.0, sell_max_kw, 0.0)


def plan(**flows):
    base = {"buy_kw": 0.0, "sell_kw": 0.0, "p2v_kw": 0.0, "pv_kw": 2.0, "load_kw": 1.0,
            "ch_kw": 1.0, "dis_kw": 0.0}
    return {k: np.array([v]) for k, v in (base | flows).items()}


def test_battery_absorbs_the_forecast_error():
    """Planned: PV 2 = load 1 + charge 1, net 0. Actual: load 1.5, PV only 1.8. The
    battery charges 1 − (0.5 + 0.2) = 0.3 kW instead: net 1.5 + 0.3 − 1.8 = 0, and the
    battery gains 0.9 × 0.3 = 0.27 kWh."""
    f = realise_period(prosumer(), plan(), 0, 5.0, {"load_kw": 1.5, "pv_kw": 1.8}, 3.0)
    assert f["ch_kw"] == pytest.approx(0.3) and f["dis_kw"] == 0.0
    assert f["net_kw"] == pytest.approx(0.0, abs=1e-12)
    assert f["soc_kwh"] == pytest.approx(5.27)


def test_battery_limits_leave_a_deviation():
    """Planned: no battery use (PV 2 = load 1 + export 1, net −1). Actual load 2.5: the
    battery discharges at most 0.5 kW, so net = 2.5 − 0.5 − 2 = 0 instead of −1, and it
    loses 0.5 / 0.9 kWh."""
    f = realise_period(prosumer(), plan(ch_kw=0.0, sell_kw=1.0), 0, 5.0,
                       {"load_kw": 2.5, "pv_kw": 2.0}, 3.0)
    assert (f["ch_kw"], f["dis_kw"]) == (0.0, 0.5)
    assert f["net_kw"] == pytest.approx(0.0, abs=1e-12)
    assert f["soc_kwh"] == pytest.approx(5.0 - 0.5 / 0.9)


def test_surplus_beyond_the_export_limit_is_curtailed():
    """Planned: PV 2 = load 1 + charge 1. Actual PV 6: the battery takes its 2 kW limit,
    the rest (6 − 1 − 2 = 3 kW) exceeds the 1 kW export limit by 2 kW: PV is curtailed to
    4 kW and net is −1."""
    f = realise_period(prosumer(sell_max_kw=1.0), plan(), 0, 5.0,
                       {"load_kw": 1.0, "pv_kw": 6.0}, 1.0)
    assert f["ch_kw"] == pytest.approx(2.0) and f["pv_kw"] == pytest.approx(4.0)
    assert f["net_kw"] == pytest.approx(-1.0)


def test_export_cap_curtails_pv_then_the_battery_takes_the_rest():
    """A network operator's cap on curtailed sales, everything as forecast.
    1. Planned: PV 2 + discharge 0.5 = load 1 + export 1.5 (net −1.5). Cap 0.8 kW: PV is
       curtailed by 0.7 kW to 1.3, the discharge stands (net −0.8).
    2. Planned: PV 0.2 + discharge 0.5 = load 0.2 + export 0.5. Cap 0: all 0.2 kW of PV
       go, 0.3 kW are still fed in, so the battery discharges 0.3 kW less (0.2 kW, which
       meets the load): net 0, and it loses 0.2 / 0.9 kWh."""
    f = realise_period(prosumer(), plan(ch_kw=0.0, dis_kw=0.5, sell_kw=1.5), 0, 5.0,
                       {"load_kw": 1.0, "pv_kw": 2.0}, 0.8)
    assert f["pv_kw"] == pytest.approx(1.3) and f["dis_kw"] == pytest.approx(0.5)
    assert f["net_kw"] == pytest.approx(-0.8)
    f = realise_period(prosumer(pv_kw=0.2, load_kw=0.2),
                       plan(ch_kw=0.0, dis_kw=0.5, sell_kw=0.5, pv_kw=0.2, load_kw=0.2), 0, 5.0,
                       {"load_kw": 0.2, "pv_kw": 0.2}, 0.0)
    assert f["pv_kw"] == pytest.approx(0.0) and f["dis_kw"] == pytest.approx(0.2)
    assert f["net_kw"] == pytest.approx(0.0, abs=1e-12)
    assert f["soc_kwh"] == pytest.approx(5.0 - 0.2 / 0.9)


def building_day():
    """Two half-hour periods, buy 0.2 then 0.1 €/kWh, feed-in 0.05, CDL 1 kW, κ = 2.5."""
    return BuildingData("h", Horizon(2, 0.5), Tariff(np.array([0.2, 0.1]), 0.05, 0.0, 0.3),
                        np.zeros(2), np.zeros(2), np.zeros(2), (), None, 7.0, 7.0,
                        np.array([1.0, 1.0]), 2.5, None)


def test_retail_bill_with_a_consumer_demand_limit():
    """Import 2 kW for 0.5 h at 0.2, 1 kW above the CDL at 2.5 × 0.2: 0.5 (0.4 + 1.5 ×
    0.2 × 1) = 0.35 €; export 1 kW at 0.05: −0.025 €."""
    np.testing.assert_allclose(retail_eur(building_day(), np.array([2.0, -1.0])),
                               [0.35, -0.025], atol=1e-15)


def test_day_bill_adds_the_market_and_the_retail_rest():
    """Market position 1.5 kW in period 0 (traded 0.15 €), realised 2 kW: the 0.5 kW rest
    is retail (0.5 × 0.5 × 0.2 = 0.05 €); deviation 0.01, violation 0.02; fixed 0.3 €/day
    spread over the 2 periods. Period 1 is all retail export."""
    settlement = SettlementBody(position_kw=[1.5, 0.0], traded_eur=[0.15, 0.0],
                                deviation_eur=[0.01, 0.0], violation_eur=[0.02, 0.0])
    bill = day_bill(building_day(), np.array([2.0, -1.0]), settlement)
    np.testing.assert_allclose(bill["retail_eur"], [0.05, -0.025], atol=1e-15)
    np.testing.assert_allclose(bill["cost_eur"], [0.15 + 0.01 + 0.02 + 0.05 + 0.15,
                                                  -0.025 + 0.15], atol=1e-15)


def test_price_rounds_announce_damped_prices_until_quotes_settle():
    """Two rounds allowed. Round 1 (a: 2, b: −1, D = 2, G = 1, λb 0.2, λs 0.05): GDRMC
    prices 0.14 / 0.08 are announced as they are (nothing to damp yet); round 2 with the
    same quotes changes nothing (0 kW ≤ tolerance): done, converged, and clears at 0.14."""
    mech = GDRMC
    p = mech.params_type(price_rounds=2, tolerance_kw=0.01).with_data(
        MarketData((0.2,), (0.05,)))
    roster = {n: RegisterBody(kind="building", periods=1, period_h=1.0,
                              limits_kw={"export": [9.0]}) for n in "ab"}
    _, state = mech.init(roster, p, 0)
    offers = {"a": OfferBody(quantities_kw={"net": [2.0]}),
              "b": OfferBody(quantities_kw={"net": [-1.0]})}
    signals, state, done = mech.step(offers, state, p)
    assert not done and state.records[0].error_kw == pytest.approx(3.0)
    assert signals["a"].terms["import"].price_eur_per_kwh == pytest.approx([0.14])
    assert signals["a"].terms["export"].price_eur_per_kwh == pytest.approx([0.08])
    _, state, done = mech.step(offers, state, p)
    assert done and state.converged and state.records[1].error_kw == 0.0
    assert mech.clear(state, p)["a"].prices_eur_per_kwh["import"] == pytest.approx([0.14])


def test_protocol_carries_bilateral_and_iterative_terms():
    """The bodies later mechanisms need: per-counterparty prices and consensus targets,
    a penalty ρ, and quantities per commodity and counterparty (power, heat)."""
    sig = Signal(sender="coordinator", day=3, round=7, body=SignalBody(
        terms={"power": {"price_eur_per_kwh": [0.1], "target_kw": [-2.0]}},
        by_counterparty={"g12": {"power": {"price_eur_per_kwh": [0.09], "target_kw": [1.5]},
                                 "heat": {"limit_kw": [4.0]}}}, rho=100.0))
    assert decode(encode(sig)) == sig
    offer = OfferBody(quantities_kw={"power": [1.5], "heat": [0.5]},
                      by_counterparty_kw={"g12": {"power": [1.5]}, "g20": {"heat": [0.5]}})
    assert OfferBody.model_validate_json(offer.model_dump_json()) == offer


def test_a_co_simulators_report_is_the_realisation():
    """What a co-simulator reports of the period replaces the forecast: load 1.5 and PV
    1.8 reported (the case of test_battery_absorbs_the_forecast_error) give its charge
    0.3 kW and net 0; a report the agent cannot take is one ValueError naming it."""
    from lemgrid.agents.realise import observe

    d = prosumer()
    f = realise_period(d, plan(), 0, 5.0, {"load_kw": 1.0, "pv_kw": 2.0}
                       | observe(d, {"load_kw": 1.5, "pv_kw": 1.8}), 3.0)
    assert f["ch_kw"] == pytest.approx(0.3) and f["net_kw"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="load_kw from a co-simulator is -1.0"):
        observe(d, {"load_kw": -1.0})
    with pytest.raises(ValueError, match="p has no connection state"):
        observe(d, {"plugged": 1.0})
    no_pv = ProsumerData("q", H1, d.tariff, np.array([1.0]), None, None, 6.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="q has no pv_kw"):
        observe(no_pv, {"pv_kw": 1.0})


def test_an_ev_reported_unplugged_neither_charges_nor_feeds_in():
    """Planned: charge 3.7 kW from retail in the period. Reported not plugged in: no
    purchase, no charge, net 0, and the state of charge stays where it was (no trip)."""
    from lemgrid.agents.data import EVData
    from lemgrid.agents.realise import observe

    ev_bat = BatterySpec(40.0, 4.0, 7.0, 0.0, 0.95, 0.95, 20.0, 25.7)
    ev = EVData("e", H1, Tariff(np.array([0.2]), 0.05, 0.0), np.array([False]),
                np.zeros(1), ev_bat, 7.0, 0.0)
    planned = {"buy_kw": np.array([3.7]), "ch_kw": np.array([3.7]), "dis_kw": np.array([0.0])}
    plugged = realise_period(ev, planned, 0, 20.0, observe(ev, {"plugged": 1.0}), 0.0)
    assert plugged["net_kw"] == pytest.approx(3.7)
    assert plugged["soc_kwh"] == pytest.approx(20.0 + 0.95 * 3.7)
    away = realise_period(ev, planned, 0, 20.0, observe(ev, {"plugged": 0.0}), 0.0)
    assert away["net_kw"] == 0.0 and away["ch_kw"] == 0.0 and away["buy_kw"] == 0.0
    assert away["soc_kwh"] == pytest.approx(20.0)
    with pytest.raises(ValueError, match="e has no load_kw"):
        observe(ev, {"load_kw": 1.0})


def test_the_operator_realises_a_period_as_the_agent_simulator_asks():
    """The agent simulator realises every hosted agent with the period and what
    co-simulators reported of it; the network operator (no connection) meters 0 kW
    whatever is reported. Regression: it took the period only, so in a distributed run
    of a market with an operator (ADMM, bilateral, clearance) it never metered and the
    coordinator dropped it after the day's silence."""
    from lemgrid.agents.data import OperatorData
    from lemgrid.agents.operator import OperatorAgent

    agent = OperatorAgent(OperatorData(name="op", horizon=Horizon(2, 1.0), network="cigre_lv",
                                         buses={"s": 36}))
    agent.start_day(0)
    meter = agent.realise(1, {"load_kw": 3.0})
    assert (meter.sender, meter.body.period, meter.body.p_kw) == ("op", 1, [0.0])


def test_an_operator_the_market_never_asked_is_cleared_idle():
    """A clearance market whose quotes never meet has no trade for the network operator:
    it is cleared without a signal. It then holds an idle plan (no losses, nothing
    solved) and meters its 0 kW, instead of counting as failed ("no plan") and keeping
    the coordinator waiting for its meters (a 9-agent distributed day: 65.7 s, now 6 s)."""
    from lemgrid.agents.data import OperatorData
    from lemgrid.agents.operator import OperatorAgent
    from lemgrid.coordinator.protocol import Clearing, ClearingBody

    agent = OperatorAgent(OperatorData(name="op", horizon=Horizon(2, 1.0), network="cigre_lv",
                                       buses={"s": 36}))
    agent.start_day(0)
    clearing = Clearing(sender="coordinator", day=0, round=1,
                        body=ClearingBody(position_kw=[0.0, 0.0], converged=True))
    plan = agent.on_clearing(clearing)
    assert plan is not None and plan.objective_eur == 0.0
    assert plan.losses_kw.tolist() == [0.0, 0.0]
    assert [m.body.p_kw for m in agent.realise_day()] == [[0.0], [0.0]]
