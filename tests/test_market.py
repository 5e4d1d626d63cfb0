"""The P2V market on tiny.yaml, decentralized against the centralized model."""

import json

import pytest

from lemgrid.scenarios.cli import main
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.run.inprocess import run_centralized, run_decentralized
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS


def total(result):
    return sum(float(s.cost_eur.sum()) for s in result.schedules.values())


@pytest.fixture(scope="module")
def tiny_b():
    s = load_scenario(SCENARIOS / "tiny.yaml")
    community = build_community(s)
    return run_decentralized(s, community)[0], run_centralized(s, community)[0]


def test_scenario_a_decentralized_equals_centralized():
    """Without P2V the agents do not interact, so the centralized optimum is the sum of the
    agents' own optima (second method: one MILP of all agents)."""
    s = load_scenario(SCENARIOS / "tiny.yaml", ["market.p2v=false"])
    community = build_community(s)
    dec, cen = run_decentralized(s, community)[0], run_centralized(s, community)[0]
    assert total(dec) == pytest.approx(total(cen), rel=1e-6)
    assert cen.objective_eur == pytest.approx(total(cen), rel=1e-9)
    assert len(dec.rounds) == 1 and dec.converged


def test_scenario_b_converges_within_five_rounds(tiny_b):
    dec, _ = tiny_b
    assert len(dec.rounds) <= 5 and dec.converged
    assert dec.rounds[-1].record.error_kw <= 0.001
    assert dec.failed == {}


def test_scenario_b_centralized_is_no_worse(tiny_b):
    """The centralized model optimises the same agents jointly: its cost is a lower bound."""
    dec, cen = tiny_b
    assert total(cen) <= total(dec) + 1e-9


def test_settled_market_is_balanced_every_period(tiny_b):
    dec, _ = tiny_b
    sold = sum(s.flows_kw["p2v_kw"] for s in dec.schedules.values() if s.kind == "prosumer")
    bought = sum(s.flows_kw["p2v_kw"] for s in dec.schedules.values() if s.kind == "ev")
    assert abs(sold - bought).max() <= 1e-9


def test_rules_applied_in_order(tiny_b):
    """Round r applies rule r; the last round applies none and sold equals bought."""
    recs = [r.record for r in tiny_b[0].rounds]
    assert [r.scalars["rule_applied"] for r in recs] == [*range(1, len(recs)), None]
    last = recs[-1].per_period
    assert last["bought_kw"].sum() == pytest.approx(last["sold_kw"].sum(), abs=1e-3)


RESULT_FILES = ("summary.json", "config.yaml", "agents.parquet", "market.parquet",
                "grid_bus.parquet", "grid_line.parquet", "grid_trafo.parquet", "messages.jsonl",
                "report.md")


