"""``lemgrid lab``: the tiny community (3 prosumers, 2 EVs) under every mechanism that
serves it, cut to 24 hourly periods and at most ROUNDS market rounds (the two iterative
markets then stop unconverged: their rows say so), beside the retail baseline and the
community optimum. Every number of lab.csv checked here is read again from the run's own
summary.json or recomputed from its agents.parquet and messages.jsonl."""

from __future__ import annotations

import html
import json
import time

import pandas as pd
import pytest

from lemgrid.scenarios.cli import main
from lemgrid.scenarios.mechanisms import registry, serving
from lemgrid.scenarios.results import lab_figures
from lemgrid.scenarios.results.lab import BASELINE, CAPTIONS, OPTIMUM, fairness
from lemgrid.scenarios.results.lab_figures import bill_parts_eur
from lemgrid.scenarios.run.lab import OPTIMUM_DIR, OPTIMUM_FILE, baseline_mechanism
from lemgrid.scenarios.schema import agent_kinds, load_scenario, resolve_scenario

ROUNDS = 15
HOURLY = ["horizon.periods=24", "horizon.period_minutes=60",
          'tariffs.time_of_use.peak_start="08:00"', 'tariffs.time_of_use.peak_end="22:00"',
          'templates.1.trips.first_away="06:00"', 'templates.1.trips.last_away="23:00"',
          'templates.1.trips.peak_times=["08:00", "19:00"]',
          "templates.1.trips.mean_away_periods=4.875", "templates.1.trips.away_periods_total=null",
          f"market.max_rounds={ROUNDS}"]
SETS = [arg for item in HOURLY for arg in ("--set", item)]
TOL_EUR = 1e-6


def lab_argv(out) -> list[str]:
    return ["lab", "tiny", "--runtime", "inprocess", "--quiet", "--out", str(out), *SETS]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    start = time.perf_counter()
    assert main(lab_argv(out)) == 0
    print(f"\nlemgrid lab tiny: {time.perf_counter() - start:.1f} s")
    return out, pd.read_csv(out / "lab.csv").set_index("mechanism")


def test_fairness_by_hand():
    """The three-agent case of ``fairness``'s docstring: baseline bills 10, 4, −2 €, bills
    8, 5, −3 €."""
    idx = ["a", "b", "c"]
    got = fairness(pd.Series([8.0, 5.0, -3.0], idx), pd.Series([10.0, 4.0, -2.0], idx),
                   pd.Series(["prosumer", "prosumer", "ev"], idx))
    assert got == pytest.approx({
        "better_off_share": 2 / 3, "saving_pct_min": -25.0, "saving_pct_p10": -20.5,
        "saving_pct_median": -2.5, "saving_pct_mean": -2.5, "saving_pct_p90": 15.5,
        "saving_pct_max": 20.0, "worst_change_eur_ev": -1.0,
        "worst_change_eur_prosumer": 1.0, "apart_count": 1, "apart_saving_eur_min": 1.0})


def test_every_serving_mechanism_has_its_row(lab):
    out, table = lab
    s = load_scenario(resolve_scenario("tiny"))
    expected = set(serving(agent_kinds(s))) | {baseline_mechanism(), OPTIMUM}
    assert set(table.index) == expected
    assert table.loc[baseline_mechanism(), "role"] == BASELINE
    assert table.loc[OPTIMUM, "role"] == OPTIMUM
    for name in expected - {OPTIMUM}:  # every run finished; its report is linked
        assert not table.loc[name, "status"].startswith("failed"), table.loc[name, "status"]
        assert (out / name / "report.html").is_file()
        assert f'href="{name}/report.html"' in (out / "lab.html").read_text()
    for name in ("lab.md", "lab.html"):  # the four questions first
        text = (out / name).read_text()
        for question in ("Saves most:", "Fairest:", "Keeps the grid within limits:",
                         "Fastest:"):
            assert question in text.split("|")[0], (name, question)


def _bills(folder) -> pd.Series:
    return pd.read_parquet(folder / "agents.parquet").groupby("agent")["cost_eur"].sum()


