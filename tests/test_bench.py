"""`lemgrid bench --quick`: runs, prints the table and writes consistent bench.json."""

import json

import pytest

from lemgrid.scenarios.cli import main


def test_bench_quick(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "machine:" in printed and "agent_solve_median_ms" in printed
    report = json.loads(out.read_text())
    m = {k: v["median"] for k, v in report["metrics"].items()}
    assert report["runs"] == 1 and report["paper"]["gap_pct"] == 0.15
    gap = 100 * (m["decentralized_total_eur"] - m["centralized_total_eur"]) / m[
        "centralized_total_eur"]
    assert m["gap_pct"] == pytest.approx(gap)
    assert 1 <= m["rounds"] <= 5 and m["agent_solve_median_ms"] > 0


def test_bench_scale_sizes_the_community(tmp_path, capsys):
    """Two sizes of scenarios/scale.yaml (5:4 prosumers to EVs): 9 → 5 + 4 agents in one
    process (25 a process), 30 → 17 + 13 in two; table, figure and JSON agree."""
    out = tmp_path / "scale.json"
    assert main(["bench", "--scale", "9", "30", "--runs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "goal at 1000 agents" in printed
    rows = json.loads(out.read_text())["scaling"]
    assert [(r["agents"], r["processes"]) for r in rows] == [(9, 1), (30, 2)]
    for r in rows:
        assert 1 <= r["rounds"] <= 5 and r["wall_s"] > r["market_s"] > 0
        assert r["memory_rss_mb"] >= r["memory_pss_mb"] > 0 and r["failed_agents"] == 0
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_scale_draws_a_curve_per_mechanism(tmp_path, capsys):
    """``--mechanism`` twice: the 9-agent community under each, one row each with its
    mechanism, time per round = market time ÷ rounds, and one figure of the curves."""
    out = tmp_path / "scale.json"
    assert main(["bench", "--scale", "9", "--runs", "1", "--mechanism", "gdrmc",
                 "--mechanism", "clearance", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["scaling"]
    assert [(r["mechanism"], r["agents"]) for r in rows] == [("gdrmc", 9), ("clearance", 9)]
    for r in rows:
        assert r["round_s"] == pytest.approx(r["market_s"] / r["rounds"])
        assert r["failed_agents"] == 0
    printed = capsys.readouterr().out
    assert "gdrmc" in printed and "clearance" in printed
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_scale_packs_agents_as_asked():
    """``--agents-per-process 100`` packs the sized community 100 to a process (10,000
    agents: 5556 prosumers and 4444 EVs in the 5:4 ratio, 100 processes); without it the
    scenario's 25 stand; ``--set`` overrides other fields."""
    from lemgrid.scenarios.bench.scaling import sized
    from lemgrid.scenarios.schema import resolve_scenario

    path = resolve_scenario("scale")
    packed = sized(path, 10_000, 100)
    assert [t.count for t in packed.templates] == [5556, 4444]
    assert packed.runtime.agents_per_process == 100
    assert sized(path, 90).runtime.agents_per_process == 25
    tuned = sized(path, 90, overrides=("solver.release_models=true",))  # ``--set``
    assert tuned.solver.release_models and [t.count for t in tuned.templates] == [50, 40]


def test_power_flow_levers_give_the_same_voltages():
    """``lemgrid bench --power-flow``: every variant's 96 voltages equal the old
    settings' (recycle rewrites only the loads), and a variant whose package is not
    installed is named, not run."""
    import importlib.util

    from lemgrid.scenarios.bench.powerflow import VARIANTS, bench_power_flow, power_flow_table

    rows = bench_power_flow("feeder11", 1)
    assert [r["variant"] for r in rows] == list(VARIANTS)
    for row, (_, package) in zip(rows, VARIANTS.values(), strict=True):
        if package and importlib.util.find_spec(package) is None:
            assert row == {"variant": row["variant"], "missing": package}
        else:
            assert row["max_dv_pu"] <= 1e-9 and row["median_s"] > 0
    assert len(power_flow_table(rows)) == len(rows) + 1


def test_bench_versus_runs_the_scenario_both_ways_pair_by_pair(tmp_path, capsys):
    """``lemgrid bench tiny --versus grid.solver=pandapower``: one pair of whole in-process
    runs, the power-flow solver being all that differs, so the bills and rounds are the
    same both ways; the table names both ways and gives the ratio of times."""
    out = tmp_path / "versus.json"
    assert main(["bench", "tiny", "--runs", "1", "--versus", "grid.solver=pandapower",
                 "--set", "runtime.kind=inprocess", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "other: grid.solver=pandapower" in printed and "other ÷ now" in printed
    (pair,) = json.loads(out.read_text())["pairs"]
    assert pair["now"]["total_eur"] == pytest.approx(pair["other"]["total_eur"], abs=1e-9)
    assert pair["now"]["rounds"] == pair["other"]["rounds"]
    assert pair["now"]["grid_s"] > 0 and pair["other"]["grid_s"] > 0
