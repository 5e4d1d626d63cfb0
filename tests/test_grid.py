"""grid: networks, bus mapping and the per-period power flow, on tiny or standard cases."""

import math
from collections import Counter

import networkx as nx
import numpy as np
import pandapower as pp
import pandapower.topology as top
import pytest

from lemgrid.grid.mapping import assign_buses, load_buses
from lemgrid.grid.networks import NETWORKS, case33bw, cigre_lv, feeder11, load_network
from lemgrid.grid.powerflow import GridLimits, GridModel, bus_table, grid_summary, line_table

# --- networks ---------------------------------------------------------------------------


def test_case33bw_structure_and_ampacity():
    net = case33bw()
    assert len(net.bus) == 33
    assert len(net.line) == 37
    assert net.line["in_service"].sum() == 32  # 5 out-of-service tie lines, no switches
    assert list(net.line.index[~net.line["in_service"]]) == [32, 33, 34, 35, 36]
    assert len(net.switch) == 0
    assert (net.line["max_i_ka"] > 0).all() and (net.line["max_i_ka"] < 10).all()
    assert list(net.line["max_i_ka"][:6]) == [0.40] * 5 + [0.20]


def test_case33bw_ampacity_options():
    assert (case33bw(0.3).line["max_i_ka"] == 0.3).all()
    net = case33bw({0: 0.5, 36: 0.1})
    assert net.line.at[0, "max_i_ka"] == 0.5 and net.line.at[36, "max_i_ka"] == 0.1
    assert net.line.at[1, "max_i_ka"] == 0.40
    with pytest.raises(ValueError, match="99"):
        case33bw({99: 0.3})
    with pytest.raises(ValueError, match="positive"):
        case33bw(0.0)


def test_feeder11_is_a_connected_radial_11kv_feeder():
    net = feeder11()
    assert len(net.bus) == 11 and len(net.line) == 10
    assert (net.bus["vn_kv"] == 11.0).all()
    assert list(net.ext_grid["bus"]) == [0]
    graph = top.create_nxgraph(net)
    assert nx.is_tree(graph)  # connected with n - 1 branches
    assert (net.line["max_i_ka"] > 0).all()
    assert list(net.line["name"]) == [f"L{k}" for k in range(1, 11)]


def test_feeder11_pool_case_is_plausible():
    """Consumer totals of the chapter, C(k) at bus k-1, all from the main grid."""
    net = feeder11()
    for bus, p_kw in enumerate([420, 510, 440, 369, 391, 470, 211, 540, 480, 881, 840]):
        pp.create_load(net, bus, p_mw=p_kw / 1000)
    pp.runpp(net, numba=False)
    assert 90 < net.res_line["pl_mw"].sum() * 1000 < 140  # chapter's pool case: 110.76 kW
    assert net.res_bus["vm_pu"].min() > 0.95
    assert net.res_line["loading_percent"].max() < 100


def test_cigre_lv_loads_and_solves():
    net = cigre_lv()
    assert len(net.bus) == 44
    pp.runpp(net, numba=False)
    assert net.converged


def test_load_network_by_name():
    assert set(NETWORKS) == {"case33bw", "feeder11", "cigre_lv", "village_1"}
    assert len(load_network("case33bw", ampacity_ka=0.3).bus) == 33
    with pytest.raises(ValueError, match="case33bw, cigre_lv, feeder11"):
        load_network("ieee13")
    with pytest.raises(ValueError, match="cigre_lv"):
        load_network("cigre_lv", ampacity_ka=0.3)


# --- mapping ----------------------------------------------------------------------------

AGENTS = [f"agent{i}" for i in range(90)]