def test_numbers_are_the_runs_own(lab):
    """summary.json's figures as they are; the rest recomputed from the parquet files."""
    out, table = lab
    base = _bills(out / baseline_mechanism())
    for name, row in table.drop(OPTIMUM).iterrows():
        folder = out / name
        summary = json.loads((folder / "summary.json").read_text())
        assert row["total_bill_eur"] == pytest.approx(summary["costs_eur"]["total"], abs=1e-12)
        assert row["traded_kwh"] == pytest.approx(summary["market"]["traded_kwh"], abs=1e-12)
        assert row["rounds"] == summary["market"]["rounds"] <= ROUNDS
        assert bool(row["converged"]) == summary["market"]["converged"]
        assert (row["status"] == "ok") == summary["market"]["converged"]
        assert row["wall_s"] == pytest.approx(summary["timing_s"]["wall"])
        assert row["critical_path_s"] == pytest.approx(summary["timing_s"]["critical_path"])
        assert row["v_min_pu"] == pytest.approx(summary["grid"]["v_min_pu"])
        assert row["losses_kwh"] == pytest.approx(summary["grid"]["losses_kwh"])
        assert row["voltage_violations"] == summary["grid"]["voltage_violations"]
        agents = pd.read_parquet(folder / "agents.parquet")  # hourly: kWh = kW
        ev = agents["kind"] == "ev"
        consumption = agents["load_kw"].sum() + agents["flex_kw"].sum() + agents.loc[
            ev, "ch_kw"].sum()
        assert row["self_sufficiency"] == pytest.approx(1 - agents["buy_kw"].sum() / consumption)
        lines = (folder / "messages.jsonl").read_text().splitlines()
        assert row["messages_per_participant"] == pytest.approx(len(lines) / 5)
        bills = _bills(folder)
        assert row["saving_pct"] == pytest.approx(100 * (base.sum() - bills.sum())
                                                  / abs(base.sum()))
        positive = base > 0
        pct = (100 * (base - bills) / base)[positive]
        assert row["saving_pct_median"] == pytest.approx(pct.median())
        assert row["saving_pct_mean"] == pytest.approx(pct.mean())
        assert row["saving_pct_min"] == pytest.approx(pct.min())
        assert row["saving_pct_max"] == pytest.approx(pct.max())
        assert row["saving_pct_p10"] == pytest.approx(pct.quantile(0.1))  # pandas: linear
        assert row["saving_pct_p90"] == pytest.approx(pct.quantile(0.9))
        assert row["better_off_share"] == pytest.approx(((bills - base) < -TOL_EUR).mean())
        kinds = agents.groupby("agent")["kind"].first()
        for kind in ("prosumer", "ev"):
            assert row[f"worst_change_eur_{kind}"] == pytest.approx(
                (bills - base)[kinds == kind].max())
        assert row["apart_count"] == (~positive).sum()
    assert table.loc[baseline_mechanism(), "saving_pct"] == 0


def test_the_optimum_is_not_above_any_mechanism(lab):
    """What is compared: the optimum's bill (the centralized model's objective minus the
    operator's loss cost: the peers' day bills, retail energy and fixed costs, binaries
    relaxed) against each run's total bill (Σ agents.parquet cost_eur: what the community
    pays, its internal payments cancelling). With no forecast error in tiny, a run's
    realised bill is its day-ahead plan's. Each run is a dispatch the relaxed model could
    choose, so the optimum cannot be above it; and its efficiency is then at most 100 %."""
    out, table = lab
    opt = json.loads((out / OPTIMUM_DIR / OPTIMUM_FILE).read_text())["optimum"]
    assert opt["network"]  # tiny's feeder (case33bw) is radial without transformers
    assert table.loc[OPTIMUM, "total_bill_eur"] == pytest.approx(opt["bill_eur"])
    assert table.loc[OPTIMUM, "efficiency_pct"] == pytest.approx(100.0)
    base_bill = table.loc[baseline_mechanism(), "total_bill_eur"]
    for name, row in table.drop(OPTIMUM).iterrows():
        assert opt["bill_eur"] <= row["total_bill_eur"] + TOL_EUR, name
        assert row["efficiency_pct"] == pytest.approx(
            100 * (base_bill - row["total_bill_eur"]) / (base_bill - opt["bill_eur"]))
        assert row["efficiency_pct"] <= 100 + 1e-4, name


