"""DSO clearance of P2P trades (Vieira Fernandes, Christin, Kar, SmartGridComm 2024):
matching, the DC network model, the LP and the authors' published CIGRE LV day.

Published numbers: tests/data/fernandes2024_published.json (repository, commit and paths
inside it). Profiles: scenarios/data/fernandes2024 (MIT, © 2024 Diana Vieira Fernandes).
"""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from lemgrid.coordinator.mechanisms.matching import Order, match_buses, match_orders
from lemgrid.grid.clearance import (
    ANGLE_LIMIT_RAD,
    ClearanceInfeasible,
    Trade,
    base_flows_mw,
    clear_trades,
    dc_network,
    node_injection_mw,
    residual_injection_mw,
)
from lemgrid.grid.community_lv import (
    community_net,
    hourly_mw,
    leaf_buses,
    place_community,
    read_profiles,
)
from lemgrid.scenarios.bench.clearance import bench_clearance, clear_day, clear_hour

PUBLISHED = Path(__file__).parent / "data" / "fernandes2024_published.json"
DATA_DIR = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "fernandes2024"
needs_data = pytest.mark.skipif(not (DATA_DIR / "cluster_medians.csv").exists(),
                                reason=f"no profiles in {DATA_DIR}")
COLUMNS = ("grid_import_mw", "grid_import_plus_p2p_mw", "total_load_mw")


@pytest.fixture(scope="module")
def published():
    return json.loads(PUBLISHED.read_text())


@pytest.fixture(scope="module")
def profiles():
    return read_profiles(DATA_DIR)


@pytest.fixture(scope="module")
def cigre():
    return pn.create_cigre_network_lv()


@pytest.fixture(scope="module")
def village():
    return pn.create_synthetic_voltage_control_lv_network(network_class="village_1")


def _columns(hours) -> dict[str, np.ndarray]:
    return {"grid_import_mw": np.array([r.grid_import_mw for r in hours]),
            "grid_import_plus_p2p_mw": np.array([r.grid_import_mw + r.accepted_mw
                                                 for r in hours]),
            "total_load_mw": np.array([r.total_load_mw for r in hours])}


def three_bus_net() -> pp.pandapowerNet:
    """0.4 kV: ext_grid at bus 0, line 0 (0-1, X = 0.16 ohm), line 1 (1-2, X = 0.016 ohm)."""
    net = pp.create_empty_network()
    for _ in range(3):
        pp.create_bus(net, vn_kv=0.4)
    pp.create_ext_grid(net, 0)
    for a, b, x in ((0, 1, 0.16), (1, 2, 0.016)):
        pp.create_line_from_parameters(net, a, b, length_km=1.0, r_ohm_per_km=0.1,
                                       x_ohm_per_km=x, c_nf_per_km=0.0, max_i_ka=1.0)
    return net


def trafo_net(sn_mva: float, vk_percent: float, vkr_percent: float) -> pp.pandapowerNet:
    """ext_grid at the 20 kV bus 0, transformer 0 to the 0.4 kV bus 1."""
    net = pp.create_empty_network()
    pp.create_bus(net, vn_kv=20.0)
    pp.create_bus(net, vn_kv=0.4)
    pp.create_ext_grid(net, 0)
    pp.create_transformer_from_parameters(net, 0, 1, sn_mva=sn_mva, vn_hv_kv=20.0,
                                          vn_lv_kv=0.4, vkr_percent=vkr_percent,
                                          vk_percent=vk_percent, pfe_kw=0.0, i0_percent=0.0)
    return net


# --- the LP on hand-worked networks -------------------------------------------------------

