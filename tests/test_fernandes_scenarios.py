"""The communities of Vieira Fernandes, Christin, Kar (SmartGridComm 2024;
docs/mechanisms/clearance.md) as scenarios (fernandes2024_cigre, fernandes2024_village): the
``bus_profiles`` template places the authors' community and reads their profiles, the
``village_1`` network, ``community.scale`` on every kind of template, and bad input."""

import numpy as np
import pandapower.networks as pn
import pytest
import yaml

from lemgrid.agents.data import EVData, ProsumerData
from lemgrid.grid.community_lv import (
    KW_PER_MW,
    Placement,
    hourly_mw,
    place_community,
    read_profiles,
)
from lemgrid.grid.networks import load_network
from lemgrid.scenarios.community.builder import build_community, network_buses
from lemgrid.scenarios.schema import ScenarioError, bus_profile_agents, load_scenario

from .conftest import SCENARIOS

CORPUS = SCENARIOS.parent / "tests" / "bad_scenarios"
DATA = SCENARIOS / "data" / "fernandes2024"
AUTHORS_NETS = {"cigre": pn.create_cigre_network_lv,
                "village": lambda: pn.create_synthetic_voltage_control_lv_network(
                    network_class="village_1")}


def scenario(which: str, *overrides: str):
    return load_scenario(SCENARIOS / f"fernandes2024_{which}.yaml", list(overrides))


def placement_of(s) -> Placement:
    """(load buses, PV buses) of the scenario's one bus_profiles template, in its order."""
    agents = bus_profile_agents(s, s.templates[0])
    return Placement(tuple(a.bus for a in agents if a.load), tuple(a.bus for a in agents if a.pv))


@pytest.fixture(scope="module")
def profiles():
    return read_profiles(DATA)


@pytest.mark.parametrize("which", sorted(AUTHORS_NETS))
def test_placement_is_the_authors(which):
    s = scenario(which)
    authors = place_community(AUTHORS_NETS[which]())
    assert placement_of(s) == authors
    # one agent a bus, PV buses first (the authors' tie order), named b<bus>, on its bus
    agents = bus_profile_agents(s, s.templates[0])
    assert [a.bus for a in agents] == [*authors.pv_buses, *authors.load_buses]
    assert network_buses(s) == {f"b{a.bus}": a.bus for a in agents}


def test_cigre_placement_by_number():
    assert placement_of(scenario("cigre")) == Placement((12, 17, 19, 35, 37, 41),
                                                        (16, 18, 22, 36, 40, 42))


def test_village_placement_puts_pv_on_the_mv_bus():
    p = placement_of(scenario("village"))
    assert len(p.load_buses) == len(p.pv_buses) == 20 and p.pv_buses[-1] == 0


def _assert_hourly_mw(s, profiles, scale: float) -> None:
    """Every agent's load and PV, hour by hour in MW, is grid.community_lv.hourly_mw's for
    its bus (0 where the bus has none) and the connection limits are twice the peaks."""
    community = build_community(s)
    bus = network_buses(s)
    placement = place_community(load_network(s.grid.network))
    assert len(community) == len(placement.load_buses) + len(placement.pv_buses)
    for hour in range(24):
        gen, load = hourly_mw(placement, profiles, hour, scale)
        for d in community:
            assert d.load_kw[hour] / KW_PER_MW == load.get(bus[d.name], 0.0), (d.name, hour)
            assert d.pv_kw[hour] / KW_PER_MW == gen.get(bus[d.name], 0.0), (d.name, hour)
    for d in community:
        assert d.battery is None and d.tariff.fixed_eur_per_day == 0.0
        assert d.buy_max_kw == pytest.approx(2 * d.load_kw.max())
        assert d.sell_max_kw == pytest.approx(2 * d.pv_kw.max())


@pytest.mark.parametrize("which", ["cigre", "village"])
def test_hourly_mw_is_the_authors_at_scale_1(which, profiles):
    s = scenario(which)
    assert s.community.scale == 1.0 and s.horizon.periods == 24
    _assert_hourly_mw(s, profiles, 1.0)


@pytest.mark.parametrize("which", ["cigre", "village"])
def test_hourly_mw_is_the_authors_at_scale_10(which, profiles):
    _assert_hourly_mw(scenario(which, "community.scale=10"), profiles, 10.0)


def test_quarter_hours_hold_each_hour_and_two_hour_periods_average(profiles):
    quarter = build_community(scenario("cigre", "horizon.periods=96",
                                       "horizon.period_minutes=15"))
    two_hours = build_community(scenario("cigre", "horizon.periods=12",
                                         "horizon.period_minutes=120"))
    load = next(d for d in quarter if d.name == "b12").load_kw
    pv = next(d for d in two_hours if d.name == "b16").pv_kw
    assert np.array_equal(load, np.repeat(profiles.load_kw, 4))
    assert pv == pytest.approx((profiles.pv_kw[0::2] + profiles.pv_kw[1::2]) / 2)


