"""The coordinator as a ZeroMQ ROUTER service around one ``MarketSession`` a day (no
mosaik).

One thread, one ROUTER socket, one poll loop that never blocks longer than
``POLL_INTERVAL_S``. It serves every day of the run; each day goes through phases:

* ``registration``: agents send ``register`` for the day; the market opens when every
  roster agent still in the run has registered or the registration timeout passes
  (missing agents fail as "never registered"). Registrations enter the session in roster
  order, so the mechanism sees the agents in the same order as the in-process runtime.
  An agent that has finished the previous day may register for the next one early.
* ``market``: a round closes when every active agent has offered or the round deadline
  passes (late agents fail); then the next signals go out, or the clearings.
* ``realisation``: agents send one ``meter`` per period; when every cleared agent has
  metered every period (or no meter has arrived for ``realisation_timeout_s``: agents
  still missing readings fail), the day is settled, the settlements go out and the day's
  record is written. Then the next day, or:
* ``draining``: the service answers stragglers for ``drain_s`` so the last messages leave
  the socket before it is closed with ``linger=0``.

An agent that fails a day leaves the run.

Every frame in and out is appended to ``messages.jsonl``. A bad frame is answered with
an ``error`` message and logged; it never stops the service. A frame that raises anything
else on its way in is dropped, logged and counted (``dropped``); the service goes on.

Who may speak: the service binds to loopback unless given another endpoint. A connection
speaks only for the agent it registered as (another ``sender`` is ``forbidden``), and an
agent registered from one connection cannot be registered from another. A host that
serves many agents over one connection puts a frame naming the agent before each
message (an envelope, ``[name, message]`` from a DEALER); the service answers on the same
route, so each envelope is a route of its own that speaks only for the agent it names
(a registration over a longer route than ``MAX_ROUTE_FRAMES``, ``MAX_ENVELOPE_BYTES``, is
refused). With
``curve_keys`` (``coordinator/auth.py``) only admitted CURVE keys connect at all, and each
agent is bound to the key it registered with.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from lemgrid.coordinator.arguments import add_coordinator_arguments
from lemgrid.coordinator.auth import CurveServer, is_loopback
from lemgrid.coordinator.constants import REALISATION_TIMEOUT_S, REGISTRATION_TIMEOUT_S
from lemgrid.coordinator.mechanisms.base import MarketCore, load_market
from lemgrid.coordinator.protocol import (
    HEARTBEAT_EXPIRY_S,
    HEARTBEAT_INTERVAL_S,
    ROUND_DEADLINE_S,
    Error,
    ErrorBody,
    Heartbeat,
    Meter,
    Offer,
    ProtocolError,
    Register,
    clean_text,
    decode,
)
from lemgrid.coordinator.records import write_day
from lemgrid.coordinator.session import MarketSession

POLL_INTERVAL_S = HEARTBEAT_INTERVAL_S / 10  # longest poll, so deadlines and stop() are prompt
DRAIN_S = HEARTBEAT_INTERVAL_S  # served after the clearings so they leave the socket
JOIN_TIMEOUT_S = 10 * POLL_INTERVAL_S  # close() waits this long for the serving thread
MAX_FRAME_BYTES = 64 << 20  # a longer frame closes its connection (no valid message comes near)
LOGGED_RAW_BYTES = 64 << 10  # of a frame that does not decode, kept in messages.jsonl
# a route: the connection's identity, then at most a REQ peer's empty delimiter and a
# host's envelope naming the agent (no name is longer)
MAX_ROUTE_FRAMES, MAX_ENVELOPE_BYTES = 3, 256
LOG = logging.getLogger("lemgrid.coordinator.service")


class CoordinatorService:
    """Serve one market day to agents over a ROUTER socket."""

    def __init__(self, mechanism: MarketCore, params, roster: list[str] | None, *,
                 endpoint: str = "tcp://127.0.0.1:0", log_path: Path | None = None,
                 round_deadline_s: float = ROUND_DEADLINE_S,
                 registration_timeout_s: float = REGISTRATION_TIMEOUT_S, day: int = 0,
                 heartbeat_expiry_s: float = HEARTBEAT_EXPIRY_S, drain_s: float = DRAIN_S,
                 curve_keys: str | Path | None = None, days: int = 1,
                 realisation_timeout_s: float = REALISATION_TIMEOUT_S,
                 records_path: Path | None = None, keep_log: bool = False):
        """``keep_log``: keep each day's messages in its session too (tests read them; a
        coordinator writes its log to ``log_path`` and keeps none in memory)."""
        self.mechanism = mechanism
        self.params = params
        self.keep_log = keep_log
        self.first_day, self.last_day = day, day + days - 1
        self.session = MarketSession(self.mechanism, params, day=day, keep_log=keep_log)
        self.roster = list(roster) if roster is not None else None
        self.realisation_timeout_s = realisation_timeout_s
        self.records_path = Path(records_path) if records_path else None
        # each finished day: its record (see day_record), kept here only without a
        # records folder; with one, on disk (coordinator.records) and a summary here
        self.days: list[dict] = []
        self.gone: dict[str, str] = {}  # agents that left the run, with the reason
        self.round_deadline_s = round_deadline_s
        self.registration_timeout_s = registration_timeout_s
        self.heartbeat_expiry_s, self.drain_s = heartbeat_expiry_s, drain_s
        self.phase = "registration"
        self.result: MarketSession | None = None
        self.error: BaseException | None = None
        self.dropped = 0  # frames that raised something unexpected on their way in
        self._names: dict[tuple, str] = {}  # route -> the agent it registered as
        self._keys: dict[str, str | None] = {}  # agent -> the CURVE key it registered with
        self._routes: dict[str, list[bytes]] = {}  # agent -> routing frames
        self._pending: dict[str, Register] = {}  # registrations before the market opens
        self._early: dict[str, Register] = {}  # registrations for the next day
        self._leaving: dict[str, str] = {}  # agents that left before the market opened
        self._leaving_next: dict[str, str] = {}  # ... before the next day's market did
        self._heard: dict[str, float] = {}  # agent -> last message (monotonic s)
        self._beating: set[str] = set()  # agents that sent heartbeats: they may expire
        self._expiry_due = 0.0  # when heartbeats are next looked at (not after every message)
        self._deadline = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.log_path = Path(log_path) if log_path else None
        self._log = None  # the open log file
        if self.log_path:  # the audit trail exists even if no frame ever arrives
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.touch()
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        # an agent whose process restarts reconnects under the same identity: the new
        # connection takes the route over (else its frames are dropped until the old
        # connection is noticed closed)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self.curve: CurveServer | None = None
        try:
            if curve_keys is not None:
                self.curve = CurveServer(self.socket, curve_keys)
            self.socket.bind(endpoint)
        except BaseException:
            self.close()
            raise
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    # -- serving -----------------------------------------------------------------------
    round_seconds: list[float]  # wall time of each round, signals out to last offer in
    _round_start = 0.0

    def run(self) -> MarketSession:
        """Serve until the day is settled (or ``stop()``); return the session."""
        self._deadline = time.monotonic() + self.registration_timeout_s
        self.round_seconds = []
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        if self.curve:
            poller.register(self.curve.monitor, zmq.POLLIN)
        while self.phase != "done" and not self._stop.is_set():
            wait_s = min(max(self._deadline - time.monotonic(), 0.0), POLL_INTERVAL_S)
            ready = dict(poller.poll(wait_s * 1000))
            if self.socket in ready:
                frames = self.socket.recv_multipart(copy=False)
                key = self.curve.key_name(frames[-1]) if self.curve else None
                self._receive([f.bytes for f in frames], key)
            if self.curve and self.curve.monitor in ready:
                self.curve.read_refusals()
            self._advance(time.monotonic())
        self.result = self.session
        return self.session

    def serve_in_thread(self) -> threading.Thread:
        def target():
            try:
                self.run()
            except Exception as exc:  # noqa: BLE001 - handed to wait(), the thread just ends
                self.error = exc

        self._thread = threading.Thread(target=target, name="coordinator", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout_s: float | None = None) -> MarketSession:
        """Join the thread of ``serve_in_thread``; re-raise what stopped it."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"the coordinator at {self.endpoint} is still serving after "
                               f"{timeout_s:g} s (phase {self.phase}, round {self.session.round})")
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._thread is not None:
            self.stop()
            self._thread.join(JOIN_TIMEOUT_S)
        self.socket.close(linger=0)
        if self.curve is not None:
            self.curve.close()
        self.context.term()
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def refused_handshakes(self) -> int:
        """Connections dropped at the CURVE handshake (no key, or one not admitted)."""
        return self.curve.refused_total if self.curve else 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- phases ------------------------------------------------------------------------
    def _expected(self) -> list[str] | None:
        """Roster agents still in the run (None: no roster, whoever registers)."""
        return None if self.roster is None else [
            n for n in self.roster if n not in self.gone and n not in self._leaving]

    def _all_registered(self) -> bool:
        """Every roster agent still in the run has registered (looked at in full only once
        enough have: the count first, as it is asked after every message)."""
        if self.roster is None or \
                len(self._pending) < len(self.roster) - len(self.gone) - len(self._leaving):
            return False
        return set(self._expected()) <= set(self._pending)

    def _advance(self, now: float) -> None:
        s = self.session
        if self.phase == "registration":
            if now >= self._deadline or self._all_registered():
                self._open(now)
        elif self.phase == "market":
            for name in self._expired(now):
                s.fail(name, f"silent for more than {self.heartbeat_expiry_s:g} s in round "
                       f"{s.round} (heartbeat expired)")
            if s.waiting and now >= self._deadline:
                for name in s.waiting_for:
                    s.fail(name, f"missed the round-{s.round} deadline")
            if not s.waiting:
                self._deliver(s.close_round(), now)
        elif self.phase == "realisation":
            if s.unmetered and now >= self._deadline:
                for name in sorted(s.unmetered):
                    missing = int(np.isnan(s.meters.get(name, np.full(s.periods, np.nan))).sum())
                    s.stop_metering(name, f"day {s.day + 1}: {missing} period(s) without a "
                                    f"meter reading after {self.realisation_timeout_s:g} s of "
                                    "silence (settled at its day-ahead position)")
            if not s.unmetered:
                self._settle(now)
        elif self.phase == "draining" and now >= self._deadline:
            self.phase = "done"

    def _open(self, now: float) -> None:
        s = self.session
        expected = self._expected()
        order = list(self._pending) if expected is None else expected
        for name in order:
            if name in self._pending:
                try:
                    s.register(self._pending[name])
                except ProtocolError as exc:
                    s.fail(name, exc.detail)
                    self._reply_error(self._routes[name], exc)
        for name in order:
            if name not in self._pending:
                s.fail(name, "never registered")
        for name, reason in self._leaving.items():
            s.fail(name, reason)
        if not s.active:
            self._settle(now)
            return
        self._deliver(s.start(), now)

    def _deliver(self, signals: dict, now: float) -> None:
        """Send the next round's signals or, when there are none, the clearings."""
        if self.phase == "market":
            self.round_seconds.append(now - self._round_start)
        self._round_start = now
        if signals:
            self.phase, wait_s = "market", self.round_deadline_s
            messages = signals
        else:
            self.phase, wait_s = "realisation", self.realisation_timeout_s
            messages = self.session.clear()
        for name, msg in messages.items():
            self._send(self._routes[name], msg)
        # the agents' time runs from the last message sent: 10,000 signals take the
        # coordinator seconds to send on a machine its agents keep busy
        self._deadline = time.monotonic() + wait_s

    def _settle(self, now: float) -> None:
        """Bill the day, send the settlements, record the day, open the next one."""
        s = self.session
        settlements = s.settle() if s.clearings else {}
        for name, msg in settlements.items():
            self._send(self._routes[name], msg)
        self.gone.update({n: f"day {s.day + 1}: {r}" if not r.startswith("day ") else r
                          for n, r in s.left.items()})
        record = day_record(self)
        if self.records_path is None:
            self.days.append(record)
        else:
            write_day(self.records_path, record)
            self.days.append(day_summary(record))
        if s.day >= self.last_day:
            self.phase, self._deadline = "draining", now + self.drain_s
            return
        self.session = MarketSession(self.mechanism, self.params, day=s.day + 1,
                                     keep_log=self.keep_log)
        self.round_seconds, self._beating = [], set()
        self._leaving, self._leaving_next = self._leaving_next, {}
        self._pending = {n: m for n, m in self._early.items()
                         if n not in self.gone and n not in self._leaving}
        self._early = {}
        self.phase, self._deadline = "registration", now + self.registration_timeout_s

    def _expired(self, now: float) -> list[str]:
        """The agents still to offer whose heartbeats stopped, in the roster's order; looked
        at every ``POLL_INTERVAL_S``, not after every message, and only among agents that
        ever sent one."""
        if now < self._expiry_due:
            return []
        self._expiry_due = now + POLL_INTERVAL_S
        waiting = self.session.waiting
        gone = {n for n in self._beating
                if n in waiting and now - self._heard[n] > self.heartbeat_expiry_s}
        return [n for n in self.session.active if n in gone] if gone else []

    # -- messages ----------------------------------------------------------------------
    def _receive(self, frames: list[bytes], key: str | None = None) -> None:
        """One message from a peer; ``key``: the name of its CURVE key (None without)."""
        route, payload = frames[:-1], frames[-1]  # identity (+ a delimiter, an envelope)
        peer = _peer(route)
        try:
            self._handle(peer, route, payload, key)
        except OSError:  # the audit trail cannot be written: stop, loudly
            raise
        except Exception as exc:  # noqa: BLE001 - no frame stops the service
            self.dropped += 1
            LOG.warning("coordinator: dropped a frame from %r (%s: %s)", peer[:64],
                        type(exc).__name__, clean_text(str(exc), 200))
            self._write("in", peer, _raw(payload, f"dropped: {type(exc).__name__}"))

    def _handle(self, peer: bytes, route: list[bytes], payload: bytes, key: str | None) -> None:
        try:
            msg = decode(payload)
        except ProtocolError as exc:
            self._write("in", peer, _raw(payload, str(exc)))
            self._reply_error(route, exc)
            return
        self._write("in", peer, msg.model_dump(mode="json"))
        try:
            self._dispatch(route, msg, key)
        except ProtocolError as exc:
            self._reply_error(route, exc)

    def _dispatch(self, route: list[bytes], msg, key: str | None) -> None:
        name = self._names.get(tuple(route))
        envelope = route[-1] if len(route) > 1 else b""
        if envelope and envelope != msg.sender.encode():
            named = clean_text(envelope.decode(errors="replace"), 64)
            raise ProtocolError("forbidden", f"the envelope names {named!r}, not "
                                f"{msg.sender!r}", msg.msg_id)
        if name is not None and msg.sender != name:
            raise ProtocolError("forbidden", f"this connection registered as {name!r}, "
                                f"not {msg.sender!r}", msg.msg_id)
        if name is not None and key != self._keys[name]:
            raise ProtocolError("forbidden", f"{name!r} registered with key "
                                f"{self._keys[name]!r}, this connection holds {key!r}",
                                msg.msg_id)
        if name is None and msg.sender in self._routes:
            raise ProtocolError("forbidden", f"{msg.sender!r} is registered from another "
                                "connection", msg.msg_id)
        if name is not None:
            self._heard[name] = time.monotonic()
        if isinstance(msg, Heartbeat):
            if name is not None:
                self._beating.add(name)
            self._send(route, Heartbeat(sender=self.session.sender, day=self.session.day,
                                        round=self.session.round))
        elif isinstance(msg, Register):
            self._register(route, msg, key)
        elif isinstance(msg, Offer):
            self._offer(msg)
        elif isinstance(msg, Meter):
            self._meter(msg)
        elif isinstance(msg, Error) and msg.body.code == "gone":
            self._leave(name, msg, key)
        else:
            raise ProtocolError("forbidden", f"agents do not send {msg.type!r} messages",
                                msg.msg_id)

    def _register(self, route: list[bytes], msg: Register,
                  key: str | None) -> None:
        name, day = msg.sender, self.session.day
        if len(route) > MAX_ROUTE_FRAMES or any(len(f) > MAX_ENVELOPE_BYTES for f in route[1:]):
            raise ProtocolError("forbidden", f"a route of {len(route)} frames (at most "
                                f"{MAX_ROUTE_FRAMES} of up to {MAX_ENVELOPE_BYTES} bytes "
                                "after the identity) is kept for no agent", msg.msg_id)
        if self.roster is not None and name not in self.roster:
            raise ProtocolError("unknown_agent", f"{name} is not in the scenario's roster",
                                msg.msg_id)
        if self.curve is not None and not self.curve.may_register(key, name, self.roster):
            raise ProtocolError("forbidden", f"key {key!r} may not register {name} "
                                "(a key named after an agent is that agent's only key)",
                                msg.msg_id)
        if name in self.gone:
            raise ProtocolError("gone", f"{name} left the run: {self.gone[name]}", msg.msg_id)
        early = msg.day == day + 1 and self.phase == "realisation" and day < self.last_day
        if msg.day != day and not early:
            raise ProtocolError("late", f"registration for day {msg.day}, the market is at "
                                f"day {day}", msg.msg_id)
        pending = self._early if early else self._pending
        if name in pending or (not early and name in self.session.roster):
            raise ProtocolError("duplicate", f"{name} is already registered for day "
                                f"{msg.day}", msg.msg_id)
        if not early and self.phase != "registration":
            raise ProtocolError("late", f"{name} registered after the market opened",
                                msg.msg_id)
        pending[name] = msg
        self._names[tuple(route)], self._routes[name] = name, list(route)
        self._keys[name] = key
        self._heard[name] = time.monotonic()

    def _leave(self, name: str | None, msg: Error, key: str | None) -> None:
        """An agent tells that it leaves the run (its model failed, its solver, its
        process): no registration, round or realisation waits for it any longer. One
        that has not registered from this connection must be one that could."""
        if name is None:
            if self.roster is not None and msg.sender not in self.roster:
                raise ProtocolError("unknown_agent", f"{msg.sender} is not in the "
                                    "scenario's roster", msg.msg_id)
            if self.curve is not None and not self.curve.may_register(key, msg.sender,
                                                                       self.roster):
                raise ProtocolError("forbidden", f"key {key!r} may not speak for "
                                    f"{msg.sender}", msg.msg_id)
        name, s = msg.sender, self.session
        if name in self.gone or name in s.left or name in self._leaving:
            return
        reason = msg.body.detail  # the agent's own words: "day 1: EV ev3: trips need ..."
        if msg.day > s.day:  # it could not start the next day (the market is settling)
            self._early.pop(name, None)
            self._leaving_next[name] = reason
        elif self.phase == "registration":
            self._pending.pop(name, None)
            self._leaving[name] = reason
        elif self.phase == "market":
            s.fail(name, reason)
        elif self.phase == "realisation" and name in s.clearings:
            s.stop_metering(name, reason)

    def _offer(self, msg: Offer) -> None:
        s = self.session
        if msg.sender in s.failed:
            raise ProtocolError("gone", f"{msg.sender} left the market: "
                                f"{s.failed[msg.sender]}", msg.msg_id)
        if self.phase != "market" and msg.sender in self._routes:
            raise ProtocolError("late", f"no round is open (the market is {self.phase})",
                                msg.msg_id)
        s.offer(msg)

    def _meter(self, msg: Meter) -> None:
        if self.phase != "realisation":
            raise ProtocolError("late", f"no day is being realised (the market is "
                                f"{self.phase})", msg.msg_id)
        self.session.meter(msg)
        self._deadline = time.monotonic() + self.realisation_timeout_s

    def _reply_error(self, route: list[bytes], exc: ProtocolError) -> None:
        body = ErrorBody(code=exc.code, detail=clean_text(exc.detail), ref_msg_id=exc.msg_id)
        self._send(route, Error(sender=self.session.sender, day=self.session.day,
                                round=self.session.round, body=body))

    def _send(self, route: list[bytes], msg) -> None:
        text = msg.model_dump_json()  # serialized once, for the wire and the log
        if self.log_path:
            self._write_text("out", _peer(route), text)
        self.socket.send_multipart([*route, text.encode()])

    def _write(self, direction: str, peer: bytes, msg: dict) -> None:
        if self.log_path:
            self._write_text(direction, peer, json.dumps(msg))

    def _write_text(self, direction: str, peer: bytes, msg_json: str) -> None:
        """One log line; the log stays open for the service's life, each line flushed."""
        if self._log is None:
            self._log = self.log_path.open("a", encoding="utf-8")
        peer_json = json.dumps(peer.decode("utf-8", errors="replace"))
        self._log.write(f'{{"t": {time.time()!r}, "dir": "{direction}", "peer": {peer_json}, '
                        f'"msg": {msg_json}}}\n')
        self._log.flush()


