"""The docker-compose topology as local processes: ``lemgrid coordinator --scenario``,
two ``lemgrid serve-agents`` shards and ``lemgrid grid``, each its own process, with
``lemgrid run`` pointed at them; plus the shard arithmetic and the start-up retries."""

import json
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from lemgrid.coordinator.records import read_days
from lemgrid.scenarios.cli import main
from lemgrid.scenarios.run.topology import group_addresses, parse_shard, shard_range
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS

TINY = str(SCENARIOS / "tiny.yaml")
PACK = "runtime.agents_per_process=2"  # 5 agents → 3 process groups
EXIT_S = 30.0  # every service process exits within this after the run


def free_block(count: int) -> int:
    """A port p with p .. p + count - 1 all free right now (a shard listens on
    consecutive ports)."""
    for _ in range(100):
        with socket.create_server(("127.0.0.1", 0)) as probe:
            base = probe.getsockname()[1]
        socks = []
        try:
            for k in range(count):
                socks.append(socket.create_server(("127.0.0.1", base + k)))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


def lemgrid(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lemgrid.scenarios.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_shards_split_the_process_groups_contiguously():
    """7 groups over 3 shards: 2, 2, 3 groups (floor(i·7/3) boundaries 0, 2, 4, 7)."""
    assert [list(shard_range(7, i, 3)) for i in range(3)] == [[0, 1], [2, 3], [4, 5, 6]]
    assert [len(shard_range(1, i, 2)) for i in range(2)] == [0, 1]
    assert parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "x", "1-2", "0/0"):
        with pytest.raises(ValueError, match="expected i/n"):
            parse_shard(bad)


def test_group_addresses_follow_connect_then_shards():
    """5 agents, 2 a process → 3 groups; one ``connect`` address, then 2 shards of the
    other 2 groups (1 each), then nothing left for the runner to start."""
    s = load_scenario(TINY, [PACK, "runtime.connect=['h:1']",
                             "runtime.agent_hosts=['a:10', 'b:20']"])
    assert group_addresses(s, 3) == ["h:1", "a:10", "b:20"]
    s = load_scenario(TINY, [PACK, "runtime.agent_hosts=['a:10']"])
    assert group_addresses(s, 3) == ["a:10", "a:11", "a:12"]
    assert group_addresses(load_scenario(TINY), 2) == [None, None]


DAYS = "horizon.days=2"


def test_services_as_separate_processes_equal_the_one_command_run(tmp_path):
    """Coordinator, 2 agent shards (1 and 2 processes) and the grid simulator, each started
    by its own command as docker-compose does, over two days (the coordinator serves both,
    the agents carry their energy over); the markets and the power flows equal the
    one-command in-process run (second method: runtime.kind=inprocess)."""
    base = free_block(5)  # coordinator, shard 0 (1 process), shard 1 (2), grid
    ports = [base, base + 1, base + 2, None, base + 4]
    out = tmp_path / "services"
    procs = [lemgrid("coordinator", "--scenario", TINY, "--set", DAYS, "--out", str(out),
                     "--endpoint", f"tcp://127.0.0.1:{ports[0]}"),
             lemgrid("serve-agents", "--scenario", TINY, "--set", PACK, "--set", DAYS,
                     "--shard", "0/2", "--port", str(ports[1])),
             lemgrid("serve-agents", "--scenario", TINY, "--set", PACK, "--set", DAYS,
                     "--shard", "1/2", "--port", str(ports[2])),
             lemgrid("grid", "--port", str(ports[4]))]
    try:
        # shard 1 listens on ports[2] and ports[2] + 1; the runner retries until every
        # server listens.
        code = main(["run", TINY, "--out", str(out), "--quiet", "--set", PACK, "--set", DAYS,
                     "--set", f"runtime.coordinator=tcp://127.0.0.1:{ports[0]}",
                     "--set", (f"runtime.agent_hosts=['127.0.0.1:{ports[1]}', "
                              f"'127.0.0.1:{ports[2]}']"),
                     "--set", f"runtime.grid_host=127.0.0.1:{ports[4]}"])
        assert code == 0
        codes = [p.wait(timeout=EXIT_S) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert codes == [0, 0, 0, 0]
    ref = tmp_path / "ref"
    assert main(["run", TINY, "--out", str(ref), "--quiet", "--runtime", "inprocess",
                 "--set", DAYS]) == 0
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, ref))
    assert got["processes"]["agents"] == 3 and got["failed_agents"] == {}
    assert got["days"] == 2
    for key in ("total", "prosumer_mean", "ev_mean"):
        assert got["costs_eur"][key] == pytest.approx(want["costs_eur"][key], rel=1e-12)
    assert got["market"]["rounds"] == want["market"]["rounds"]
    for name in ("agents.parquet", "grid_bus.parquet"):
        a, b = (pd.read_parquet(d / name) for d in (out, ref))
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)
    logged = [json.loads(line) for line in (out / "messages.jsonl").read_text().splitlines()]
    # each agent on its own connection or, where its process hosts more than one, in
    # the envelope of the process's one connection (``host-…/p1``)
    peers = {m["peer"] for m in logged if m["dir"] == "in"}
    assert {p.split("/")[-1] for p in peers} >= {"p1", "p2", "p3", "ev1", "ev2"}
    assert any(p.startswith("host-") and "/" in p for p in peers)


