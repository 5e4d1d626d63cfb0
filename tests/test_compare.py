"""``lemgrid compare``: tiny.yaml run in-process decentralized and centralized, the KPI
table checked against each run's summary.json and against agents.parquet."""

import json

import pandas as pd
import pytest

from lemgrid.scenarios.cli import main
from lemgrid.scenarios.results.report import format_value
from lemgrid.scenarios.run.world import run_scenario
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS

PERIOD_H = 0.25  # tiny.yaml: 96 quarter-hours


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    for mode in ("decentralized", "centralized"):
        s = load_scenario(SCENARIOS / "tiny.yaml",
                          ["runtime.kind=inprocess", f"market.mode={mode}"])
        run_scenario(s, root / mode)
    return root


@pytest.fixture(scope="module")
def table(runs):
    csv = runs / "kpis.csv"
    assert main(["compare", str(runs / "decentralized"), str(runs / "centralized"),
                 "--csv", str(csv)]) == 0
    return pd.read_csv(csv, index_col="kpi")


def summary(runs, mode):
    return json.loads((runs / mode / "summary.json").read_text())


@pytest.mark.parametrize("mode", ["decentralized", "centralized"])
def test_compare_equals_each_summary(runs, table, mode):
    s, column = summary(runs, mode), table[mode]
    assert float(column["total_cost_eur"]) == pytest.approx(s["costs_eur"]["total"], rel=1e-12)
    assert float(column["p2v_traded_kwh"]) == pytest.approx(s["market"]["traded_kwh"],
                                                             rel=1e-12)
    rounds = column["rounds"]
    assert (pd.isna(rounds) if s["market"]["rounds"] is None
            else int(float(rounds)) == s["market"]["rounds"])
    assert column["mode"] == mode


@pytest.mark.parametrize("mode", ["decentralized", "centralized"])
def test_grid_energy_and_self_sufficiency_from_agents(runs, table, mode):
    """import = Σ buy_kw · 0.25 h; self-sufficiency = 1 − import / consumption, where
    consumption = (Σ load_kw + Σ EV ch_kw) · 0.25 h."""
    agents = pd.read_parquet(runs / mode / "agents.parquet")
    import_kwh = agents["buy_kw"].sum() * PERIOD_H
    consumption_kwh = (agents["load_kw"].sum()
                       + agents.loc[agents["kind"] == "ev", "ch_kw"].sum()) * PERIOD_H
    column = table[mode]
    assert float(column["grid_import_kwh"]) == pytest.approx(import_kwh, rel=1e-12)
    assert float(column["grid_export_kwh"]) == pytest.approx(
        agents["sell_kw"].sum() * PERIOD_H, rel=1e-12)
    assert float(column["self_sufficiency"]) == pytest.approx(1 - import_kwh / consumption_kwh,
                                                              rel=1e-12)
    summary = json.loads((runs / mode / "summary.json").read_text())
    losses_kwh = float(column["network_losses_kwh"])
    assert losses_kwh == pytest.approx(summary["grid"]["losses_kwh"], rel=1e-12)
    assert 0 < losses_kwh < import_kwh  # some, and less than what crosses the feeder


def test_compare_without_summary_is_one_line_exit_2(runs, tmp_path, capsys):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    assert main(["compare", str(runs / "decentralized"), str(empty),
                 "--csv", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(empty) in err[0] and "summary.json" in err[0]
    assert not (tmp_path / "x.csv").exists()


def test_a_sweep_needs_a_numeric_field(runs, tmp_path, capsys):
    """``--against`` reads the field from each run's config.yaml: a text field or one
    that is not there is one line, exit 2, and nothing written."""
    for field, why in (("market.mode", "not a number"), ("market.no_such", "no field")):
        assert main(["compare", str(runs / "decentralized"), str(runs / "centralized"),
                     "--csv", str(tmp_path / "x.csv"), "--against", field]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and field in err[0] and why in err[0]
        assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(("value", "cell"), [
    (-1e-17, "0.0000"), (-4.9e-5, "0.0000"), (-5.1e-5, "-0.0001"), (0.12345678, "0.1235"),
    (-123.456, "-123.46"), (1234567.891, "1,234,567.89"), (float("nan"), "—"), (None, "—"),
    (3, "3")])
def test_a_cell_that_rounds_to_zero_has_no_sign(value, cell):
    """The KPI table's cells (format_value): 4 decimals below 100, else 2, by hand; a
    deviation cost summed to −1e-17 (costs that cancel) is 0.0000, not −0.0000."""
    assert format_value(value) == cell
