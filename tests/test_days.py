"""Runs of many days: energy carried over, realisation, settlement, both runtimes, the
locality market on buildings, and the bad input of such runs.

Expected figures are worked out independently of the settlement code: from the result
tables' own columns (realised power, quotes, cleared prices) with the formulas of
docs/mechanisms/locality.md, or by hand."""

import json

import numpy as np
import pandas as pd
import pytest

from lemgrid.scenarios.cli import main
from lemgrid.scenarios.community.builder import build_actuals, build_community
from lemgrid.scenarios.run.inprocess import run_decentralized
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS

TINY, LOCALITY = SCENARIOS / "tiny.yaml", SCENARIOS / "tiny_locality.yaml"


@pytest.fixture(scope="module")
def tiny_days():
    """tiny.yaml (P2V) over three days, in-process."""
    s = load_scenario(TINY, ["horizon.days=3"])
    community = build_community(s)
    return s, community, run_decentralized(s, community)


def test_every_day_is_a_market_day(tiny_days):
    _s, _community, days = tiny_days
    assert [d.day for d in days] == [0, 1, 2]
    assert all(d.converged and not d.failed and len(d.schedules) == 5 for d in days)
    # the days differ: new trips, loads and PV each day
    totals = [sum(float(sc.cost_eur.sum()) for sc in d.schedules.values()) for d in days]
    assert len(set(np.round(totals, 9))) == 3


def test_battery_energy_carries_over(tiny_days):
    """Each battery's first period of day d+1 starts from the energy day d left:
    soc(d+1, 0) = soc(d, last) + Δt (η_c ch − dis / η_d) − trip, from the realised flows."""
    s, community, days = tiny_days
    h = s.horizon.period_minutes / 60
    for data in community:
        b = data.battery
        for d in range(2):
            prev, nxt = days[d].schedules[data.name], days[d + 1].schedules[data.name]
            f = nxt.flows_kw
            trip = 0.0 if not hasattr(data, "trip_kwh") else data.trip_kwh[(d + 1) * 96]
            gain = h * (b.eta_charge * f["ch_kw"][0] - f.get("dis_kw", [0.0])[0]
                        / b.eta_discharge) - trip
            assert nxt.soc_kwh[0] == pytest.approx(prev.soc_kwh[-1] + gain, abs=1e-9)


def test_the_first_day_equals_a_one_day_run(tiny_days):
    """Day 1 of a 3-day run is the one-day run: day 1 draws exactly as before."""
    s1 = load_scenario(TINY)
    one = run_decentralized(s1, build_community(s1))[0]
    for name, sched in one.schedules.items():
        np.testing.assert_array_equal(sched.cost_eur, tiny_days[2][0].schedules[name].cost_eur)


@pytest.fixture(scope="module")
def locality_runs(tmp_path_factory):
    """tiny_locality.yaml (4 buildings, 2 days, GDRMC, forecast errors) both ways."""
    root = tmp_path_factory.mktemp("locality")
    for runtime in ("inprocess", "distributed"):
        assert main(["run", str(LOCALITY), "--out", str(root / runtime), "--quiet",
                     "--runtime", runtime]) == 0
    return root


def test_distributed_locality_equals_inprocess(locality_runs):
    a, b = (pd.read_parquet(locality_runs / r / "agents.parquet")
            for r in ("inprocess", "distributed"))
    pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-9)
    sa, sb = (json.loads((locality_runs / r / "summary.json").read_text())
              for r in ("inprocess", "distributed"))
    assert sa["days"] == sb["days"] == 2 and sb["processes"]["agents"] == 4
    assert sb["costs_eur"]["total"] == pytest.approx(sa["costs_eur"]["total"], rel=1e-12)


def _with_prices(out):
    agents = pd.read_parquet(out / "agents.parquet")
    market = pd.read_parquet(out / "market.parquet")
    return agents.merge(market, on=["day", "period"]), market


def test_quotes_clear_at_balanced_prices(locality_runs):
    """GDRMC on the recorded quotes: D = Σ q⁺, G = Σ q⁻ per period, GDR = G / D, and
    π_ex = λb λs / ((λb − λs) GDR + λs), π_im = π_ex GDR + λb (1 − GDR) below 1, both λs
    above (no locality limit binds here: Σ CDL = 10 kW, Σ PIL = 4 kW are checked). The
    operator's budget on the quotes equals the grid's bill for the locality's net."""
    x, _market = _with_prices(locality_runs / "inprocess")
    q = x["quote_kw"]
    per = x.assign(d=q.clip(lower=0), g=(-q).clip(lower=0)).groupby(["day", "period"]).agg(
        D=("d", "sum"), G=("g", "sum"), b=("grid_buy_eur_per_kwh", "first"),
        s=("grid_sell_eur_per_kwh", "first"), im=("import_price_eur_per_kwh", "first"),
        ex=("export_price_eur_per_kwh", "first"))
    assert ((per.D - per.G) <= 10).all() and ((per.G - per.D) <= 4).all()
    busy = per[(per.D > 0) & (per.G > 0)]
    assert len(busy) > 0  # some periods do trade inside the locality
    r = np.minimum(busy.G / busy.D, 1.0)
    ex = np.where(busy.G >= busy.D, busy.s, busy.b * busy.s / ((busy.b - busy.s) * r + busy.s))
    im = np.where(busy.G >= busy.D, busy.s, ex * r + busy.b * (1 - r))
    np.testing.assert_allclose(busy.ex, ex, rtol=1e-12)
    np.testing.assert_allclose(busy.im, im, rtol=1e-12)
    grid = np.where(per.D > per.G, per.b * (per.D - per.G), -per.s * (per.G - per.D))
    np.testing.assert_allclose(per.im * per.D - per.ex * per.G, grid, atol=1e-12)