def test_a_coordinator_that_never_comes_up_is_named(tmp_path, capsys):
    port = free_block(1)
    code = main(["run", TINY, "--out", str(tmp_path / "o"), "--quiet",
                 "--set", f"runtime.coordinator=tcp://127.0.0.1:{port}",
                 "--set", "runtime.connect_retries=2", "--set", "runtime.connect_retry_s=0.1"])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: coordinator at tcp://127.0.0.1:{port} never came up (2 tries, 0.1 s apart)"]


def test_a_simulator_that_never_comes_up_is_named(tmp_path, capsys):
    """A shard address nobody serves: bounded retries, then one line naming it, exit 1."""
    port = free_block(1)
    start = time.monotonic()
    code = main(["run", TINY, "--out", str(tmp_path / "o"), "--quiet",
                 "--set", f"runtime.agent_hosts=['127.0.0.1:{port}']",
                 "--set", "runtime.connect_retries=3", "--set", "runtime.connect_retry_s=0.2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [(f"error: simulator Agents0 at 127.0.0.1:{port} never came up "
                   "(3 tries, 0.2 s apart)")]
    assert time.monotonic() - start < EXIT_S


def test_run_with_curve_keys_equals_the_plain_run(tmp_path):
    """``lemgrid keys`` then a distributed run with ``runtime.curve_keys``: the agents join
    over authenticated, encrypted connections and the market result is unchanged
    (second method: the in-process runtime, which has no wire)."""
    keys = tmp_path / "keys"
    assert main(["keys", str(keys)]) == 0
    out, ref = tmp_path / "curve", tmp_path / "ref"
    assert main(["run", TINY, "--out", str(out), "--quiet", "--set", PACK,
                 "--set", f"runtime.curve_keys={keys}"]) == 0
    assert main(["run", TINY, "--out", str(ref), "--quiet", "--runtime", "inprocess"]) == 0
    got, want = (json.loads((d / "summary.json").read_text()) for d in (out, ref))
    assert got["failed_agents"] == {} and got["market"]["rounds"] == want["market"]["rounds"]
    assert got["costs_eur"]["total"] == pytest.approx(want["costs_eur"]["total"], rel=1e-12)
    assert [d["refused_handshakes"] for d in read_days(out / "rounds")] == [0]


def test_an_empty_shard_exits_at_once(capsys):
    """5 agents in one process group over 2 shards: shard 0/2 serves groups ⌊0·1/2⌋ ..
    ⌊1·1/2⌋−1, none."""
    assert main(["serve-agents", "--scenario", TINY, "--set", "runtime.agents_per_process=5",
                 "--shard", "0/2", "--port", "1"]) == 0
    assert capsys.readouterr().out.startswith("tiny shard 0/2: 0 agent simulator process(es)")
    assert main(["serve-agents", "--scenario", TINY, "--shard", "2/2"]) == 2


def test_a_port_in_use_is_one_line(tmp_path, capsys):
    """grid, coordinator and an agent shard on a port something else holds: exit 1 with
    one line naming the problem; a grid nobody connects to gives up after its timeout."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["grid", "--port", str(port)]) == 1
        assert capsys.readouterr().err.strip().splitlines() == [
            (f"error: Address already in use (while attempting to bind on address "
            f"('127.0.0.1', {port}))")]
        assert main(["coordinator", "--scenario", TINY, "--endpoint",
                     f"tcp://127.0.0.1:{port}", "--out", str(tmp_path)]) == 1
        assert capsys.readouterr().err.strip().splitlines() == [
            f"error: coordinator: Address already in use (addr='tcp://127.0.0.1:{port}')"]
        shard = lemgrid("serve-agents", "--scenario", TINY, "--port", str(port))
        _, err = shard.communicate(timeout=EXIT_S)
        assert shard.returncode == 1 and err.strip().splitlines() == [
            (f"error: agent simulators on 127.0.0.1:{port}: Address already in use (while "
            f"attempting to bind on address ('127.0.0.1', {port}))")]
    free = free_block(1)
    assert main(["grid", "--port", str(free), "--accept-timeout-s", "0.5"]) == 1
    assert capsys.readouterr().err.strip() == "error: no runner connected within 0.5 s"
