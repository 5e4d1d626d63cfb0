"""Load on the coordinator: many scripted agents over the real wire.

A swarm of protocol clients (one DEALER socket each, all served by one thread and one
poller) takes part in a locality market (GDRMC) served by a ``lemgrid coordinator``
process: every agent registers at once, sends heartbeats, quotes a net demand, sends a
meter reading per period and takes its settlement, day after day. Chosen agents answer
late (never within the round deadline): the coordinator must drop them at the deadline
and name them. The coordinator's resident memory is read from ``/proc`` after every day.

``lemgrid bench --load N [--load-days D]`` prints the table; tests use ``run_load``.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from coordinator.mechanisms import dump_params
from coordinator.mechanisms.locality import LocalityParams
from coordinator.protocol import (
    HEARTBEAT_INTERVAL_S,
    Clearing,
    Error,
    Heartbeat,
    Meter,
    MeterBody,
    Offer,
    OfferBody,
    Register,
    RegisterBody,
    Settlement,
    Signal,
    decode,
    encode,
)
from coordinator.records import read_days
from scenarios.run.distributed import spawn_coordinator

PERIODS = 24
PERIOD_H = 1.0


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
    errors: int = 0  # error replies the swarm received


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _quote(rng: np.random.Generator) -> list[float]:
    """A home's net demand: evening import, midday export (kW per hour)."""
    hours = np.arange(PERIODS)
    base = 0.6 + 0.8 * np.exp(-((hours - 20) / 2.5) ** 2)
    pv = 2.0 * np.clip(np.sin(np.pi * (hours - 6) / 12), 0, None)
    return (base - pv * rng.uniform(0.3, 1.2) + rng.normal(0, 0.05, PERIODS)).tolist()


def start_coordinator(out: Path, names: list[str], days: int, round_deadline_s: float,
                      registration_timeout_s: float = 120.0, mechanism: str = "gdrmc",
                      params=None) -> tuple[subprocess.Popen, str]:
    """A coordinator process for ``names``; by default a GDRMC market with random retail
    prices."""
    if params is None:
        rng = np.random.default_rng(7)
        buy = (0.09 * (1 + 0.2 * rng.standard_normal(days * PERIODS)).clip(0.5, 1.5)).tolist()
        params = LocalityParams(grid_buy_eur_per_kwh=buy,
                                grid_sell_eur_per_kwh=[0.45 * b for b in buy])
    out.mkdir(parents=True, exist_ok=True)
    (out / "mechanism.json").write_text(json.dumps(dump_params(mechanism, params)))
    (out / "roster.txt").write_text("".join(f"{n}\n" for n in names))
    return spawn_coordinator(
        ["--params", str(out / "mechanism.json"), "--roster", str(out / "roster.txt"),
         "--log", "", "--records", str(out / "rounds"), "--days", str(days),
         "--round-deadline-s", str(round_deadline_s),
         "--registration-timeout-s", str(registration_timeout_s),
         "--realisation-timeout-s", str(max(round_deadline_s, 10.0))],
        stderr=subprocess.DEVNULL)