def test_settlement_of_realised_power(locality_runs):
    """Per agent and period (Δt = 1 h): traded = q⁺π_im − q⁻π_ex, deviation = the same
    bill of the realised power a minus traded, violation = 0.2 |a − q| π (π of the
    quote's side; of the realised side when the quote is 0); nothing is retail."""
    x, _ = _with_prices(locality_runs / "inprocess")
    q, a = x["quote_kw"], x["net_kw"]
    im, ex = x["import_price_eur_per_kwh"], x["export_price_eur_per_kwh"]

    def bill(v):
        return v.clip(lower=0) * im - (-v).clip(lower=0) * ex
    side = np.where((q > 0) | ((q == 0) & (a >= 0)), im, ex)
    np.testing.assert_allclose(x["traded_eur"], bill(q), atol=1e-12)
    np.testing.assert_allclose(x["deviation_eur"], bill(a) - bill(q), atol=1e-12)
    np.testing.assert_allclose(x["violation_eur"], 0.2 * (a - q).abs() * side, atol=1e-12)
    assert (x["retail_eur"] == 0).all() and (x["violation_eur"] > 0).any()
    np.testing.assert_allclose(x["cost_eur"], x[["traded_eur", "deviation_eur",
                                                 "violation_eur", "fixed_eur"]].sum(axis=1),
                               atol=1e-12)


def test_without_forecast_errors_the_realised_power_is_the_quote():
    s = load_scenario(LOCALITY, ["forecast_error.load=0", "forecast_error.pv=0",
                                 "forecast_error.wind=0", "horizon.days=1"])
    community = build_community(s)
    assert build_actuals(s, community) == {}
    day = run_decentralized(s, community)[0]
    for sched in day.schedules.values():
        np.testing.assert_allclose(sched.flows_kw["net_kw"], sched.flows_kw["quote_kw"],
                                   atol=1e-9)
        assert np.abs(sched.costs_eur["violation_eur"]).max() <= 1e-12


