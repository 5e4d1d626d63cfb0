"""The coordinator under load (scenarios.bench.load): 1000 scripted agents register at
once and send heartbeats, and the late ones are dropped at the round deadline and named;
over 30 days its memory stays flat, because finished days go to disk (one file each)."""

from lemgrid.coordinator.records import read_days
from lemgrid.scenarios.bench.load import run_load


def test_a_thousand_agents_at_once_and_the_late_ones_named(tmp_path):
    r = run_load(1000, 1, 5, tmp_path, round_deadline_s=2.0)
    assert len(r.late) == 5
    assert r.settled == [995] and r.errors == 0
    assert {n: r.dropped[n] for n in r.late} == dict.fromkeys(r.late,
                                                              "missed the round-1 deadline")
    assert set(r.dropped) == set(r.late)


def test_thirty_days_keep_the_coordinator_flat(tmp_path):
    """Before finished days went to disk, 200 agents grew the coordinator by 52 MB over
    30 days (80 → 132 MB) and each day took longer (the records rewritten whole)."""
    r = run_load(100, 30, 0, tmp_path, round_deadline_s=5.0)
    assert r.settled == [100] * 30
    assert len(read_days(tmp_path / "rounds")) == 30
    growth = r.rss_mb[-1] - r.rss_mb[4]
    assert growth < 10.0, r.rss_mb  # MB from day 5 to day 30


def test_a_dropped_agent_is_told_gone_and_sits_the_next_day_out(tmp_path):
    """20 agents, one late: dropped on day 0, refused with ``gone`` when it registers for
    day 1 (not counted as an error), so 19 settle each day."""
    r = run_load(20, 2, 1, tmp_path, round_deadline_s=1.0)
    assert r.late == ["a00000"] and r.gone == r.late
    assert r.settled == [19, 19] and r.errors == 0
    assert set(r.dropped) == set(r.late)


def test_a_swarm_that_cannot_open_leaves_no_coordinator_behind(tmp_path, monkeypatch):
    """`--load 10000` ran out of file descriptors while opening its agents' sockets and
    left its coordinator running: the coordinator is stopped whatever fails after it
    started."""
    import pytest

    from lemgrid.scenarios.bench import load

    started = []

    def recorded(*args, **kwargs):
        proc, endpoint = start(*args, **kwargs)
        started.append(proc)
        return proc, endpoint

    def no_swarm(*args, **kwargs):
        raise OSError(24, "Too many open files")

    start = load.start_coordinator
    monkeypatch.setattr(load, "start_coordinator", recorded)
    monkeypatch.setattr(load, "Swarm", no_swarm)
    with pytest.raises(OSError, match="Too many open files"):
        run_load(3, 1, 0, tmp_path)
    assert started and started[0].wait(timeout=10) is not None


def _bills(tmp_path, hosts):
    """Each agent's settlement (as data) of one day of 40 scripted agents, two of them
    late, on connections of their own (``hosts`` None) or shared by ``hosts`` hosts."""
    from lemgrid.coordinator.scripted import Swarm
    from lemgrid.scenarios.bench.load import start_coordinator, swarm_agents

    names = [f"a{i:05d}" for i in range(40)]
    proc, endpoint = start_coordinator(tmp_path, names, 1, round_deadline_s=1.0)
    swarm = Swarm(endpoint, swarm_agents(names, {names[3], names[17]},
                                         meter_day=hosts is not None), hosts=hosts)
    try:
        assert swarm.play(0, timeout_s=30.0, heartbeat_s=0.5,
                          beating=[names[3], names[17]] if hosts else None)
        assert proc.wait(timeout=30) == 0 and swarm.errors == 0
        return {a.name: a.settlement.body.model_dump() for a in swarm.agents
                if a.settlement is not None}
    finally:
        swarm.close()
        if proc.poll() is None:
            proc.kill()


def test_agents_sharing_host_connections_are_billed_as_agents_of_their_own(tmp_path):
    """The same 40 agents (the same seeded quotes and readings) on 40 connections, and
    dealt to 3 hosts in envelopes with one meter message a day each: the 38 that answer
    get the same bills to the last digit (the market sees the same messages)."""
    own, hosted = _bills(tmp_path / "own", None), _bills(tmp_path / "hosted", 3)
    assert len(own) == 38 and hosted == own


def test_a_hundred_thousand_agents_need_hosts(tmp_path):
    """Beyond 1000 agents the bench deals them to hosts of 1000 (`--load 100000`: 100
    connections instead of 100,000 sockets, which exhaust the file descriptors)."""
    from lemgrid.scenarios.bench.load import hosts_for

    assert (hosts_for(1000), hosts_for(1001), hosts_for(100_000)) == (None, 2, 100)