class Swarm:
    """``names`` as scripted agents on one poller; ``late`` never answer a signal."""

    def __init__(self, endpoint: str, names: list[str], late: set[str], seed: int = 0):
        self.context = zmq.Context()
        self.names, self.late = names, late
        self.sockets: dict[str, zmq.Socket] = {}
        self.by_socket: dict[zmq.Socket, str] = {}
        self.poller = zmq.Poller()
        rng = np.random.default_rng(seed)
        self.quotes = {n: _quote(rng) for n in names}
        for name in names:
            sock = self.context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IDENTITY, name.encode())
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.connect(endpoint)
            self.sockets[name], self.by_socket[sock] = sock, name
            self.poller.register(sock, zmq.POLLIN)
        self.frames_out = self.frames_in = self.errors = 0

    def send(self, name: str, msg) -> None:
        self.sockets[name].send(encode(msg))
        self.frames_out += 1

    def register(self, day: int) -> None:
        limits = {"import": [7.0], "export": [7.0], "cdl": [2.5] * PERIODS,
                  "pil": [1.0] * PERIODS}
        for name in self.names:
            self.send(name, Register(sender=name, day=day, body=RegisterBody(
                kind="building", periods=PERIODS, period_h=PERIOD_H, limits_kw=limits)))

    def day(self, day: int, timeout_s: float, on_signalled=None) -> set[str]:
        """Play one day; the agents settled."""
        self.register(day)
        settled: set[str] = set()
        signalled: set[str] = set()
        live = [n for n in self.names if n not in self.late]
        deadline = time.monotonic() + timeout_s
        next_beat = time.monotonic() + HEARTBEAT_INTERVAL_S
        while len(settled) < len(live) and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_beat:  # every agent beats, the late ones too: alive but slow
                for name in self.names:
                    self.send(name, Heartbeat(sender=name, day=day))
                next_beat = now + HEARTBEAT_INTERVAL_S
            for sock, _ in self.poller.poll(100):
                name = self.by_socket[sock]
                while True:
                    try:
                        frame = sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.frames_in += 1
                    self.receive(name, frame, day, settled, signalled)
            if on_signalled and len(signalled) == len(self.names):
                on_signalled()
                on_signalled = None
        return settled

    def receive(self, name: str, frame: bytes, day: int, settled: set, signalled: set
                ) -> None:
        self._answer(name, decode(frame), day, settled, signalled)

    def _answer(self, name: str, msg, day: int, settled: set, signalled: set) -> None:
        if isinstance(msg, Error):
            self.errors += 1
        elif isinstance(msg, Signal) and msg.day == day:
            signalled.add(name)
            if name not in self.late:
                self.send(name, Offer(sender=name, day=day, round=msg.round,
                                      body=OfferBody(quantities_kw={"net": self.quotes[name]})))
        elif isinstance(msg, Clearing) and msg.day == day:
            for t, p in enumerate(self.quotes[name]):
                self.send(name, Meter(sender=name, day=day, round=0,
                                      body=MeterBody(period=t, p_kw=p * 1.02)))
        elif isinstance(msg, Settlement) and msg.day == day:
            settled.add(name)

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close(linger=0)
        self.context.term()


def run_load(agents: int, days: int, late: int, out: Path, round_deadline_s: float = 5.0
             ) -> LoadResult:
    """``agents`` scripted agents (``late`` of them never answering) for ``days`` days."""
    names = [f"a{i:05d}" for i in range(agents)]
    late_names = names[:: max(agents // late, 1)][:late] if late else []
    proc, endpoint = start_coordinator(out, names, days, round_deadline_s)
    result = LoadResult(agents, days, late_names)
    swarm = Swarm(endpoint, names, set(late_names))
    try:
        t0 = time.monotonic()
        for day in range(days):
            start = time.monotonic()

            def signalled():
                result.register_s = time.monotonic() - t0
            settled = swarm.day(day, timeout_s=60.0 + 2 * round_deadline_s,
                                on_signalled=signalled if day == 0 else None)
            result.day_s.append(time.monotonic() - start)
            result.settled.append(len(settled))
            result.rss_mb.append(_rss_mb(proc.pid))
            swarm.late = set()  # dropped agents sit the next days out
            swarm.names = [n for n in swarm.names if n not in late_names]
        proc.wait(timeout=30)
        for d in read_days(out / "rounds"):
            result.dropped.update(d["failed"])
    finally:
        result.frames_out, result.frames_in, result.errors = (swarm.frames_out,
                                                              swarm.frames_in, swarm.errors)
        swarm.close()
        if proc.poll() is None:
            proc.kill()
    return result


def print_load(r: LoadResult) -> None:
    import os
    import platform

    print(f"coordinator load: {r.agents} agents, {r.days} day(s), {len(r.late)} late, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
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