def _raw(payload: bytes, error: str) -> dict:
    """The log entry of a frame that is no message: its text (the start of a long one)."""
    if len(payload) > LOGGED_RAW_BYTES:
        error = f"{error} ({len(payload)} bytes, the first {LOGGED_RAW_BYTES} kept)"
    return {"raw": payload[:LOGGED_RAW_BYTES].decode("utf-8", errors="replace"), "error": error}


# -- command line ----------------------------------------------------------------------
def read_roster(value: str | None) -> list[str] | None:
    """A roster file (one agent name a line, ``#`` comments) or a comma-separated list."""
    if not value:
        return None
    path = Path(value)
    lines = path.read_text().splitlines() if path.is_file() else value.split(",")
    return [n.strip() for n in (line.split("#")[0] for line in lines) if n.strip()]


def _peer(route: list[bytes]) -> bytes:
    """Who a route leads to, as the log names it: the connection's identity, and a host's
    envelope after a slash (``host-1/p1``)."""
    return b"/".join(frame for frame in route if frame)


def day_record(service: CoordinatorService) -> dict:
    """What the day saw, for the runner's results (JSON-ready): its rounds (the
    mechanism's round records with their wall time), who failed, every agent's clearing
    and settlement."""
    s = service.session
    records = getattr(s.state, "records", [])
    rounds = [{"round": r.round, "error_kw": r.error_kw,
               "per_period": {k: np.asarray(v, float).tolist() for k, v in r.per_period.items()},
               "scalars": r.scalars, "seconds": sec}
              for r, sec in zip(records, service.round_seconds)]
    return {"day": s.day, "rounds": rounds, "converged": getattr(s.state, "converged", None),
            "failed": s.left,
            "clearings": {n: b.model_dump(mode="json") for n, b in s.clearings.items()},
            "settlements": {n: b.model_dump(mode="json") for n, b in s.settlements.items()},
            "refused_handshakes": service.refused_handshakes}


