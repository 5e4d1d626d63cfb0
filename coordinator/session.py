"""One market day as the coordinator sees it: roster, rounds, offers, clearing.

Pure bookkeeping around a mechanism; transports (in-process calls, the ZeroMQ
service) feed it messages and deliver what it returns. Every message in and out is
appended to ``log``. Bad messages raise ``ProtocolError`` for the transport to answer
with an ``error`` message; the session itself stays usable.
"""

from __future__ import annotations

from coordinator.mechanisms import Mechanism
from coordinator.protocol import Clearing, Offer, ProtocolError, Register, Signal


class MarketSession:
    def __init__(self, mechanism: Mechanism, params, day: int = 0, sender: str = "coordinator"):
        self.mechanism, self.params, self.day, self.sender = mechanism, params, day, sender
        self.roster: dict[str, object] = {}
        self.failed: dict[str, str] = {}
        self.offers: dict[str, object] = {}
        self.state = None
        self.round = 0
        self.done = False
        self.log: list = []

    def register(self, msg: Register) -> None:
        self.log.append(msg)
        if self.state is not None:
            raise ProtocolError("late", f"{msg.sender} registered after the market opened",
                                msg.msg_id)
        self.roster[msg.sender] = msg.body

    def _signals(self, bodies: dict) -> dict[str, Signal]:
        out = {n: Signal(sender=self.sender, day=self.day, round=self.round, body=b)
               for n, b in bodies.items() if n in self.active}
        self.log.extend(out.values())
        return out

    @property
    def active(self) -> list[str]:
        return [n for n in self.roster if n not in self.failed]

    def start(self) -> dict[str, Signal]:
        """Open round 1: the mechanism's first signals."""
        bodies, self.state = self.mechanism.init(self.roster, self.params)
        self.round = 1
        return self._signals(bodies)

    def offer(self, msg: Offer) -> None:
        self.log.append(msg)
        if msg.sender not in self.roster:
            raise ProtocolError("unknown_agent", f"{msg.sender} is not registered", msg.msg_id)
        if self.done or msg.round != self.round or msg.day != self.day:
            raise ProtocolError("late", f"offer for day {msg.day} round {msg.round}, the market "
                                f"is at day {self.day} round {self.round}", msg.msg_id)
        if msg.sender in self.offers:
            raise ProtocolError("duplicate", f"{msg.sender} already offered in round "
                                f"{self.round}", msg.msg_id)
        self.offers[msg.sender] = msg.body

    def fail(self, name: str, reason: str) -> None:
        """Drop an agent that cannot take part any more (it offers nothing from now on)."""
        self.failed[name] = reason
        self.offers.pop(name, None)

    @property
    def waiting_for(self) -> list[str]:
        return [n for n in self.active if n not in self.offers]

    def close_round(self) -> dict[str, Signal]:
        """Run the mechanism on this round's offers; return the next round's signals
        (empty when the market is done)."""
        bodies, self.state, self.done = self.mechanism.step(self.offers, self.state, self.params)
        self.offers = {}
        if self.done:
            return {}
        self.round += 1
        return self._signals(bodies)

    def settle(self) -> dict[str, Clearing]:
        bodies = self.mechanism.settle(self.state, self.params)
        out = {n: Clearing(sender=self.sender, day=self.day, round=self.round, body=b)
               for n, b in bodies.items() if n in self.active}
        self.log.extend(out.values())
        return out
