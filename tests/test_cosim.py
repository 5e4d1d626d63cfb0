"""The ``cosimulators`` section: scenarios/csv_profiles.yaml runs an external CSV
simulator (its own process) that replaces prosumer p1's load and PV profiles, and an
in-process voltage monitor fed by the grid simulator."""

import time

import numpy as np
import pandas as pd
import pytest

from scenarios.cli import main
from scenarios.schema import ScenarioError, load_scenario

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
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: cosimulators.Profiles.links.0: no agent 'p9' in the community")


def test_every_simulator_exits_cleanly_with_cosimulators(tmp_path, capfd):
    """A run with an extra co-simulator process (CSVProfile) and an in-process one: every
    simulator and helper process ends without a word on stdout or stderr (no traceback,
    no log line)."""
    assert main(["run", EXAMPLE, "--out", str(tmp_path / "o"), "--quiet"]) == 0
    time.sleep(0.5)  # children flush before they exit
    out, err = capfd.readouterr()
    assert err == "" and out == ""
