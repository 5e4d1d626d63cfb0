"""Scripted agents: protocol clients whose answers are given in advance, no model behind.

A ``ScriptedAgent`` registers, answers every signal with an offer (fixed quantities, or a
callable of the signal), meters every period after its clearing (fixed powers, a callable
of the clearing, or its cleared position) and keeps its last clearing and settlement. An
``error`` is counted; ``gone`` (the coordinator serves it no more) retires it. A ``Swarm``
runs many of them over one DEALER socket each, or as the agents of a few hosts (one
connection a host, every message in an envelope naming its agent), on one context, one
poller and one thread. The load and wire benchmarks and the coordinator's fuzzing are
swarms of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import zmq

from lemgrid.coordinator.protocol import (
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

# An answer: the offer's body for a signal (None: no offer this round), or the quantities
# (kW per commodity and period) offered every round, or None: the agent never answers.
Answer = Callable[[Signal], OfferBody | None] | Mapping[str, list[float]] | None
# A reading: the power realised per period (kW, + import) for a clearing, or the same for
# every clearing, or None: the cleared position.
Reading = Callable[[Clearing], list[float]] | list[float] | None


@dataclass(eq=False)
class ScriptedAgent:
    """One scripted protocol client (see the module docstring); ``receive`` gives its
    replies to one message, which a swarm sends."""

    name: str
    registration: RegisterBody
    answer: Answer
    reading_kw: Reading = None
    meter_day: bool = False  # the day's readings in one message, else one a period
    # what it heard: the day's clearing and settlement, each day's first signal (monotonic
    # s), how many errors (gone not counted) and why the coordinator serves it no more
    clearing: Clearing | None = field(default=None, init=False)
    settlement: Settlement | None = field(default=None, init=False)
    signalled_at: dict[int, float] = field(default_factory=dict, init=False)
    errors: int = field(default=0, init=False)
    gone: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.answer, Mapping):
            body = OfferBody(quantities_kw=dict(self.answer))
            self.answer = lambda signal: body

    @property
    def late(self) -> bool:
        """Never answers a signal: the coordinator drops it at the round deadline."""
        return self.answer is None

    def register(self, day: int = 0) -> Register:
        return Register(sender=self.name, day=day, body=self.registration)

    def opening(self, day: int) -> list:
        """What it sends to open ``day``: its registration, nothing once gone."""
        self.clearing = self.settlement = None
        return [] if self.gone else [self.register(day)]

    def on_signal(self, signal: Signal) -> Offer | None:
        body = None if self.answer is None else self.answer(signal)
        return None if body is None else Offer(sender=self.name, day=signal.day,
                                               round=signal.round, body=body)

    def meters(self, clearing: Clearing) -> list[Meter]:
        """One reading a period of the cleared day."""
        if self.reading_kw is None:
            powers = clearing.body.position_kw
        elif callable(self.reading_kw):
            powers = self.reading_kw(clearing)
        else:
            powers = self.reading_kw
        if self.meter_day:
            return [Meter(sender=self.name, day=clearing.day,
                          body=MeterBody(period=0, p_kw=list(powers)))] if powers else []
        return [Meter(sender=self.name, day=clearing.day, body=MeterBody(period=t, p_kw=p))
                for t, p in enumerate(powers)]

    def receive(self, msg) -> list:
        """Its replies to ``msg`` (messages, or frames as bytes)."""
        if isinstance(msg, Error) and msg.body.code == "gone":
            self.gone = msg.body.detail
        elif isinstance(msg, Error):
            self.errors += 1
        elif isinstance(msg, Signal):
            self.signalled_at.setdefault(msg.day, time.monotonic())
            offer = self.on_signal(msg)
            return [offer] if offer else []
        elif isinstance(msg, Clearing):
            self.clearing = msg
            return self.meters(msg)
        elif isinstance(msg, Settlement):
            self.settlement = msg
        return []

    def settled(self, day: int) -> bool:
        return self.settlement is not None and self.settlement.day == day


class Swarm:
    """``agents`` over one DEALER socket each, or with ``hosts`` over that many sockets,
    the agents dealt to them in turn, each message in an envelope naming its agent
    (``options``: more socket options, e.g. CURVE keys), all on one context and one
    poller, served by the calling thread. ``observe(agent, msg, frame_bytes,
    received_at_s, answer_s)``, if set, sees every message after the agent's replies went
    out."""

    def __init__(self, endpoint: str, agents: Iterable[ScriptedAgent],
                 options: dict | None = None, hosts: int | None = None):
        self.endpoint, self.options = endpoint, options or {}
        self.context = zmq.Context()
        self.agents = list(agents)
        self.poller = zmq.Poller()
        self._sockets: list[zmq.Socket] = []
        self.socket_of: dict[str, zmq.Socket] = {}
        # a socket's agents by the envelope that names them (b"": a socket of its own)
        self._agent_of: dict[zmq.Socket, dict[bytes, ScriptedAgent]] = {}
        self.hosted = hosts is not None
        shared = [self.connect(f"host-{h}") for h in range(hosts)] if self.hosted else []
        for i, agent in enumerate(self.agents):
            sock = shared[i % len(shared)] if shared else self.connect(agent.name)
            self.socket_of[agent.name] = sock
            self._agent_of.setdefault(sock, {})[agent.name.encode() if shared else b""] = agent
        for sock in self._agent_of:
            self.poller.register(sock, zmq.POLLIN)
        self.frames_out = self.frames_in = 0
        self.observe: Callable | None = None

    def connect(self, identity: str) -> zmq.Socket:
        """A DEALER socket named ``identity`` on the swarm's context, closed with it."""
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IDENTITY, identity.encode())
        sock.setsockopt(zmq.SNDHWM, 0)
        for option, value in self.options.items():
            sock.setsockopt(option, value)
        sock.connect(self.endpoint)
        self._sockets.append(sock)
        return sock

    def send(self, agent: ScriptedAgent, messages: list) -> None:
        sock = self.socket_of[agent.name]
        for msg in messages:
            frame = msg if isinstance(msg, bytes) else encode(msg)
            if self.hosted:
                sock.send_multipart([agent.name.encode(), frame])
            else:
                sock.send(frame)
        self.frames_out += len(messages)

    def play(self, day: int, timeout_s: float, quiet_s: float = math.inf,
             heartbeat_s: float | None = None, until: Iterable[str] | None = None,
             beating: Iterable[str] | None = None,
             tick: Callable[[], None] | None = None,
             others: Mapping[zmq.Socket, Callable[[zmq.Socket], None]] | None = None) -> bool:
        """Play ``day`` until the agents named in ``until`` (default: all that answer and
        are not gone) have their settlement, every agent (or those named in ``beating``)
        heartbeating every ``heartbeat_s`` (None: never); False if ``timeout_s`` passes
        first, or ``quiet_s``
        without a frame. ``tick`` runs between polls; ``others``: sockets polled too,
        each with its reader."""
        names = None if until is None else set(until)
        beaters = (self.agents if beating is None
                   else [a for a in self.agents if a.name in set(beating)])
        waiting = {a for a in self.agents if (a.name in names if names is not None
                                              else not a.late and not a.gone)}
        for agent in self.agents:
            self.send(agent, agent.opening(day))
        others = others or {}
        for sock in others:
            self.poller.register(sock, zmq.POLLIN)
        now = time.monotonic()
        deadline, heard, beat = now + timeout_s, now, now + (heartbeat_s or math.inf)
        try:
            while waiting:
                now = time.monotonic()
                if now >= deadline or now - heard > quiet_s:
                    return False
                if now >= beat:  # the late agents beat too: alive but slow
                    for agent in (a for a in beaters if not a.gone):
                        self.send(agent, [Heartbeat(sender=agent.name, day=day)])
                    beat = now + heartbeat_s
                if tick:
                    tick()
                ready = self.poller.poll(100)
                heard = time.monotonic() if ready else heard
                for sock, _ in ready:
                    if sock in others:
                        others[sock](sock)
                        continue
                    agents = self._agent_of[sock]
                    while True:
                        try:
                            frames = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        agent = agents.get(frames[0] if self.hosted else b"")
                        if agent is None:
                            continue  # an envelope naming none of this host's agents
                        self._receive(agent, frames[-1])
                        if agent in waiting and (agent.settled(day) or agent.gone):
                            waiting.discard(agent)
            return True
        finally:
            for sock in others:
                self.poller.unregister(sock)

    def _receive(self, agent: ScriptedAgent, frame: bytes) -> None:
        received_at, start = time.monotonic(), time.perf_counter()
        self.frames_in += 1
        msg = decode(frame)
        self.send(agent, agent.receive(msg))
        if self.observe:
            self.observe(agent, msg, len(frame), received_at, time.perf_counter() - start)

    @property
    def errors(self) -> int:
        return sum(a.errors for a in self.agents)

    def close(self) -> None:
        for sock in self._sockets:
            sock.close(linger=0)
        self.context.term()
