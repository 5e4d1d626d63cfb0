"""An agent's side of the coordinator protocol: one DEALER socket for the whole run,
Lazy Pirate waits.

Each day the client registers, then answers every ``signal`` with the agent's ``offer``
until the ``clearing`` arrives; during the day it sends one ``meter`` per period (no
answer expected). The day's ``settlement`` arrives after the last meter and is taken
whenever the client next reads (the next day's registration, or ``close``). Every wait
is a poll with ``timeout_s``; on a timeout the last message (register or offer) is sent
again, and after ``retries`` timeouts in a row without any message the coordinator is
declared unavailable. A re-sent message is answered with a ``duplicate`` (or ``late``)
error, which is recorded and shows the coordinator is alive; after a ``duplicate`` the
client waits twice as long before the next re-send (up to ``HELD_PATIENCE_MAX``
timeouts), until the next signal. The agent's solve runs in
the client's thread, so the client sends no heartbeats; the coordinator's round deadline
bounds how long it waits for a solve.

With ``curve_keys`` (a directory written by ``lemgrid keys``) the connection is CURVE
encrypted and authenticated with the client key pair ``key_name``.
"""

from __future__ import annotations

from pathlib import Path

import zmq
from zmq.auth import load_certificate

from lemgrid.agents.data import Schedule
from lemgrid.agents.solver import AgentInfeasible, AgentSolveError
from lemgrid.coordinator.protocol import (
    CURVE_DEFAULT_CLIENT,
    CURVE_PRIVATE_DIR,
    CURVE_PUBLIC,
    CURVE_SECRET,
    CURVE_SERVER_KEY,
    REQUEST_RETRIES,
    REQUEST_TIMEOUT_S,
    Clearing,
    Error,
    ErrorBody,
    ProtocolError,
    Settlement,
    Signal,
    clean_text,
    decode,
    encode,
    merge_meters,
)

SERVER_PUBLIC_KEY = f"{CURVE_SERVER_KEY}{CURVE_PUBLIC}"
CLIENT_KEY_PAIR = f"{CURVE_PRIVATE_DIR}/{{}}{CURVE_SECRET}"
DEFAULT_KEY_NAME = CURVE_DEFAULT_CLIENT


# Once the coordinator has answered a re-sent message with ``duplicate`` (it holds the
# message; the round is simply long), the client waits twice as long before each further
# re-send, up to this many timeouts: 10,000 agents re-sending their offers every 10 s
# during a long round kept the coordinator busy answering 86,577 duplicates.
HELD_PATIENCE_MAX = 8


class CoordinatorUnavailable(RuntimeError):
    """No message from the coordinator within the client's retries."""


