"""Load on the coordinator: many scripted agents over the real wire.

A swarm of scripted agents (``coordinator.scripted``: one DEALER socket each, or beyond
``AGENTS_PER_HOST`` agents hosts of that many agents on one connection each, as agent
processes hosting many agents would connect; all served by one thread and one poller)
takes part in a locality market (GDRMC) served by a
``lemgrid coordinator`` process: every agent registers at once, sends heartbeats, quotes
a net demand, sends a meter reading per period and takes its settlement, day after day.
Chosen agents answer late (never within the round deadline): the coordinator must drop
them at the deadline and name them, and tell them ``gone`` when they register again. The
coordinator's resident memory is read from ``/proc`` after every day.

``lemgrid bench --load N [--load-days D]`` prints the table; tests use ``run_load``.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lemgrid.coordinator.mechanisms import gdrmc
from lemgrid.coordinator.mechanisms.base import MarketCore, MarketData, dump_market
from lemgrid.coordinator.protocol import HEARTBEAT_INTERVAL_S, RegisterBody
from lemgrid.coordinator.records import read_days
from lemgrid.coordinator.scripted import ScriptedAgent, Swarm
from lemgrid.scenarios.run.distributed import spawn_coordinator

PERIODS = 24
PERIOD_H = 1.0
AGENTS_PER_HOST = 1000  # beyond this many agents, hosts of this many share a connection


@dataclass
class LoadResult:
    agents: int
    days: int
    late: list[str]
    register_s: float = 0.0  # first registration sent → first day's signals all in
    day_s: list[float] = field(default_factory=list)  # wall time of each day
    rss_mb: list[float] = field(default_factory=list)  # coordinator RSS after each day
    dropped: dict[str, str] = field(default_factory=dict)  # the coordinator's failed agents
    settled: list[int] = field(default_factory=list)  # agents settled per day
    frames_out: int = 0  # frames the swarm sent
    frames_in: int = 0  # frames the swarm received
    errors: int = 0  # error replies the swarm received, gone not counted
    gone: list[str] = field(default_factory=list)  # agents the coordinator told gone
    hosts: int | None = None  # host connections the agents shared (None: one each)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def net_demand_kw(rng: np.random.Generator) -> list[float]:
    """A home's net demand: evening import, midday export (kW per hour)."""
    hours = np.arange(PERIODS)
    base = 0.6 + 0.8 * np.exp(-((hours - 20) / 2.5) ** 2)
    pv = 2.0 * np.clip(np.sin(np.pi * (hours - 6) / 12), 0, None)
    return (base - pv * rng.uniform(0.3, 1.2) + rng.normal(0, 0.05, PERIODS)).tolist()