def test_a_bus_given_for_load_and_pv_is_one_agent_with_both(tmp_path, profiles):
    raw = yaml.safe_load((SCENARIOS / "fernandes2024_cigre.yaml").read_text())
    raw["templates"][0].update(placement={"load_buses": [12, 16], "pv_buses": [16, 18]},
                               import_kw=9.0, export_kw=4.0)
    raw["templates"][0]["load"]["path"] = str(DATA / "cluster_medians.csv")
    raw["templates"][0]["pv"]["path"] = str(DATA / "cluster_medians_solar.csv")
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(raw))
    community = {d.name: d for d in build_community(load_scenario(path))}
    assert list(community) == ["b16", "b18", "b12"]
    assert np.array_equal(community["b16"].load_kw, profiles.load_kw)
    assert np.array_equal(community["b16"].pv_kw, profiles.pv_kw)
    assert not community["b18"].load_kw.any() and not community["b12"].pv_kw.any()
    assert {(d.buy_max_kw, d.sell_max_kw) for d in community.values()} == {(9.0, 4.0)}


def test_scale_doubles_a_faia2021_prosumer_and_leaves_evs_alone():
    one = {d.name: d for d in build_community(load_scenario(SCENARIOS / "faia2021.yaml"))}
    two = {d.name: d for d in build_community(load_scenario(SCENARIOS / "faia2021.yaml",
                                                            ["community.scale=2"]))}
    p1, p2 = one["p01"], two["p01"]
    assert isinstance(p1, ProsumerData) and p1.load_kw.sum() > 0 and p1.pv_kw.sum() > 0
    assert np.array_equal(p2.load_kw, 2 * p1.load_kw)
    assert np.array_equal(p2.pv_kw, 2 * p1.pv_kw)
    assert (p2.buy_max_kw, p2.sell_max_kw, p2.battery) == (p1.buy_max_kw, p1.sell_max_kw,
                                                           p1.battery)
    ev1, ev2 = one["ev01"], two["ev01"]
    assert isinstance(ev2, EVData) and np.array_equal(ev2.trip_kwh, ev1.trip_kwh)


def test_scale_reaches_buildings_and_their_cdl_check():
    one = build_community(load_scenario(SCENARIOS / "tiny_locality.yaml"))
    half = build_community(load_scenario(SCENARIOS / "tiny_locality.yaml",
                                         ["community.scale=0.5"]))
    for a, b in zip(one, half):
        assert np.array_equal(b.load_kw, 0.5 * a.load_kw)
        assert np.array_equal(b.pv_kw, 0.5 * a.pv_kw)
        assert np.array_equal(b.wind_kw, a.wind_kw)
    with pytest.raises(ScenarioError, match=r"templates\.0\.cdl_kw: 2\.5 kW is below h1's "
                       r"non-flexible load alone at community\.scale 10 \("):
        build_community(load_scenario(SCENARIOS / "tiny_locality.yaml",
                                      ["community.scale=10"]))


def test_village_1_is_pandapowers_without_its_pv():
    net = load_network("village_1")
    assert (len(net.bus), len(net.line), len(net.trafo), len(net.switch)) == (80, 78, 1, 0)
    assert net.trafo.sn_mva.tolist() == [0.25]
    assert sorted(set(net.line.max_i_ka)) == [0.142, 0.27]
    assert len(net.load) == 47 and len(net.sgen) == 0
    assert len(load_network("village_1", keep_sgens=True).sgen) == 13


BAD = {  # file in tests/bad_scenarios -> its one line after "<file>: "
    "100_placement_bus_outside_the_network": ("templates.0.placement.load_buses.1: cigre_lv "
                                              "has no bus 99; allowed: buses 0–43"),
    "101_profile_column_missing": (f"templates.0.load: {CORPUS / 'profile_23_hours.csv'} has "
                                   "no column 'Cluster_0'; allowed: 'Hour', 'kW'"),
    "102_profile_too_short": (f"templates.0.load: {CORPUS / 'profile_23_hours.csv'} has 23 "
                              "rows of values; allowed: 24, one per hour from 00:00"),
    "103_community_scale_negative": ("community.scale: Input should be greater than or equal "
                                     "to 0 (got -1)"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line(name):
    path = CORPUS / f"{name}.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.lines == [f"{path}: {BAD[name]}"]


@pytest.mark.parametrize("override, line", [
    ("community.scale=-2",
     "community.scale: Input should be greater than or equal to 0 (got -2)"),
    ("templates.0.placement=leafs",
     "templates.0.placement: Input should be 'leaves' (got 'leafs')"),
    ("templates.0.placement={load_buses: [12, 12]}",
     "templates.0.placement: load_buses: bus 12 is given twice; allowed: each bus once"),
    ("templates.0.placement={pv_buses: [16, 44]}",
     "templates.0.placement.pv_buses.1: cigre_lv has no bus 44; allowed: buses 0–43"),
    ("templates.0.pv.column=Cluster_7",
     f"templates.0.pv: {DATA / 'cluster_medians_solar.csv'} has no column 'Cluster_7'"),
])
def test_bad_set_is_one_line(override, line):
    with pytest.raises(ScenarioError) as info:
        scenario("cigre", override)
    assert len(info.value.lines) == 1
    assert info.value.lines[0].startswith(f"{SCENARIOS / 'fernandes2024_cigre.yaml'}: {line}")


def test_a_profile_value_that_is_no_power(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("Hour,kW\n" + "".join(f"{h},{'-1' if h == 5 else '1.0'}\n"
                                         for h in range(24)))
    with pytest.raises(ScenarioError) as info:
        scenario("cigre", f"templates.0.load={{path: {csv}, column: kW}}")
    assert info.value.lines[0].endswith(f"templates.0.load: {csv}: hour 5, column 'kW': '-1' "
                                        "is not a power; allowed: kW ≥ 0")
