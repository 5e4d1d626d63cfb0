"""Transformers in the AC grid check: power at the LV terminal, loading and reverse flow
against GridLimits, by hand on a one-transformer net; the summary keys, the tables, the
simulator's outputs and the report's violations; case33bw (no transformer) unchanged.

The net: an ext_grid holds a 20 kV bus at 1.0 pu; one 0.1 MVA 20/0.4 kV transformer (vk 4 %,
vkr 1 %, no iron losses and no magnetising current) feeds a 0.4 kV bus where one agent is
connected and nothing else. The agent's power is the only injection at the LV bus, so the
power balance there is: what the agent exports (or draws) is exactly what flows through
the transformer's LV terminal. Exporting 50 kW at unity power factor, the transformer
delivers −0.05 MW into its LV network (res_trafo.p_lv_mw = +0.05 MW flows into it); drawing
150 kW, it delivers +0.15 MW. Without shunt branches the transformer is a series impedance:
the same per-unit current at both terminals, so pandapower's current loading
max(i_hv·vn_hv, i_lv·vn_lv)·√3 / sn_mva equals |S_hv| / (vm_hv · sn_mva) = |S_hv| / sn_mva
with the HV bus at 1.0 pu.
"""

import math

import numpy as np
import pandapower as pp
import pandas as pd
import pytest

from lemgrid.grid.networks import case33bw
from lemgrid.grid.powerflow import (
    GridLimits,
    GridModel,
    grid_summary,
    trafo_rating_mva,
    trafo_table,
)
from lemgrid.grid.simulator import OUTPUT_ATTRS, GridSimulator
from lemgrid.scenarios.results.report import Run, read_trafo_table, violations
from lemgrid.scenarios.run.distributed import GRID_OUTPUTS, _grid_results
from lemgrid.scenarios.run.network import grid_limits
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS

SN_MVA = 0.1
EXPORT = {"agent": -50.0}  # kW: the agent's net consumption, negative when exporting
IMPORT = {"agent": 150.0}


def _net() -> pp.pandapowerNet:
    net = pp.create_empty_network()
    hv = pp.create_bus(net, vn_kv=20.0)
    lv = pp.create_bus(net, vn_kv=0.4)
    pp.create_ext_grid(net, hv, vm_pu=1.0)
    pp.create_transformer_from_parameters(net, hv, lv, sn_mva=SN_MVA, vn_hv_kv=20.0,
                                          vn_lv_kv=0.4, vkr_percent=1.0, vk_percent=4.0,
                                          pfe_kw=0.0, i0_percent=0.0)
    return net


def _model(**limits) -> GridModel:
    return GridModel(_net(), {"agent": 1}, limits=GridLimits(**limits))


def _hv_loading_pct(model: GridModel) -> float:
    res = model.net.res_trafo.iloc[0]
    return 100.0 * math.hypot(res["p_hv_mw"], res["q_hv_mvar"]) / SN_MVA


def test_export_is_reverse_flow_at_the_lv_terminal():
    """50 kW exported: −0.05 MW delivered into the LV network. Reverse limit 20 % of
    0.1 MVA = 20 kW < 50 kW: one violation; 60 % = 60 kW: none; 50 % = 50 kW: the flow
    is at the limit, within the 1e-9 MW tolerance: none."""
    model = _model(max_reverse_pct=20.0)
    result = model.step(0, EXPORT)
    assert result.converged
    assert result.trafo_p_mw.shape == (1,)
    assert result.trafo_p_mw[0] == pytest.approx(-0.05, abs=1e-9)
    assert result.trafo_loading_pct[0] == pytest.approx(_hv_loading_pct(model), rel=1e-9)
    # ~50 kVA of 100 kVA; |S_hv| is the export less the transformer's losses
    assert 49.0 < result.trafo_loading_pct[0] < 50.0
    assert result.trafo_violations == 1
    assert _model(max_reverse_pct=60.0).step(0, EXPORT).trafo_violations == 0
    assert _model(max_reverse_pct=50.0).step(0, EXPORT).trafo_violations == 0
    assert _model(max_reverse_pct=0.0).step(0, {"agent": -0.01}).trafo_violations == 1
    assert _model(max_reverse_pct=0.0).step(0, IMPORT).trafo_p_mw[0] > 0  # not reverse