def test_line_capacity_admits_a_fraction_of_a_trade():
    """Line 0: b = V²/X = 0.4²/0.16 = 1 MW/rad, capacity b·sin 30° = 0.5 MW; line 1: b = 10,
    capacity 5 MW. Base: bus 1 draws 0.2 MW. t1 = (2 → 0, 0.8 MW), t2 = (1 → 2, 0.3 MW).
    Injections p1 = −0.2 + 0.3·x2, p2 = 0.8·x1 − 0.3·x2; the flow 0→1 on line 0 is
    −(p1 + p2) = 0.2 − 0.8·x1 ≥ −0.5, so x1 ≤ 0.7/0.8 = 0.875; line 1 carries
    −p2 ≥ −0.8, within 5 MW, so x2 = 1. Accepted 0.875·0.8 + 0.3 = 1.0 MW of 1.1 MW; the
    flow 0→1 sits at −0.5 MW (θ1 = 0.5 rad) and one more MW of capacity would admit one
    more MW (shadow price 1). The import is −Σ p⁰ = 0.2 MW whatever x is.
    """
    network = dc_network(three_bus_net())
    result = clear_trades(network, [Trade(2, 0, 0.8), Trade(1, 2, 0.3)], {1: -0.2})
    assert result.x == pytest.approx([0.875, 1.0], abs=1e-9)
    assert result.accepted_total_mw == pytest.approx(1.0, abs=1e-9)
    assert result.curtailed_mw == pytest.approx(0.1, abs=1e-9)
    assert result.flow_mw == pytest.approx([-0.5, -0.4], abs=1e-9)
    assert result.theta_rad[network.bus_node[1]] == pytest.approx(0.5, abs=1e-9)
    assert result.grid_import_mw == pytest.approx(0.2)
    (bind,) = result.binding
    assert (bind.kind, bind.branch.kind, bind.branch.index) == ("line", "line", 0)
    assert (bind.branch.from_bus, bind.branch.to_bus) == (0, 1)
    assert bind.label == "line limit of line 0 (bus 0-1)"
    assert bind.shadow_mw_per_mw == pytest.approx(1.0, abs=1e-9)


def test_nothing_binds_and_everything_is_accepted_below_the_limits():
    network = dc_network(three_bus_net())
    result = clear_trades(network, [Trade(2, 1, 0.01)], {})
    assert result.x == pytest.approx([1.0]) and result.binding == ()


def test_angle_limit_binds_on_a_high_impedance_transformer():
    """Transformer 1 MVA with vk = 100 %, vkr = 0: x = 1 pu, b = sn/x = 1 MW/rad. The angle
    limit |θ0 − θ1| ≤ π/6 caps the flow at π/6 = 0.5236 MW, below sn = 1 MW, so of the
    trade (1 → 0, 1 MW) x = π/6 is accepted and the binding limit is the angle's."""
    result = clear_trades(dc_network(trafo_net(1.0, 100.0, 0.0)), [Trade(1, 0, 1.0)], {})
    assert result.x[0] == pytest.approx(ANGLE_LIMIT_RAD, abs=1e-9)
    (bind,) = result.binding
    assert bind.kind == "angle" and bind.branch.label == "transformer 0 (bus 0-1)"


def test_transformer_capacity_curtails_a_trade_from_the_mv_bus():
    """village_1's transformer (0.25 MVA, vk 4 %, vkr 0.96 %): bus 1 draws 0.2 MW and buys
    0.1 MW from a seller on the 20 kV bus 0. The transformer carries 0.2 + 0.1·x ≤ 0.25, so
    x = 0.5 (its angle limit, sn/x_pu·π/6 = 0.25/0.0388·0.524 = 3.4 MW, is far away)."""
    result = clear_trades(dc_network(trafo_net(0.25, 4.0, 0.96)), [Trade(0, 1, 0.1)], {1: -0.2})
    assert result.x[0] == pytest.approx(0.5, abs=1e-9)
    assert [b.label for b in result.binding] == [
        "transformer limit of transformer 0 (bus 0-1)"]
    assert result.flow_mw[0] == pytest.approx(0.25, abs=1e-9)


def test_reverse_limit_curtails_a_trade_up_through_the_transformer():
    """The same transformer with a 20 % reverse-power limit: it may carry 0.25 MW from bus 0
    to bus 1 but only 0.2·0.25 = 0.05 MW back. Bus 1 sells 0.08 MW to a buyer on bus 0,
    over a base of 0.01 MW fed back: the flow 0 → 1 is −0.01 − 0.08·x ≥ −0.05, so x = 0.5;
    the forward capacity and the angle limit are far away."""
    network = dc_network(trafo_net(0.25, 4.0, 0.96), reverse_flow_pct=20)
    result = clear_trades(network, [Trade(1, 0, 0.08)], {1: 0.01})
    assert result.x[0] == pytest.approx(0.5, abs=1e-9)
    assert result.flow_mw[0] == pytest.approx(-0.05, abs=1e-9)
    (bind,) = result.binding
    assert bind.label == "reverse limit of transformer 0 (bus 0-1)"
    assert bind.limit_mw == pytest.approx(0.05)
    assert bind.shadow_mw_per_mw == pytest.approx(1.0, abs=1e-9)  # a MW more back: a MW more
    # forward flows keep the whole rating: 0.2 MW drawn plus 0.04 MW bought from bus 0
    forward = clear_trades(network, [Trade(0, 1, 0.04)], {1: -0.2})
    assert forward.x[0] == pytest.approx(1.0) and forward.binding == ()


