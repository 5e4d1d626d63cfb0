"""grid.branchflow: radial network reading, SOCP / LinDistFlow against AC, diagnosis, operator.

Reference numbers come from one of three places, named at each assertion:
- a pandapower AC power flow (Newton-Raphson, tolerance 1e-10 MVA) run in this file;
- the published case33bw (Baran & Wu 1989: 3.715 MW, 2.3 Mvar, 12.66 kV, sn 10 MVA) and
  the thermal limits `grid.networks` gives it (trunk lines 0-4 at 0.40 kA);
- a 3-bus feeder worked by hand below (`tiny_net`).
"""

import math

import numpy as np
import pandapower as pp
import pytest

from lemgrid.grid.branchflow import (
    NetworkInfeasible,
    OperatorModel,
    add_network,
    explain_infeasible,
    radial_network,
    solve_flow,
)
from lemgrid.grid.networks import load_network

AC_OPTIONS = {"algorithm": "nr", "numba": False, "tolerance_mva": 1e-10}


@pytest.fixture(scope="module")
def ac33():
    """case33bw with its published loads, solved by pandapower's AC power flow."""
    net = load_network("case33bw")
    pp.runpp(net, **AC_OPTIONS)
    return net


@pytest.fixture(scope="module")
def net33():
    return radial_network(load_network("case33bw"), v_min_pu=0.9, v_max_pu=1.05)


def tiny_net(max_i_ka: float = 1.0) -> pp.pandapowerNet:
    """Worked by hand: 10 kV, sn 1 MVA, so z_base = 10²/1 = 100 Ω and 1 pu = 1000 kW.

    Bus 0 (root, 1.0 pu) -line 0, 10 Ω = r 0.1 pu, x 0- bus 1 (0.9 MW = 0.9 pu load)
    -line 1, same, drawn backwards from bus 2- bus 2 (no load).
    With x = 0 the feeder is a DC circuit: current I into bus 1 satisfies
    (1 − 0.1·I)·I = 0.9, so I = (1 − √(1 − 0.36))/0.2 = 1.0 pu; V1 = 1 − 0.1·1 = 0.9 pu
    (= V2: line 1 carries nothing); losses r·P²/V0² = 0.1·1²/1² = 0.1 pu = 100 kW;
    import 900 + 100 = 1000 kW. i_base = 1/(√3·10) kA = 0.0577 kA, so I = 0.0577 kA.
    LinDistFlow drops the losses: v1 = 1 − 2·0.1·0.9 = 0.82 pu², V1 = √0.82, import 900 kW.
    """
    net = pp.create_empty_network(name="tiny", sn_mva=1.0)
    for _ in range(3):
        pp.create_bus(net, vn_kv=10.0)
    pp.create_ext_grid(net, 0, vm_pu=1.0)
    for a, b in ((0, 1), (2, 1)):
        pp.create_line_from_parameters(net, a, b, length_km=1.0, r_ohm_per_km=10.0,
                                       x_ohm_per_km=0.0, c_nf_per_km=0.0, max_i_ka=max_i_ka)
    pp.create_load(net, 1, p_mw=0.9)
    return net


def test_case33bw_is_read_as_a_radial_feeder(net33):
    raw = load_network("case33bw")
    assert (net33.n_buses, net33.n_lines) == (33, 32)  # published: 33 buses, 32 + 5 ties
    assert net33.root == net33.bus_index[0] and net33.v_root_pu == 1.0  # ext_grid at bus 0
    assert set(net33.lines) == set(range(32))  # the 5 out-of-service tie lines 32-36 go
    depth = {0: 0}  # every line points away from the root: from-bus one step nearer
    for k in np.argsort([min(net33.from_pos[k], net33.to_pos[k]) for k in range(32)]):
        depth[int(net33.to_pos[k])] = depth[int(net33.from_pos[k])] + 1
    assert len(depth) == 33
    line = raw.line.loc[0]  # per unit on sn 10 MVA: z_base = 12.66²/10 Ω
    assert net33.r_pu[0] == pytest.approx(line.r_ohm_per_km * line.length_km / 12.66**2 * 10)
    assert net33.x_pu[0] == pytest.approx(line.x_ohm_per_km * line.length_km / 12.66**2 * 10)
    assert net33.i_max_ka[0] == pytest.approx(0.40)  # grid.networks: trunk 0.40 kA
    assert net33.i_max_pu[0] == pytest.approx(0.40 / (10 / (math.sqrt(3) * 12.66)))
    assert net33.loads_kw.sum() == pytest.approx(3715.0)  # published total load
    assert net33.loads_kvar.sum() == pytest.approx(2300.0)


