"""Producing buildings (docs/models.md#producing-buildings-generator-chp-unit-and-heat): a
generator, a CHP unit and heat demand, on tiny hand-computed cases. Quadratic costs are tangent epigraphs in the MILP
(``agents.equipment.add_epigraph``): exact at the tangent points, at most a·Δ²/8 low."""

import json
import textwrap

import numpy as np
import pyomo.environ as pyo
import pytest

from lemgrid.agents.data import (
    BuildingData,
    ChpSpec,
    GeneratorSpec,
    Horizon,
    Tariff,
    data_from_dict,
    data_to_dict,
    polygon_halfplanes,
    polygon_problem,
)
from lemgrid.agents.days import day_slice
from lemgrid.agents.diagnose import explain_infeasible
from lemgrid.agents.equipment import EPIGRAPH_SEGMENTS, quadratic_terms
from lemgrid.agents.formulations import REPORTED, define_building, flow_components
from lemgrid.agents.model import AgentModel
from lemgrid.agents.solver import (
    OPTIMAL,
    AgentInfeasible,
    PersistentMILP,
    schedule_from_values,
)
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.schema import ScenarioError, load_scenario

EXACT = {"abs": 1e-9}
SQUARE = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))
# A(2, 0), B(10, 0), C(8, 6), D(2, 6): the right edge B–C is 6p + 2h ≤ 60
CHP_POLYGON = ((2.0, 0.0), (10.0, 0.0), (8.0, 6.0), (2.0, 6.0))


def producer(buy, load, *, sell=0.0, sell_max=0.0, buy_max=100.0, generator=None, chp=None,
             heat=None, period_h=1.0, name="G12") -> BuildingData:
    """A building with ``len(buy)`` periods, no PV, wind, battery or flexible load, and a
    demand limit it never reaches."""
    n = len(buy)
    return BuildingData(
        name, Horizon(n, period_h), Tariff(np.array(buy, float), sell, 0.0),
        np.array(load, float), np.zeros(n), np.zeros(n), (), None, buy_max_kw=buy_max,
        sell_max_kw=sell_max, cdl_kw=np.full(n, buy_max), generator=generator, chp=chp,
        heat_demand_kw=None if heat is None else np.array(heat, float))


# -- the polygon ---------------------------------------------------------------------------


def test_halfplanes_of_a_triangle_by_hand():
    """Triangle (0, 0), (10, 0), (0, 10), counter-clockwise. Edge (Δp, Δh) from (p_k, h_k)
    gives Δh·p − Δp·h ≤ Δh·p_k − Δp·h_k: (10, 0) → −10h ≤ 0 (h ≥ 0); (−10, 10) →
    10p + 10h ≤ 100; (0, −10) → −10p ≤ 0 (p ≥ 0). Clockwise order gives the same set."""
    expect = [(0.0, -10.0, 0.0), (10.0, 10.0, 100.0), (-10.0, 0.0, 0.0)]
    assert polygon_halfplanes([(0, 0), (10, 0), (0, 10)]) == expect
    assert sorted(polygon_halfplanes([(0, 0), (0, 10), (10, 0)])) == sorted(expect)


@pytest.mark.parametrize("vertices, problem", [
    ([(0, 0), (10, 0)], "is not closed: it has 2 vertices; allowed: at least 3"),
    ([*SQUARE, (0, 0)], "is not closed: vertex 5 repeats vertex 1 (0, 0)"),
    ([(0, 0), (10, 0), (10, 0), (0, 10)], "is not closed: vertex 3 repeats vertex 2"),
    ([(0, 0), (5, 0), (10, 0)], "is not closed: its vertices lie on one line (zero area)"),
    ([(0, 0), (10, 10), (10, 0), (0, 10)], "it crosses itself (edges 1–2 and 3–4)"),
    ([(0, 0), (10, 0), (5, 2), (10, 10), (0, 10)],
     "is not convex: it turns the other way at vertex 3 (5, 2)"),
    ([(0, 10), (6, -8), (-10, 3), (10, 3), (-6, -8)], "is not convex: it crosses itself"),
])
def test_polygons_that_are_refused(vertices, problem):
    """Too few vertices, a repeated vertex (also the first one repeated at the end), zero
    area, a bow tie, a reflex vertex and a pentagram (every turn the same way, but it
    winds twice) are refused, with what is wrong."""
    assert problem in polygon_problem(vertices)
    with pytest.raises(ValueError, match="^CHP polygon is not"):
        ChpSpec(tuple(vertices))


