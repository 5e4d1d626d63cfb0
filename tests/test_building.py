"""Building (HEMS) model on tiny hand-computed cases (docs/models.md#building, RECON)."""

import json

import numpy as np
import pyomo.environ as pyo
import pytest
from pyomo.contrib.solver.solvers.highs import Highs

from lemgrid.agents.data import (
    BatterySpec,
    BuildingData,
    FlexibleLoad,
    Horizon,
    Tariff,
    data_from_dict,
    data_to_dict,
    net_load_kw,
)
from lemgrid.agents.formulations import define_building
from lemgrid.agents.model import AgentModel
from lemgrid.agents.solver import AgentInfeasible

EXACT = {"abs": 1e-9}


def building(buy, load, *, sell=0.0, pv=None, wind=None, flexible=(), battery=None,
             cdl=10.0, cdl_factor=2.5, pil=None, period_h=1.0, fixed=0.0, buy_max=10.0,
             sell_max=5.0, name="h1") -> BuildingData:
    """A building with ``len(buy)`` periods; PV and wind default to zero, the CDL to a
    level no test reaches unless it sets one."""
    n = len(buy)
    zeros = np.zeros(n)
    return BuildingData(
        name, Horizon(n, period_h), Tariff(np.array(buy, float), sell, 0.0, fixed),
        np.array(load, float), zeros if pv is None else np.array(pv, float),
        zeros if wind is None else np.array(wind, float), tuple(flexible), battery,
        buy_max_kw=buy_max, sell_max_kw=sell_max, cdl_kw=np.full(n, float(cdl)),
        cdl_factor=cdl_factor, pil_kw=None if pil is None else np.full(n, float(pil)))


def solve_both(d: BuildingData):
    """Solve LP-first and as a plain MILP; both must reach the same objective."""
    first = AgentModel(d, mip_rel_gap=0.0).solve(lp_first=True)
    plain = AgentModel(d, mip_rel_gap=0.0).solve(lp_first=False)
    assert first.objective_eur == pytest.approx(plain.objective_eur, **EXACT)
    assert plain.method == "milp"
    return first


def lossless(capacity_kwh, power_kw=2.0) -> BatterySpec:
    """Empty at the start and allowed to end empty."""
    return BatterySpec(capacity_kwh, 0.0, power_kw, power_kw, 1.0, 1.0, 0.0, 0.0)


def test_flexible_load_runs_in_cheapest_periods_of_its_window():
    """4 periods of 1 h, retail 0.1, 0.4, 0.2, 0.3 €/kWh, load 1 kW, fixed 0.5 €. A 2 kW
    washer runs 2 periods in its window [1, 4): period 0 is cheapest but outside it, so
    it takes periods 2 and 3. Cost = 1·(0.1 + 0.4 + 0.2 + 0.3) + 2·(0.2 + 0.3) + 0.5
    = 1.0 + 1.0 + 0.5 = 2.5 €."""
    washer = FlexibleLoad("washer", 2.0, 2, 1, 4)
    s = solve_both(building([0.1, 0.4, 0.2, 0.3], [1, 1, 1, 1], flexible=[washer], fixed=0.5))
    assert s.objective_eur == pytest.approx(2.5, **EXACT)
    assert s.flows_kw["flex_kw"] == pytest.approx([0, 0, 2, 2], **EXACT)
    assert s.flows_kw["buy_kw"] == pytest.approx([1, 1, 3, 3], **EXACT)
    assert s.flows_kw["load_kw"] == pytest.approx([1, 1, 1, 1], **EXACT)
    assert s.method == "milp-integers"  # the washer's on/off decided, no exclusion broken


def test_energy_above_cdl_costs_two_and_a_half_times():
    """3 periods of 0.5 h, retail 0.2 €/kWh, load 1, 4, 1 kW, CDL 3 kW. A lossless
    0.25 kWh battery can shave only 0.5 kW off period 1 (charged in period 0 at 1.5 kW
    total import, under the CDL): import 3.5 kW, 0.5 kW above the CDL.
    Energy 0.5·(1 + 4 + 1)·0.2 = 0.6 €, plus (2.5 − 1)·0.2·0.5·0.5 = 0.075 € above the
    CDL: 0.675 €. Without the battery: 0.6 + 1.5·0.2·0.5·1 = 0.75 €."""
    with_battery = solve_both(building([0.2] * 3, [1, 4, 1], cdl=3.0, period_h=0.5,
                                       battery=lossless(0.25)))
    assert with_battery.objective_eur == pytest.approx(0.675, **EXACT)
    assert with_battery.flows_kw["buy_kw"] == pytest.approx([1.5, 3.5, 1], **EXACT)
    assert with_battery.flows_kw["above_cdl_kw"] == pytest.approx([0, 0.5, 0], **EXACT)
    without = solve_both(building([0.2] * 3, [1, 4, 1], cdl=3.0, period_h=0.5))
    assert without.objective_eur == pytest.approx(0.75, **EXACT)


