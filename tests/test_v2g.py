"""EVs that discharge into the grid (V2G) on tiny hand-computed cases (Δt = 1 h, so kW and
kWh coincide): the EV charges when energy is cheap and sells when feed-in pays, never
charges and discharges (or buys and sells) in the same period, never discharges on a
trip, and its realised net power at the connection is an injection the grid sees."""

import numpy as np
import pyomo.environ as pyo
import pytest
import yaml
from pyomo.contrib.solver.solvers.highs import Highs

from lemgrid.agents.data import (
    BatterySpec,
    EVData,
    Horizon,
    Tariff,
    data_from_dict,
    data_to_dict,
    net_load_kw,
)
from lemgrid.agents.formulations import define_ev
from lemgrid.agents.market_agent import MarketAgent, export_cap_kw
from lemgrid.agents.model import AgentModel
from lemgrid.grid.simulator import GridSimulator
from lemgrid.scenarios.cli import main
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.run.inprocess import run_centralized, run_decentralized
from lemgrid.scenarios.schema import ScenarioError, load_scenario

from .conftest import SCENARIOS

EXACT = {"abs": 1e-9}
HOME = (False, False, False, False)
# The cheap/expensive day: retail 0.10 €/kWh in period 0, 0.40 after; feed-in 0.30 €/kWh
# in period 2, 0.02 otherwise.
BUY = (0.10, 0.40, 0.40, 0.40)
SELL = (0.02, 0.02, 0.30, 0.02)


def v2g_ev(buy=BUY, sell=SELL, away=HOME, trip_kwh=0.0, sell_max_kw=2.5, charge_max_kw=3.0,
           e0=5.0, e_end=5.0, p2v_eur_per_kwh=0.08, p2v_max_kw=0.0) -> EVData:
    """Battery 10 kWh, floor 1 kWh, charge ≤ ``charge_max_kw``, discharge ≤ 2 kW, one-way
    η 0.9 / 0.9, starting with ``e0`` and ending with at least ``e_end``; buy ≤ 5 kW,
    export ≤ ``sell_max_kw``; fixed cost 0.5 €/day."""
    n = len(buy)
    tariff = Tariff(np.array(buy, float), np.array(sell, float), p2v_eur_per_kwh, 0.5)
    battery = BatterySpec(10.0, 1.0, charge_max_kw, 2.0, 0.9, 0.9, e0, e_end)
    away = np.array(away, bool)
    return EVData("v2g1", Horizon(n, 1.0), tariff, away, np.where(away, trip_kwh, 0.0),
                  battery, buy_max_kw=5.0, p2v_max_kw=p2v_max_kw, sell_max_kw=sell_max_kw)


def solve(d: EVData):
    return AgentModel(d, mip_rel_gap=0.0).solve()


def assert_one_mode(s):
    """Never charges and discharges, nor buys and sells, in the same period."""
    f = s.flows_kw
    assert np.all(np.minimum(f["ch_kw"], f["dis_kw"]) <= 1e-9)
    assert np.all(np.minimum(f["buy_kw"] + f["p2v_kw"], f["sell_kw"]) <= 1e-9)


@pytest.mark.parametrize("sell_max_kw, sold", [(2.5, 2.0), (1.5, 1.5)],
                         ids=["discharge-limited", "export-limited"])
def test_charges_cheap_and_sells_dear(sell_max_kw, sold):
    """Selling 1 kWh in period 2 draws 1/0.9 kWh from the battery, which took 1/0.81 kWh
    from the grid: bought in period 0 it costs 0.10/0.81 = 0.1235 € and earns 0.30 €, so the
    EV sells as much as it can in period 2: min(discharge 2 kW, export limit) = ``sold``.
    Any later purchase (0.40/0.81) or other sale (0.02 €) loses. The battery must end
    where it started (5 kWh), so period 0 buys sold/0.81 kW.
    Cost = 0.5 + 0.10·sold/0.81 − 0.30·sold; SoC 5 + sold/0.9, same, 5, 5."""
    s = solve(v2g_ev(sell_max_kw=sell_max_kw))
    bought = sold / 0.81
    assert s.objective_eur == pytest.approx(0.5 + 0.10 * bought - 0.30 * sold, **EXACT)
    assert s.flows_kw["buy_kw"] == pytest.approx([bought, 0, 0, 0], **EXACT)
    assert s.flows_kw["ch_kw"] == pytest.approx([bought, 0, 0, 0], **EXACT)
    assert s.flows_kw["dis_kw"] == pytest.approx([0, 0, sold, 0], **EXACT)
    assert s.flows_kw["sell_kw"] == pytest.approx([0, 0, sold, 0], **EXACT)
    assert s.soc_kwh == pytest.approx([5 + sold / 0.9, 5 + sold / 0.9, 5, 5], **EXACT)
    assert net_load_kw("ev", s.flows_kw) == pytest.approx([bought, 0, -sold, 0], **EXACT)
    assert_one_mode(s)


