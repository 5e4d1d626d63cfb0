"""An agent process killed during the market: the coordinator finishes without it, the
summary names it, and every result file is written."""

import json
import os
import subprocess
import sys

from .conftest import SCENARIOS

WAIT_S = 60.0


def test_agent_process_killed_mid_round(tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "LEMGRID_FAULT_KILL": "ev1:2"}  # dies on its round-2 signal
    runner = subprocess.Popen(
        [sys.executable, "-m", "lemgrid.scenarios.cli", "run", str(SCENARIOS / "tiny.yaml"), "--out",
         str(out), "--quiet", "--set", "runtime.round_deadline_s=2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _, err = runner.communicate(timeout=WAIT_S)
    finally:
        runner.kill()
    assert runner.returncode == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["failed_agents"]) == ["ev1"]
    assert "round-2" in summary["failed_agents"]["ev1"]
    assert summary["agents"] == {"prosumer": 3, "ev": 2, "building": 0}
    for name in ("agents.parquet", "market.parquet", "grid_bus.parquet", "grid_line.parquet",
                 "messages.jsonl", "config.yaml", "report.md"):
        assert (out / name).stat().st_size > 0
    import pandas as pd
    assert pd.read_parquet(out / "agents.parquet")["agent"].nunique() == 4
    assert summary["grid"]["pf_failures"] == 0 and summary["market"]["max_imbalance_kw"] < 1e-6