def test_distributed_run_equals_inprocess_on_feeder11(tmp_path):
    """tiny.yaml (3 prosumers, 2 EVs) on the 11-bus feeder: each agent its own mosaik
    process, the coordinator its own process; market results and power flows equal the
    in-process run's. The distributed agents send their meter readings 5 periods a
    message: 19 of 5 and the day's last period alone, which are the realised net powers."""
    runs = {}
    for runtime in ("distributed", "inprocess"):
        out = tmp_path / runtime
        assert main(["run", str(SCENARIOS / "tiny.yaml"), "--out", str(out), "--quiet",
                     "--runtime", runtime, "--set", "grid.network=feeder11",
                     "--set", "runtime.meter_periods=5"]) == 0
        for name in RESULT_FILES:
            assert (out / name).stat().st_size > 0, name
        runs[runtime] = out
    dist, local = (json.loads((runs[r] / "summary.json").read_text())
                   for r in ("distributed", "inprocess"))
    assert dist["processes"]["agents"] == 5 and local["processes"]["agents"] == 1
    for key in ("costs_eur", "market", "grid"):
        for field, value in local[key].items():
            if isinstance(value, float):
                assert dist[key][field] == pytest.approx(value, rel=1e-9, abs=1e-9), field
            else:
                assert dist[key][field] == value, field
    assert dist["grid"]["network"] == "feeder11" and dist["grid"]["pf_failures"] == 0
    import pandas as pd
    a, b = (pd.read_parquet(runs[r] / "agents.parquet") for r in ("distributed", "inprocess"))
    pd.testing.assert_frame_equal(a, b)
    lines = (runs["distributed"] / "messages.jsonl").read_text().splitlines()
    readings = [m for m in (json.loads(line)["msg"] for line in lines) if m["type"] == "meter"]
    for name, flows in a.groupby("agent"):
        mine = sorted((m["body"]["period"], m["body"]["p_kw"]) for m in readings
                      if m["sender"] == name)
        assert [(t, len(p)) for t, p in mine] == [(t, 5) for t in range(0, 95, 5)] + [(95, 1)]
        assert [p for _, ps in mine for p in ps] == flows.sort_values("period")["net_kw"].tolist()
    bus = pd.read_parquet(runs["distributed"] / "grid_bus.parquet")
    assert len(bus) == 96 * 11 and bus["vm_pu"].between(0.9, 1.1).all()


def test_cli_run_writes_every_result(tmp_path):
    out = tmp_path / "tiny"
    assert main(["run", str(SCENARIOS / "tiny.yaml"), "--out", str(out), "--quiet",
                 "--runtime", "inprocess"]) == 0
    for name in RESULT_FILES:
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"scenario", "mechanism", "mode", "agents", "periods", "costs_eur",
                            "market", "grid", "timing_s", "processes"}
    assert summary["agents"] == {"prosumer": 3, "ev": 2, "building": 0}
    assert summary["grid"]["network"] == "case33bw" and summary["market"]["rounds"] <= 5
    import pandas as pd
    agents = pd.read_parquet(out / "agents.parquet")
    assert len(agents) == 5 * 96
    assert agents.groupby("agent")["cost_eur"].sum().sum() == pytest.approx(
        summary["costs_eur"]["total"])
    market = pd.read_parquet(out / "market.parquet")
    assert set(market["round"]) == set(range(1, summary["market"]["rounds"] + 1))


def test_seed_reproducible(tmp_path):
    runs = []
    for i in range(2):
        out = tmp_path / str(i)
        main(["run", str(SCENARIOS / "tiny.yaml"), "--out", str(out), "--quiet",
              "--runtime", "inprocess"])
        runs.append(json.loads((out / "summary.json").read_text())["costs_eur"])
    assert runs[0] == runs[1]


def test_infeasible_agent_is_reported_and_the_run_goes_on(tmp_path, capsys):
    """An explicit EV whose 40 kWh trip cannot fit in a 40 kWh Leaf (floor 4 kWh): the run
    finishes with the other five agents and names it."""
    away = [False] * 40 + [True] * 8 + [False] * 48
    trip = [5.0 if a else 0.0 for a in away]
    ev = {"kind": "ev", "name": "evbad", "model": "nissan_leaf_40", "contracted_kva": "6.90",
          "away": away, "trip_kwh": trip}
    out = tmp_path / "o"
    code = main(["run", str(SCENARIOS / "tiny.yaml"), "--out", str(out), "--quiet",
                 "--runtime", "inprocess", "--set", f"agents=[{json.dumps(ev)}]"])
    assert code == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("warning: day 1: EV evbad: trips need 44.0 kWh, battery can hold at most 40.0 kWh "
                   "before 10:00 (agent evbad left the market)")]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["failed_agents"]) == ["evbad"] and summary["agents"]["ev"] == 3