def test_socp_matches_ac_power_flow_on_case33bw(ac33, net33):
    flow = solve_flow(net33, net33.loads_kw, net33.loads_kvar, "socp")
    ac_import_kw = ac33.res_ext_grid.p_mw.sum() * 1000  # AC: 3917.7 kW
    ac_losses_kw = ac33.res_line.pl_mw.sum() * 1000  # AC: 202.68 kW
    assert flow.import_kw[0] == pytest.approx(ac_import_kw, abs=0.1)
    assert flow.losses_kw[0] == pytest.approx(ac_losses_kw, abs=0.1)
    bus17 = net33.bus_index[17]  # AC: lowest voltage 0.91309 pu at bus 17
    assert int(np.argmin(flow.v_pu[:, 0])) == bus17
    assert flow.v_pu[bus17, 0] == pytest.approx(ac33.res_bus.vm_pu[17], abs=1e-4)
    assert abs(flow.loss_gap_kw[0]) < 1e-3  # the cone is tight: the relaxation is exact
    ac_i_ka = ac33.res_line.i_ka.loc[net33.lines].to_numpy()
    assert np.abs(flow.i_ka[:, 0] - ac_i_ka).max() < 1e-4


def test_lindistflow_is_near_ac_and_lossless(ac33, net33):
    flow = solve_flow(net33, net33.loads_kw, net33.loads_kvar, "lindistflow")
    ac_vm = ac33.res_bus.vm_pu.loc[net33.buses].to_numpy()
    # observed max deviation from AC 0.0028 pu (bus 17: 0.9159 vs 0.9131), linear drop
    assert np.abs(flow.v_pu[:, 0] - ac_vm).max() < 0.01
    assert flow.import_kw[0] == pytest.approx(net33.loads_kw.sum(), abs=1e-3)  # no losses
    assert flow.losses_kw[0] == 0.0


def test_published_load_breaks_v_min_095_and_the_error_names_bus_and_period(ac33):
    network = radial_network(load_network("case33bw"), v_min_pu=0.95, v_max_pu=1.05)
    scale = np.array([0.5, 1.0, 0.8])  # period 1 carries the published peak
    with pytest.raises(NetworkInfeasible) as err:
        solve_flow(network, np.outer(network.loads_kw, scale),
                   np.outer(network.loads_kvar, scale), "socp", period_h=0.25)
    message = str(err.value)
    assert "\n" not in message
    # AC at the published peak: bus 17 at 0.91309 pu is the lowest voltage
    assert f"needs {ac33.res_bus.vm_pu[17]:.3f} pu, below v_min 0.950 pu" in message
    assert "hour 0.25 (period 1): bus 17 voltage" in message


def test_tiny_feeder_matches_hand_numbers():
    network = radial_network(tiny_net(), v_min_pu=0.85, v_max_pu=1.1)
    assert list(network.from_pos) == [0, 1] and list(network.to_pos) == [1, 2]  # re-oriented
    assert network.r_pu == pytest.approx([0.1, 0.1])  # 10 Ω / 100 Ω
    flow = solve_flow(network, network.loads_kw, None, "socp")
    assert flow.v_pu[:, 0] == pytest.approx([1.0, 0.9, 0.9], abs=1e-6)  # hand: V1 = V2 = 0.9
    assert flow.losses_kw[0] == pytest.approx(100.0, abs=1e-3)  # hand: r·P²/V0² = 0.1 pu
    assert flow.import_kw[0] == pytest.approx(1000.0, abs=1e-3)
    assert flow.i_ka[:, 0] == pytest.approx([1 / (math.sqrt(3) * 10), 0.0], abs=1e-6)
    linear = solve_flow(network, network.loads_kw, None, "lindistflow")
    assert linear.v_pu[1, 0] == pytest.approx(math.sqrt(0.82), abs=1e-6)  # hand: 1 − 2·0.1·0.9
    assert linear.import_kw[0] == pytest.approx(900.0, abs=1e-3)


def test_tiny_feeder_errors_name_the_limit():
    strict = radial_network(tiny_net(), v_min_pu=0.95, v_max_pu=1.1)
    loads = np.outer(strict.loads_kw, [0.5, 1.0, 0.5])  # hand: 450 kW keeps V1 at 0.953 pu
    message = explain_infeasible(strict, loads, None, "socp", period_h=0.5)
    assert "hour 0.5 (period 1)" in message and "needs 0.900 pu" in message  # hand: V1 0.9
    assert explain_infeasible(strict, loads * 0.5, None, "socp") is None
    thin = radial_network(tiny_net(max_i_ka=0.05), v_min_pu=0.85, v_max_pu=1.1)
    with pytest.raises(NetworkInfeasible, match=r"line 0 \(bus 0-1\) needs 0.0577 kA, above "
                                                r"its limit 0.05 kA"):  # hand: I = 0.0577 kA
        solve_flow(thin, thin.loads_kw, None, "socp")


def test_networks_the_model_cannot_hold_are_refused():
    looped = load_network("case33bw")
    looped.line.at[33, "in_service"] = True  # tie line 8-14 closes a loop
    # published tie 33 (8-14) closes 8-9-10-11-12-13-14: lines 8-13 and 33
    with pytest.raises(ValueError, match="not radial: in-service lines 8, 9, 10, 11, 12, 13, "
                                         "33 form a loop"):
        radial_network(looped, 0.9, 1.05)
    with pytest.raises(ValueError, match="has transformers; the branch-flow model covers"):
        radial_network(load_network("cigre_lv"), 0.9, 1.05)
    two_grids = load_network("case33bw")
    pp.create_ext_grid(two_grids, 17)
    with pytest.raises(ValueError, match="2 in-service ext_grids"):
        radial_network(two_grids, 0.9, 1.05)