def test_report_has_the_month_view(locality_runs):
    """The Days table has one row per day and a total equal to summary.json's."""
    out = locality_runs / "distributed"
    md = (out / "report.md").read_text()
    days = md.split("## Days")[1].split("##")[0]
    rows = [line for line in days.splitlines() if line.startswith("| ") and "day" not in line]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "2", "total"]
    total = float(rows[-1].split("|")[2])
    summary = json.loads((out / "summary.json").read_text())
    assert total == pytest.approx(summary["costs_eur"]["total"], abs=1e-4)
    for name in ("daily_bills", "daily_energy", "locality_prices"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0


def test_compare_bills_and_savings(locality_runs, tmp_path, capsys):
    """Each participant's bill is the sum of its cost_eur; the savings against the
    baseline are 100 (base − run) / |base|."""
    runs = [locality_runs / "inprocess", locality_runs / "distributed"]
    assert main(["compare", *map(str, runs), "--csv", str(tmp_path / "c.csv"),
                 "--baseline", str(runs[1])]) == 0
    bills = pd.read_csv(tmp_path / "c_bills.csv", index_col="agent")
    agents = pd.read_parquet(runs[0] / "agents.parquet")
    per = agents.groupby("agent")["cost_eur"].sum()
    np.testing.assert_allclose(bills.loc[per.index, "inprocess"], per, rtol=1e-12)
    assert bills.loc["locality", "inprocess"] == pytest.approx(per.sum(), rel=1e-12)
    np.testing.assert_allclose(bills["inprocess_saving_pct_vs_distributed"], 0.0, atol=1e-9)
    assert "savings % against distributed" in capsys.readouterr().out


@pytest.mark.parametrize("mechanism", ["amc", "gdrmc", "p2g"])
def test_locality_markets_on_prosumers_and_evs(mechanism):
    """The P2V community quotes its net demand to a locality market: every participant
    is billed by the market alone (no retail rest), except under P2G (all retail); the
    operator's bills on the quotes equal the grid's bill for the locality's net."""
    s = load_scenario(TINY, [f"market.mechanism={mechanism}"])
    day = run_decentralized(s, build_community(s))[0]
    assert set(day.schedules) == {"p1", "p2", "p3", "ev1", "ev2"} and not day.failed
    parts = {k: sum(sc.costs_eur[k].sum() for sc in day.schedules.values())
             for k in ("traded_eur", "retail_eur")}
    if mechanism == "p2g":
        assert parts["traded_eur"] == 0 and parts["retail_eur"] > 0
        return
    assert parts["retail_eur"] == 0
    rec = day.rounds[-1].record.per_period
    D, G = rec["demand_kw"], rec["generation_kw"]
    grid = np.where(D > G, rec["grid_buy_eur_per_kwh"] * (D - G),
                    -rec["grid_sell_eur_per_kwh"] * (G - D))
    np.testing.assert_allclose(parts["traded_eur"], (grid * 0.25).sum(), rtol=1e-9)


# -- bad input ----------------------------------------------------------------------------

def _errors(args, capsys) -> tuple[int, list[str]]:
    code = main(args)
    return code, capsys.readouterr().err.strip().splitlines()


def test_flexible_load_window_shorter_than_duration(tmp_path, capsys):
    load = {"name": "oven", "rating_kw": 2.0, "duration_h": 3.0, "window": ["18:00", "20:00"]}
    code, err = _errors(["validate", str(LOCALITY), "--set",
                         f"templates.0.flexible=[{json.dumps(load)}]"], capsys)
    assert code == 2 and err == [(f"{LOCALITY}: templates.0.flexible.0: oven runs 3 h but its "
                                 "window 18:00–20:00 is 2 h")]


def test_cdl_below_the_non_flexible_load(tmp_path, capsys):
    code, err = _errors(["run", str(LOCALITY), "--out", str(tmp_path / "o"), "--quiet",
                         "--runtime", "inprocess", "--set", "templates.1.cdl_kw=0.5"], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"{LOCALITY}: templates.1.cdl_kw: 0.5 kW is below c1's "
                             "non-flexible load alone (")


def test_mechanism_that_cannot_serve_the_community(capsys):
    code, err = _errors(["validate", str(LOCALITY), "--set", "market.mechanism=p2v_rules"],
                        capsys)
    assert code == 2 and err == [
        (f"{LOCALITY}: market.mechanism: p2v_rules does not serve building agents (it serves "
        "ev, prosumer); mechanisms for this community: amc, gdrmc, p2g, admm, clearance, "
        "bilateral")]


def test_centralized_mode_needs_a_centralized_counterpart(capsys):
    code, err = _errors(["validate", str(LOCALITY), "--set", "market.mode=centralized"], capsys)
    assert code == 2 and err == [(f"{LOCALITY}: market.mode: gdrmc has no centralized mode (use "
                                 "decentralized); mechanisms with one: p2v_rules")]


def test_agent_data_covering_fewer_days(capsys):
    ev = {"kind": "ev", "name": "ev9", "model": "nissan_leaf_40", "contracted_kva": "6.90",
          "away": [False] * 96, "trip_kwh": [0.0] * 96}
    code, err = _errors(["validate", str(TINY), "--set", "horizon.days=2", "--set",
                         f"agents=[{json.dumps(ev)}]"], capsys)
    assert code == 2 and err == [
        (f"{TINY}: agents.0.away: covers 1 day(s), must cover horizon.days = 2 × "
        "horizon.periods = 96 (192 values)"),
        (f"{TINY}: agents.0.trip_kwh: covers 1 day(s), must cover horizon.days = 2 × "
        "horizon.periods = 96 (192 values)")]


def test_agent_infeasible_on_day_two_leaves_the_run(tmp_path, capsys):
    """An explicit EV fine on day 1 whose day-2 trip (48 kWh) cannot fit a 40 kWh Leaf:
    one line naming it, day 2 and the reason; day 1 and the other agents are kept."""
    away = [False] * 96 + [False] * 40 + [True] * 8 + [False] * 48
    trip = [0.0] * 96 + [6.0 if a else 0.0 for a in away[96:]]
    ev = {"kind": "ev", "name": "evbad", "model": "nissan_leaf_40", "contracted_kva": "6.90",
          "away": away, "trip_kwh": trip}
    out = tmp_path / "o"
    code, err = _errors(["run", str(TINY), "--out", str(out), "--quiet", "--runtime",
                         "inprocess", "--set", "horizon.days=2", "--set",
                         f"agents=[{json.dumps(ev)}]"], capsys)
    assert code == 0
    assert err == [("warning: day 2: EV evbad: trips need 52.0 kWh, battery can hold at most "
                   "40.0 kWh before 10:00 (agent evbad left the market)")]
    agents = pd.read_parquet(out / "agents.parquet")
    assert set(agents.loc[agents.day == 0, "agent"]) >= {"evbad"}
    assert "evbad" not in set(agents.loc[agents.day == 1, "agent"])
    assert agents.loc[agents.day == 1, "agent"].nunique() == 5