def shift_case(cdl_factor=2.5) -> BuildingData:
    """3 periods of 1 h, retail 0.2, 0.3, 0.25 €/kWh, load 2, 0.5, 1 kW, CDL 2.5 kW; a
    2 kW dishwasher runs 1 period anywhere. Non-flexible energy costs
    2·0.2 + 0.5·0.3 + 1·0.25 = 0.8 €."""
    dishwasher = FlexibleLoad("dishwasher", 2.0, 1, 0, 3)
    return building([0.2, 0.3, 0.25], [2, 0.5, 1], cdl=2.5, flexible=[dishwasher],
                    cdl_factor=cdl_factor)


def test_shifting_a_flexible_load_avoids_the_cdl():
    """The dishwasher in period 0: 2·0.2 + 1.5 kWh above the CDL·1.5·0.2 = 0.85 €; in
    period 1: 2·0.3 = 0.6 € (import 2.5 kW, at the CDL); in period 2: 2·0.25 +
    0.5·1.5·0.25 = 0.6875 €. It runs in the dearest period: 0.8 + 0.6 = 1.4 €.
    With κ = 1 (no CDL penalty) it runs in period 0: 0.8 + 0.4 = 1.2 €."""
    s = solve_both(shift_case())
    assert s.objective_eur == pytest.approx(1.4, **EXACT)
    assert s.flows_kw["flex_kw"] == pytest.approx([0, 2, 0], **EXACT)
    assert s.flows_kw["above_cdl_kw"] == pytest.approx([0, 0, 0], **EXACT)
    no_penalty = solve_both(shift_case(cdl_factor=1.0))
    assert no_penalty.objective_eur == pytest.approx(1.2, **EXACT)
    assert no_penalty.flows_kw["flex_kw"] == pytest.approx([2, 0, 0], **EXACT)


def test_fractional_lp_relaxation_falls_back_to_milp():
    """The LP relaxation of ``shift_case`` splits the dishwasher: on = 0.25 in period 0
    (0.5 kW fills the headroom under the CDL, 0.5·0.2 = 0.1 €) and 0.75 in period 2
    (1.5 kW, 1.5·0.25 = 0.375 €): 0.8 + 0.475 = 1.275 €, below the MILP's 1.4 €. The
    solve must not stop at that relaxation: branch and bound over the on/off decides."""
    m = pyo.ConcreteModel()
    define_building(m, shift_case())
    m.obj = pyo.Objective(expr=m.cost_eur)
    pyo.TransformationFactory("core.relax_integer_vars").apply_to(m)
    Highs().solve(m)
    assert pyo.value(m.obj) == pytest.approx(1.275, **EXACT)
    s = AgentModel(shift_case(), mip_rel_gap=0.0).solve(lp_first=True)
    assert s.method == "milp-integers"
    assert s.objective_eur == pytest.approx(1.4, **EXACT)


def test_milp_values_match_objective_after_lp_start():
    """3 periods of 1 h, retail 0.4 €/kWh, feed-in 0.1, load 2, 0, 0 kW, PV 3, 2, 0 kW,
    CDL 2 kW; a 2 kW dishwasher runs 1 period. Surplus 1, 2, 0 kW. In period 0 it
    costs 0.4 (1 kWh bought) and export is 2 kWh: 0.4 − 0.2 = 0.2 €; in period 1 it
    absorbs the surplus, export 1 kWh: −0.1 €; in period 2: 0.8 − 0.3 = 0.5 €. Optimum
    −0.1 €. The LP splits the dishwasher (0.5 in periods 0 and 1, also −0.1 €); from
    that start HiGHS 1.16 returned the values of a 0 € plan with the −0.1 € objective,
    so the reported flows must price at the objective."""
    dishwasher = FlexibleLoad("dishwasher", 2.0, 1, 0, 3)
    d = building([0.4] * 3, [2, 0, 0], sell=0.1, pv=[3, 2, 0], cdl=2.0, flexible=[dishwasher],
                 sell_max=3.0)
    s = solve_both(d)
    assert s.method == "milp-integers"
    assert s.objective_eur == pytest.approx(-0.1, **EXACT)
    assert s.flows_kw["flex_kw"] == pytest.approx([0, 2, 0], **EXACT)
    assert s.flows_kw["sell_kw"] == pytest.approx([1, 0, 0], **EXACT)
    assert s.flows_kw["buy_kw"] == pytest.approx([0, 0, 0], **EXACT)


