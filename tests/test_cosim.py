"""The ``cosimulators`` section: scenarios/csv_profiles.yaml runs an external CSV
simulator (its own process) that replaces prosumer p1's load and PV profiles, and an
in-process voltage monitor fed by the grid simulator."""

import time

import numpy as np
import pandas as pd
import pytest
import yaml

from lemgrid.scenarios.cli import main
from lemgrid.scenarios.schema import ScenarioError, load_scenario

from .conftest import SCENARIOS

DATA = SCENARIOS / "data" / "fernandes2024"
EXAMPLE = str(SCENARIOS / "csv_profiles.yaml")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cosim") / "run"
    assert main(["run", EXAMPLE, "--out", str(out), "--quiet"]) == 0
    return out


def test_csv_simulator_replaces_p1_profiles(run):
    """p1's load and PV are the CSV's hourly Cluster_0 columns, each hour held for 4
    periods, PV scaled by 4 (read here with pandas, independently of the simulator)."""
    agents = pd.read_parquet(run / "agents.parquet")
    p1 = agents[agents["agent"] == "p1"].sort_values("period")
    load = pd.read_csv(DATA / "cluster_medians.csv")["Cluster_0"].to_numpy()
    pv = pd.read_csv(DATA / "cluster_medians_solar.csv")["Cluster_0"].to_numpy()
    np.testing.assert_allclose(p1["load_kw"], np.repeat(load, 4), rtol=1e-12)
    np.testing.assert_allclose(p1["pv_kw"], 4.0 * np.repeat(pv, 4), rtol=1e-12)
    p2 = agents[agents["agent"] == "p2"]
    assert not np.allclose(p2["load_kw"].to_numpy(), np.repeat(load, 4))  # only p1


def test_monitor_sees_the_grid_every_period(run):
    """The monitor's lowest/highest voltage per period equals grid_bus.parquet's."""
    monitor = pd.read_csv(run / "voltage_monitor.csv")
    bus = pd.read_parquet(run / "grid_bus.parquet").groupby("period")["vm_pu"]
    assert list(monitor["period"]) == list(range(96))
    np.testing.assert_allclose(monitor["v_min_pu"], bus.min(), rtol=1e-12)
    np.testing.assert_allclose(monitor["v_max_pu"], bus.max(), rtol=1e-12)
    assert monitor["buses_below"].sum() == (pd.read_parquet(run / "grid_bus.parquet")
                                            ["vm_pu"] < 0.95).sum()


def test_cosimulator_mistakes_are_one_line(tmp_path, capsys):
    with pytest.raises(ScenarioError) as exc:
        load_scenario(EXAMPLE, ["cosimulators.1.cmd=x"])
    assert exc.value.lines == [(f"{EXAMPLE}: cosimulators.1: give exactly one of python, cmd, "
                               "connect (got python, cmd)")]
    with pytest.raises(ScenarioError) as exc:
        load_scenario(EXAMPLE, ["runtime.kind=inprocess"])
    assert exc.value.lines == [(f"{EXAMPLE}: cosimulators: need runtime.kind distributed and "
                               "market.mode decentralized (they are mosaik simulators)")]
    code = main(["run", EXAMPLE, "--out", str(tmp_path / "o"), "--quiet",
                 "--set", "cosimulators.0.links.0.to=agent:p9"])
    assert code == 2  # refused by validation, before any process starts
    assert capsys.readouterr().err.splitlines() == [
        (f"{EXAMPLE}: cosimulators.0.links.0.to: co-simulator Profiles: agent:p9 names no agent "
         "of the scenario; allowed: agent:NAME with an agent's name, e.g. p1, p2, p3")]
    assert not (tmp_path / "o").exists()


def test_every_simulator_exits_cleanly_with_cosimulators(tmp_path, capfd):
    """A run with an extra co-simulator process (CSVProfile) and an in-process one: every
    simulator and helper process ends without a word on stdout or stderr (no traceback,
    no log line)."""
    assert main(["run", EXAMPLE, "--out", str(tmp_path / "o"), "--quiet"]) == 0
    time.sleep(0.5)  # children flush before they exit
    out, err = capfd.readouterr()
    assert err == "" and out == ""


