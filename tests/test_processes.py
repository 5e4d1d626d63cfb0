"""Processes killed under a running community (tiny_locality, 3 days, distributed): the
coordinator, the grid simulator, the runner itself (SIGINT, SIGTERM); and the stopped
runs resumed (``lemgrid run --resume``) to the uninterrupted run's results. Each test
tags the run's processes with an environment variable and counts the tagged processes
left afterwards (orphans)."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from lemgrid.coordinator.records import read_days
from lemgrid.scenarios.cli import main
from lemgrid.scenarios.run import grid_process

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


def start_run(out: Path, tag: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lemgrid.scenarios.cli", "run", SCENARIO, "--out", str(out), "--quiet",
         *DAYS, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, TAG: tag})


def wait_for_day(out: Path, runner: subprocess.Popen, days: int = 1) -> None:
    """Until the coordinator has recorded ``days`` finished days."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and runner.poll() is None:
        try:
            if len(read_days(out / "rounds")) >= days:
                return
        except (OSError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    pytest.fail(f"day {days} never finished: {runner.communicate()[1][-2000:]}")


def kill_tagged(tag: str, argv_part: str, sig=signal.SIGKILL) -> None:
    """Kill the tagged processes whose command line has ``argv_part`` or whose name
    (/proc/PID/comm: a forked helper's own) is it."""
    def named(pid: int) -> bool:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        return argv_part in argv or Path(f"/proc/{pid}/comm").read_text().strip() == argv_part
    pids = [p for p in tagged(tag) if named(p)]
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
def whole(tmp_path_factory) -> Path:
    """The same three days in-process: the market's result without any fault."""
    out = tmp_path_factory.mktemp("whole")
    assert main(["run", SCENARIO, "--out", str(out), "--quiet", "--runtime", "inprocess",
                 *DAYS]) == 0
    return out


@pytest.fixture(scope="module")
def uninterrupted(whole) -> dict:
    return json.loads((whole / "summary.json").read_text())


def assert_same_results(out: Path, reference: Path) -> None:
    """Every table of ``out`` equals the reference run's (the bills and flows to 1e-9:
    the distributed and in-process runtimes agree to rounding)."""
    for name in ("agents.parquet", "grid_bus.parquet", "grid_line.parquet",
                 "grid_trafo.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name),
                                      pd.read_parquet(reference / name),
                                      check_exact=False, rtol=1e-9, atol=1e-9)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (out, reference))
    assert a["days"] == b["days"] == a["days_planned"]
    assert a["costs_eur"]["total"] == pytest.approx(b["costs_eur"]["total"], rel=1e-12)


def test_coordinator_killed_mid_run(tmp_path):
    """Agents wait runtime.coordinator_timeout_s (3 s) for the dead coordinator, then the
    runner stops: exit 1, one line naming the coordinator, the finished day kept."""
    tag, out = uuid.uuid4().hex, tmp_path / "run"
    runner = start_run(out, tag)
    wait_for_day(out, runner)
    kill_tagged(tag, "-m lemgrid.coordinator.service")
    err, took = finish(runner, tag)
    assert runner.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "coordinator" in lines[0]
    assert "killed by SIGKILL" in lines[0] and "days 1-1 of 3 kept" in lines[0]
    assert took < 30.0  # 3 s of silence, then the shutdown
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"] == 1 and summary["days_planned"] == 3
    assert set(pd.read_parquet(out / "agents.parquet")["day"]) == {0}
    assert tagged(tag) == []


def test_a_run_stopped_by_its_coordinator_resumes(tmp_path, whole):
    """Killed coordinator, then ``lemgrid run --resume``: days 2-3 run again (a new
    coordinator serves them from day 2), and every table equals the uninterrupted run's."""
    tag, out = uuid.uuid4().hex, tmp_path / "run"
    runner = start_run(out, tag)
    wait_for_day(out, runner)
    kill_tagged(tag, "-m lemgrid.coordinator.service")
    finish(runner, tag)
    assert runner.returncode == 1
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert_same_results(out, whole)
    days = [json.loads(line)["msg"]["day"] for line in
            (out / "messages.jsonl").read_text().splitlines()]
    assert days == sorted(days) and set(days) == {0, 1, 2}  # no day logged twice


@pytest.mark.parametrize("sig, runtime", [(signal.SIGINT, "distributed"),
                                          (signal.SIGTERM, "inprocess")])
