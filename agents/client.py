"""An agent's side of the coordinator protocol: one DEALER socket, Lazy Pirate waits.

The client registers, then answers every ``signal`` with the agent's ``offer`` until the
``clearing`` arrives. Every wait is a poll with ``timeout_s``; on a timeout the last
message (register or offer) is sent again, and after ``retries`` timeouts in a row
without any message the coordinator is declared unavailable. A re-sent message is
answered with a ``duplicate`` (or ``late``) error, which is recorded and shows the
coordinator is alive. The agent's solve runs in the client's thread, so the client sends
no heartbeats; the coordinator's round deadline bounds how long it waits for a solve.
"""

from __future__ import annotations

import zmq

from agents.data import Schedule
from agents.solver import AgentInfeasible, AgentSolveError
from coordinator.protocol import (
    REQUEST_RETRIES,
    REQUEST_TIMEOUT_S,
    Clearing,
    Error,
    ProtocolError,
    Signal,
    decode,
    encode,
)


class CoordinatorUnavailable(RuntimeError):
    """No message from the coordinator within the client's retries."""


class CoordinatorClient:
    """Take part in one market day for ``agent`` (``register``, ``on_signal``,
    ``on_clearing``, ``name``: a ``MarketAgent`` or anything shaped like one)."""

    def __init__(self, agent, endpoint: str, identity: str | None = None,
                 timeout_s: float = REQUEST_TIMEOUT_S, retries: int = REQUEST_RETRIES,
                 day: int = 0):
        self.agent, self.endpoint, self.day = agent, endpoint, day
        self.identity = identity or agent.name
        self.timeout_s, self.retries = timeout_s, retries
        self.errors: list[Error] = []  # error messages the coordinator answered with
        self.bad_frames: list[str] = []  # frames from the coordinator that did not decode
        self.failure: str | None = None  # why the agent stopped (solver failure)
        self.settled: Schedule | None = None
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IDENTITY, self.identity.encode())
        self.socket.connect(endpoint)

    def run(self) -> Schedule | None:
        """The settled schedule, or None if the agent's solver failed."""
        last = self.agent.register(self.day)
        self._send(last)
        while True:
            msg = self._wait(last)
            if isinstance(msg, Signal):
                try:
                    last = self.agent.on_signal(msg)
                except (AgentInfeasible, AgentSolveError) as exc:
                    self.failure = str(exc)  # the coordinator times this agent out
                    return None
                self._send(last)
            elif isinstance(msg, Clearing):
                self.settled = self.agent.on_clearing(msg)
                return self.settled
            elif isinstance(msg, Error):
                self.errors.append(msg)

    def _wait(self, last):
        """The next decodable message; re-send ``last`` on each timeout (Lazy Pirate)."""
        retries_left = self.retries
        while True:
            if self.socket.poll(self.timeout_s * 1000):
                frame = self.socket.recv()
                try:
                    return decode(frame)
                except ProtocolError as exc:
                    self.bad_frames.append(str(exc))
                    retries_left = self.retries
                    continue
            retries_left -= 1
            if retries_left <= 0:
                raise CoordinatorUnavailable(
                    f"{self.identity}: no answer from the coordinator at {self.endpoint} "
                    f"within {self.retries} waits of {self.timeout_s:g} s")
            self._send(last)

    def _send(self, msg) -> None:
        self.socket.send(encode(msg))

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_agent(agent, endpoint: str, **kwargs) -> Schedule | None:
    """Connect ``agent`` to the coordinator at ``endpoint`` and take part in one day."""
    with CoordinatorClient(agent, endpoint, **kwargs) as client:
        return client.run()