def test_assign_buses_is_deterministic_and_even():
    net = case33bw()
    first = assign_buses(AGENTS, net, np.random.default_rng(7))
    assert first == assign_buses(AGENTS, net, np.random.default_rng(7))
    assert list(first) == AGENTS
    counts = Counter(first.values())
    assert set(counts) == set(range(1, 33))  # every load bus, never the slack bus 0
    assert set(counts.values()) == {2, 3}  # 90 agents on 32 buses
    others = [assign_buses(AGENTS, net, np.random.default_rng(seed)) for seed in range(3)]
    assert any(other != first for other in others)


def test_assign_buses_honours_explicit_mapping():
    net = feeder11()
    names = [f"a{i}" for i in range(11)]  # 2 explicit on bus 5, 9 for the other 9 buses
    bus_of = assign_buses(names, net, np.random.default_rng(0), explicit={"a0": 5, "a1": 5})
    assert bus_of["a0"] == 5 and bus_of["a1"] == 5
    counts = Counter(bus_of.values())
    assert counts[5] == 2 and all(counts[bus] == 1 for bus in range(1, 11) if bus != 5)


def test_assign_buses_rejects_bad_explicit_mapping():
    net = feeder11()
    with pytest.raises(ValueError, match="'a1'.*bus 42"):
        assign_buses(["a0", "a1"], net, np.random.default_rng(0), explicit={"a1": 42})
    with pytest.raises(ValueError, match="'ghost'"):
        assign_buses(["a0"], net, np.random.default_rng(0), explicit={"ghost": 1})


def test_load_buses_of_cigre_lv_are_low_voltage():
    net = cigre_lv()
    buses = load_buses(net)
    assert len(buses) == 40 and (net.bus.loc[buses, "vn_kv"] == 0.4).all()


# --- power flow -------------------------------------------------------------------------


def _unloaded_case33bw():
    net = case33bw()
    net.load[["p_mw", "q_mvar"]] = 0.0  # floats: an int 0 would make the columns int64
    return net


def test_energy_balance_with_one_far_agent():
    model = GridModel(_unloaded_case33bw(), {"far": 17})
    result = model.step(0, {"far": 100.0})
    assert result.converged
    assert result.vm_pu[17] < 1.0
    assert result.losses_kw > 0
    assert result.p_slack_kw == pytest.approx(100.0 + result.losses_kw, abs=1e-6)


def test_network_loads_kept_or_dropped():
    kept = GridModel(case33bw(), {"far": 17}).step(0, {"far": 100.0})
    assert kept.p_slack_kw == pytest.approx(3715.0 + 100.0 + kept.losses_kw, abs=1e-6)
    dropped = GridModel(case33bw(), {"far": 17}, keep_network_loads=False)
    zeroed = GridModel(_unloaded_case33bw(), {"far": 17})
    assert len(dropped.net.load) == 1
    np.testing.assert_allclose(dropped.step(0, {"far": 100.0}).vm_pu,
                               zeroed.step(0, {"far": 100.0}).vm_pu, rtol=0, atol=1e-12)


def test_zero_injection_keeps_the_ext_grid_setpoint():
    net = _unloaded_case33bw()
    net.ext_grid.at[0, "vm_pu"] = 1.02
    model = GridModel(net, {"a": 17, "b": 5})
    model.step(0, {"a": 300.0, "b": -50.0})  # then from results, not from flat start
    result = model.step(1, {"a": 0.0, "b": 0.0})
    np.testing.assert_allclose(result.vm_pu, 1.02, rtol=0, atol=1e-9)
    assert result.voltage_violations == 0 and result.line_violations == 0


def _two_bus_net(r_ohm: float, max_i_ka: float):
    net = pp.create_empty_network(sn_mva=1.0)
    pp.create_buses(net, 2, vn_kv=0.4)
    pp.create_ext_grid(net, 0, vm_pu=1.0)
    pp.create_line_from_parameters(net, 0, 1, length_km=1.0, r_ohm_per_km=r_ohm,
                                   x_ohm_per_km=0.0, c_nf_per_km=0.0, max_i_ka=max_i_ka)
    return net