def test_add_network_vectorises_over_periods(net33):
    block = add_network(net33, np.outer(net33.loads_kw, np.ones(24)),
                        np.outer(net33.loads_kvar, np.ones(24)), "socp")
    assert len(block.constraints) == 8  # root, 2 flows, drop, cone, 2 voltage bounds, line
    assert block.v.shape == (33, 24) and block.losses_kw.shape == (24,)


def peers33(network, buses, periods=3, **options) -> OperatorModel:
    """Operator on case33bw with the published loads as background (constant)."""
    return OperatorModel(network, periods, 1.0, buses, background_kw=network.loads_kw,
                         background_kvar=network.loads_kvar, **options)


def test_operator_follows_feasible_proposals(net33):
    buses = [3, 7, 12, 17, 22, 25, 30, 32]
    operator = peers33(net33, buses)
    y = np.random.default_rng(1).uniform(-5, 5, (len(buses), 3))
    result = operator.update(y, 0.0, 10.0)
    # stationarity: ρ(z − y) = −loss price·∂losses/∂z; price 1e-3 €/kWh (the tightening
    # floor), marginal losses < 0.1 kW/kW, ρ = 10 €/kW²h: |z − y| < 1e-5 kW
    assert np.abs(result.z_kw - y).max() < 0.01
    assert result.status == "optimal"
    assert result.import_kw == pytest.approx(net33.loads_kw.sum() + y.sum(0)
                                             + result.losses_kw, abs=1e-3)


def test_operator_holds_voltage_when_proposals_break_it(net33):
    operator = peers33(net33, [17, 1])
    y = np.array([[800.0, 800.0, 0.0], [0.0, 0.0, 0.0]])  # 800 kW more at the feeder's end
    result = operator.update(y, 0.0, 0.05)
    assert result.z_kw[0, 0] < 800.0 - 100.0  # AC: 3.715 MW alone leaves bus 17 at 0.913 pu
    assert result.v_pu.min() >= 0.9 - 1e-6 and result.v_pu.max() <= 1.05 + 1e-6
    assert result.v_pu[net33.bus_index[17], 0] == pytest.approx(0.9, abs=1e-5)  # binds
    ac = load_network("case33bw")  # the operator's dispatch in an AC power flow
    pp.create_loads(ac, [17, 1], p_mw=result.z_kw[:, 0] / 1000)
    pp.runpp(ac, **AC_OPTIONS)
    assert ac.res_bus.vm_pu.min() == pytest.approx(0.9, abs=1e-4)
    assert np.abs(result.loss_gap_kw).max() < 1e-3  # cone tight (observed 2e-4 kW)


def test_operator_is_dpp_and_reuses_its_compiled_problem(net33):
    operator = peers33(net33, [5, 17, 30])
    assert operator.problem.is_dpp()
    first = operator.update(np.full((3, 3), 10.0), 0.1, 1.0)
    compiled = operator.problem._cache.param_prog
    second = operator.update(np.full((3, 3), 20.0), 0.1, 1.0)
    assert operator.problem._cache.param_prog is compiled  # no re-canonicalisation
    assert np.abs(second.z_kw - first.z_kw).min() > 5.0  # y moved 10 kW, z follows
    assert second.z_kw == pytest.approx(20.0 - 0.1 / 1.0, abs=0.01)  # z = y − dual/ρ


def test_operator_without_any_feasible_dispatch_says_why(net33):
    strict = radial_network(load_network("case33bw"), v_min_pu=0.95, v_max_pu=1.05)
    operator = peers33(strict, [0])  # the only peer sits at the root: it cannot help
    with pytest.raises(NetworkInfeasible, match=r"bus 17 voltage needs 0.913 pu, below v_min"):
        operator.update(np.zeros((1, 3)), 0.0, 1.0)  # AC: bus 17 at 0.91309 pu


def test_loss_price_makes_the_operator_cut_losses(net33):
    y = np.full((2, 3), 100.0)  # 100 kW at the far end (bus 17) and near the root (bus 1)
    plain = peers33(net33, [17, 1]).update(y, 0.0, 0.002)
    priced = peers33(net33, [17, 1], loss_price_eur_per_kwh=0.3).update(y, 0.0, 0.002)
    assert plain.v_pu.min() > 0.9 + 1e-3  # no voltage limit binds: only losses move z
    assert priced.losses_kw.sum() < plain.losses_kw.sum() - 1.0
    # the far peer carries the larger marginal losses, so it gives up more
    assert (y - priced.z_kw)[0, 0] > (y - priced.z_kw)[1, 0] > 0