def test_import_above_the_loading_limit():
    """150 kW drawn through a 100 kVA transformer: loading 100·|S_hv|/sn_mva > 150 %
    (the losses come on top): a violation at 100 %, none at 200 %; no reverse flow, so
    even max_reverse_pct 0 adds none."""
    model = _model(max_reverse_pct=0.0)
    result = model.step(0, IMPORT)
    assert result.trafo_p_mw[0] == pytest.approx(0.15, abs=1e-9)
    assert result.trafo_loading_pct[0] == pytest.approx(_hv_loading_pct(model), rel=1e-9)
    assert 150.0 < result.trafo_loading_pct[0] < 160.0
    assert result.trafo_violations == 1
    assert _model(max_loading_pct=200.0, max_reverse_pct=0.0).step(0, IMPORT) \
        .trafo_violations == 0


def test_failed_power_flow_has_nan_transformer_results():
    result = _model().step(0, {"agent": 1e6})  # 1000 MW through 0.1 MVA
    assert not result.converged and result.trafo_violations == 0
    assert result.trafo_p_mw.shape == result.trafo_loading_pct.shape == (1,)
    assert np.isnan(result.trafo_p_mw).all() and np.isnan(result.trafo_loading_pct).all()


def test_summary_recounts_against_its_limits():
    """Export 50 kW, import 150 kW, a failed period. At 20 % reverse and 100 % loading
    both converged periods violate; at 60 % and 200 %, none."""
    model = _model()
    results = [model.step(0, EXPORT), model.step(1, IMPORT), model.step(2, {"agent": 1e6})]
    assert [r.trafo_violations for r in results] == [0, 1, 0]
    rating = model.trafo_rating_mva
    assert rating.tolist() == [SN_MVA]
    tight = grid_summary(results, GridLimits(max_reverse_pct=20.0), "tiny", 0.25, rating)
    assert tight["trafo_violations"] == 2
    assert tight["max_reverse_flow_kw"] == pytest.approx(50.0, abs=1e-6)
    assert tight["max_trafo_loading_pct"] == results[1].trafo_loading_pct[0]
    assert tight["pf_failures"] == 1
    loose = grid_summary(results, GridLimits(max_loading_pct=200.0, max_reverse_pct=60.0),
                         "tiny", 0.25, rating)
    assert loose["trafo_violations"] == 0
    imports = grid_summary(results[1:2], GridLimits(), "tiny", 0.25, rating)
    assert imports["max_reverse_flow_kw"] == 0.0
    failed = grid_summary(results[2:], GridLimits(), "tiny", 0.25, rating)
    assert failed["max_trafo_loading_pct"] is None and failed["trafo_violations"] == 0
    with pytest.raises(ValueError, match="0 transformers, the results 1"):
        grid_summary(results, GridLimits(), "tiny")


def test_trafo_table():
    model = _model()
    results = [model.step(0, EXPORT), model.step(1, IMPORT)]
    table = trafo_table(results)
    assert list(table.columns) == ["period", "trafo", "p_kw", "loading_pct"]
    assert table["period"].tolist() == [0, 1] and table["trafo"].tolist() == [0, 0]
    assert table["p_kw"].to_numpy() == pytest.approx([-50.0, 150.0], abs=1e-6)
    assert table["loading_pct"].tolist() == [r.trafo_loading_pct[0] for r in results]


def test_case33bw_has_no_transformer_results():
    model = GridModel(case33bw(), {"a": 17})
    result = model.step(0, {"a": -100.0})
    assert result.converged and result.trafo_violations == 0
    assert result.trafo_p_mw.shape == result.trafo_loading_pct.shape == (0,)
    assert model.trafo_ids == [] and model.trafo_rating_mva.shape == (0,)
    summary = grid_summary([result], model.limits, "case33bw")
    assert summary["max_trafo_loading_pct"] is None and summary["max_reverse_flow_kw"] is None
    assert summary["trafo_violations"] == 0
    assert trafo_table([result]).empty


def test_limits_validate_the_reverse_share():
    for bad in (150.0, -1.0):
        with pytest.raises(ValueError, match="max_reverse_pct"):
            GridLimits(max_reverse_pct=bad)
    assert GridLimits(max_reverse_pct=0.0).max_reverse_pct == 0.0