def test_two_bus_voltage_and_violations_by_hand():
    """0.4 kV, 1 MVA base: z_base = 0.16 ohm; R = 0.1 ohm -> r = 0.625 pu; P = 50 kW ->
    p = 0.05 pu. With x = 0 and q = 0, V2 is real: V2^2 - V1 V2 + p r = 0, V1 = 1, so
    V2 = (1 + sqrt(1 - 4 p r)) / 2 = (1 + sqrt(0.875)) / 2 = 0.967707...; the line current
    is p / V2 pu = 0.05 / V2 MW / (sqrt(3) 0.4 kV) = 0.074595 kA, i.e. 106.56 % of 70 A.
    """
    v2_pu = (1 + math.sqrt(1 - 4 * 0.05 * 0.625)) / 2
    i_ka = 0.05 / v2_pu / (math.sqrt(3) * 0.4)
    net = _two_bus_net(r_ohm=0.1, max_i_ka=0.07)
    result = GridModel(net, {"load": 1}).step(0, {"load": 50.0})
    assert result.vm_pu[1] == pytest.approx(v2_pu, abs=1e-6)
    assert result.loading_pct[0] == pytest.approx(100 * i_ka / 0.07, abs=1e-6)
    assert result.losses_kw == pytest.approx(3 * i_ka**2 * 0.1 * 1000, abs=1e-6)
    assert (result.voltage_violations, result.line_violations) == (0, 1)
    strict = GridLimits(v_min_pu=v2_pu + 0.001, max_loading_pct=110.0)
    result = GridModel(net, {"load": 1}, limits=strict).step(0, {"load": 50.0})
    assert (result.voltage_violations, result.line_violations) == (1, 0)


def test_failed_power_flow_is_recorded_and_the_model_goes_on():
    model = GridModel(feeder11(), {"big": 10, "small": 4})
    results = [model.step(0, {"big": 100.0}),
               model.step(1, {"big": 1e6}),  # 1000 MW on an 11 kV feeder
               model.step(2, {"big": 100.0, "small": 50.0})]
    assert [result.converged for result in results] == [True, False, True]
    failed = results[1]
    assert np.isnan(failed.vm_pu).all() and np.isnan(failed.loading_pct).all()
    assert math.isnan(failed.losses_kw) and failed.voltage_violations == 0
    assert results[2].vm_pu[10] < results[2].vm_pu[1] < 1.0
    summary = grid_summary(results, model.limits, "feeder11")
    assert summary["pf_failures"] == 1
    assert summary["v_min_pu"] == pytest.approx(float(np.min(results[2].vm_pu)))
    assert not math.isnan(summary["max_loading_pct"])


def test_background_load_and_power_factor():
    net = _unloaded_case33bw()
    background_kw = np.zeros((2, 33))
    background_kw[1, 10] = 200.0
    model = GridModel(net, {"a": 3}, background_kw=background_kw, power_factor=0.95)
    quiet, busy = model.step(0, {"a": 10.0}), model.step(1, {"a": 10.0})
    assert busy.p_slack_kw == pytest.approx(210.0 + busy.losses_kw, abs=1e-6)
    assert quiet.p_slack_kw == pytest.approx(10.0 + quiet.losses_kw, abs=1e-6)
    _, q_mvar = model.load_powers(1, {"a": 10.0})
    assert q_mvar.sum() == pytest.approx(0.210 * math.tan(math.acos(0.95)))
    with pytest.raises(ValueError, match="period 2"):
        model.step(2, {})
    with pytest.raises(ValueError, match="ghost"):
        model.step(0, {"ghost": 1.0})
    with pytest.raises(ValueError, match="non-finite.*'a'"):
        model.step(0, {"a": math.nan})
    with pytest.raises(ValueError, match="33 buses"):
        GridModel(net, {"a": 3}, background_kw=np.zeros(32))


