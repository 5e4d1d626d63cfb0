"""The ADMM market's wire and coordinator overhead per round, with the solves taken out.

A ``lemgrid coordinator`` process runs mechanism ``admm`` (with its operator) for a
fixed number of rounds; a swarm of scripted peers and a scripted operator (one DEALER
socket each, ``coordinator.scripted.Swarm``) answer every signal at once with fixed net
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
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from lemgrid.coordinator.mechanisms.admm import CORE, ADMMParams
from lemgrid.coordinator.protocol import (
    HEARTBEAT_INTERVAL_S,
    NET,
    P2P,
    OfferBody,
    RegisterBody,
    Signal,
)
from lemgrid.coordinator.scripted import ScriptedAgent, Swarm
from lemgrid.scenarios.bench.load import PERIOD_H, PERIODS, net_demand_kw, start_coordinator

OPERATOR = "operator"

UNREACHABLE = 1e-300  # a residual tolerance no round meets


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


def operator_answer(signal: Signal) -> OfferBody:
    """The operator's answer: every peer's net target taken as it is."""
    targets = (signal.body.by_counterparty or {}).get(NET, {})
    return OfferBody(quantities_kw={}, by_counterparty_kw={NET: {
        peer: t.target_kw for peer, t in targets.items()}})


def wire_agents(peers: list[str], seed: int = 0) -> list[ScriptedAgent]:
    """Peers that half may sell, all may buy, answering a fixed net purchase and import
    (half of it from peers) and realising it; an operator that takes every target as it
    is and meters nothing."""
    rng = np.random.default_rng(seed)
    agents = []
    for i, name in enumerate(peers):
        quote = net_demand_kw(rng)
        limits = {"import": [10.0], "export": [5.0 if i % 2 == 0 else 0.0]}
        agents.append(ScriptedAgent(
            name, RegisterBody(kind="prosumer", periods=PERIODS, period_h=PERIOD_H,
                               limits_kw=limits),
            {NET: quote, P2P: [0.5 * q for q in quote]}, quote))
    agents.append(ScriptedAgent(OPERATOR, RegisterBody(kind="operator", periods=PERIODS,
                                                       period_h=PERIOD_H),
                                operator_answer, [0.0] * PERIODS))
    return agents


def run_wire(peers: int, rounds: int, out: Path) -> WireResult:
    """``peers`` scripted peers and an operator through ``rounds`` ADMM rounds (a
    tolerance no residual reaches keeps the market going to the round bound)."""
    names = [f"p{i:04d}" for i in range(peers)]
    params = ADMMParams(residual_tolerance=UNREACHABLE, max_rounds=rounds, network=True)
    proc, endpoint = start_coordinator(out, [*names, OPERATOR], 1, round_deadline_s=30.0,
                                       core=CORE, params=params)
    res, round_seen = WireResult(peers), {}

    def observe(agent, msg, frame_bytes: int, received_at: float, answer_s: float) -> None:
        if not isinstance(msg, Signal):
            return
        if msg.round not in round_seen:
            round_seen[msg.round] = received_at
            res.swarm_ms.append(0.0)
            res.bytes_in.append(0)
        res.bytes_in[-1] += frame_bytes
        res.swarm_ms[-1] += 1e3 * answer_s

    swarm = Swarm(endpoint, wire_agents(names))
    swarm.observe = observe
    try:
        swarm.play(0, timeout_s=60.0 + rounds, heartbeat_s=HEARTBEAT_INTERVAL_S)
        proc.wait(timeout=30)
    finally:
        swarm.close()
        if proc.poll() is None:
            proc.kill()
    seen = [round_seen[r] for r in sorted(round_seen)]
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