def test_a_run_every_agent_left_still_writes_its_results(tmp_path, capsys):
    """The same EV as the only agent: the run ends, names it, writes agents.parquet with
    its columns and no row, and a report whose agent figures say why they are absent
    (the report once stopped at a KeyError on an agents table without columns)."""
    import pandas as pd

    away = [False] * 40 + [True] * 8 + [False] * 48
    ev = {"kind": "ev", "name": "evbad", "model": "nissan_leaf_40", "contracted_kva": "6.90",
          "away": away, "trip_kwh": [5.0 if a else 0.0 for a in away]}
    out = tmp_path / "o"
    code = main(["run", str(SCENARIOS / "tiny.yaml"), "--out", str(out), "--quiet",
                 "--runtime", "inprocess", "--set", "templates=[]",
                 "--set", f"agents=[{json.dumps(ev)}]"])
    assert code == 0
    assert "agent evbad left the market" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["failed_agents"]) == ["evbad"] and summary["costs_eur"]["total"] == 0
    agents = pd.read_parquet(out / "agents.parquet")
    assert agents.empty and {"kind", "cost_eur", "net_kw"} <= set(agents.columns)
    assert "No agent results." in (out / "report.html").read_text()


def test_distributed_infeasible_agent_tells_the_coordinator(tmp_path):
    """The same EV as its own process: it tells the coordinator that it leaves, with the
    in-process run's reason (not "missed the round-1 deadline" after the deadline), and
    the other five agents trade and settle."""
    away = [False] * 40 + [True] * 8 + [False] * 48
    ev = {"kind": "ev", "name": "evbad", "model": "nissan_leaf_40", "contracted_kva": "6.90",
          "away": away, "trip_kwh": [5.0 if a else 0.0 for a in away]}
    out = tmp_path / "o"
    assert main(["run", str(SCENARIOS / "tiny.yaml"), "--out", str(out), "--quiet",
                 "--runtime", "distributed", "--set", f"agents=[{json.dumps(ev)}]",
                 "--set", "runtime.round_deadline_s=120"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["failed_agents"]) == ["evbad"]
    assert summary["failed_agents"]["evbad"] == ("day 1: EV evbad: trips need 44.0 kWh, "
                                                 "battery can hold at most 40.0 kWh before 10:00")
    assert summary["processes"]["agents"] == 6 and summary["market"]["converged"]


def test_centralized_infeasible_agent_is_one_line(tmp_path, capsys):
    away = [False] * 40 + [True] * 8 + [False] * 48
    ev = {"kind": "ev", "name": "evbad", "model": "nissan_leaf_40", "contracted_kva": "6.90",
          "away": away, "trip_kwh": [5.0 if a else 0.0 for a in away]}
    code = main(["run", str(SCENARIOS / "tiny.yaml"), "--out", str(tmp_path / "o"), "--quiet",
                 "--mode", "centralized", "--set", f"agents=[{json.dumps(ev)}]"])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        ("error: day 1: centralized model: EV evbad: trips need 44.0 kWh, battery can hold at most "
        "40.0 kWh before 10:00")]


def test_packed_and_connected_agent_simulators(tmp_path):
    """Agents packed two per process (3 processes for 5 agents), the first process started
    outside the run (``runtime.connect``, as on another host): same market as in-process."""
    import subprocess
    import sys
    launcher = subprocess.Popen([sys.executable, "-m", "lemgrid.agents.launcher", "1"],
                                stdout=subprocess.PIPE, text=True)
    try:
        address = json.loads(launcher.stdout.readline())[0]
        out = tmp_path / "packed"
        assert main(["run", str(SCENARIOS / "tiny.yaml"), "--out", str(out), "--quiet",
                     "--set", "runtime.agents_per_process=2",
                     "--set", f"runtime.connect=['{address}']"]) == 0
        launcher.wait(timeout=30)
    finally:
        launcher.kill()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"]["agents"] == 3 and summary["failed_agents"] == {}
    s = load_scenario(SCENARIOS / "tiny.yaml")
    local = run_decentralized(s, build_community(s))[0]
    assert summary["costs_eur"]["total"] == pytest.approx(total(local), rel=1e-12)