def start_coordinator(out: Path, names: list[str], days: int, round_deadline_s: float,
                      registration_timeout_s: float = 120.0,
                      core: MarketCore = gdrmc.CORE, params=None
                      ) -> tuple[subprocess.Popen, str]:
    """A coordinator process for ``names``; by default a GDRMC market with random retail
    prices."""
    if params is None:
        rng = np.random.default_rng(7)
        buy = (0.09 * (1 + 0.2 * rng.standard_normal(days * PERIODS)).clip(0.5, 1.5)).tolist()
        params = core.params_type().with_data(MarketData(tuple(buy),
                                                         tuple(0.45 * b for b in buy)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "mechanism.json").write_text(json.dumps(dump_market(core, params)))
    (out / "roster.txt").write_text("".join(f"{n}\n" for n in names))
    return spawn_coordinator(
        ["--params", str(out / "mechanism.json"), "--roster", str(out / "roster.txt"),
         "--log", "", "--records", str(out / "rounds"), "--days", str(days),
         "--round-deadline-s", str(round_deadline_s),
         "--registration-timeout-s", str(registration_timeout_s),
         "--realisation-timeout-s", str(max(round_deadline_s, 10.0))],
        stderr=subprocess.DEVNULL)


def swarm_agents(names: list[str], late: set[str], seed: int = 0, meter_day: bool = False
                 ) -> list[ScriptedAgent]:
    """Buildings that quote a net demand every round and realise it 2 % higher, metered
    every period (``meter_day``: in one message a day); ``late`` never answer a signal."""
    rng = np.random.default_rng(seed)
    registration = RegisterBody(kind="building", periods=PERIODS, period_h=PERIOD_H,
                                limits_kw={"import": [7.0], "export": [7.0],
                                           "cdl": [2.5] * PERIODS, "pil": [1.0] * PERIODS})
    agents = []
    for name in names:
        quote = net_demand_kw(rng)
        agents.append(ScriptedAgent(name, registration,
                                    None if name in late else {"net": quote},
                                    [p * 1.02 for p in quote], meter_day=meter_day))
    return agents


def deadline_for(agents: int) -> float:
    """The round deadline (s) for ``agents`` scripted agents: 5 s, or 1 s for each 2000
    agents, since the swarm answers in one thread (a few thousand signals a second) and
    an answer still unread at the deadline counts as late."""
    return max(5.0, agents / 2000)


def hosts_for(agents: int) -> int | None:
    """How many host connections carry ``agents`` scripted agents (None: one each)."""
    return None if agents <= AGENTS_PER_HOST else math.ceil(agents / AGENTS_PER_HOST)


def run_load(agents: int, days: int, late: int, out: Path,
             round_deadline_s: float | None = None, hosts: int | None = None) -> LoadResult:
    """``agents`` scripted agents (``late`` of them never answering) for ``days`` days;
    the late ones are dropped on the first day, told ``gone`` on the next and sit the
    rest out (at ``round_deadline_s``, by default ``deadline_for(agents)``). With ``hosts``, the agents share that many connections as a host's agents
    do: one meter message a day each, and heartbeats from the late ones only (the agents'
    own client sends none); without, one connection each, every agent heartbeating and
    metering every period."""
    round_deadline_s = round_deadline_s or deadline_for(agents)
    registration_timeout_s = max(120.0, agents / 500)  # the swarm registers them in turn
    names = [f"a{i:05d}" for i in range(agents)]
    late_names = names[:: max(agents // late, 1)][:late] if late else []
    proc, endpoint = start_coordinator(out, names, days, round_deadline_s,
                                       registration_timeout_s=registration_timeout_s)
    result = LoadResult(agents, days, late_names, hosts=hosts)
    swarm = None
    try:  # from here the coordinator is stopped whatever happens (a swarm that cannot open)
        swarm = Swarm(endpoint, swarm_agents(names, set(late_names),
                                             meter_day=hosts is not None), hosts=hosts)
        t0 = time.monotonic()
        for day in range(days):
            start = time.monotonic()
            swarm.play(day, timeout_s=registration_timeout_s + 2 * round_deadline_s
                       + agents / 200,
                       heartbeat_s=HEARTBEAT_INTERVAL_S,
                       beating=late_names if hosts is not None else None)
            result.day_s.append(time.monotonic() - start)
            result.settled.append(sum(a.settled(day) for a in swarm.agents))
            result.rss_mb.append(_rss_mb(proc.pid))
        first = [a.signalled_at.get(0, math.nan) for a in swarm.agents]
        result.register_s = max(first) - t0 if not any(map(math.isnan, first)) else math.nan
        result.gone = [a.name for a in swarm.agents if a.gone]
        proc.wait(timeout=30)
        for d in read_days(out / "rounds"):
            result.dropped.update(d["failed"])
    finally:
        if swarm is not None:
            result.frames_out, result.frames_in, result.errors = (
                swarm.frames_out, swarm.frames_in, swarm.errors)
            swarm.close()
        if proc.poll() is None:
            proc.kill()
    return result


def print_load(r: LoadResult) -> None:
    import os
    import platform

    connections = f"{r.hosts} host connections" if r.hosts else "a connection each"
    print(f"coordinator load: {r.agents} agents ({connections}), {r.days} day(s), "
          f"{len(r.late)} late, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    rows = [("all registered and signalled (s)", f"{r.register_s:.2f}"),
            ("day wall time median (s)", f"{float(np.median(r.day_s)):.2f}"),
            ("agents settled per day (min)", str(min(r.settled, default=0))),
            ("late agents dropped and named",
             f"{len(set(r.late) & set(r.dropped))} of {len(r.late)}"),
            ("frames sent / received", f"{r.frames_out} / {r.frames_in}"),
            ("error replies", str(r.errors)),
            ("coordinator RSS after day 1 (MB)", f"{r.rss_mb[0]:.1f}" if r.rss_mb else "-"),
            ("coordinator RSS after last day (MB)", f"{r.rss_mb[-1]:.1f}" if r.rss_mb else "-")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