def pil_case(pil=None, battery=None) -> BuildingData:
    """3 periods of 1 h, retail 0.3 €/kWh, feed-in 0.1 €/kWh, load 1, 1, 2 kW, PV 0, 5, 0
    kW, export up to 4 kW: 4 kW surplus in period 1."""
    return building([0.3] * 3, [1, 1, 2], sell=0.1, pv=[0, 5, 0], sell_max=4.0, pil=pil,
                    battery=battery)


def test_pil_curtails_or_stores_surplus():
    """Without PIL all 4 kWh are exported: 0.3·(1 + 2) − 0.1·4 = 0.5 €. With PIL 2 kW,
    2 kWh are curtailed: 0.9 − 0.2 = 0.7 €. A lossless 1 kWh battery stores 1 kWh of
    the surplus for period 2 (worth 0.3 € there, not 0.1 € exported): with PIL 0.3 + 0.3
    − 0.2 = 0.4 €, 1 kWh curtailed; without PIL 0.3 + 0.3 − 0.3 = 0.3 €."""
    free = solve_both(pil_case())
    assert free.objective_eur == pytest.approx(0.5, **EXACT)
    assert free.flows_kw["sell_kw"] == pytest.approx([0, 4, 0], **EXACT)
    capped = solve_both(pil_case(pil=2.0))
    assert capped.objective_eur == pytest.approx(0.7, **EXACT)
    assert capped.flows_kw["sell_kw"] == pytest.approx([0, 2, 0], **EXACT)
    assert capped.flows_kw["pv_kw"] == pytest.approx([0, 3, 0], **EXACT)
    stored = solve_both(pil_case(pil=2.0, battery=lossless(1.0, power_kw=1.0)))
    assert stored.objective_eur == pytest.approx(0.4, **EXACT)
    assert stored.flows_kw["pv_kw"] == pytest.approx([0, 4, 0], **EXACT)
    assert stored.flows_kw["ch_kw"] == pytest.approx([0, 1, 0], **EXACT)
    both = solve_both(pil_case(battery=lossless(1.0, power_kw=1.0)))
    assert both.objective_eur == pytest.approx(0.3, **EXACT)


def test_battery_arbitrage_with_pv_and_wind():
    """4 periods of 0.5 h, retail 0.1, 0.15, 0.4, 0.2 €/kWh, feed-in 0.05, fixed 0.3 €;
    load 1.5 kW, PV 0, 0.5, 1, 0 kW, wind 0.5, 0.5, 0, 0.5 kW: net load 1, 0.5, 0.5, 1 kW.
    A lossless 0.4 kWh battery charges full in period 0 (0.8 kW, at 0.1), floats in
    period 1, covers period 2's 0.25 kWh (0.5 kW, at 0.4) and its last 0.15 kWh in
    period 3 (0.3 kW, at 0.2; better than 0.15 in period 1). Import 1.8, 0.5, 0, 0.7 kW:
    0.5·(1.8·0.1 + 0.5·0.15 + 0 + 0.7·0.2) + 0.3 = 0.1975 + 0.3 = 0.4975 €."""
    d = building([0.1, 0.15, 0.4, 0.2], [1.5] * 4, sell=0.05, pv=[0, 0.5, 1, 0],
                 wind=[0.5, 0.5, 0, 0.5], battery=lossless(0.4), period_h=0.5, fixed=0.3)
    s = solve_both(d)
    assert s.objective_eur == pytest.approx(0.4975, **EXACT)
    assert s.flows_kw["ch_kw"] == pytest.approx([0.8, 0, 0, 0], **EXACT)
    assert s.flows_kw["dis_kw"] == pytest.approx([0, 0, 0.5, 0.3], **EXACT)
    assert s.soc_kwh == pytest.approx([0.4, 0.4, 0.15, 0], **EXACT)
    assert s.flows_kw["buy_kw"] == pytest.approx([1.8, 0.5, 0, 0.7], **EXACT)
    assert s.flows_kw["pv_kw"] == pytest.approx([0, 0.5, 1, 0], **EXACT)
    assert s.flows_kw["wind_kw"] == pytest.approx([0.5, 0.5, 0, 0.5], **EXACT)
    assert net_load_kw(s.kind, s.flows_kw) == pytest.approx([1.8, 0.5, 0, 0.7], **EXACT)


