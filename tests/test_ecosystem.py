"""lemgrid among the mosaik ecosystem's own simulators (scenarios/mosaik_ecosystem.yaml):
mosaik-csv's CSV simulator (a process of its own, from PyPI) plays prosumer p1's realised
load per period, and mosaik-csv's CSVWriter records bus voltages and a line loading from
the grid simulator's bus and line entities. Second sources: the CSV read here with pandas,
and the grid simulator's own tables (grid_bus.parquet, grid_line.parquet)."""

import json

import numpy as np
import pandas as pd
import pytest

from lemgrid.scenarios.cli import main

from .conftest import SCENARIOS

EXAMPLE = str(SCENARIOS / "mosaik_ecosystem.yaml")
REALISED = SCENARIOS / "data" / "fernandes2024" / "realised_load_cluster0.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ecosystem") / "run"
    assert main(["run", EXAMPLE, "--out", str(out), "--quiet"]) == 0
    return out


def test_the_realisation_follows_the_csv_per_period(run):
    """p1 planned its day on its own forecast (its quote); every period's realised load is
    the CSV's row, and the connection's power moves with it wherever p1's battery cannot
    take the difference."""
    summary = json.loads((run / "summary.json").read_text())
    assert summary["notes"] == []  # the co-simulation ran to its end
    agents = pd.read_parquet(run / "agents.parquet")
    p1 = agents[agents["agent"] == "p1"].sort_values("period")
    csv = pd.read_csv(REALISED, skiprows=1)  # the first line is mosaik-csv's model name
    np.testing.assert_allclose(p1["load_kw"], csv["load_kw"], rtol=1e-12)
    assert np.abs(p1["net_kw"] - p1["quote_kw"]).max() > 0.1  # realised ≠ planned
    others = agents[agents["agent"] == "p2"]
    assert not np.allclose(others["load_kw"].to_numpy(), csv["load_kw"].to_numpy())


def test_the_csv_writer_records_bus_and_line_entities(run):
    """The CSVWriter's columns (source-attribute) equal the grid simulator's tables for
    bus 8, bus 10 and line 7, every period."""
    recorded = pd.read_csv(run / "bus_voltages.csv")
    assert len(recorded) == 96
    bus = pd.read_parquet(run / "grid_bus.parquet").pivot(index="period", columns="bus",
                                                          values="vm_pu")
    line = pd.read_parquet(run / "grid_line.parquet").pivot(index="period", columns="line",
                                                            values="loading_pct")
    np.testing.assert_allclose(recorded["Grid-0.bus-8-vm_pu"], bus[8], rtol=1e-12)
    np.testing.assert_allclose(recorded["Grid-0.bus-10-vm_pu"], bus[10], rtol=1e-12)
    np.testing.assert_allclose(recorded["Grid-0.line-7-loading_pct"], line[7], rtol=1e-12,
                               atol=1e-12)


def test_a_link_to_a_bus_the_network_lacks_is_one_line(tmp_path, capsys):
    code = main(["run", EXAMPLE, "--out", str(tmp_path / "o"), "--quiet",
                 "--set", "cosimulators.1.links.0.from=bus:99"])
    assert code == 2  # refused by validation, before any process starts
    assert capsys.readouterr().err.splitlines() == [
        (f"{EXAMPLE}: cosimulators.1.links.0.from: co-simulator Recorder: feeder11 has no bus "
         "99; allowed: buses 0–10")]
    assert not (tmp_path / "o").exists()