def test_tables_and_summary():
    model = GridModel(feeder11(), {"a": 8})
    results = [model.step(period, {"a": 3000.0}) for period in range(3)]
    buses, lines = bus_table(results), line_table(results)
    assert list(buses.columns) == ["period", "bus", "vm_pu"] and len(buses) == 3 * 11
    assert list(lines.columns) == ["period", "line", "loading_pct"] and len(lines) == 3 * 10
    assert buses["bus"].tolist()[:11] == list(range(11))
    summary = grid_summary(results, GridLimits(v_min_pu=0.99), "feeder11")
    assert set(summary) == {"network", "v_min_pu", "v_max_pu", "max_loading_pct",
                            "voltage_violations", "line_violations", "max_trafo_loading_pct",
                            "max_reverse_flow_kw", "trafo_violations", "pf_failures",
                            "losses_kwh"}
    # 3 equal quarter-hour periods: 3 × losses_kw / 4
    assert summary["losses_kwh"] == pytest.approx(3 * results[0].losses_kw / 4, rel=1e-12)
    assert results[0].losses_kw > 0
    assert summary["v_max_pu"] == pytest.approx(1.0)
    assert summary["voltage_violations"] == 3 * int((results[0].vm_pu < 0.99).sum()) > 0
    assert summary["pf_failures"] == 0


def test_summary_of_no_converged_period_has_no_extremes():
    model = GridModel(feeder11(), {"a": 8})
    summary = grid_summary([model.step(0, {"a": 1e6})], model.limits, "feeder11")
    assert summary["v_min_pu"] is None and summary["max_loading_pct"] is None
    assert summary["pf_failures"] == 1


def test_lightsim2grid_gives_pandapowers_voltages():
    """grid.solver: lightsim2grid against pandapower's Newton-Raphson (the second method)
    on case33bw, 24 periods of seeded loads on five agents, recycle and warm starts as a
    run has them: every bus voltage within 1e-6 pu, every line loading within 1e-4 %."""
    rng = np.random.default_rng(3)
    bus_of = {f"a{k}": b for k, b in enumerate((5, 12, 17, 24, 31))}
    models = [GridModel(case33bw(), bus_of, solver=s) for s in ("pandapower", "lightsim2grid")]
    for t in range(24):
        p_kw = {a: float(rng.uniform(-50, 150)) for a in bus_of}
        ref, other = (m.step(t, p_kw) for m in models)
        assert ref.converged and other.converged
        np.testing.assert_allclose(other.vm_pu, ref.vm_pu, rtol=0, atol=1e-6)
        np.testing.assert_allclose(other.loading_pct, ref.loading_pct, rtol=0, atol=1e-4)


def test_an_unknown_power_flow_solver_is_refused():
    with pytest.raises(ValueError, match="allowed: lemgrid, pandapower, lightsim2grid"):
        GridModel(case33bw(), {"a": 5}, solver="newton")


RESULT_ARRAYS = ("vm_pu", "va_degree", "bus_p_mw", "loading_pct", "i_ka", "trafo_p_mw",
                 "trafo_loading_pct")
RESULT_FIGURES = ("losses_kw", "p_slack_kw", "voltage_violations", "line_violations",
                  "trafo_violations")


def same_periods(ref, other, atol: float, atol_kw: float) -> None:
    """Two solvers' PeriodResults equal field by field (NaN where neither converged): the
    arrays (pu, degrees, MW, kA, %) within ``atol``, the figures in kW within ``atol_kw``."""
    assert other.converged == ref.converged
    for name in RESULT_ARRAYS:
        np.testing.assert_allclose(getattr(other, name), getattr(ref, name), rtol=0, atol=atol,
                                   err_msg=name)
    for name in RESULT_FIGURES:
        assert getattr(other, name) == pytest.approx(getattr(ref, name), abs=atol_kw,
                                                     nan_ok=True)