def test_zero_reverse_limit_makes_a_feeding_base_infeasible_and_is_validated():
    """reverse_flow_pct 0: no reverse flow at all; a base that feeds 0.01 MW back overloads
    the transformer before any trade. Outside [0, 100] the percentage is refused."""
    network = dc_network(trafo_net(0.25, 4.0, 0.96), reverse_flow_pct=0)
    with pytest.raises(ClearanceInfeasible, match=r"carries -0\.01 MW, over its reverse "
                       r"limit 0 MW"):
        clear_trades(network, [Trade(1, 0, 0.01)], {1: 0.01})
    with pytest.raises(ValueError, match=r"reverse_flow_pct must be in \[0, 100\], got 120"):
        dc_network(trafo_net(0.25, 4.0, 0.96), reverse_flow_pct=120)


def test_base_overload_is_an_error_naming_the_hour_and_the_branch():
    """0.3 MW drawn at bus 1 through a 0.25 MVA transformer: infeasible even at x = 0."""
    network = dc_network(trafo_net(0.25, 4.0, 0.96))
    with pytest.raises(ClearanceInfeasible, match=r"hour 7: .*transformer 0 \(bus 0-1\) "
                       r"carries 0\.3 MW, over its transformer limit 0\.25 MW"):
        clear_trades(network, [Trade(0, 1, 0.05)], {1: -0.3}, label="hour 7")


def test_trades_and_injections_at_unknown_buses_are_errors():
    network = dc_network(three_bus_net())
    with pytest.raises(ValueError, match="no in-service buyer bus 99"):
        clear_trades(network, [Trade(1, 99, 0.1)], {})
    with pytest.raises(ValueError, match="no in-service seller bus 42"):
        clear_trades(network, [Trade(42, 1, 0.1)], {})
    with pytest.raises(ValueError, match="no in-service bus 7"):
        clear_trades(network, [], {7: 0.1})
    with pytest.raises(ValueError, match="positive q_mw"):
        clear_trades(network, [Trade(1, 2, 0.0)], {})


# --- switches and topology -------------------------------------------------------------

def test_open_line_switch_islands_a_bus():
    net = three_bus_net()
    pp.create_switch(net, bus=1, element=1, et="l", closed=False)
    with pytest.raises(ValueError, match=r"buses \[2\] are not connected to the ext_grid"):
        dc_network(net)


def test_open_bus_switch_islands_a_cigre_feeder(cigre):
    net = copy.deepcopy(cigre)
    net.switch.loc[net.switch["element"] == 23, "closed"] = False  # S3: bus 0 - C0 (23)
    with pytest.raises(ValueError, match=r"buses \[23, 24, .*, 43\] are not connected"):
        dc_network(net)


def test_closed_bus_switches_merge_buses(cigre):
    network = dc_network(cigre)
    assert len({network.bus_node[b] for b in (0, 1, 20, 23)}) == 1
    assert network.n_nodes == 44 - 3 and network.node_buses[network.slack] == (0, 1, 20, 23)
    assert len(network.branches) == 37 + 3
    result = clear_trades(network, [Trade(1, 23, 0.2)], {})  # both ends on the slack node
    assert result.x == pytest.approx([1.0]) and np.allclose(result.flow_mw, 0.0)


def test_open_bus_switch_with_a_parallel_path_is_fine():
    net = three_bus_net()
    pp.create_bus(net, vn_kv=0.4)  # bus 3, tied to bus 2 by an open switch and by a line
    pp.create_switch(net, bus=2, element=3, et="b", closed=False)
    pp.create_line_from_parameters(net, 2, 3, length_km=1.0, r_ohm_per_km=0.1,
                                   x_ohm_per_km=0.1, c_nf_per_km=0.0, max_i_ka=1.0)
    network = dc_network(net)
    assert network.n_nodes == 4 and len(network.branches) == 3


def test_dc_flows_equal_pandapower_rundcpp(cigre, profiles):
    """Flows of the DC model at x = 1 (injection = generation − load) against pandapower."""
    placement = place_community(cigre)
    net = community_net(cigre, placement, profiles, hour=12, scale=10.0)
    pp.rundcpp(net, numba=False)
    network = dc_network(cigre)
    gen, load = hourly_mw(placement, profiles, 12, 10.0)
    injection = {b: gen.get(b, 0.0) - load.get(b, 0.0) for b in {*gen, *load}}
    flows, _ = base_flows_mw(network, node_injection_mw(network, injection))
    reference = [net.res_line.at[b.index, "p_from_mw"] if b.kind == "line"
                 else net.res_trafo.at[b.index, "p_hv_mw"] for b in network.branches]
    assert flows == pytest.approx(reference, abs=1e-12)