def day_summary(record: dict) -> dict:
    """What the coordinator keeps of a day recorded on disk (and prints at the end)."""
    if "settled" in record:
        return record
    return {"day": record["day"], "rounds": len(record["rounds"]),
            "converged": record["converged"], "settled": len(record["settlements"]),
            "failed": record["failed"]}


def build_service(args) -> CoordinatorService:
    if not args.params:
        raise SystemExit("error: --params FILE: the market to serve is required")
    mech, params = load_market(json.loads(Path(args.params).read_text()))
    return CoordinatorService(mechanism=mech, params=params, roster=read_roster(args.roster),
                              endpoint=args.endpoint,
                              log_path=Path(args.log) if args.log else None,
                              round_deadline_s=args.round_deadline_s,
                              registration_timeout_s=args.registration_timeout_s, day=args.day,
                              curve_keys=args.curve_keys, days=args.days,
                              realisation_timeout_s=args.realisation_timeout_s,
                              records_path=Path(args.records) if args.records else None)


def serve(args) -> int:
    """Serve the run's days from parsed arguments; print the endpoint first and a
    summary line per day last."""
    with build_service(args) as service:
        print(f"coordinator listening on {service.endpoint}", flush=True)
        if service.curve is None and not is_loopback(service.endpoint):
            print(f"warning: {service.endpoint} is reachable from other hosts and without "
                  "--curve-keys anyone who reaches it may register as a roster agent",
                  file=sys.stderr)
        service.run()
        refused = service.refused_handshakes
    for day in map(day_summary, service.days):
        print(f"day {day['day']}: closed in round {day['rounds']}, converged "
              f"{day['converged']}, {day['settled']} agents settled", flush=True)
    for name, reason in service.gone.items():
        print(f"warning: {name} left the market: {reason}", file=sys.stderr)
    if refused:
        print(f"warning: {refused} connection(s) refused at the CURVE handshake",
              file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_coordinator_arguments(argparse.ArgumentParser(
        prog="lemgrid coordinator", description=__doc__.splitlines()[0]))
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