def test_runner_interrupted_then_resumed(tmp_path, whole, sig, runtime):
    """SIGINT or SIGTERM after the first day: exit 128 + signal with one line, no process
    left behind, the finished days readable; resumed, the uninterrupted results."""
    tag, out = uuid.uuid4().hex, tmp_path / "run"
    runner = start_run(out, tag, "--runtime", runtime)
    deadline = time.monotonic() + WAIT_S
    while not (out / "checkpoint.pkl").exists() and not read_days(out / "rounds"):
        assert time.monotonic() < deadline and runner.poll() is None
        time.sleep(0.02)
    runner.send_signal(sig)
    err, took = finish(runner, tag)
    if runner.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert runner.returncode == 128 + sig, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"interrupted by {signal.Signals(sig).name}" in lines[0], err
    assert took < 30.0 and tagged(tag) == []
    summary = json.loads((out / "summary.json").read_text())
    assert 1 <= summary["days"] < 3 and summary["days_planned"] == 3
    assert set(pd.read_parquet(out / "agents.parquet")["day"]) == set(range(summary["days"]))
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert_same_results(out, whole)


def test_agents_stepped_every_period_give_the_same_results(tmp_path, whole):
    """``runtime.agent_step: period`` (every agent process stepped every period, the grid
    reading each period's power) gives every table the in-process run gives, as the
    default once-a-day stepping does (the runs above, distributed, resumed to the same)."""
    out = tmp_path / "run"
    assert main(["run", SCENARIO, "--out", str(out), "--quiet", *DAYS,
                 "--set", "runtime.agent_step=period"]) == 0
    assert_same_results(out, whole)


def test_resume_mistakes_are_one_line(tmp_path, capsys, whole):
    assert main(["run", "--resume", str(tmp_path), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (f"{tmp_path / 'config.yaml'}: no such file; "
                                               "allowed: --resume names the results folder "
                                               "of a lemgrid run")
    assert main(["run", "tiny", "--resume", str(whole), "--set", "seed=3"]) == 2
    assert "drop SCENARIO, --set" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text((whole / "config.yaml").read_text())
    assert main(["run", "--resume", str(tmp_path), "--quiet"]) == 2
    assert "checkpoint.pkl: no finished day kept" in capsys.readouterr().err


def test_grid_simulator_killed_mid_run(tmp_path, uninterrupted):
    """The grid simulator dies after day 1: the market finishes all three days without
    the co-simulation, the power flows are recomputed in-process, the notes say so, and
    the bills equal the uninterrupted in-process run's."""
    tag, out = uuid.uuid4().hex, tmp_path / "run"
    runner = start_run(out, tag)
    wait_for_day(out, runner)
    kill_tagged(tag, grid_process.PROCESS_NAME.decode())  # forked from the runner
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


def test_mosaik_started_simulators_run_from_any_folder(tmp_path):
    """``runtime.launcher: cmd`` has mosaik start each agent group as ``python -m
    lemgrid.agents.simulator``: run from a folder outside the repository (so that no
    top-level ``agents`` package is importable from the working directory), one day of
    tiny_locality finishes with every agent."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "lemgrid.scenarios.cli", "run", SCENARIO, "--out", str(out),
         "--quiet", "--set", "horizon.days=1", "--set", "runtime.launcher=cmd"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["days"] == 1 and not summary["failed_agents"]


def test_bench_scale_interrupted_keeps_the_finished_sizes(tmp_path):
    """SIGTERM to ``lemgrid bench --scale 2 3`` as the 3-agent day starts (its coordinator
    up, the agent launcher forking: a signal there once left the forked simulators
    running): exit 143 with the signal named, no process of the run left, and the
    finished 2-agent size written to the JSON with why it stopped. (A signal in the
    middle of a day takes the path ``test_runner_interrupted_then_resumed`` checks.)"""
    tag, keep, out = uuid.uuid4().hex, tmp_path / "keep", tmp_path / "scale.json"
    bench = subprocess.Popen(
        [sys.executable, "-m", "lemgrid.scenarios.cli", "bench", "--scale", "2", "3",
         "--runs", "1", "--keep", str(keep), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, TAG: tag})
    deadline = time.monotonic() + WAIT_S
    while not (keep / "3" / "0" / "messages.jsonl").exists():
        assert time.monotonic() < deadline and bench.poll() is None, bench.communicate()
        time.sleep(0.02)
    bench.send_signal(signal.SIGTERM)
    err, took = finish(bench, tag)
    assert bench.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err.strip().splitlines()[-1]
    assert took < 30.0 and tagged(tag) == []
    written = json.loads(out.read_text())
    assert [r["agents"] for r in written["scaling"]] == [2]
    assert "SIGTERM" in written["stopped"]
