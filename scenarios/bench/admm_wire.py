"""The ADMM market's wire and coordinator overhead per round, with the solves taken out.

A ``lemgrid coordinator`` process runs mechanism ``admm`` (with its operator) for a
fixed number of rounds; a swarm of scripted peers and a scripted operator (one DEALER
socket each, ``scenarios.bench.load.Swarm``) answer every signal at once with fixed net
purchases and imports (the operator with the targets it was sent). A round then costs
only what the market adds to the solves: the coordinator's step, its encoding of the
signals and decoding of the offers, ZeroMQ on loopback, and the agents' decoding of a
signal and encoding of an offer. The swarm does the agents' part for all of them in one
thread, one after the other, and times it; real agents do it in parallel, each its own
share. So the table gives the round interval (signals of round r in → signals of round
r + 1 in, at the swarm), the swarm's serial share of it, and what is left: the
coordinator and the wire.

``lemgrid bench antunes2024`` prints it at 90 peers beside the scenario's runs;
``run_wire`` is what tests call.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from coordinator.mechanisms.admm import ADMMParams
from coordinator.protocol import (
    NET,
    P2P,
    Clearing,
    Error,
    Meter,
    MeterBody,
    Offer,
    OfferBody,
    Register,
    RegisterBody,
    Settlement,
    Signal,
    decode,
)
from scenarios.bench.load import PERIOD_H, PERIODS, Swarm, start_coordinator

OPERATOR = "operator"


@dataclass
class WireResult:
    peers: int
    rounds: int = 0
    interval_ms: list[float] = field(default_factory=list)  # per round, at the swarm
    swarm_ms: list[float] = field(default_factory=list)  # the swarm's own work per round
    bytes_in: list[int] = field(default_factory=list)  # signal bytes per round
    errors: int = 0

    def medians(self) -> dict[str, float]:
        interval = statistics.median(self.interval_ms)
        swarm = statistics.median(self.swarm_ms)
        return {"peers": float(self.peers), "rounds": float(self.rounds),
                "round_interval_ms": interval, "agents_serial_ms": swarm,
                "coordinator_and_wire_ms": interval - swarm,
                "signal_kb_per_round": statistics.median(self.bytes_in) / 1e3}


class ADMMSwarm(Swarm):
    """Peers that half may sell, all may buy, answering a fixed net purchase and import;
    an operator that takes every target as it is."""

    def __init__(self, endpoint: str, peers: list[str], seed: int = 0):
        super().__init__(endpoint, [*peers, OPERATOR], set(), seed)
        self.peers = peers
        self.result = WireResult(len(peers))
        self._round_seen: dict[int, float] = {}
        self._work = 0.0

    def register(self, day: int) -> None:
        for i, name in enumerate(self.peers):
            limits = {"import": [10.0], "export": [5.0 if i % 2 == 0 else 0.0]}
            self.send(name, Register(sender=name, day=day, body=RegisterBody(
                kind="prosumer", periods=PERIODS, period_h=PERIOD_H, limits_kw=limits)))
        self.send(OPERATOR, Register(sender=OPERATOR, day=day, body=RegisterBody(
            kind="operator", periods=PERIODS, period_h=PERIOD_H)))

    def receive(self, name: str, frame: bytes, day: int, settled: set, signalled: set):
        start = time.perf_counter()
        msg = decode(frame)
        if isinstance(msg, Signal):
            now = time.monotonic()
            if msg.round not in self._round_seen:
                self._round_seen[msg.round] = now
                self.result.swarm_ms.append(0.0)
                self.result.bytes_in.append(0)
            self.result.bytes_in[-1] += len(frame)
        self._answer(name, msg, day, settled, signalled)
        if isinstance(msg, Signal):
            self.result.swarm_ms[-1] += 1e3 * (time.perf_counter() - start)

    def _answer(self, name: str, msg, day: int, settled: set, signalled: set) -> None:
        if isinstance(msg, Error):
            self.errors += 1
        elif isinstance(msg, Signal) and msg.day == day:
            signalled.add(name)
            if name == OPERATOR:
                targets = (msg.body.by_counterparty or {}).get(NET, {})
                body = OfferBody(quantities_kw={}, by_counterparty_kw={NET: {
                    peer: t.target_kw for peer, t in targets.items()}})
            else:
                quote = self.quotes[name]
                body = OfferBody(quantities_kw={NET: quote, P2P: [0.5 * q for q in quote]})
            self.send(name, Offer(sender=name, day=day, round=msg.round, body=body))
        elif isinstance(msg, Clearing) and msg.day == day:
            for t, p in enumerate(self.quotes[name]):
                self.send(name, Meter(sender=name, day=day, round=0, body=MeterBody(
                    period=t, p_kw=0.0 if name == OPERATOR else p)))
        elif isinstance(msg, Settlement) and msg.day == day:
            settled.add(name)


def run_wire(peers: int, rounds: int, out: Path) -> WireResult:
    """``peers`` scripted peers and an operator through ``rounds`` ADMM rounds (the
    tolerance 0 keeps the market going to the round bound)."""
    names = [f"p{i:04d}" for i in range(peers)]
    params = ADMMParams(tolerance=0.0, max_rounds=rounds, network=True)
    proc, endpoint = start_coordinator(out, [*names, OPERATOR], 1, round_deadline_s=30.0,
                                       mechanism="admm", params=params)
    swarm = ADMMSwarm(endpoint, names)
    try:
        swarm.day(0, timeout_s=60.0 + rounds)
        proc.wait(timeout=30)
    finally:
        swarm.close()
        if proc.poll() is None:
            proc.kill()
    res = swarm.result
    seen = [swarm._round_seen[r] for r in sorted(swarm._round_seen)]
    res.interval_ms = [1e3 * (b - a) for a, b in pairwise(seen)]
    res.swarm_ms = res.swarm_ms[:len(res.interval_ms)]
    res.rounds, res.errors = len(seen), swarm.errors
    return res


def print_wire(r: WireResult) -> None:
    med = r.medians()
    print(f"\nover the wire, answers at once ({r.peers} peers + operator, {r.rounds} rounds, "
          f"medians over rounds):")
    for k, v in med.items():
        goal = "  (goal ≤ 10 at 90 peers)" if k == "coordinator_and_wire_ms" else ""
        print(f"  {k:32} {v:10.4g}{goal}")
    if r.errors:
        print(f"  error replies: {r.errors}")
