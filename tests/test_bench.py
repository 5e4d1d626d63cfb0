"""`lemgrid bench --quick`: runs, prints the table and writes consistent bench.json."""

import json

import pytest

from scenarios.cli import main


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