# --- matching -----------------------------------------------------------------------------

def test_double_auction_fills_each_buyer_across_sellers():
    """Sellers 1 (0.5 MW) and 2 (0.3 MW), buyers 3 (0.6 MW) and 4 (0.4 MW): buyer 3 takes
    seller 1's 0.5 and 0.1 of seller 2; buyer 4 the 0.2 left. The authors' code stops a
    buyer when its seller runs dry: 3 ← 1 (0.5), 4 ← 2 (0.3)."""
    gen, load = {1: 0.5, 2: 0.3}, {3: 0.6, 4: 0.4}
    trades = match_buses(gen, load)
    assert [(t.seller_bus, t.buyer_bus) for t in trades] == [(1, 3), (2, 3), (2, 4)]
    assert [t.q_mw for t in trades] == pytest.approx([0.5, 0.1, 0.2])
    theirs = match_buses(gen, load, one_seller_per_buyer=True)
    assert [(t.seller_bus, t.buyer_bus, t.q_mw) for t in theirs] == [(1, 3, 0.5), (2, 4, 0.3)]


def test_matching_nets_buses_orders_prices_and_drops_small_trades():
    trades = match_buses({1: 0.3, 2: 0.2}, {1: 0.1, 3: 0.5})  # bus 1 sells only 0.2
    assert [(t.seller_bus, t.buyer_bus) for t in trades] == [(1, 3), (2, 3)]
    assert [t.q_mw for t in trades] == pytest.approx([0.2, 0.2])
    assert all(t.price_eur_per_kwh == 0.05 for t in trades)
    cheap_first = match_buses({1: 0.2, 2: 0.2}, {3: 0.2}, ask_eur_per_kwh={1: 0.10, 2: 0.05})
    assert [(t.seller_bus, t.price_eur_per_kwh) for t in cheap_first] == [(2, 0.05)]
    assert match_buses({1: 0.2}, {3: 0.2}, bid_eur_per_kwh=0.04) == []  # bid below ask
    assert match_buses({1: 5e-6}, {3: 0.2}) == []  # below 1e-5 MW
    assert len(match_buses({1: 5e-6}, {3: 0.2}, min_trade_mw=0.0)) == 1
    buys = [Order(3, 0.1, 0.15), Order(4, 0.1, 0.30)]
    first = match_orders(buys, [Order(1, 0.1, 0.05)])
    assert [t.buyer_bus for t in first] == [4]  # the highest bid is served first


def test_residual_injection_is_the_papers_baseline():
    """Seller 1 (0.5 MW PV) sold 0.4; buyer 3 (0.6 MW load) bought 0.4: p⁰ = 0.1 and −0.2."""
    base = residual_injection_mw({1: 0.5}, {3: 0.6}, [Trade(1, 3, 0.4)])
    assert base == pytest.approx({1: 0.1, 3: -0.2})


# --- the authors' community and their published day ------------------------------------

def test_cigre_placement_is_the_authors(cigre):
    placement = place_community(cigre)
    assert placement.load_buses == (12, 17, 19, 35, 37, 41)
    assert placement.pv_buses == (16, 18, 22, 36, 40, 42)


def test_village_placement_has_20_loads_and_puts_pv_on_the_mv_bus(village):
    leaves = leaf_buses(village)
    placement = place_community(village)
    assert len(village.bus) == 80 and len(leaves) == 40 and leaves[-1] == 0
    assert len(placement.load_buses) == len(placement.pv_buses) == 20
    assert placement.pv_buses[-1] == 0  # the 20 kV ext_grid bus is a leaf too


@needs_data
def test_cigre_day_reproduces_the_published_hours(cigre, profiles, published):
    """All 24 hours, each published column, to 1e-6 MW. The authors' code filters trades
    below 1e-5 MW into a list it then does not use, so min_trade_mw=0 here."""
    hours = clear_day(dc_network(cigre), place_community(cigre), profiles, min_trade_mw=0.0)
    mine = _columns(hours)
    for column in COLUMNS:
        assert np.abs(mine[column] - published["cigre_lv"][column]).max() < 1e-6, column
    assert all(r.clearance.binding == () for r in hours)