def test_both_orientations_are_accepted():
    assert polygon_problem(SQUARE) is None and polygon_problem(SQUARE[::-1]) is None
    assert ChpSpec(SQUARE[::-1]).power_range_kw() == (0.0, 10.0)


@pytest.mark.parametrize("kwargs, field", [
    ({"p_min_kw": 5.0, "p_max_kw": 2.0}, "p_min_kw"),
    ({"p_min_kw": -1.0, "p_max_kw": 2.0}, "p_min_kw"),
    ({"p_min_kw": 0.0, "p_max_kw": 2.0, "a_eur_per_kw2h": -0.1}, "a_eur_per_kw2h"),
])
def test_generator_spec_is_validated(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: "):
        GeneratorSpec(**kwargs)


# -- generator -----------------------------------------------------------------------------


def test_generator_covers_the_load_when_its_marginal_cost_stays_below_retail():
    """One period of 1 h, load 10 kW, retail 0.30 €/kWh, no sale (sell_max 0). The
    generator's marginal cost a·g + b = 0.02·g + 0.05 reaches 0.30 only at g = 12.5 > 10,
    so it covers the whole load: g = 10, cost ½·0.02·10² + 0.05·10 = 1.0 + 0.5 = 1.5 €.
    With p ∈ [0, 24] and K = 24 the tangents touch at every whole kW (Δ = 1), 10 among
    them: the epigraph is exact there."""
    assert EPIGRAPH_SEGMENTS == 24
    gen = GeneratorSpec(0.0, 24.0, a_eur_per_kw2h=0.02, b_eur_per_kwh=0.05)
    plan = AgentModel(producer([0.30], [10.0], generator=gen)).solve()
    assert plan.flows_kw["gen_kw"][0] == pytest.approx(10.0, **EXACT)
    assert plan.flows_kw["buy_kw"][0] == pytest.approx(0.0, **EXACT)
    assert plan.objective_eur == pytest.approx(1.5, **EXACT)


def test_generator_sells_until_marginal_cost_meets_the_feed_in_price():
    """One period of 1 h, no load, feed-in 0.2 €/kWh with room to sell. Exactly:
    0.02·g + 0.05 = 0.2 → g = 7.5, cost −0.2·7.5 + ½·0.02·7.5² + 0.05·7.5 = −1.5 + 0.5625
    + 0.375 = −0.5625 €. With tangents at whole kW the epigraph's slope is 0.02·7 + 0.05
    = 0.19 < 0.2 up to the kink at 7.5 and 0.21 beyond, so g = 7.5 still, where the
    tangents at 7 and 8 meet at 0.02·7·7.5 − 0.01·49 = 0.56, a·Δ²/8 = 0.0025 below
    0.5625: cost −0.565 €."""
    gen = GeneratorSpec(0.0, 24.0, a_eur_per_kw2h=0.02, b_eur_per_kwh=0.05)
    plan = AgentModel(producer([0.30], [0.0], sell=0.2, sell_max=100.0, generator=gen)).solve()
    assert plan.flows_kw["gen_kw"][0] == pytest.approx(7.5, **EXACT)
    assert plan.flows_kw["sell_kw"][0] == pytest.approx(7.5, **EXACT)
    assert plan.objective_eur == pytest.approx(-0.565, **EXACT)
    assert 0 <= -0.5625 - plan.objective_eur <= 0.02 * 1.0 ** 2 / 8 + 1e-12


def test_linear_generator_has_no_epigraph_and_pays_its_hourly_cost():
    """Two periods of 0.5 h, load 4 kW, retail 0.30, a linear generator b = 0.1 €/kWh,
    c = 2 €/h, p ∈ [1, 6]: it runs at the load, g = 4, cost Σ 0.5·(0.1·4 + 2) = 2.4 €;
    a = 0 leaves no quadratic term."""
    gen = GeneratorSpec(1.0, 6.0, b_eur_per_kwh=0.1, c_eur_per_h=2.0)
    model = AgentModel(producer([0.30, 0.30], [4.0, 4.0], generator=gen, period_h=0.5),
                       keep_pyomo=True)
    plan = model.solve()
    np.testing.assert_allclose(plan.flows_kw["gen_kw"], [4.0, 4.0], atol=1e-9)
    assert plan.objective_eur == pytest.approx(2.4, **EXACT)
    assert quadratic_terms(model.m) == []


def test_quadratic_terms_list_every_epigraph():
    """A generator (a = 0.02) and a CHP unit (a_p = 0.01, a_h = 0.03) give three terms;
    each epigraph has K + 1 tangents per period."""
    gen = GeneratorSpec(0.0, 24.0, a_eur_per_kw2h=0.02)
    chp = ChpSpec(CHP_POLYGON, a_p=0.01, a_h=0.03)
    m = pyo.ConcreteModel()
    define_building(m, producer([0.3, 0.3], [1.0, 1.0], generator=gen, chp=chp, heat=[3, 3]))
    terms = quadratic_terms(m)
    assert [(x.name, z.name, a) for x, z, a in terms] == [
        ("generator.p_kw", "generator.quad_eur_per_h", 0.02),
        ("chp.p_kw", "chp.quad_p_eur_per_h", 0.01),
        ("chp.h_kw", "chp.quad_h_eur_per_h", 0.03)]
    assert len(m.generator.quad_eur_per_h_tangent) == 2 * (EPIGRAPH_SEGMENTS + 1)


# -- CHP and heat --------------------------------------------------------------------------


def test_chp_sells_power_on_the_right_edge_of_its_polygon():
    """Two periods of 1 h, no load, feed-in 0.2 €/kWh, CHP polygon A(2, 0) B(10, 0)
    C(8, 6) D(2, 6), b_p = 0.05 €/kWh, b_h = 0.01 €/kWh, c = 0.1 €/h, heat demand 3 then
    0 kW_th (no heat market). Power earns 0.2 − 0.05 > 0, so p is as large as the heat
    allows: on edge B–C (6p + 2h ≤ 60) p = 9 at h = 3; at vertex B p = 10 at h = 0.
    Cost = (0.05·9 + 0.01·3 + 0.1 − 0.2·9) + (0.05·10 + 0.1 − 0.2·10) = −1.22 − 1.4
    = −2.62 €."""
    chp = ChpSpec(CHP_POLYGON, b_p=0.05, b_h=0.01, c=0.1)
    plan = AgentModel(producer([0.3, 0.3], [0.0, 0.0], sell=0.2, sell_max=50.0, chp=chp,
                               heat=[3.0, 0.0])).solve()
    np.testing.assert_allclose(plan.flows_kw["chp_kw"], [9.0, 10.0], atol=1e-9)
    np.testing.assert_allclose(plan.flows_kw["chp_heat_kw"], [3.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(plan.flows_kw["heat_in_kw"], [0.0, 0.0], atol=1e-9)
    assert plan.objective_eur == pytest.approx(-2.62, **EXACT)


def test_heat_without_chp_is_infeasible_until_the_heat_column_opens():
    """Heat demand 5 kW_th and no CHP: the closed heat column (0, 0) cannot meet it, and
    the diagnosis says so. Opened to (0, 5) (as a heat market does), the plan buys 5."""
    d = producer([0.3], [1.0], heat=[5.0])
    with pytest.raises(AgentInfeasible) as err:
        AgentModel(d).solve()
    assert str(err.value) == ("building G12: heat demand 5.0 kW_th at 00:00 but it has no "
                              "CHP unit, and no heat is bought (the heat market is closed)")
    m = pyo.ConcreteModel()
    define_building(m, d)
    m.heat_in_kw[0].setub(5.0)
    m.obj = pyo.Objective(expr=m.cost_eur)
    solver = PersistentMILP(m)
    assert solver.solve()[0] == OPTIMAL
    assert solver.values(solver.columns(m.heat_in_kw))[0] == pytest.approx(5.0, **EXACT)


def test_diagnosis_of_chp_heat_and_of_unmet_load():
    """A CHP unit making 2–6 kW_th with demand 8 kW_th, or with demand 0 below its least
    heat; a 30 kW load against 5 kW contracted and a 20 kW generator; a must-run
    generator (p_min 8 kW) with a 2 kW load and no export."""
    chp = ChpSpec(((0, 2), (10, 2), (10, 6), (0, 6)))
    assert explain_infeasible(producer([0.3], [1.0], chp=chp, heat=[8.0])) == (
        "building G12: heat demand 8.0 kW_th at 00:00 exceeds the 6.0 kW_th its CHP unit "
        "can make, and no heat is bought (the heat market is closed)")
    assert "makes at least 2.0 kW_th but the heat demand at 00:00 is 0.0 kW_th" in \
        explain_infeasible(producer([0.3], [1.0], chp=chp))
    big = producer([0.3], [30.0], buy_max=5.0, generator=GeneratorSpec(0.0, 20.0))
    assert explain_infeasible(big) == (
        "building G12: load 30.0 kW at 00:00 exceeds contracted 5.0 kW + battery 0.0 kW + "
        "PV 0.0 kW + wind 0.0 kW + generator and CHP 20.0 kW")
    with pytest.raises(AgentInfeasible, match="make at least 8.0 kW but at 00:00 load, "
                       "flexible loads, battery and export take at most 2.0 kW"):
        AgentModel(producer([0.3], [2.0], generator=GeneratorSpec(8.0, 20.0))).solve()


def test_a_building_without_producers_builds_the_same_model():
    """No generator, no CHP and zero heat demand: no new component, no quadratic term."""
    m = pyo.ConcreteModel()
    define_building(m, producer([0.3], [1.0], heat=[0.0]))
    assert [m.find_component(p) for p in ("generator", "chp", "heat_in_kw")] == [None] * 3
    assert quadratic_terms(m) == []
    assert {key for key, _ in REPORTED} >= {"gen_kw", "chp_kw", "chp_heat_kw", "heat_in_kw"}


def test_heat_sale_is_reported_signed():
    """A CHP unit that must make 2–6 kW_th, no demand, the heat column opened to sell
    up to 6: it sells its least heat, 2 kW_th, reported as heat_in −2 (not clipped)."""
    chp = ChpSpec(((0, 2), (10, 2), (10, 6), (0, 6)), b_h=0.01)
    d = producer([0.3], [0.0], chp=chp)
    m = pyo.ConcreteModel()
    define_building(m, d)
    m.heat_in_kw[0].setlb(-6.0)
    m.obj = pyo.Objective(expr=m.cost_eur)
    solver = PersistentMILP(m)
    assert solver.solve()[0] == OPTIMAL
    values = {k: solver.values(solver.columns(v)) for k, v in flow_components(m).items()}
    plan = schedule_from_values(d, values, solver.objective(), "lp", 0.0)
    assert plan.flows_kw["heat_in_kw"][0] == pytest.approx(-2.0, **EXACT)
    assert plan.flows_kw["chp_heat_kw"][0] == pytest.approx(2.0, **EXACT)


# -- data round trip, days -----------------------------------------------------------------


def test_producer_data_round_trips_through_a_dict():
    d = producer([0.3, 0.2], [1.0, 2.0], generator=GeneratorSpec(0.0, 5.0, 0.02, 0.05, 0.1),
                 chp=ChpSpec(CHP_POLYGON, 0.01, 0.05, 0.03, 0.01, 0.1), heat=[3.0, 4.0])
    raw = json.loads(json.dumps(data_to_dict(d)))
    back = data_from_dict(raw)
    assert back.generator == d.generator and back.chp == d.chp
    np.testing.assert_array_equal(back.heat_demand_kw, d.heat_demand_kw)
    assert data_from_dict(data_to_dict(producer([0.3], [1.0]))).heat_demand_kw is None


def test_day_slice_cuts_heat_demand_like_load():
    d = producer([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4], heat=[5, 6, 7, 8])
    d = BuildingData(**{**d.__dict__, "horizon": Horizon(2, 1.0)})
    day = day_slice(d, 1)
    np.testing.assert_array_equal(day.load_kw, [3, 4])
    np.testing.assert_array_equal(day.heat_demand_kw, [7, 8])


# -- scenario ------------------------------------------------------------------------------

SCENARIO = """\
name: producers
seed: 1
market: {{mechanism: gdrmc}}
tariffs: {{fixed_eur_per_day: {{"6.9": 0.5}}}}
templates:
  - kind: building
    count: 2
    contracted_kva: "6.9"
    cdl_kw: 20
    heat_demand_kw: 2
    chp: {{vertices_kw: [[0, 0], [4, 0], [4, 3]], b_p_eur_per_kwh: 0.08}}
agents:
  - kind: building
    name: G12
    load_kw: [10]
    heat_demand_kw: [4]
    generator: {{p_max_kw: 20, a_eur_per_kw2h: 0.02, b_eur_per_kwh: 0.05}}
    chp: {{vertices_kw: {vertices}, a_p_eur_per_kw2h: 0.01, b_h_eur_per_kwh: 0.02}}
"""


def write(tmp_path, vertices="[[0, 0], [10, 0], [10, 5], [0, 5]]"):
    path = tmp_path / "producers.yaml"
    path.write_text(textwrap.dedent(SCENARIO.format(vertices=vertices)))
    return path


def test_explicit_building_loads_and_builds(tmp_path):
    """One value stands for all 96 periods; the import limit defaults to the peak load
    (10 kW), the export limit to the generator's and CHP unit's most power (20 + 10)."""
    s = load_scenario(write(tmp_path))
    *tpl, g12 = build_community(s)
    assert g12.name == "G12" and g12.horizon.periods == 96
    np.testing.assert_array_equal(g12.load_kw, np.full(96, 10.0))
    np.testing.assert_array_equal(g12.heat_demand_kw, np.full(96, 4.0))
    assert (g12.buy_max_kw, g12.sell_max_kw) == (10.0, 30.0)
    assert g12.generator == GeneratorSpec(0.0, 20.0, 0.02, 0.05, 0.0)
    assert g12.chp == ChpSpec(((0, 0), (10, 0), (10, 5), (0, 5)), 0.01, 0.0, 0.0, 0.02, 0.0)
    assert [d.chp.vertices for d in tpl] == [((0, 0), (4, 0), (4, 3))] * 2
    np.testing.assert_array_equal(tpl[0].heat_demand_kw, np.full(96, 2.0))
    plan = AgentModel(day_slice(g12, 0)).solve()
    assert plan.status == "optimal"


def test_non_convex_chp_polygon_is_one_line(tmp_path):
    path = write(tmp_path, "[[0, 0], [10, 5], [10, 0], [0, 5]]")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert err.value.lines == [(f"{path}: agents.0.chp.vertices_kw: CHP polygon of G12 is "
                                "not convex: it crosses itself (edges 1–2 and 3–4)")]


def test_explicit_building_load_must_cover_the_run(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(SCENARIO.format(vertices="[[0, 0], [1, 0], [1, 1]]"))
                    .replace("load_kw: [10]", "load_kw: [10, 11]"))
    with pytest.raises(ScenarioError, match="agents.0.load_kw: covers 2 values, must cover "
                       r".*\(96 values\) or be one value"):
        load_scenario(path)