def test_building_has_no_p2v_limit():
    with pytest.raises(TypeError, match="building h1: has no P2V limit"):
        AgentModel(building([0.1], [1])).set_p2v_limit(1.0)


@pytest.mark.parametrize("pil", [None, 2.0])
def test_building_data_round_trip(pil):
    battery = BatterySpec(5.0, 0.5, 2.0, 2.5, 0.95, 0.9, 1.0, 1.0)
    flexible = (FlexibleLoad("washer", 2.0, 2, 1, 4), FlexibleLoad("dryer", 1.5, 1, 0, 2))
    d = building([0.1, 0.2, 0.3, 0.2], [1, 2, 1, 0.5], sell=[0.05, 0.04, 0.05, 0.06],
                 pv=[0, 1, 2, 0], wind=[0.3, 0, 0.1, 0.2], flexible=flexible,
                 battery=battery, cdl=3.0, cdl_factor=2.0, pil=pil, period_h=0.25, fixed=0.7)
    raw = json.loads(json.dumps(data_to_dict(d)))
    assert raw["kind"] == "building"
    back = data_from_dict(raw)
    assert back.flexible == flexible and back.battery == battery
    assert (back.horizon, back.cdl_factor, back.buy_max_kw) == (d.horizon, 2.0, 10.0)
    assert (back.pil_kw is None) == (pil is None)
    for key in ("load_kw", "pv_kw", "wind_kw", "cdl_kw") + (("pil_kw",) if pil else ()):
        np.testing.assert_array_equal(getattr(back, key), getattr(d, key))
    np.testing.assert_array_equal(back.tariff.sell_eur_per_kwh, d.tariff.sell_eur_per_kwh)
    assert data_to_dict(back) == data_to_dict(d)


def test_infeasible_window_shorter_than_duration():
    washer = FlexibleLoad("washer", 2.0, 4, 10, 12)
    d = building([0.1] * 24, [1] * 24, flexible=[washer], name="h3")
    with pytest.raises(AgentInfeasible, match=r"^building h3: flexible load washer needs 4 "
                                              r"periods but its window 10-12 has 2$"):
        AgentModel(d).solve()


def test_infeasible_load_above_every_source():
    d = building([0.1, 0.1], [1, 9], pv=[0, 1], wind=[0, 0.5], period_h=0.5, buy_max=6.9,
                 name="h4")
    with pytest.raises(AgentInfeasible, match=r"^building h4: load 9\.0 kW at 00:30 exceeds "
                                              r"contracted 6\.9 kW \+ battery 0\.0 kW \+ PV "
                                              r"1\.0 kW \+ wind 0\.5 kW$"):
        AgentModel(d).solve()


def test_infeasible_flexible_load_without_headroom():
    """Load 1 kW, connection 2 kW: a 1.5 kW heater fits in no period of its window."""
    heater = FlexibleLoad("heater", 1.5, 1, 0, 2)
    d = building([0.1] * 3, [1] * 3, flexible=[heater], buy_max=2.0, name="h5")
    with pytest.raises(AgentInfeasible, match=r"^building h5: flexible load heater \(1\.5 kW\) "
                                              r"fits in 0 periods of its window 0-2, needs 1$"):
        AgentModel(d).solve()


def test_integer_decisions_alone_fall_back_to_the_whole_milp_when_an_exclusion_breaks():
    """1 period of 1 h, retail 0.1 €/kWh, feed-in 0.3 €/kWh (above retail), load 0, a 1 kW
    pump that must run (window [0, 1), 1 period), buy ≤ 5 kW, sell ≤ 2 kW. With the
    buy/sell binaries relaxed the plan buys and sells at once: buy = 1 + s,
    (1 + s)/5 + s/2 ≤ 1 gives s = 8/7 kW sold and 15/7 kW bought (x_b = 3/7, x_s = 4/7),
    0.1·15/7 − 0.3·8/7 = −0.129 €. That breaks the exclusion, so the whole MILP decides:
    buying only the pump's 1 kW costs 0.1 €, selling needs supply there is none of:
    optimum 0.1 €."""
    pump = FlexibleLoad("pump", 1.0, 1, 0, 1)
    d = building([0.1], [0.0], sell=0.3, flexible=[pump], buy_max=5.0, sell_max=2.0)
    s = solve_both(d)
    assert s.method == "milp"
    assert s.objective_eur == pytest.approx(0.1, **EXACT)
    assert s.flows_kw["buy_kw"] == pytest.approx([1.0], **EXACT)
    assert s.flows_kw["sell_kw"] == pytest.approx([0.0], **EXACT)