def test_scenario_reverse_flow_reaches_the_limits():
    s = load_scenario(SCENARIOS / "tiny.yaml", ["grid.reverse_flow_pct=30"])
    assert grid_limits(s).max_reverse_pct == 30.0


def test_simulator_outputs_and_summary():
    """cigre_lv has three transformers (0.5, 0.15 and 0.3 MVA)."""
    sim = GridSimulator()
    sim.init("Grid-0")
    sim.create(1, "Grid", network="cigre_lv", bus_of={"alice": 3},
               limits={"max_reverse_pct": 10.0})
    sim.step(0, {"grid": {"p_kw": {"Agents-0.alice": -80.0}}}, max_advance=0)
    data = sim.get_data({"grid": ["trafo_p_mw", "trafo_loading_pct", "trafo_violations"]})
    grid = data["grid"]
    assert len(grid["trafo_p_mw"]) == len(grid["trafo_loading_pct"]) == 3
    assert grid["trafo_p_mw"][0] == pytest.approx(-0.08, abs=1e-3)  # less the lines' losses
    assert grid["trafo_violations"] == 1  # ~80 kW back through trafo 0, limit 50 kW
    assert {"trafo_p_mw", "trafo_loading_pct", "trafo_violations"} <= set(OUTPUT_ATTRS)
    assert set(OUTPUT_ATTRS) >= set(GRID_OUTPUTS)
    summary = sim.get_summary()
    assert summary["trafo_violations"] == 1
    assert summary["max_reverse_flow_kw"] == pytest.approx(-1000.0 * grid["trafo_p_mw"][0])
    assert trafo_rating_mva(sim.model.net).tolist() == [0.5, 0.15, 0.3]


def test_distributed_rebuilds_transformer_results():
    rows = [(0, "grid", "converged", True), (0, "grid", "trafo_p_mw", [-0.05]),
            (0, "grid", "trafo_loading_pct", [50.5]), (0, "grid", "trafo_violations", 1),
            (900, "grid", "converged", False), (900, "grid", "trafo_p_mw", [None]),
            (900, "grid", "trafo_loading_pct", [None]), (900, "grid", "trafo_violations", 0)]
    first, failed = _grid_results(rows, 900, 96)[0]
    assert first.trafo_p_mw.tolist() == [-0.05] and first.trafo_loading_pct.tolist() == [50.5]
    assert first.trafo_violations == 1
    assert np.isnan(failed.trafo_p_mw).all() and failed.trafo_violations == 0


def _run(tmp_path, trafo: pd.DataFrame, reverse_flow_pct: float | None) -> Run:
    grid = {"network": "cigre_lv", "v_min_pu": 0.95, "v_max_pu": 1.05, "max_loading_pct": 100.0}
    if reverse_flow_pct is not None:
        grid["reverse_flow_pct"] = reverse_flow_pct
    empty = pd.DataFrame()
    bus = pd.DataFrame({"day": [0], "period": [0], "bus": [0], "vm_pu": [1.0]})
    line = pd.DataFrame({"day": [0], "period": [0], "line": [0], "loading_pct": [1.0]})
    return Run(tmp_path, {}, {"grid": grid}, empty, empty, empty, bus, line, trafo)


def test_report_lists_transformer_violations(tmp_path):
    """cigre_lv's trafo 0 is rated 0.5 MVA: 20 % reverse flow is 100 kW. Period 0 feeds
    back 150 kW (a violation), period 1 exactly 100 kW (none), period 2 loads trafo 1 to
    120 % (a violation)."""
    trafo = pd.DataFrame({"day": [0, 0, 0], "period": [0, 1, 2], "trafo": [0, 0, 1],
                          "p_kw": [-150.0, -100.0, 180.0], "loading_pct": [30.0, 20.0, 120.0]})
    table = violations(_run(tmp_path, trafo, 20.0))
    assert table["element"].tolist() == ["transformer 0", "transformer 1"]
    assert table["value"].tolist() == [150.0, 120.0]
    assert table["limit"].tolist() == ["reverse flow ≤ 100 kW", "≤ 100.0 %"]
    assert len(violations(_run(tmp_path, trafo, None))) == 1  # older results: 100 %


def test_older_results_have_an_empty_transformer_table(tmp_path):
    table = read_trafo_table(tmp_path)
    assert table.empty and list(table.columns) == ["day", "period", "trafo", "p_kw",
                                                   "loading_pct"]
