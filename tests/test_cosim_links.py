"""Co-simulators as the mosaik ecosystem ships them (scenarios/mosaik_households_pv.yaml):
mosaik-householdsim's child entities (House_N, P_out in W) drive three prosumers' loads,
and mosaik-csv's DNI[W/m2] → mosaik-pv's panel (a chain of two co-simulators) → p1's
PV, P[MW] converted to kW. The run reads profile and weather files this test writes; the
expected values come from those files (W / 1000) and from mosaik-pv's own panel model
called directly (MW × 1000). Also: naming entities (index path, eid, type) and the unit
factors, worked out by hand."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mosaik_components.pv.pvpanel import PVpanel

from lemgrid.scenarios.cli import main
from lemgrid.scenarios.cosim.entities import describe, find, of_type
from lemgrid.scenarios.cosim.units import End, conversion
from lemgrid.scenarios.schema import ScenarioError, load_scenario

from .conftest import SCENARIOS

EXAMPLE = str(SCENARIOS / "mosaik_households_pv.yaml")
START = "2026-06-15 00:00"
PANEL = {"latitude": 38.72, "area": 20, "efficiency": 0.2, "el_tilt": 30, "az_tilt": 0}


def _households(path, watts: np.ndarray) -> None:
    """mosaik-householdsim's profile format: meta, id_list, attrs, then one row per 15 min."""
    lines = ["# meta", json.dumps({"start_date": START, "resolution": 15, "unit": "W",
                                   "num_profiles": watts.shape[1]}),
             "# id_list", json.dumps({"lemgrid": [f"n{k}" for k in range(watts.shape[1])]}),
             "# attrs", "num_hh,1,1,1", "num_residents,1,2,3", "# profiles"]
    dates = pd.date_range(START, periods=len(watts), freq="15min")
    lines += [f"{d:%Y-%m-%d %H:%M}," + ",".join(f"{v:.1f}" for v in row)
              for d, row in zip(dates, watts)]
    path.write_text("\n".join(lines) + "\n")


def _weather(path, dni: np.ndarray) -> None:
    """mosaik-csv's format: the model name, then Date and the attribute's column."""
    dates = pd.date_range(START, periods=len(dni), freq="15min")
    with open(path, "w") as f:
        f.write("Weather\n")
        pd.DataFrame({"Date": dates.strftime("%Y-%m-%d %H:%M:%S"),
                      "DNI[W/m2]": dni}).to_csv(f, index=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ecosystem_files")
    rng = np.random.default_rng(30)
    watts = rng.uniform(150.0, 2500.0, (96, 3)).round(1)
    hours = np.arange(96) / 4
    dni = np.clip(900 * np.sin(np.pi * (hours - 6) / 14), 0, None).round(1)
    _households(folder / "households.csv", watts)
    _weather(folder / "weather.csv", dni)
    return SimpleNamespace(folder=folder, watts=watts, dni=dni)


def _sets(files) -> list[str]:
    return ["--set", f"cosimulators.0.entities.0.profile_file={files.folder}/households.csv",
            "--set", f"cosimulators.1.sim_params.datafile={files.folder}/weather.csv"]


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("ecosystem_sims") / "run"
    assert main(["run", EXAMPLE, "--out", str(out), "--quiet", *_sets(files)]) == 0
    agents = pd.read_parquet(out / "agents.parquet")
    assert json.loads((out / "summary.json").read_text())["notes"] == []
    return {name: a.sort_values("period") for name, a in agents.groupby("agent")}


def test_each_house_drives_one_prosumers_load_in_kw(run, files):
    """House_0, House_1, House_2 (children of ResidentialLoads) → p1, p2, p3 in order
    (each: House, to: template:0): the realised load is the file's W / 1000 in every
    period; the EVs get none."""
    for k, name in enumerate(["p1", "p2", "p3"]):
        np.testing.assert_allclose(run[name]["load_kw"], files.watts[:, k] / 1000, rtol=1e-12)
    assert set(run) == {"p1", "p2", "p3", "ev1", "ev2"}


def test_dni_through_the_panel_model_is_p1s_pv(run, files):
    """Weather → PV → p1: p1's realised PV is mosaik-pv's PVpanel (called here, stepped
    900 s a period as the simulator steps it) in MW × 1000, every period; p2 keeps its
    own PV."""
    panel = PVpanel(start_date=f"{START}:00", **PANEL)
    expected = []
    for value in files.dni:
        expected.append(panel.power(value) * 1000)
        panel.step_time(900)
    assert max(expected) > 2.0  # the panel produces: a real check, not zeros against zeros
    np.testing.assert_allclose(run["p1"]["pv_kw"], expected, rtol=1e-12, atol=1e-12)
    assert not np.allclose(run["p2"]["pv_kw"], expected)


def test_a_wrong_entity_and_a_wrong_attribute_stop_before_the_first_period(files, tmp_path,
                                                                              capsys):
    """House_7 does not exist (three houses): the line says what does; the parent has no
    P_out (the issue's own example, where mosaik's list of errors was cut off): the line
    says which attributes it has. Both at once, exit 2, before any period ran."""
    code = main(["run", EXAMPLE, "--out", str(tmp_path / "o"), "--quiet", *_sets(files),
                 "--set", ('cosimulators.0.links=[{entity: House_7, to: "agent:p1", unit: W, '
                           'attrs: {P_out: load_kw}}, {entity: 0, to: "agent:p2", '
                           'attrs: {P_out: load_kw}}]')])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        ("error: cosimulators.Households.links.0.entity: Households: no entity with eid "
         "'House_7'; allowed: 0 resid_0 (ResidentialLoads) with 0/0–0/2 House_0–House_2 "
         "(House)"),
        ("error: cosimulators.Households.links.1: Households-0.resid_0.P_out → agent:p2.load_kw: "
         "Households-0.resid_0 (ResidentialLoads) has no output 'P_out'; allowed: none (its "
         "children of type House have it: name one by its eid or index path, or link each: "
         "House)")]
    assert not (tmp_path / "o" / "agents.parquet").exists()