def test_the_discharge_limit_case_by_numbers():
    """The discharge-limited case written out: buy 2/0.81 = 200/81 kW in period 0 for
    20/81 €, sell 2 kWh for 0.60 €: cost 0.5 + 20/81 − 0.6 = 0.5 − 28.6/81 €."""
    assert solve(v2g_ev()).objective_eur == pytest.approx(0.5 - 28.6 / 81, **EXACT)


def relaxed_objective(d: EVData) -> tuple[float, pyo.ConcreteModel]:
    """The LP relaxation's optimum (binaries in [0, 1]) and its solved model."""
    m = pyo.ConcreteModel()
    define_ev(m, d)
    m.obj = pyo.Objective(expr=m.cost_eur)
    pyo.TransformationFactory("core.relax_integer_vars").apply_to(m)
    Highs().solve(m)
    return pyo.value(m.obj), m


def test_negative_price_never_charges_and_discharges_at_once():
    """One period, retail −0.20 €/kWh (paid to consume), feed-in −1 €/kWh (exporting costs,
    so buying to resell never pays), battery at 9 of 10 kWh, may end anywhere ≥ 1 kWh.

    MILP: charging alone fills the last 1 kWh with 1/0.9 kW: cost 0.5 − 0.2/0.9 €.
    LP relaxation: charging ch and discharging dis at once (x_ch = x, x_dis = 1 − x) buys
    ch − dis but stores only 0.9 ch − dis/0.9 ≤ 1; with ch = 3x, dis = 2(1 − x) at the
    full battery, 2.43x − 0.9 = 2 − 2x: x = 2.9/4.43, dis = 306/443, buy = 3 − 2.5·dis =
    564/443 kWh (> 10/9): cost 0.5 − 0.2·564/443 €. So the LP-first check must fall back
    to branch and bound, and the plan keeps charge and discharge apart."""
    d = v2g_ev(buy=(-0.2,), sell=(-1.0,), away=(False,), e0=9.0, e_end=1.0)
    lp, m = relaxed_objective(d)
    assert lp == pytest.approx(0.5 - 0.2 * 564 / 443, abs=1e-7)
    assert pyo.value(m.battery.ch_kw[0]) > 0.1 and pyo.value(m.battery.dis_kw[0]) > 0.1
    s = solve(d)
    assert s.method == "milp"
    assert s.objective_eur == pytest.approx(0.5 - 0.2 / 0.9, **EXACT)
    assert s.flows_kw["ch_kw"] == pytest.approx([1 / 0.9], **EXACT)
    assert s.flows_kw["dis_kw"] == pytest.approx([0], **EXACT)
    assert s.soc_kwh == pytest.approx([10], **EXACT)
    assert_one_mode(s)


def test_never_buys_p2v_to_resell():
    """One period, P2V 0.01 €/kWh below feed-in 0.05 €/kWh, P2V limit 3 kW, export ≤ 2.5 kW,
    battery must end where it starts (5 kWh) and retail costs 0.40. The LP relaxation buys
    P2V and resells it at once: p2v = sell ≤ 3x = 2.5(1 − x) → x = 5/11, 15/11 kWh at
    0.04 € profit: cost 0.5 − 0.6/11 €. The MILP forbids P2V purchase with a sale (and
    the battery cannot gain from either): cost 0.5 €."""
    d = v2g_ev(buy=(0.4,), sell=(0.05,), away=(False,), p2v_eur_per_kwh=0.01,
               p2v_max_kw=3.0)
    lp, _ = relaxed_objective(d)
    assert lp == pytest.approx(0.5 - 0.6 / 11, abs=1e-7)
    m = AgentModel(d, mip_rel_gap=0.0)
    m.set_p2v_limit(3.0)
    s = m.solve()
    assert s.method == "milp" and s.objective_eur == pytest.approx(0.5, **EXACT)
    assert_one_mode(s)