@needs_data
def test_the_1e5_filter_only_moves_hour_17(cigre, profiles, published):
    """With trades below 1e-5 MW dropped, hour 17's six 1e-6 MW trades go: 6e-6 MW less P2P."""
    hours = clear_day(dc_network(cigre), place_community(cigre), profiles)
    gap = _columns(hours)["grid_import_plus_p2p_mw"] - published["cigre_lv"][COLUMNS[1]]
    assert gap[17] == pytest.approx(-6e-6, abs=1e-12)
    assert np.abs(np.delete(gap, 17)).max() < 1e-12


@needs_data
def test_cigre_hour_11_trades_are_the_published_ones(cigre, profiles, published):
    gen, load = hourly_mw(place_community(cigre), profiles, 11)
    trades = match_buses(gen, load, one_seller_per_buyer=True)
    expected = published["cigre_lv_hour11_trades"]["trades"]
    assert [(t.seller_bus, t.buyer_bus) for t in trades] == [(s, d) for s, d, _, _ in expected]
    assert [t.q_mw for t in trades] == pytest.approx([q for _, _, q, _ in expected], abs=1e-15)


@needs_data
def test_published_village_series_is_not_the_published_code(village, profiles, published):
    """The published 80-bus series has 40 loads and sells solar Cluster_0; the published
    code places 20 loads (half of them) and sells solar Cluster_1. The series is exactly
    reproduced by: loads on all 40 leaves, solar Cluster_0 on every other leaf, gross sell
    orders (PV not netted against the prosumer's own load), one seller per buyer, trades
    below 1e-5 MW dropped (hour 5) and, as in their CSV, import = load in hours without
    trades."""
    pub = {c: np.array(published["village_1"][c]) for c in COLUMNS}
    mine = _columns(clear_day(dc_network(village), place_community(village), profiles))
    assert pub["total_load_mw"] == pytest.approx(2 * mine["total_load_mw"], rel=1e-12)
    leaves, network = leaf_buses(village), dc_network(village)
    pv0 = read_profiles(DATA_DIR, pv_column="Cluster_0")
    rows = []
    for hour in range(24):
        load = {b: pv0.load_kw[hour] / 1e3 for b in leaves}
        gen = {b: pv0.pv_kw[hour] / 1e3 for b in leaves[1::2]}
        trades = match_orders([Order(b, q, 0.20) for b, q in load.items()],
                              [Order(b, q, 0.05) for b, q in gen.items() if q > 0],
                              one_seller_per_buyer=True)
        result = clear_trades(network, trades, residual_injection_mw(gen, load, trades))
        grid = result.grid_import_mw if trades else sum(load.values())
        rows.append((grid, grid + result.accepted_total_mw, sum(load.values())))
    assert np.abs(np.array(rows) - np.column_stack([pub[c] for c in COLUMNS])).max() < 1e-12


# --- scaled profiles ----------------------------------------------------------------------

@needs_data
def test_scaled_village_curtails_the_trade_through_the_transformer(village, profiles):
    """K = 6, hour 8: the PV the authors' placement puts on the 20 kV bus 0 sells to an LV
    load through the 0.25 MVA transformer, which then binds; that trade alone is cut."""
    result = clear_hour(dc_network(village), place_community(village), profiles, 8, scale=6.0)
    assert result.offered_mw - result.accepted_mw == pytest.approx(0.001114, abs=1e-6)
    assert [b.label for b in result.clearance.binding] == [
        "transformer limit of transformer 0 (bus 0-1)"]
    cut = [t for t, x in zip(result.clearance.trades, result.clearance.x) if x < 1 - 1e-9]
    assert [t.seller_bus for t in cut] == [0]


@needs_data
def test_cigre_at_100_times_the_profiles_overloads_before_any_trade(cigre, profiles):
    with pytest.raises(ClearanceInfeasible,
                       match=r"hour 0: .*transformer 2 \(bus 23-24\) carries 0\.481887 MW"):
        clear_hour(dc_network(cigre), place_community(cigre), profiles, 0, scale=100.0)
    hours = clear_day(dc_network(cigre), place_community(cigre), profiles, scale=100.0,
                      strict=False)
    assert all(r.error and math.isnan(r.accepted_mw) for r in hours)


def test_bench_clearance_runs():
    times = bench_clearance(n_trades=50, repeats=1)
    assert set(times) == {"cigre_lv_44", "village_1_80", "cigre_lv_44_50_trades",
                          "village_1_80_50_trades"}
    assert all(0 < t < 1 for t in times.values())