def _with_cosim(tmp_path, **cosim) -> str:
    """tiny.yaml with one co-simulator (a monitor unless the keyword arguments say
    otherwise), written to tmp_path."""
    raw = yaml.safe_load((SCENARIOS / "tiny.yaml").read_text())
    raw["cosimulators"] = [{"name": "Sim", "model": "Monitor",
                            "entities": [{"path": "{out}/v.csv"}], **cosim}]
    path = tmp_path / "cosim.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def _problems(path) -> list[str]:
    try:
        load_scenario(path)
    except ScenarioError as exc:
        return [line.removeprefix(f"{path}: ") for line in exc.lines]
    return []


SIM_MODULE = """import pathlib
pathlib.Path(__file__).with_suffix(".imported").touch()  # must not run at validation

try:
    from mosaik_api_v3 import Simulator
except ImportError:
    Simulator = object


class Sim(Simulator):
    def init(self, sid, **params):
        setattr(self, "sid", sid)  # a method's setattr binds nothing at the top level


from lemgrid.scenarios.cosim.monitor import VoltageMonitor as Monitor2
"""


def test_a_python_start_is_found_without_importing_it(tmp_path, monkeypatch):
    """A module's classes and names are read from its source: Sim (a class), Monitor2
    (re-exported) and Simulator (bound in try/except) are there, Sym is not; the module's
    top-level code never ran (no .imported file)."""
    (tmp_path / "mysims.py").write_text(SIM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("Sim", "Monitor2", "Simulator"):
        assert _problems(_with_cosim(tmp_path, python=f"mysims:{name}")) == []
    assert _problems(_with_cosim(tmp_path, python="mysims:Sym")) == [
        ("cosimulators.0.python: co-simulator Sim: module mysims has no 'Sym'; allowed: a "
         "class it defines: Sim")]
    assert not (tmp_path / "mysims.imported").exists()
    assert _problems(_with_cosim(tmp_path, python="mysims.Sim")) == [
        ("cosimulators.0.python: co-simulator Sim: 'mysims.Sim' is not of the form "
         "module:Class; allowed: module:Class, e.g. lemgrid.scenarios.cosim.monitor:VoltageMonitor")]
    assert _problems(_with_cosim(tmp_path, python="nopackage.mysims:Sim")) == [
        ("cosimulators.0.python: co-simulator Sim: no module named 'nopackage.mysims'; "
         "allowed: module:Class, a module this Python can import")]


@pytest.mark.parametrize("source", ["from lemgrid.scenarios.cosim.monitor import *\n",
                                    "def __getattr__(name):\n    return object\n",
                                    "globals()['Sim'] = object\n"])
def test_a_module_whose_source_cannot_tell_is_left_to_the_run(source, tmp_path, monkeypatch):
    """A star import, a module __getattr__ or globals() may make any name: not refused."""
    (tmp_path / "dynsims.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _problems(_with_cosim(tmp_path, python="dynsims:Anything")) == []


def test_files_a_cosimulator_reads_must_exist(tmp_path):
    """Inputs (path, *_path, *file, at any depth of the parameters) must exist; files it
    writes ({out}/..., keys starting with out) and a connected simulator's (its own host's)
    are not checked."""
    (tmp_path / "here.csv").write_text("hour,kW\n")
    path = _with_cosim(tmp_path, cmd="mysim %(addr)s",
                       sim_params={"datafile": "missing.csv", "output_file": "new.csv",
                                   "log_path": "{out}/log.txt"},
                       entities=[{"path": "here.csv"}, {"sources": [{"path": "gone.csv"}]}])
    allowed = ("allowed: an existing file (a relative path is taken from the scenario file's "
               "folder), or {out}/NAME for a file it writes in the results folder")
    assert _problems(path) == [
        (f"cosimulators.0.sim_params.datafile: co-simulator Sim: no file "
         f"{tmp_path}/missing.csv; {allowed}"),
        (f"cosimulators.0.entities.1.sources.0.path: co-simulator Sim: no file "
         f"{tmp_path}/gone.csv; {allowed}")]
    assert _problems(_with_cosim(tmp_path, connect="sims.example:5678",
                                 sim_params={"datafile": "missing.csv"})) == []