def test_a_peer_purchase_is_supply_beside_retail():
    """A caller trading peer to peer declares ``p2p_in_kw``: 1 kW bought from a peer in a
    one-period day, feed-in 0.30 €/kWh, retail 0.40, the battery to end where it starts.
    Storing the 1 kW would be worth nothing, so it goes out: sell = 1 kW, cost (retail bill
    only) 0.5 − 0.30 = 0.2 €."""
    m = pyo.ConcreteModel()
    m.p2p_in_kw = pyo.Param(range(1), initialize=1.0)
    define_ev(m, v2g_ev(buy=(0.4,), sell=(0.3,), away=(False,)))
    m.obj = pyo.Objective(expr=m.cost_eur)
    Highs().solve(m)
    assert pyo.value(m.obj) == pytest.approx(0.2, abs=1e-7)
    assert pyo.value(m.grid.sell_kw[0]) == pytest.approx(1.0, abs=1e-7)
    assert pyo.value(m.grid.buy_kw[0]) == pytest.approx(0.0, abs=1e-7)


AWAY_2 = (False, False, True, False)


def test_no_discharge_on_a_trip():
    """On the road in period 2 (trip 2 kWh) when feed-in pays 0.90 €/kWh; at home again in
    period 3 at 0.30 €/kWh. Charge ≤ 5 kW. It cannot sell on the road, so it sells its
    2 kW limit in period 3 (worth it: 0.30 > 0.10/0.81). Period 0 buys the trip's 2 kWh
    and the sale's 2/0.9 kWh at η 0.9: (2 + 20/9)/0.9 = 380/81 kW for 38/81 €.
    Cost = 0.5 + 38/81 − 0.6 €; SoC 5 + 38/9, same, −2, −20/9 → 5."""
    d = v2g_ev(sell=(0.0, 0.0, 0.9, 0.3), away=AWAY_2, trip_kwh=2.0, charge_max_kw=5.0)
    s = solve(d)
    assert s.objective_eur == pytest.approx(0.5 + 38 / 81 - 0.6, **EXACT)
    assert s.flows_kw["dis_kw"] == pytest.approx([0, 0, 0, 2], **EXACT)
    assert s.flows_kw["sell_kw"] == pytest.approx([0, 0, 0, 2], **EXACT)
    assert s.flows_kw["buy_kw"] == pytest.approx([380 / 81, 0, 0, 0], **EXACT)
    assert s.soc_kwh == pytest.approx([5 + 38 / 9, 5 + 38 / 9, 3 + 38 / 9, 5], **EXACT)
    assert export_cap_kw(d) == pytest.approx([2.5, 2.5, 0, 2.5], **EXACT)
    assert_one_mode(s)


def without_v2g(**kw) -> EVData:
    """``test_agents.ev``'s EV: 4 periods, retail 0.1, 0.3, 0.3, 0.2 €/kWh, P2V 0.08 €/kWh,
    fixed 0.5 €, battery 10 kWh (floor 1, charger 3 kW, η 0.9), 2 kWh at start and end,
    a 4 kWh trip in period 2."""
    tariff = Tariff(np.array([0.1, 0.3, 0.3, 0.2]), 0.0, 0.08, 0.5)
    battery = BatterySpec(10.0, 1.0, 3.0, 0.0, 0.9, 1.0, 2.0, 2.0)
    away = np.array(AWAY_2)
    return EVData("ev07", Horizon(4, 1.0), tariff, away, np.where(away, 4.0, 0.0), battery,
                  buy_max_kw=5.0, p2v_max_kw=3.0, **kw)


@pytest.mark.parametrize("kw", [{}, {"sell_max_kw": 0.0}], ids=["default", "explicit-0"])
def test_without_v2g_the_model_is_as_before(kw):
    """No V2G: the variables are the charging EV's only (no discharge, feed-in or
    binaries; the LP is the model) and test_agents' hand-computed plan comes out:
    0.5 + 181/450 €."""
    m = AgentModel(without_v2g(**kw), mip_rel_gap=0.0, keep_pyomo=True)
    names = sorted(v.parent_component().name for v in m.m.component_data_objects(pyo.Var))
    assert sorted(set(names)) == ["battery.ch_kw", "battery.soc_kwh", "grid.buy_kw",
                                  "grid.p2v_kw"]
    m.set_p2v_limit(np.array([0.0, 1.0, 0.0, 2.0]))
    s = m.solve()
    assert s.method == "lp" and set(s.flows_kw) == {"buy_kw", "p2v_kw", "ch_kw"}
    assert s.objective_eur == pytest.approx(0.5 + 181 / 450, **EXACT)
    assert s.flows_kw["buy_kw"] == pytest.approx([2.1 / 0.9, 0, 0, 0], **EXACT)
    assert net_load_kw("ev", s.flows_kw) == pytest.approx([2.1 / 0.9, 1, 0, 1 / 0.9],
                                                          **EXACT)
    assert export_cap_kw(without_v2g(**kw)) == pytest.approx([0, 0, 0, 0], **EXACT)


