"""Processes killed under a running community (tiny_locality, 3 days, distributed): the
coordinator, the grid simulator, the runner itself. Each test tags the run's processes
with an environment variable and counts the tagged processes left afterwards (orphans)."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from scenarios.cli import main

from .conftest import SCENARIOS

SCENARIO = str(SCENARIOS / "tiny_locality.yaml")
DAYS = ["--set", "horizon.days=3", "--set", "runtime.coordinator_timeout_s=3"]
WAIT_S = 90.0
TAG = "LEMGRID_TEST_RUN"


def tagged(tag: str) -> list[int]:
    """Pids of live processes whose environment carries ``TAG=tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{TAG}={tag}".encode() in env.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def start_run(out: Path, tag: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scenarios.cli", "run", SCENARIO, "--out", str(out), "--quiet",
         *DAYS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, TAG: tag})


def wait_for_day(out: Path, runner: subprocess.Popen, days: int = 1) -> None:
    """Until the coordinator has recorded ``days`` finished days."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and runner.poll() is None:
        try:
            if len(json.loads((out / "rounds.json").read_text())["days"]) >= days:
                return
        except (OSError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    pytest.fail(f"day {days} never finished: {runner.communicate()[1][-2000:]}")


def kill_tagged(tag: str, argv_part: str, sig=signal.SIGKILL) -> None:
    pids = [p for p in tagged(tag)
            if argv_part in Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()]
    assert pids, f"no process {argv_part!r}"
    for pid in pids:
        os.kill(pid, sig)


def finish(runner: subprocess.Popen, tag: str, within_s: float = WAIT_S):
    t0 = time.monotonic()
    try:
        _, err = runner.communicate(timeout=within_s)
    finally:
        runner.kill()
    deadline = time.monotonic() + 5.0  # children exit right after the runner
    while tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.1)
    return err, time.monotonic() - t0


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same three days in-process: the market's result without any fault."""
    out = tmp_path_factory.mktemp("whole")
    assert main(["run", SCENARIO, "--out", str(out), "--quiet", "--runtime", "inprocess",
                 *DAYS]) == 0
    return json.loads((out / "summary.json").read_text())


def test_coordinator_killed_mid_run(tmp_path):
    """Agents wait runtime.coordinator_timeout_s (3 s) for the dead coordinator, then the
    runner stops: exit 1, one line naming the coordinator, the finished day kept."""
    tag, out = uuid.uuid4().hex, tmp_path / "run"
    runner = start_run(out, tag)
    wait_for_day(out, runner)
    kill_tagged(tag, "scenarios.cli coordinator")
    err, took = finish(runner, tag)
    assert runner.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "coordinator" in lines[0]
    assert "killed by SIGKILL" in lines[0] and "days 1-1 of 3 kept" in lines[0]
    assert took < 30.0  # 3 s of silence, then the shutdown
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"] == 1 and summary["days_planned"] == 3
    import pandas as pd
    assert set(pd.read_parquet(out / "agents.parquet")["day"]) == {0}
    assert tagged(tag) == []


def test_grid_simulator_killed_mid_run(tmp_path, uninterrupted):
    """The grid simulator dies after day 1: the market finishes all three days without
    the co-simulation, the power flows are recomputed in-process, the notes say so, and
    the bills equal the uninterrupted in-process run's."""
    tag, out = uuid.uuid4().hex, tmp_path / "run"
    runner = start_run(out, tag)
    wait_for_day(out, runner)
    kill_tagged(tag, "-m grid.simulator")
    err, _ = finish(runner, tag)
    assert runner.returncode == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"] == 3
    assert any("Grid-0" in n and "recomputed in-process" in n for n in summary["notes"])
    assert summary["costs_eur"]["total"] == pytest.approx(
        uninterrupted["costs_eur"]["total"], rel=1e-9)
    assert summary["grid"]["losses_kwh"] == pytest.approx(
        uninterrupted["grid"]["losses_kwh"], rel=1e-9)
    assert tagged(tag) == []