def test_a_wrong_agent_attribute_names_what_the_agent_takes(files, tmp_path, capsys):
    """An attribute the agent model lacks is found when mosaik connects (after the agents
    started), in full: source, destination and the agent's attributes."""
    code = main(["run", EXAMPLE, "--out", str(tmp_path / "o"), "--quiet", *_sets(files),
                 "--set", "cosimulators.2.links.0.attrs={\"P[MW]\": pv_kwp}"])
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: cosimulators.PV.links.0: PV-0.PV_0.P[MW] → "
                             "Agents0-0.p1.pv_kwp: Agents0-0.p1 (Agent) takes no input "
                             "'pv_kwp'; allowed: ")
    assert "load_kw" in err[0] and "pv_kw," in err[0]


def test_units_on_links_are_one_line_scenario_errors():
    with pytest.raises(ScenarioError) as exc:
        load_scenario(EXAMPLE, ["cosimulators.0.links.0.unit=W/m2"])
    assert exc.value.lines == [
        (f"{EXAMPLE}: cosimulators.0.links.0: attrs.P_out: W/m2 is irradiance, kW is power: "
         "they do not convert")]
    with pytest.raises(ScenarioError) as exc:
        load_scenario(EXAMPLE, ["cosimulators.2.links.0.attrs={\"P[MWp]\": pv_kw}"])
    assert exc.value.lines[0].startswith(
        f"{EXAMPLE}: cosimulators.2.links.0: attrs.P[MWp]: attribute 'P[MWp]' names unit "
        "'MWp', which lemgrid does not know; allowed: W, kW, MW,")


@pytest.mark.parametrize(("src", "dest", "scale", "factor"), [
    (End("P[MW]", False), End("pv_kw", True), None, 1000.0),  # MW → kW
    (End("P_out", False, "W"), End("load_kw", True), None, 0.001),  # stated W → kW
    (End("net_kw", True), End("P[MW]", False), None, 0.001),  # an agent's kW → MW
    (End("Q[MVar]", False), End("q[kvar]", False), None, 1000.0),  # any case: Mvar
    (End("DNI[W/m2]", False), End("DNI[W/m²]", False), None, 1.0),
    (End("P_out", False), End("load_kw", True), None, 1.0),  # no unit named: as it is
    (End("P[MW]", False), End("load_kw", True), 0.5, 0.5),  # scale replaces units
])
def test_unit_factors(src, dest, scale, factor):
    assert conversion(src, dest, scale) == factor


def test_a_stated_unit_needs_a_unit_on_the_other_end():
    with pytest.raises(ValueError, match="unit W given, but 'P_in' names no unit"):
        conversion(End("P_out", False, "W"), End("P_in", False))


def _entity(eid: str, kind: str, children=()):
    return SimpleNamespace(eid=eid, type=kind, children=list(children))


def test_entities_by_index_path_eid_and_type():
    """One parent with three houses, then a second top-level entity."""
    houses = [_entity(f"House_{k}", "House") for k in range(3)]
    created = [_entity("resid_0", "ResidentialLoads", houses), _entity("meter", "Meter")]
    assert find(created, None) is created[0]
    assert find(created, 1) is created[1]
    assert find(created, "0/2") is houses[2]
    assert find(created, "House_1") is houses[1]
    assert of_type(created, "House") == houses
    assert describe(created) == ("0 resid_0 (ResidentialLoads) with 0/0–0/2 House_0–House_2 "
                                 "(House), 1 meter (Meter)")
    with pytest.raises(LookupError, match=r"^0/3: entity 0 has 3 children; allowed: 0 resid_0"):
        find(created, "0/3")
    with pytest.raises(LookupError, match=r"^2: the co-simulator created 2 entities"):
        find(created, 2)
    with pytest.raises(LookupError, match="no entity of type 'Flat'; allowed: "
                                          "ResidentialLoads, House, Meter"):
        of_type(created, "Flat")