def test_data_round_trip_keeps_the_export_limit():
    d = v2g_ev()
    back = data_from_dict(data_to_dict(d))
    assert back.sell_max_kw == 2.5 and back.battery == d.battery
    old = data_to_dict(without_v2g())
    old.pop("sell_max_kw")  # data serialized before V2G existed
    assert data_from_dict(old).sell_max_kw == 0.0


def test_realised_day_exports_and_tracks_the_battery():
    """The discharge-limited plan realised: net at the connection 200/81, 0, −2, 0 kW (the
    sale is an injection); SoC 5 + 0.9·200/81 = 5 + 20/9, same, 5 + 20/9 − 2/0.9 = 5, 5.
    Billed at retail: 0.10·200/81 − 0.30·2 + 0.5 € = the plan's cost."""
    agent = MarketAgent(v2g_ev())
    agent.start_day(0)
    meters = agent.realise_day()
    assert [p for m in meters for p in m.body.p_kw] == pytest.approx([200 / 81, 0, -2, 0], **EXACT)
    assert agent.realised["soc_kwh"] == pytest.approx([5 + 20 / 9, 5 + 20 / 9, 5, 5],
                                                      **EXACT)
    assert agent.soc_kwh == pytest.approx(5, **EXACT)
    settled = agent.on_settlement(None)
    assert float(settled.cost_eur.sum()) == pytest.approx(0.5 + 20 / 81 - 0.6, **EXACT)
    assert settled.flows_kw["sell_kw"] == pytest.approx([0, 0, 2, 0], **EXACT)


def test_injection_reaches_the_power_flow():
    """A 3 kW house and the V2G EV on bus 17 of the unloaded case33bw feeder, through the
    grid simulator's mosaik step: while the EV sells (−2 kW) the bus draws 3 − 2 = 1 kW, and
    the slack supplies 1 kW plus losses; while it charges (200/81 kW) the bus draws
    3 + 200/81 kW."""
    agent = MarketAgent(v2g_ev())
    agent.start_day(0)
    net = [p for m in agent.realise_day() for p in m.body.p_kw]
    sim = GridSimulator()
    sim.init("Grid-0")
    sim.create(1, "Grid", network="case33bw", bus_of={"house": 17, "v2g1": 17})
    for period, (t, expected_kw) in enumerate([(2, 1.0), (0, 3 + 200 / 81)]):
        inputs = {"grid": {"p_kw": {"Agents-0.house": 3.0, "Agents-0.v2g1": net[t]}}}
        sim.step(period * sim.period_ticks, inputs, None)
        result = sim.results[-1]
        assert result.converged
        assert result.bus_p_mw[17] * 1000 == pytest.approx(expected_kw, abs=1e-9)
        assert result.p_slack_kw == pytest.approx(expected_kw + result.losses_kw, abs=1e-6)


def scenario_file(tmp_path, ev_template=None, agents=None, tariffs=None):
    """tiny.yaml with its EV template updated by ``ev_template``, explicit ``agents`` and
    ``tariffs`` updated."""
    raw = yaml.safe_load((SCENARIOS / "tiny.yaml").read_text())
    raw["templates"][1].update(ev_template or {})
    raw["tariffs"].update(tariffs or {})
    if agents:
        raw["agents"] = agents
    path = tmp_path / "v2g.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def evs(path, overrides=()):
    """tiny.yaml's EVs by model: a Tesla Model 3 SR+ (50 kWh, 11 kW AC) and a Nissan Leaf
    40 (40 kWh, 6.6 kW AC), both on a 6.90 kVA contract."""
    community = build_community(load_scenario(path, list(overrides)))
    return {d.battery.capacity_kwh: d for d in community if isinstance(d, EVData)}