@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_the_array_power_flow_gives_pandapowers_results(network):
    """grid.solver: lemgrid (Newton-Raphson on arrays, grid/newton.py) against pandapower's
    power flow and result tables (the second method) on every shipped network: 24 periods
    of seeded loads and generation on two agents per load bus, lagging power factor 0.95
    (so reactive power too), warm starts as a run has them; every result of every period
    equal within 1e-9 (voltages in pu, angles in degrees, bus powers in MW, currents in
    kA, loadings in %) and the losses and the slack's power within 1e-6 kW (both solvers
    stop at a mismatch below 1e-10 pu: 1e-6 kW on case33bw's 10 MVA base), the same
    periods converged, and the arrays did the work after the first period.
    cigre_lv has buses joined by closed switches and three transformers; case33bw has
    five out-of-service lines; on village_1 the largest loads make some periods fail."""
    net = load_network(network)
    buses = [b for b in net.bus.index if b not in set(net.ext_grid.bus)]
    bus_of = {f"a{k}": buses[(7 * k) % len(buses)] for k in range(2 * len(buses))}
    models = {s: GridModel(net, bus_of, solver=s, power_factor=0.95)
              for s in ("pandapower", "lemgrid")}
    rng = np.random.default_rng(11)
    built = 0
    for t in range(24):
        p_kw = {a: float(rng.uniform(-20, 30)) for a in bus_of}
        same_periods(models["pandapower"].step(t, p_kw), models["lemgrid"].step(t, p_kw),
                     atol=1e-9, atol_kw=1e-6)
        built += models["lemgrid"]._arrays is not None
    assert built >= 12


def test_a_net_with_equipment_the_arrays_do_not_model_runs_pandapowers_power_flow():
    """A generator (a PV bus) is outside grid/newton.py: the lemgrid solver runs
    pandapower's power flow every period and gives its results to the last digit."""
    net = case33bw()
    pp.create_gen(net, 17, p_mw=0.3, vm_pu=1.0)
    models = [GridModel(net, {"a": 5, "b": 30}, solver=s) for s in ("pandapower", "lemgrid")]
    for t in range(4):
        p_kw = {"a": 100.0 * t, "b": -50.0 * t}
        same_periods(*(m.step(t, p_kw) for m in models), atol=0.0, atol_kw=0.0)
    assert models[1]._arrays is None


@pytest.mark.parametrize("solver", ["lemgrid", "pandapower"])
def test_a_prepared_model_gives_the_unprepared_ones_results(solver):
    """GridModel.prepare (the grid simulator runs it at create) solves the net's own loads
    once and keeps no result; the periods after it equal an unprepared model's (the
    second method: its first period is pandapower's full run from a flat start) within
    the power flow's tolerance, 1e-9 in pu, degrees, MW, kA and % and 1e-6 kW, and with
    lemgrid's solver the first period already runs on the arrays."""
    net = case33bw()
    bus_of = {"a": 5, "b": 17, "c": 30}
    prepared, plain = (GridModel(net, bus_of, solver=solver, power_factor=0.95)
                       for _ in range(2))
    prepared.prepare()
    assert (prepared._arrays is not None) == (solver == "lemgrid") and not prepared._rebuild
    for t in range(3):
        p_kw = {"a": 80.0 * t, "b": -40.0, "c": 120.0}
        same_periods(plain.step(t, p_kw), prepared.step(t, p_kw), atol=1e-9, atol_kw=1e-6)


def test_pandapower_helpers_run_uncompiled():
    """pandapower compiles its in-service selection with numba whenever numba imports
    (lemgrid installs it for the bilateral netting), which cost every process's first
    power flow 0.45 s of loading numba's compiler: lemgrid's power flow takes those
    helpers back to their Python functions (the grid tests above check the results)."""
    import importlib

    from lemgrid.grid import powerflow

    for name, helpers in powerflow.NUMBA_HELPERS.items():
        module = importlib.import_module(name)
        for helper in helpers:
            assert not hasattr(getattr(module, helper), "py_func"), (name, helper)