class CoordinatorClient:
    """Take part in one market day for ``agent`` (``register``, ``on_signal``,
    ``on_clearing``, ``name``: a ``MarketAgent`` or anything shaped like one)."""

    def __init__(self, agent, endpoint: str, identity: str | None = None,
                 timeout_s: float = REQUEST_TIMEOUT_S, retries: int = REQUEST_RETRIES,
                 curve_keys: str | Path | None = None, key_name: str | None = None):
        self.agent, self.endpoint = agent, endpoint
        self.key_name = (key_name or DEFAULT_KEY_NAME) if curve_keys is not None else None
        keys = curve_client_keys(curve_keys, self.key_name) if curve_keys is not None else {}
        self.identity = identity or agent.name
        self.timeout_s, self.retries = timeout_s, retries
        self.errors: list[Error] = []  # error messages the coordinator answered with
        self.bad_frames: list[str] = []  # frames from the coordinator that did not decode
        self.failure: str | None = None  # why the agent stopped (solver failure)
        self.settled: Schedule | None = None
        self.settlements: dict[int, Settlement] = {}  # day -> the market's bill
        # one context (one I/O thread) for every client of the process: a context each
        # gave 100 agents of a process 200 threads, and 10,000 agents ran the machine out
        # of process ids (32768)
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.IDENTITY, self.identity.encode())
        for option, value in keys.items():
            self.socket.setsockopt(option, value)
        self.socket.connect(endpoint)

    def run_day(self, day: int) -> Schedule | None:
        """Take part in day ``day``'s market: the planned day once cleared, or None if
        the agent's solver failed (it tells the coordinator so, ``leave``)."""
        last = self.agent.register(day)
        self._send(last)
        patience = 1  # the wait before a re-send, in timeouts
        while True:
            msg = self._wait(last, patience)
            if isinstance(msg, Signal) and msg.day == day:
                try:
                    last = self.agent.on_signal(msg)
                except (AgentInfeasible, AgentSolveError, ValueError) as exc:
                    self.failure = str(exc)
                    self.leave(day, f"day {day + 1}: {self.failure}")
                    return None
                self._send(last)
                patience = 1
            elif isinstance(msg, Clearing) and msg.day == day:
                return self.agent.on_clearing(msg)
            elif isinstance(msg, Error):
                self.errors.append(msg)
                if msg.body.code == "gone":  # dropped from the run: no answer will come
                    self.failure = msg.body.detail
                    return None
                if msg.body.code == "duplicate" and msg.body.ref_msg_id == last.msg_id:
                    # the coordinator holds it: wait longer before asking again
                    patience = min(2 * patience, HELD_PATIENCE_MAX)

    def run(self, day: int = 0) -> Schedule | None:
        """One whole day: market, realisation (the day's meter readings in one message),
        settlement."""
        if self.run_day(day) is None:
            return None
        self._send(merge_meters(self.agent.realise_day()))
        settlement = self.wait_settlement(day)
        self.settled = self.agent.on_settlement(settlement)
        return self.settled

    def leave(self, day: int, reason: str) -> None:
        """Tell the coordinator that this agent leaves the run (an ``error`` of code
        ``gone``), so that no round or registration waits for it until a deadline."""
        self._send(Error(sender=self.identity, day=day, body=ErrorBody(
            code="gone", detail=clean_text(reason))))

    def send(self, msg) -> None:
        """Send a message that needs no answer (a meter reading)."""
        self._send(msg)

    def wait_settlement(self, day: int, timeout_s: float | None = None) -> Settlement | None:
        """The settlement of ``day`` (waiting up to ``timeout_s``, default the client's
        whole retry budget), or None."""
        deadline = self.timeout_s * self.retries if timeout_s is None else timeout_s
        while day not in self.settlements and self._read(deadline):
            pass
        return self.settlements.get(day)

    def _read(self, timeout_s: float) -> bool:
        """Read one message into the client's records; False if none came."""
        if not self.socket.poll(timeout_s * 1000):
            return False
        try:
            msg = decode(self.socket.recv())
        except ProtocolError as exc:
            self.bad_frames.append(str(exc))
            return True
        self._keep(msg)
        return True

    def _keep(self, msg) -> bool:
        """Record a settlement or an error; True if ``msg`` was one of them."""
        if isinstance(msg, Settlement):
            self.settlements[msg.day] = msg
        elif isinstance(msg, Error):
            self.errors.append(msg)
        else:
            return False
        return True

    def _wait(self, last, patience: int = 1):
        """The next decodable message; re-send ``last`` after each ``patience`` timeouts
        without one (Lazy Pirate)."""
        retries_left = self.retries
        while True:
            if self.socket.poll(patience * self.timeout_s * 1000):
                frame = self.socket.recv()
                try:
                    msg = decode(frame)
                except ProtocolError as exc:
                    self.bad_frames.append(str(exc))
                    retries_left = self.retries
                    continue
                if not isinstance(msg, Settlement):
                    return msg
                self._keep(msg)
                retries_left = self.retries
                continue
            retries_left -= 1
            if retries_left <= 0:
                key = f" (is CURVE key {self.key_name!r} admitted?)" if self.key_name else ""
                raise CoordinatorUnavailable(
                    f"{self.identity}: no answer from the coordinator at {self.endpoint} "
                    f"within {self.retries} waits of {patience * self.timeout_s:g} s{key}")
            self._send(last)

    def _send(self, msg) -> None:
        self.socket.send(encode(msg))

    def close(self) -> None:
        """Close the client's socket (the process's shared context stays)."""
        self.socket.close(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def curve_client_keys(directory: str | Path, key_name: str) -> dict[int, bytes]:
    """The socket options of a CURVE client holding ``key_name``'s key pair."""
    d = Path(directory)
    server, pair = d / SERVER_PUBLIC_KEY, d / CLIENT_KEY_PAIR.format(key_name)
    for path in (server, pair):
        if not path.is_file():
            raise FileNotFoundError(f"no CURVE key at {path} (lemgrid keys {directory} "
                                    f"--clients {key_name} writes one)")
    public, secret = load_certificate(pair)
    if secret is None:
        raise ValueError(f"{pair} holds no secret key")
    return {zmq.CURVE_SERVERKEY: load_certificate(server)[0], zmq.CURVE_PUBLICKEY: public,
            zmq.CURVE_SECRETKEY: secret}


def run_agent(agent, endpoint: str, days: int = 1, **kwargs) -> list[Schedule | None]:
    """Connect ``agent`` to the coordinator at ``endpoint`` and take part in ``days``
    days (stopping at the first day it cannot plan): the settled days."""
    out = []
    with CoordinatorClient(agent, endpoint, **kwargs) as client:
        for day in range(days):
            out.append(client.run(day))
            if out[-1] is None:
                break
    return out