def test_builder_gives_discharge_limits(tmp_path):
    """discharge: true without a limit discharges at the charge limit, min(AC kW, 6.90 kVA):
    Tesla 6.9, Leaf 6.6 kW, through a bidirectional charger losing 10 % each way
    (η_d = η_c = 0.9); a limit of 10 kW: the battery 10 kW, the export min(10, 6.9) kW."""
    plain = evs(scenario_file(tmp_path))
    for d in plain.values():
        assert (d.battery.discharge_max_kw, d.battery.eta_discharge, d.sell_max_kw) == (
            0.0, 1.0, 0.0)
    off = evs(scenario_file(tmp_path, {"discharge": False}))
    assert {k: data_to_dict(d) for k, d in off.items()} == {
        k: data_to_dict(d) for k, d in plain.items()}
    on = evs(scenario_file(tmp_path, {"discharge": True}))
    assert (on[50.0].battery.discharge_max_kw, on[50.0].sell_max_kw) == (6.9, 6.9)
    assert (on[40.0].battery.discharge_max_kw, on[40.0].sell_max_kw) == (6.6, 6.6)
    assert on[50.0].battery.eta_discharge == 0.9 and on[50.0].battery.charge_max_kw == 6.9
    big = evs(scenario_file(tmp_path, {"discharge": True, "discharge_max_kw": 10}))
    assert (big[40.0].battery.discharge_max_kw, big[40.0].sell_max_kw) == (10.0, 6.9)
    small = evs(scenario_file(tmp_path), ["templates.1.discharge=true",
                                          "templates.1.discharge_max_kw=3"])
    assert {d.sell_max_kw for d in small.values()} == {3.0}


def test_explicit_ev_discharges(tmp_path):
    """An explicit Leaf (6.6 kW) on a 10.35 kVA contract with a 4 kW discharge limit."""
    leaf = {"kind": "ev", "name": "evx", "model": "nissan_leaf_40", "away": [False] * 96,
            "trip_kwh": [0.0] * 96, "contracted_kva": "10.35", "discharge": True,
            "discharge_max_kw": 4}
    d = build_community(load_scenario(scenario_file(tmp_path, agents=[leaf])))[-1]
    assert d.name == "evx"
    assert (d.battery.charge_max_kw, d.battery.discharge_max_kw, d.sell_max_kw) == (
        6.6, 4.0, 4.0)


@pytest.mark.parametrize("template, fragment", [
    ({"discharge_max_kw": -1},
     "templates.1.discharge_max_kw: Input should be greater than or equal to 0 (got -1)"),
    ({"discharge": "maybe"}, ("templates.1.discharge: Input should be a valid boolean, unable "
                              "to interpret input (got 'maybe')")),
    ({"discharge_max_kw": 3}, ("templates.1: discharge_max_kw: 3 is given but discharge is "
                               "false; allowed: discharge_max_kw only with discharge: true")),
])
def test_bad_discharge_is_one_line(template, fragment, tmp_path, capsys):
    path = scenario_file(tmp_path, template)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.lines == [f"{path}: {fragment}"]
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert err == f"{path}: {fragment}\n"


def test_a_v2g_day_runs_and_settles_as_planned(tmp_path):
    """tiny.yaml without P2V, on dynamic prices with feed-in at 0.95 × the retail price:
    evening prices above the night's ÷ 0.81 make V2G pay, so the EVs sell and their
    realised net goes negative. The agents do not interact, so the decentralized run costs
    what the centralized model plans, and with no forecast error each EV's settled bill is
    its plan's cost."""
    dynamic = {"dynamic": {"sell_ratio": 0.95, "sell_ratio_spread": 0.0}}
    path = scenario_file(tmp_path, {"discharge": True}, tariffs=dynamic)
    s = load_scenario(path, ["market.p2v=false"])
    community = build_community(s)
    dec, cen = run_decentralized(s, community)[0], run_centralized(s, community)[0]
    for d in community:
        if not isinstance(d, EVData):
            continue
        settled = dec.schedules[d.name]
        assert settled.flows_kw["net_kw"].min() < -1.0
        assert float(settled.cost_eur.sum()) == pytest.approx(settled.objective_eur, abs=1e-6)
        assert np.all(np.minimum(settled.flows_kw["ch_kw"], settled.flows_kw["dis_kw"])
                      <= 1e-9)
    total = sum(float(x.cost_eur.sum()) for x in dec.schedules.values())
    assert total == pytest.approx(sum(float(x.cost_eur.sum()) for x in cen.schedules.values()),
                                  rel=1e-6)