def test_a_rerun_runs_nothing(lab):
    out, table = lab
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")}
    stamps[out / OPTIMUM_DIR / OPTIMUM_FILE] = (out / OPTIMUM_DIR / OPTIMUM_FILE).stat(
    ).st_mtime_ns
    assert len(stamps) == len(table)
    start = time.perf_counter()
    assert main(lab_argv(out)) == 0
    seconds = time.perf_counter() - start
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    pd.testing.assert_frame_equal(pd.read_csv(out / "lab.csv").set_index("mechanism")
                                  .drop(columns="wall_s"), table.drop(columns="wall_s"))
    print(f"\nrerun: {seconds:.1f} s")


def test_the_locality_lab(tmp_path):
    """tiny_locality, as a user's own file, (4 buildings, one hourly day, at most 10
    rounds, two runs at a time) under every mechanism
    that serves buildings and one that does not: each serving one has its run, the one that
    cannot serve is refused by the scenario's checks with its row saying why, and the lab
    goes on; the optimum is below every run's bill (see the tiny lab's test)."""
    s = load_scenario(resolve_scenario("tiny_locality"))
    serving_names = serving(agent_kinds(s))
    foreign = next(n for n, m in registry().items() if "building" not in m.kinds)
    own = tmp_path / "my_community.yaml"  # a user's own file, outside the repository
    own.write_text(resolve_scenario("tiny_locality").read_text())
    assert main(["lab", str(own), "--runtime", "inprocess", "--quiet", "--out",
                 str(tmp_path / "lab"), "--jobs", "2",
                 "--mechanisms", ",".join([*serving_names, foreign]),
                 "--set", "horizon.days=1", "--set", "market.max_rounds=10"]) == 0
    table = pd.read_csv(tmp_path / "lab" / "lab.csv").set_index("mechanism")
    assert set(table.index) == {*serving_names, foreign, OPTIMUM}
    assert table.loc[foreign, "status"].startswith("failed: ")
    assert "does not serve building" in table.loc[foreign, "status"]
    best = table.loc[OPTIMUM, "total_bill_eur"]
    for name in serving_names:
        assert table.loc[name, "status"] in ("ok", "not converged"), name
        summary = json.loads((tmp_path / "lab" / name / "summary.json").read_text())
        assert table.loc[name, "total_bill_eur"] == pytest.approx(summary["costs_eur"]["total"])
        assert best <= table.loc[name, "total_bill_eur"] + TOL_EUR, name


