"""One market day as the coordinator sees it: roster, rounds, clearing, meters, bills.

Pure bookkeeping around a mechanism; transports (in-process calls, the ZeroMQ
service) feed it messages and deliver what it returns. Every message in and out is
appended to ``log``. Bad messages raise ``ProtocolError`` for the transport to answer
with an ``error`` message; the session itself stays usable.

A day goes: ``register`` (agents join) → ``start`` (round 1 signals) → ``offer`` /
``close_round`` until the mechanism is done → ``clear`` (clearings) → ``meter`` (one
realised power per agent and period) → ``settle`` (the day's bills).
"""

from __future__ import annotations

import numpy as np

from lemgrid.coordinator.mechanisms.base import MarketCore, horizon
from lemgrid.coordinator.protocol import (
    Clearing,
    Meter,
    Offer,
    ProtocolError,
    Register,
    Settlement,
    Signal,
)


class _Discard(list):
    """A log that keeps nothing."""

    def append(self, item) -> None:
        pass

    def extend(self, items) -> None:
        pass


class MarketSession:
    def __init__(self, mechanism: MarketCore, params, day: int = 0, sender: str = "coordinator",
                 keep_log: bool = True):
        """``keep_log``: keep every message in ``log`` (an in-process run's record; a
        coordinator process writes its own and keeps none)."""
        self.mechanism, self.params, self.day, self.sender = mechanism, params, day, sender
        self.roster: dict[str, object] = {}
        self.failed: dict[str, str] = {}
        self.offers: dict[str, object] = {}
        self.state = None
        self.round = 0
        self.done = False
        self.periods = 0
        self.clearings: dict[str, object] = {}
        self.meters: dict[str, np.ndarray] = {}  # agent -> realised kW per period, NaN: none
        self.settlements: dict[str, object] = {}
        self.unmetered_failed: dict[str, str] = {}  # cleared agents that stopped metering
        self._missing: dict[str, int] = {}  # cleared agent -> periods not metered yet
        self._incomplete: set[str] = set()  # cleared agents still missing a reading
        self.log: list = [] if keep_log else _Discard()
        self._active: tuple[tuple[int, int], list[str]] = ((-1, -1), [])
        self._signalled: set[str] = set()  # the agents this round's signals went to
        self._waiting: set[str] = set()  # ... that have neither offered nor failed yet

    # -- registration and rounds ---------------------------------------------------------
    def register(self, msg: Register) -> None:
        self.log.append(msg)
        if self.state is not None:
            raise ProtocolError("late", f"{msg.sender} registered after the market opened",
                                msg.msg_id)
        bad = [k for k, v in msg.body.limits_kw.items() if len(v) not in (1, msg.body.periods)]
        if bad:
            raise ProtocolError("malformed", f"body.limits_kw.{bad[0]}: expected 1 or "
                                f"{msg.body.periods} values", msg.msg_id)
        if msg.body.kind not in self.mechanism.kinds:
            raise ProtocolError("forbidden", f"mechanism {self.mechanism.name} does not serve "
                                f"{msg.body.kind} agents (it serves "
                                f"{', '.join(sorted(self.mechanism.kinds))})", msg.msg_id)
        self.roster[msg.sender] = msg.body

    def _signals(self, bodies: dict) -> dict[str, Signal]:
        active = set(self.active)
        out = {n: Signal(sender=self.sender, day=self.day, round=self.round, body=b)
               for n, b in bodies.items() if n in active}
        self._signalled, self._waiting = set(out), set(out)
        self.log.extend(out.values())
        return out

    @property
    def active(self) -> list[str]:
        """Registered agents not failed (kept until the roster or the failures grow: both
        only grow, and a coordinator asks after every message)."""
        key = (len(self.roster), len(self.failed))
        if self._active[0] != key:
            self._active = (key, [n for n in self.roster if n not in self.failed])
        return self._active[1]

    def start(self) -> dict[str, Signal]:
        """Open round 1: the mechanism's first signals (agents whose horizon differs from
        the first agent's are dropped)."""
        first = next(iter(self.roster.values()), None)
        for name, body in self.roster.items():
            if (body.periods, body.period_h) != (first.periods, first.period_h):
                self.failed[name] = (f"registered {body.periods} periods of {body.period_h} h, "
                                     f"the market has {first.periods} of {first.period_h} h")
        self.periods = horizon({n: self.roster[n] for n in self.active})[0]
        bodies, self.state = self.mechanism.init({n: self.roster[n] for n in self.active},
                                                 self.params, self.day)
        self.round = 1
        return self._signals(bodies)

    def offer(self, msg: Offer) -> None:
        self.log.append(msg)
        if msg.sender not in self.roster:
            raise ProtocolError("unknown_agent", f"{msg.sender} is not registered", msg.msg_id)
        if self.done or msg.round != self.round or msg.day != self.day:
            raise ProtocolError("late", f"offer for day {msg.day} round {msg.round}, the market "
                                f"is at day {self.day} round {self.round}", msg.msg_id)
        if msg.sender not in self._signalled:
            raise ProtocolError("forbidden", f"{msg.sender} was not asked to offer in round "
                                f"{self.round}", msg.msg_id)
        if msg.sender in self.offers:
            raise ProtocolError("duplicate", f"{msg.sender} already offered in round "
                                f"{self.round}", msg.msg_id)
        problem = self.mechanism.check_offer(msg.body, self.periods)
        if problem:
            raise ProtocolError("malformed", f"body.{problem}", msg.msg_id)
        self.offers[msg.sender] = msg.body
        self._waiting.discard(msg.sender)

    def fail(self, name: str, reason: str) -> None:
        """Drop an agent that cannot take part any more (it offers nothing from now on)."""
        self.failed[name] = reason
        self.offers.pop(name, None)
        self._incomplete.discard(name)
        self._waiting.discard(name)

    @property
    def waiting(self) -> set[str]:
        """Active agents signalled this round that have not offered yet (a mechanism may
        ask only some agents in a round, e.g. only the network operator); kept up to date
        as offers and failures come, so asking is cheap however many agents there are (a
        coordinator asks after every message): a live set, copy it before failing agents
        while going through it."""
        return self._waiting

    @property
    def waiting_for(self) -> list[str]:
        """``waiting`` in the roster's order."""
        return [n for n in self.active if n in self._waiting]

    def close_round(self) -> dict[str, Signal]:
        """Run the mechanism on this round's offers; return the next round's signals
        (empty when the market is done)."""
        bodies, self.state, self.done = self.mechanism.step(self.offers, self.state, self.params)
        self.offers = {}
        if self.done:
            self._waiting = set()
            return {}
        self.round += 1
        return self._signals(bodies)

    def clear(self) -> dict[str, Clearing]:
        """The day-ahead result for every active agent."""
        bodies = self.mechanism.clear(self.state, self.params)
        active = set(self.active)
        out = {n: Clearing(sender=self.sender, day=self.day, round=self.round, body=b)
               for n, b in bodies.items() if n in active}
        self.clearings = {n: m.body for n, m in out.items()}
        self._missing = dict.fromkeys(self.clearings, self.periods)
        self._incomplete = set(self.clearings)
        self.log.extend(out.values())
        return out

    # -- realisation and settlement ------------------------------------------------------
    def meter(self, msg: Meter) -> None:
        """Record the realised power of the periods a reading covers; an agent meters each
        period of the day once. A reading is taken whole or refused whole."""
        self.log.append(msg)
        name, first, values = msg.sender, msg.body.period, msg.body.p_kw
        if name not in self.clearings or name in self.failed:
            raise ProtocolError("forbidden", f"{name} has no clearing on day {self.day}",
                                msg.msg_id)
        if msg.day != self.day or self.settlements:
            raise ProtocolError("late", f"meter for day {msg.day}, the market is at day "
                                f"{self.day}{' (settled)' if self.settlements else ''}",
                                msg.msg_id)
        last = first + len(values) - 1
        if last >= self.periods:
            raise ProtocolError("malformed", f"body.period: {first}"
                                f"{f'-{last}' if last > first else ''} is not a period of "
                                f"the day (0-{self.periods - 1})", msg.msg_id)
        readings = self.meters.setdefault(name, np.full(self.periods, np.nan))
        taken = ~np.isnan(readings[first:last + 1])
        if taken.any():
            raise ProtocolError("duplicate", f"{name} already metered period "
                                f"{first + int(np.argmax(taken))}", msg.msg_id)
        readings[first:last + 1] = values
        self._missing[name] -= len(values)
        if not self._missing[name]:
            self._incomplete.discard(name)

    @property
    def unmetered(self) -> set[str]:
        """Cleared agents still missing a reading for some period (kept up to date as
        readings arrive, so asking is cheap however many agents there are; a live set:
        copy it before failing or stopping agents while going through it)."""
        return self._incomplete

    @property
    def left(self) -> dict[str, str]:
        """Agents that leave the run after this day, with the reason: dropped from the
        market, or stopped metering after their clearing."""
        return self.failed | self.unmetered_failed

    def stop_metering(self, name: str, reason: str) -> None:
        """A cleared agent that will meter no more: it is settled on what it metered, its
        missing periods at its day-ahead position (its contracts stand), and leaves."""
        self.unmetered_failed[name] = reason
        self._incomplete.discard(name)

    def settle(self) -> dict[str, Settlement]:
        """The day's bills for every cleared agent; a period without a reading counts as
        realised at the day-ahead position."""
        cleared = {n: c for n, c in self.clearings.items() if n not in self.failed}
        meters = {n: m for n, m in self.meters.items() if n in cleared}
        bodies = self.mechanism.settle(self.state, self.params, meters)
        out = {n: Settlement(sender=self.sender, day=self.day, round=self.round, body=b)
               for n, b in bodies.items() if n in cleared}
        self.settlements = {n: m.body for n, m in out.items()}
        self.log.extend(out.values())
        return out
