"""A mechanism from outside lemgrid: ``tests/plugins/call_auction.py`` is installed as a
throw-away package of its own (its module and a dist-info naming it in the entry-point
group ``lemgrid.mechanisms``) and runs end to end on ``fernandes2024_cigre`` in both runtimes, with its
report and ``compare``; lemgrid's code has no line for it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lemgrid.coordinator.mechanisms.base import MarketData
from lemgrid.coordinator.protocol import OfferBody, RegisterBody
from tests.plugins import call_auction

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "lemgrid_call_auction"
SCENARIO = "fernandes2024_cigre"  # consumers and PV producers: their quotes meet by day


def test_the_auction_by_hand():
    """One 15-minute period, retail buy 0.20 and feed-in 0.05 €/kWh, price weight 0.5: π =
    0.05 + 0.5·0.15 = 0.125 €/kWh. Quotes a +3, b +1, c −2 kW: D = 4, G = 2, M = 2 kW;
    a gets 3·2/4 = 1.5 kW, b 0.5 kW, c sells 2 kW. Bills: a 1.5·0.125·0.25 = 0.046875 €,
    b 0.015625 €, c −0.0625 €; they sum to 0."""
    core = call_auction.CORE
    params = core.params_type().with_data(MarketData((0.2,), (0.05,)))
    roster = {n: RegisterBody(kind="prosumer", periods=1, period_h=0.25) for n in "abc"}
    _, state = core.init(roster, params, 0)
    quotes = {"a": 3.0, "b": 1.0, "c": -2.0}
    _, state, done = core.step({n: OfferBody(quantities_kw={"net": [q]})
                                for n, q in quotes.items()}, state, params)
    clearing = core.clear(state, params)
    bills = core.settle(state, params, {})
    assert done
    assert [clearing[n].position_kw[0] for n in "abc"] == pytest.approx([1.5, 0.5, -2.0])
    assert clearing["a"].prices_eur_per_kwh["net"] == pytest.approx([0.125])
    assert [bills[n].traded_eur[0] for n in "abc"] == pytest.approx([0.046875, 0.015625,
                                                                     -0.0625])


def install(site: Path) -> None:
    """The throw-away package: the module and its metadata, as pip would lay them out."""
    site.mkdir(parents=True)
    shutil.copy(Path(call_auction.__file__), site / f"{PACKAGE}.py")
    meta = site / f"{PACKAGE}-0.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text(
        f"[lemgrid.mechanisms]\ncall_auction = {PACKAGE}:MECHANISM\n")


def lemgrid(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "lemgrid.scenarios.cli", *args], check=False, env=env,
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    site = tmp_path_factory.mktemp("plugin") / "site"
    install(site)
    return site


def test_the_entry_point_registers_it(installed):
    listed = lemgrid(installed, "mechanisms")
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("call_auction"))
    assert f"entry point call_auction = {PACKAGE}:MECHANISM ({PACKAGE} 0.1)" in line
    assert "price_weight" in lemgrid(installed, "mechanisms", "call_auction").stdout
    refused = lemgrid(installed, "validate", "tiny", "--set", "market.mechanism=call_auction",
                      "--set", "market.p2v=true")
    assert refused.returncode == 2
    assert "market.p2v: not a parameter of call_auction (it is one of p2v_rules)" in \
        refused.stderr


def test_it_runs_in_both_runtimes_with_report_and_compare(installed, tmp_path):
    """The same market in process and distributed (the coordinator process imports the
    core by its name, the agents answer with the built-in quote strategy): equal bills,
    traded bills that sum to zero each period (buyers pay what sellers receive), and the
    plug-in's table, report section and KPI."""
    runs = {}
    for runtime in ("inprocess", "distributed"):
        out = tmp_path / runtime
        done = lemgrid(installed, "run", SCENARIO, "--quiet", "--out", str(out), "--runtime",
                       runtime, "--set", "market.mechanism=call_auction")
        assert done.returncode == 0, done.stderr
        runs[runtime] = out
    agents = {k: pd.read_parquet(v / "agents.parquet") for k, v in runs.items()}
    np.testing.assert_allclose(agents["distributed"]["cost_eur"], agents["inprocess"]["cost_eur"],
                               atol=1e-9)
    traded = agents["inprocess"].groupby(["day", "period"])["traded_eur"].sum()
    np.testing.assert_allclose(traded, 0.0, atol=1e-12)
    summary = json.loads((runs["inprocess"] / "summary.json").read_text())
    auction = pd.read_parquet(runs["inprocess"] / "auction.parquet")
    assert summary["mechanism"] == "call_auction"
    assert summary["market"]["matched_kwh"] == pytest.approx(auction["matched_kw"].sum() * 1.0)  # hourly periods
    assert summary["market"]["matched_kwh"] > 0
    assert "<h2>Call auction</h2>" in (runs["inprocess"] / "report.html").read_text()
    compared = lemgrid(installed, "compare", str(runs["inprocess"]), str(runs["distributed"]),
                       "--csv", str(tmp_path / "compare.csv"))
    assert compared.returncode == 0, compared.stderr
    table = pd.read_csv(tmp_path / "compare.csv", index_col=0)
    assert table.loc["matched_kwh"].astype(float).tolist() == pytest.approx(
        [summary["market"]["matched_kwh"]] * 2)