def test_an_unknown_mechanism_is_one_line(tmp_path, capsys):
    assert main(["lab", "tiny", "--mechanisms", "nonesuch", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("--mechanisms: unknown nonesuch; allowed: all or")
    assert "\n" not in err
    assert not (tmp_path / "lab.csv").exists()


def test_the_figures_are_drawn_from_the_runs(lab):
    """Every figure is in lab.html and figures/; the bill's parts add up to each run's
    total bill (agents.parquet: cost_eur is their sum) and the lowest-voltage lines reach
    summary.json's lowest voltage."""
    out, table = lab
    page = (out / "lab.html").read_text()
    for stem, caption in CAPTIONS.items():
        assert (out / "figures" / f"{stem}.png").stat().st_size > 1000, stem
        assert html.escape(caption) in page, stem
    runs = [(name, out / name) for name in table.drop(OPTIMUM).index]
    for name, folder in runs:
        assert bill_parts_eur(folder).sum() == pytest.approx(table.loc[name, "total_bill_eur"])
    lowest = lab_figures._per_step(runs, "grid_bus", "vm_pu", "min")
    for name, series in lowest.items():
        assert series.min() == pytest.approx(table.loc[name, "v_min_pu"])
        assert len(series) == 24 + 1  # 24 hours, the last drawn to its end


def test_what_a_participant_reveals(lab):
    """``revealed_fields`` against messages.jsonl read here: the fields of the messages
    the participants (not the network operator) sent, with their keys."""
    out, table = lab
    for name in table.drop(OPTIMUM).index:
        sent = {}
        operators = set()
        for line in (out / name / "messages.jsonl").read_text().splitlines():
            record = json.loads(line)
            msg = record["msg"]
            if record["dir"] != "in":
                continue
            if msg["type"] == "register" and msg["body"]["kind"] == "operator":
                operators.add(msg["sender"])
            sent.setdefault(msg["sender"], []).append(msg)
        fields = set()
        for sender, msgs in sent.items():
            for msg in msgs if sender not in operators else []:
                for field, value in msg["body"].items():
                    if value is not None and field not in ("kind", "periods", "period_h",
                                                           "period"):
                        keys = ", ".join(sorted(value)) if isinstance(value, dict) else ""
                        fields.add(f"{msg['type']}.{field}" + (f"[{keys}]" if keys else ""))
        assert set(table.loc[name, "revealed_fields"].split("; ")) == fields, name
        assert table.loc[name, "reveals"].startswith("limits, quantities")


def test_a_sweep(lab, tmp_path):
    """``--sweep market.p2v=true,false`` over p2v_rules (the one mechanism with
    the parameter) and the baseline: each value's lab is a lab of its own, sweep.csv holds
    their rows, and the run at the scenario's own value (true) equals the tiny lab's to the
    last digit."""
    _out, table = lab
    assert main([*lab_argv(tmp_path), "--mechanisms", "p2v_rules",
                 "--sweep", "market.p2v=true,false"]) == 0
    sweep = pd.read_csv(tmp_path / "sweep.csv")
    assert list(sweep.columns[:2]) == ["market.p2v", "mechanism"]
    for value in (True, False):
        own = pd.read_csv(tmp_path / f"market.p2v={str(value).lower()}" / "lab.csv")
        rows = sweep[sweep["market.p2v"] == value].drop(columns=["market.p2v", "lab"])
        pd.testing.assert_frame_equal(rows.reset_index(drop=True), own, check_dtype=False)
        assert set(own["mechanism"]) == {baseline_mechanism(), "p2v_rules", OPTIMUM}
    same = pd.read_csv(tmp_path / "market.p2v=true" / "lab.csv").set_index("mechanism")
    for name in (baseline_mechanism(), "p2v_rules"):
        assert same.loc[name, "total_bill_eur"] == table.loc[name, "total_bill_eur"]
    off = sweep[~sweep["market.p2v"].astype(bool) & (sweep["mechanism"] == "p2v_rules")]
    assert off["traded_kwh"].iloc[0] == 0  # no P2V market: nothing traded
    assert "sweep_total_bill_eur.png" in (tmp_path / "sweep.md").read_text()


def test_fairest_reads_float_noise_as_no_change():
    """Two mechanisms whose worst-off participant's bill changes by float noise (4e-16 €
    and 0 €) leave nobody worse off: the tie goes to the one with more participants
    better off (0.67 against 0.03), not to the exact zero; a worst change of +5e-5 € is
    a loss and ranks after them."""
    from lemgrid.scenarios.results.lab import MECHANISM, answers

    rows = [("a", 4e-16, 0.67), ("b", 0.0, 0.03), ("c", 5e-5, 0.56)]
    table = pd.DataFrame([{
        "mechanism": n, "role": MECHANISM, "total_bill_eur": 1.0, "saving_pct": 0.0,
        "efficiency_pct": 0.0, "worst_change_eur_prosumer": w, "better_off_share": b,
        "voltage_violations": 0, "line_violations": 0, "trafo_violations": 0,
        "wall_s": 1.0, "rounds": 1} for n, w, b in rows])
    fair = next(s for s in answers(table) if s.startswith("Fairest:"))
    assert fair.startswith("Fairest: a,")
