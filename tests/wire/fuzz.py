"""Fuzzing the coordinator's wire: hostile frames at ``decode`` and at running services.

Hostile frames come from two sources sharing one grammar: hypothesis strategies
(``json_values``, ``wrong_field_frames``, ``hostile_payloads``, ``valid_messages``; hypothesis
is imported only by them) for the property tests, and ``hostile_frames(rng)`` on a seeded
``random.Random`` for the campaign, which a seed reproduces. A frame is a valid message of
any type with fields replaced by wrong JSON types, huge or non-finite numbers, deep nesting,
long or unencodable strings, fields dropped, renamed or added; or random bytes, truncated
JSON, other encodings, duplicate keys; sometimes behind garbage routing frames.

The campaign (``run_campaign``; ``python -m tests.wire.fuzz --frames 10000``) has three
parts, each on fresh in-process services:

* ``plain``: strangers flood a service that waits for registrations, over several DEALER
  connections (some replaced as it goes) and raw TCP connections; afterwards the five wire
  agents (scripted agents, ``coordinator.scripted``) play the day on it, which must equal
  the day played in process;
* ``insiders``: three roster members play days with hostile frames of their own (forged
  names, wrong rounds and days, extreme values, a second connection) while strangers
  flood; every honest agent's day must settle;
* ``curve``: as ``plain`` on a CURVE service; the strangers hold the admitted key, other
  connections none or a self-made one (refused at the handshake, never answered).

A stranger's frame is always answered (an ``error``, or a ``heartbeat``); frames without
an answer are counted. A crash is a service that died or stopped answering: it is recorded
with the frame it was reading, and a new service takes the rest of the part's frames.
What each connection sends is the same for a seed; how the connections interleave (and so
a few counts of the insiders' days and of the CURVE refusals) depends on timing.

``--endpoint`` floods a coordinator running elsewhere instead (``run_against``), then plays
the wire agents' day on it: serve them with ``python -m lemgrid.coordinator.service --roster
p1,p2,p3,ev1,ev2 --registration-timeout-s 600``; a crash there is one that stops answering.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import socket
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import zmq
from zmq.auth import load_certificate

from lemgrid.coordinator.auth import make_keys
from lemgrid.coordinator.mechanisms.base import MarketData
from lemgrid.coordinator.mechanisms.p2v_rules import CORE as P2V
from lemgrid.coordinator.protocol import (
    CURVE_CLIENTS_DIR,
    CURVE_DEFAULT_CLIENT,
    CURVE_PRIVATE_DIR,
    CURVE_PUBLIC,
    CURVE_SECRET,
    CURVE_SERVER_KEY,
    MAX_KW,
    MESSAGE_TYPES,
    Clearing,
    ClearingBody,
    Error,
    ErrorBody,
    Heartbeat,
    Meter,
    MeterBody,
    OfferBody,
    ProtocolError,
    RegisterBody,
    SettlementBody,
    Signal,
    SignalBody,
    Terms,
    decode,
    encode,
)
from lemgrid.coordinator.scripted import ScriptedAgent, Swarm
from lemgrid.coordinator.service import CoordinatorService
from tests.inprocess_day import run_session

PERIODS, PERIOD_H = 96, 0.25  # the wire agents' day
WAIT_S = 10.0  # longest wait for one answer during a day
QUIET_S = 3.0  # a flood with answers outstanding and none for this long: is the service alive?
BATCH = 20  # frames a stranger connection sends before the flood reads the answers
RAW_EVERY = 40  # frames between two raw TCP bursts
MAX_CRASHES = 20  # a part stops after this many
SHARE = {"plain": 0.5, "insiders": 0.2, "curve": 0.3}  # of the campaign's frames
P2V_PARAMS = P2V.params_type().with_data(MarketData(p2v_eur_per_kwh=0.0686))  # faia2021's


# -- the grammar of hostile frames ---------------------------------------------------------
@dataclass(frozen=True)
class Raw:
    """JSON text put into a frame as it is (what ``json.dumps`` cannot write)."""

    text: str


def dumps(obj, ensure_ascii: bool = True) -> bytes:
    """``obj`` as a frame, its ``Raw`` values written as they are; lone surrogates pass
    (unescaped they make bytes that are not UTF-8)."""
    raws: list[str] = []

    def swap(node):
        if isinstance(node, Raw):
            raws.append(node.text)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    text = json.dumps(swap(obj), ensure_ascii=ensure_ascii, allow_nan=True)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{i}\x00"), raw, 1)
    return text.encode("utf-8", "surrogatepass")


DIGITS = (20, 309, 400, 4300, 4301, 5000, 20_000)  # integer literals: 4300 is Python's limit
DEPTHS = (2, 50, 500, 990, 2000, 10_000)  # nesting
LENGTHS = (0, 63, 64, 65, 1000, 100_000, 1_000_000)  # strings
NUMBERS = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e308", "-1e308",
           "1.7976931348623157e308", "5e-324", "1e-400", "-0", "-0.0", "1E2", "0e0")
STRINGS = ('"\\ud800"', '"\\udfff\\ud800"', '"a\\u0000b"', '"\\ud83d\\ude00"', '""', '" "',
           '"\\u202e"', '"p2v kw"', '"load_kw"')
KEYS = ("", " ", "x" * 65, "load_kw", "p2v kw", "\ud800", "\x00", "é", "__class__", "v",
        "body", "p2v", "0")


def raw_token(rng: random.Random) -> Raw:
    """A hostile JSON value: a huge or non-finite number, deep nesting, a long or odd
    string, or an ordinary value of the wrong type."""
    kind = rng.randrange(6)
    if kind == 0:
        return Raw(rng.choice(("", "-")) + "1" * rng.choice(DIGITS))
    if kind == 1:
        return Raw(rng.choice(NUMBERS))
    if kind == 2:
        d = rng.choice(DEPTHS)
        return Raw(rng.choice(("[" * d + "]" * d, '{"a":' * d + "0" + "}" * d)))
    if kind == 3:
        return Raw(json.dumps(rng.choice("xé€😀") * rng.choice(LENGTHS), ensure_ascii=False))
    if kind == 4:
        return Raw(rng.choice(STRINGS))
    return Raw(rng.choice(("true", "false", "null", "{}", "[]", "0", '"2"', "[2]", '{"v": 2}')))


def json_value(rng: random.Random, depth: int = 0):
    """A JSON value of any type (nested a few levels), hostile tokens among them."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice((None, True, False))
    if kind == 1:
        return rng.choice((0, 1, -1, 2, 96, 2**31, 2**63, -(2**63), 10**30, 10**100))
    if kind == 2:
        return rng.choice((0.5, -1.5, 1e-9, 2.0, 1e300, -0.0, math.nan, math.inf, -math.inf))
    if kind == 3:
        return rng.choice(("", "2", "offer", "register", "prosumer", "x" * 65, "é", "a b",
                           "\ud800", "fz", "0"))
    if kind in (4, 5):
        return raw_token(rng)
    if kind == 6:
        return [json_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {rng.choice(KEYS): json_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return [rng.choice((0.0, 1.0, -1.0))] * rng.choice((0, 1, 3, 97, 100_001))


def templates() -> dict[str, dict]:
    """A valid message of every type, every optional field filled (JSON-ready)."""
    zeros = [0.0] * 4
    terms = Terms(price_eur_per_kwh=[0.1] * 4, limit_kw=[1.0] * 4, target_kw=zeros)
    bodies = {
        "register": RegisterBody(kind="prosumer", periods=4, period_h=0.25,
                                 limits_kw={"p2v": [3.0]}),
        "signal": SignalBody(terms={"p2v": terms}, by_counterparty={"ev1": {"p2v": terms}},
                             rho=1.0),
        "offer": OfferBody(quantities_kw={"p2v": zeros}, by_counterparty_kw={"ev1": {"p2v": zeros}}),
        "clearing": ClearingBody(quantities_kw={"p2v": zeros}, prices_eur_per_kwh={"p2v": zeros},
                                 position_kw=zeros, converged=True),
        "meter": MeterBody(period=0, p_kw=1.5),
        "settlement": SettlementBody(position_kw=zeros, traded_eur=zeros, deviation_eur=zeros,
                                     violation_eur=zeros),
        "heartbeat": None,
        "error": ErrorBody(code="late", detail="late", ref_msg_id="m1"),
    }
    out = {}
    for kind, cls in MESSAGE_TYPES.items():
        body = {} if bodies[kind] is None else {"body": bodies[kind]}
        out[kind] = cls(sender="fz", day=0, round=1, msg_id="m-fuzz", **body).model_dump(mode="json")
    return out


TEMPLATES = templates()


def paths(node, prefix: tuple = ()):
    """The path of every value in a message (a list: its first element)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list) and node:
        yield (*prefix, 0)
        yield from paths(node[0], (*prefix, 0))


FIELDS = [(kind, path) for kind, msg in TEMPLATES.items() for path in paths(msg)]


def with_value(kind: str, path: tuple, value) -> dict:
    """The template of ``kind`` with the value at ``path`` replaced."""
    msg = json.loads(json.dumps(TEMPLATES[kind]))
    parent = msg
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return msg


def mutate(rng: random.Random, msg: dict) -> None:
    """One to three changes: a value replaced (wrong type or hostile token), a field
    dropped, a key renamed or a field added."""
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        path = rng.choice(list(paths(msg)))
        parent = msg
        for step in path[:-1]:
            parent = parent[step]
        key, op = path[-1], rng.randrange(6)
        if op <= 2:
            parent[key] = json_value(rng) if op < 2 else raw_token(rng)
        elif isinstance(parent, dict) and op == 3:
            del parent[key]
        elif isinstance(parent, dict) and op == 4:
            parent[rng.choice(KEYS)] = parent.pop(key)
        elif isinstance(parent, dict):
            parent[rng.choice(KEYS)] = json_value(rng)
        else:
            parent.append(json_value(rng))


def message(rng: random.Random, sender: str, kinds=tuple(MESSAGE_TYPES)) -> dict:
    """A valid message of one of ``kinds`` (JSON-ready) in ``sender``'s name."""
    msg = json.loads(json.dumps(TEMPLATES[rng.choice(kinds)]))
    msg.update(sender=sender, day=rng.choice((0, 0, 1, 3)), round=rng.choice((0, 1, 2, 9)),
               msg_id=f"fz-{rng.getrandbits(48):x}")
    return msg


AGENT_KINDS = ("register", "offer", "meter", "heartbeat") * 3 + tuple(MESSAGE_TYPES)


def hostile_payload(rng: random.Random, sender: str = "fz", avoid=frozenset()) -> bytes:
    """One hostile frame (see the module docstring); a valid message among them now and
    then. No message in it names a sender in ``avoid``."""
    msg = message(rng, sender, AGENT_KINDS)
    roll = rng.random()
    if roll < 0.7:
        mutate(rng, msg)
        if isinstance(msg.get("sender"), str) and msg["sender"] in avoid:
            msg["sender"] = sender
        return dumps(msg, ensure_ascii=rng.random() < 0.8)
    text = json.dumps(msg).encode()
    if roll < 0.78:
        return text
    if roll < 0.83:
        return rng.randbytes(rng.choice((0, 1, 7, 64, 1000)))
    if roll < 0.87:
        cut = bytearray(text[:rng.randrange(len(text))])
        for _ in range(rng.randrange(3)):
            if cut:
                cut[rng.randrange(len(cut))] = rng.randrange(256)
        return bytes(cut)
    if roll < 0.91:
        return dumps(json_value(rng))
    if roll < 0.94:
        return json.dumps(msg).encode(rng.choice(("utf-16", "utf-32", "utf-8-sig", "utf-16-be")))
    if roll < 0.97:
        dup = rng.choice(('"v": "2", ', '"type": "gossip", ', '"sender": 1, ', '"body": [], '))
        return b"{" + dup.encode() + text[1:]
    return dumps(raw_token(rng))


def hostile_frames(rng: random.Random, sender: str = "fz", avoid=frozenset()) -> list[bytes]:
    """A multipart message: a hostile payload, sometimes behind garbage frames."""
    frames = [hostile_payload(rng, sender, avoid)]
    if rng.random() < 0.15:
        garbage = (b"", b"\x00", rng.randbytes(5), rng.randbytes(300), b'{"v": 2}')
        frames[:0] = [rng.choice(garbage) for _ in range(rng.randint(1, 3))]
    return frames


# -- hypothesis strategies -------------------------------------------------------------------
def json_values():
    """Any JSON value, hostile tokens among them (``Raw``; write them with ``dumps``)."""
    from hypothesis import strategies as st

    scalars = (st.none() | st.booleans() | st.integers() | st.floats()
               | st.integers(min_value=10**300, max_value=10**400) | st.text(max_size=80)
               | st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
               | st.randoms(use_true_random=False).map(raw_token))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)


def wrong_field_frames():
    """A valid message of any type with one field (any depth) replaced by any JSON value."""
    from hypothesis import strategies as st

    return st.builds(lambda field_, value: dumps(with_value(*field_, value)),
                     st.sampled_from(FIELDS), json_values())


def hostile_payloads():
    """The campaign's grammar, drawn by hypothesis."""
    from hypothesis import strategies as st

    return st.randoms(use_true_random=False).map(hostile_payload)


def valid_messages():
    """Valid messages of every type (agents' powers within ``MAX_KW``)."""
    from hypothesis import strategies as st

    keys = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)
    finite = st.floats(allow_nan=False, allow_infinity=False)
    power = st.floats(min_value=-MAX_KW, max_value=MAX_KW)
    series, powers = st.lists(finite, max_size=6), st.lists(power, max_size=6)
    limits = st.lists(st.floats(min_value=0, max_value=MAX_KW), max_size=6)
    nonneg = st.lists(st.floats(min_value=0, allow_infinity=False), max_size=6)
    terms = st.builds(Terms, price_eur_per_kwh=st.none() | series, limit_kw=st.none() | nonneg,
                      target_kw=st.none() | series)

    def by_key(values):
        return st.dictionaries(keys, values, max_size=3)

    bodies = {
        "register": st.builds(RegisterBody, kind=st.sampled_from(["prosumer", "ev", "building",
                                                                  "operator"]),
                              periods=st.integers(1, 100_000),
                              period_h=st.floats(min_value=1e-6, max_value=24),
                              limits_kw=by_key(limits)),
        "signal": st.builds(SignalBody, terms=by_key(terms),
                            by_counterparty=st.none() | by_key(by_key(terms)),
                            rho=st.none() | finite,
                            counterparties=st.none() | st.integers(0, 100_000)),
        "offer": st.builds(OfferBody, quantities_kw=by_key(powers),
                           by_counterparty_kw=st.none() | by_key(by_key(powers))),
        "clearing": st.builds(ClearingBody, quantities_kw=by_key(series),
                              prices_eur_per_kwh=by_key(series), position_kw=series,
                              converged=st.booleans()),
        "meter": st.builds(MeterBody, period=st.integers(0, 100_000),
                           p_kw=power | st.lists(power, min_size=1, max_size=8)),
        "settlement": st.builds(SettlementBody, position_kw=series, traded_eur=series,
                                deviation_eur=series, violation_eur=series),
        "heartbeat": st.builds(dict),
        "error": st.builds(ErrorBody, code=st.sampled_from(["malformed", "late", "gone"]),
                           detail=st.text(max_size=40), ref_msg_id=st.none() | st.text(max_size=64)),
    }
    envelope = {"sender": keys, "msg_id": st.text(max_size=64), "day": st.integers(0, 1_000_000),
                "round": st.integers(0, 1_000_000)}
    return st.one_of(*(st.builds(cls, body=bodies[kind], **envelope)
                       for kind, cls in MESSAGE_TYPES.items()))


# -- wire agents: the day that must still clear ------------------------------------------------
def wire_agent(name: str, kind: str, want_kw: list[float], limit_kw: float) -> ScriptedAgent:
    """A P2V agent that speaks only the protocol: it wants ``want_kw`` in each period (a
    prosumer's surplus to sell, an EV's charging to buy) and offers what its limits
    allow; it realises its position with a small deviation."""

    def offer(signal) -> OfferBody:
        limits = signal.body.terms["p2v"].limit_kw
        return OfferBody(quantities_kw={"p2v": [min(w, lim) for w, lim in zip(want_kw, limits)]})

    def realised_kw(clearing) -> list[float]:
        return [min(max(p + 0.05 * (t % 5 - 2), -MAX_KW), MAX_KW)
                for t, p in enumerate(clearing.body.position_kw)]

    return ScriptedAgent(name, RegisterBody(kind=kind, periods=len(want_kw), period_h=PERIOD_H,
                                            limits_kw={"p2v": [limit_kw]}), offer, realised_kw)


def wire_community() -> list[ScriptedAgent]:
    """Three prosumers with a midday surplus and two EVs charging around it."""
    bell = [math.exp(-(((t - 50) / 14) ** 2)) for t in range(PERIODS)]
    agents = [wire_agent(f"p{i + 1}", "prosumer",
                         [round(max(0.0, peak * b - base), 6) for b in bell], 6.9)
              for i, (peak, base) in enumerate([(5.0, 0.6), (6.0, 0.8), (4.0, 0.5)])]
    for j, (start, stop, kw) in enumerate([(36, 60, 3.7), (44, 66, 7.0)]):
        agents.append(wire_agent(f"ev{j + 1}", "ev",
                                 [kw if start <= t < stop else 0.0 for t in range(PERIODS)], 7.4))
    return agents


def reference_day(agents: list[ScriptedAgent], params=None, day: int = 0) -> dict:
    """The day the agents play in process: each one's clearing and settlement (JSON)."""
    s = run_session({a.name: a for a in agents}, P2V,
                    params or P2V_PARAMS, day, settle=True)
    return {n: {"clearing": s.clearings[n].model_dump(mode="json"),
                "settlement": s.settlements[n].model_dump(mode="json")} for n in s.clearings}


# -- the campaign ----------------------------------------------------------------------------
@dataclass
class Crash:
    part: str
    error: str
    where: str  # the function that raised, and its file
    frame: bytes | None  # the frame the service was reading when it died, if it was


@dataclass
class FuzzResult:
    frames: int = 0  # multipart messages sent over DEALER connections
    insider_frames: int = 0  # of them, sent by registered roster members
    refused_frames: int = 0  # of them, sent over connections refused at the CURVE handshake
    connections: int = 0  # DEALER connections opened
    raw_bursts: int = 0  # raw TCP connections that sent bytes of their own
    errors: int = 0  # error replies received
    other_replies: int = 0  # heartbeat replies
    bad_replies: int = 0  # replies that are not valid messages, or answers to refused keys
    unanswered: int = 0  # strangers' frames that got no answer
    refused_handshakes: int = 0  # connections the CURVE services refused
    dropped: int = 0  # frames the services dropped on an unexpected error
    crashes: list[Crash] = field(default_factory=list)
    days: dict[str, bool] = field(default_factory=dict)  # part -> its days cleared
    seconds: float = 0.0

    @property
    def cleared(self) -> bool:
        return bool(self.days) and all(self.days.values())

    @property
    def ok(self) -> bool:
        return not self.crashes and self.cleared and not self.dropped and not self.bad_replies


class _Watched(CoordinatorService):
    """A service that remembers the frame it is reading."""

    reading: list[bytes] | None = None

    def _receive(self, frames, key=None):
        self.reading = frames
        super()._receive(frames, key)


def _serve(roster, workdir: Path, curve_keys=None, **kwargs) -> _Watched:
    service = _Watched(P2V, P2V_PARAMS, list(roster), log_path=workdir / "messages.jsonl",
                       curve_keys=curve_keys, **{"registration_timeout_s": 3600.0,
                                                 "drain_s": 1.0, **kwargs})
    service.serve_in_thread()
    return service


def probe(endpoint: str, options: dict | None = None, timeout_s: float = QUIET_S) -> bool:
    """Whether the service at ``endpoint`` answers a heartbeat within ``timeout_s``."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        for option, value in (options or {}).items():
            sock.setsockopt(option, value)
        sock.connect(endpoint)
        sock.send(encode(Heartbeat(sender="fuzz-probe")))
        return bool(sock.poll(timeout_s * 1000))
    finally:
        sock.close(linger=0)
        context.term()


def _alive(service: CoordinatorService, options: dict | None = None) -> bool:
    """The service has not died, and answers (unless it finished its days)."""
    if service.error is not None or service._thread is None:
        return False
    if not service._thread.is_alive():
        return service.phase == "done"
    return service.phase in ("draining", "done") or probe(service.endpoint, options)


def _crash(part: str, service: _Watched) -> Crash:
    error, frame = service.error, None
    if error is None:
        return Crash(part, "stopped answering", "", None)
    tb, names = error.__traceback__, []
    while tb is not None:
        code = tb.tb_frame.f_code
        names.append(f"{code.co_name} ({Path(code.co_filename).name}:{tb.tb_lineno})")
        tb = tb.tb_next
    if any(n.startswith("_receive ") for n in names) and service.reading:
        frame = service.reading[-1]
    return Crash(part, f"{type(error).__name__}: {error}".splitlines()[0][:300],
                 " < ".join(names[::-1][:3]), frame)


def _identity(rng: random.Random, tag: str) -> bytes:
    """A routing identity of random bytes, unique by its ``tag``."""
    return bytes([rng.randint(1, 255)]) + rng.randbytes(rng.randrange(12)) + f"/{tag}".encode()


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    return host.strip("[]"), int(port)


def _greeting(mechanism: bytes, major: int = 3) -> bytes:
    return (b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([major, 0]) + mechanism.ljust(20, b"\x00")
            + b"\x00" + b"\x00" * 31)


def _command(name: bytes, props: dict[bytes, bytes]) -> bytes:
    body = bytes([len(name)]) + name + b"".join(
        bytes([len(k)]) + k + len(v).to_bytes(4, "big") + v for k, v in props.items())
    return b"\x04" + bytes([len(body)]) + body


def raw_burst_bytes(rng: random.Random, identity: bytes) -> bytes:
    """What a raw TCP connection sends: random bytes, a ZMTP greeting and garbage, a whole
    NULL handshake and hostile frames (some announcing terabytes), or an HTTP request."""
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 4096))
    if kind == 1:
        return _greeting(rng.choice((b"NULL", b"CURVE", b"PLAIN", b"GSSAPI", b"\xff" * 20)),
                         rng.choice((1, 2, 3, 255))) + rng.randbytes(rng.randrange(200))
    if kind == 2:
        return b""
    if kind == 3:
        return b"GET / HTTP/1.1\r\nHost: coordinator\r\n\r\n"
    ready = _greeting(b"NULL") + _command(b"READY", {b"Socket-Type": b"DEALER",
                                                     b"Identity": identity})
    if kind == 4:  # a frame announcing more bytes than any machine holds
        return ready + b"\x02" + rng.randrange(2**40, 2**63).to_bytes(8, "big") + b"{}"
    if kind == 5:  # flags with reserved bits, bad command
        return ready + bytes([rng.randrange(256)]) + rng.randbytes(rng.randrange(64))
    frames = hostile_frames(rng)
    out = b""
    for i, f in enumerate(frames):
        more = 0x01 if i < len(frames) - 1 else 0
        out += (bytes([more, len(f)]) if len(f) < 256
                else bytes([more | 0x02]) + len(f).to_bytes(8, "big")) + f
    return ready + out


class Flood:
    """Strangers' connections firing hostile frames at ``endpoint``; every frame expects
    exactly one answer. ``refused``: socket options of connections the service refuses
    at the handshake (their frames are counted, never answered)."""

    def __init__(self, endpoint: str, rng: random.Random, result: FuzzResult, connections: int,
                 avoid=frozenset(), options: dict | None = None, refused=()):
        self.endpoint, self.rng, self.result = endpoint, rng, result
        self.avoid, self.options, self.refused_options = frozenset(avoid), options or {}, refused
        self.context = zmq.Context()
        self.pending: dict[zmq.Socket, int] = {}
        self.refused: list[zmq.Socket] = []
        self.held: list[socket.socket] = []  # raw connections kept open, silent
        self.sent = 0
        for _ in range(connections):
            self._open()
        self._reopen_refused()

    def _socket(self, options: dict) -> zmq.Socket:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.rng.random() < 0.9:  # else the ROUTER makes one up
            sock.setsockopt(zmq.IDENTITY, _identity(self.rng, f"c{self.result.connections}"))
        for option, value in options.items():
            sock.setsockopt(option, value)
        sock.connect(self.endpoint)
        self.result.connections += 1
        return sock

    def _open(self) -> None:
        self.pending[self._socket(self.options)] = 0

    def _reopen_refused(self) -> None:
        for sock in self.refused:
            self._collect_refused(sock)
            sock.close(linger=0)
        self.refused = [self._socket(o) for o in self.refused_options]

    def _collect_refused(self, sock: zmq.Socket) -> None:
        while sock.poll(0):
            sock.recv_multipart()
            self.result.bad_replies += 1  # a refused key was answered

    @property
    def sockets(self) -> list[zmq.Socket]:
        return list(self.pending)

    @property
    def outstanding(self) -> int:
        return sum(self.pending.values())

    def fire(self, n: int) -> int:
        """Send up to ``n`` frames, ``BATCH`` a connection at most; the number sent."""
        sent = 0
        for sock in self.pending:
            for _ in range(min(BATCH, n - sent)):
                sock.send_multipart(hostile_frames(self.rng, "fz", self.avoid))
                self.pending[sock] += 1
                sent += 1
                if (self.sent + sent) % RAW_EVERY == 0:
                    self.raw_burst()
        for sock in self.refused:
            try:
                sock.send_multipart(hostile_frames(self.rng, "fz", self.avoid), zmq.NOBLOCK)
                self.result.refused_frames += 1
                self.result.frames += 1
            except zmq.Again:
                pass
        self.sent += sent
        self.result.frames += sent
        return sent

    def read(self, sock: zmq.Socket) -> None:
        """One answer from ``sock``."""
        frames = sock.recv_multipart()
        self.pending[sock] -= 1
        try:
            msg = decode(frames[-1])
        except ProtocolError:
            self.result.bad_replies += 1
            return
        if msg.type == "error":
            self.result.errors += 1
        else:
            self.result.other_replies += 1

    def settle(self, alive, quiet_s: float = QUIET_S) -> bool:
        """Read answers until none is outstanding (frames unanswered after ``quiet_s`` of
        silence are counted); False if the service died."""
        poller = zmq.Poller()
        for sock in self.pending:
            poller.register(sock, zmq.POLLIN)
        while self.outstanding:
            ready = dict(poller.poll(quiet_s * 1000))
            if not ready:
                if not alive():
                    return False
                self.result.unanswered += self.outstanding
                self.pending = dict.fromkeys(self.pending, 0)
                break
            for sock in ready:
                self.drain(sock)
        return alive()

    def drain(self, sock: zmq.Socket) -> None:
        """Every answer waiting on ``sock``."""
        while sock.poll(0):
            self.read(sock)

    def churn(self) -> None:
        """Replace one connection (answered in full) and the refused ones."""
        sock = self.rng.choice(list(self.pending))
        if self.pending.pop(sock):
            raise AssertionError("churn() with answers outstanding")
        sock.close(linger=0)
        self._open()
        self._reopen_refused()

    def raw_burst(self) -> None:
        """One raw TCP connection: its bytes, then kept open (silent), closed or reset."""
        host, port = _host_port(self.endpoint)
        data = raw_burst_bytes(self.rng, _identity(self.rng, f"r{self.result.raw_bursts}"))
        hold, reset = self.rng.random() < 0.1 and len(self.held) < 32, self.rng.random() < 0.5
        self.result.raw_bursts += 1
        try:
            conn = socket.create_connection((host, port), timeout=1.0)
        except OSError:
            return
        try:
            conn.sendall(data)
            if hold:
                self.held.append(conn)  # until the part ends
                return
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        conn.close()

    def run(self, n: int, alive) -> bool:
        """Send ``n`` frames in rounds of ``BATCH`` a connection, each round answered in
        full; False if the service died."""
        while self.sent < n:
            self.fire(n - self.sent)
            if not self.settle(alive):
                return False
            self.churn()
        return True

    def close(self) -> None:
        for conn in self.held:
            conn.close()
        for sock in self.refused:
            self._collect_refused(sock)
        for sock in [*self.pending, *self.refused]:
            sock.close(linger=0)
        self.context.term()


OUT_OF_RANGE = (1e308, 1.7976931348623157e308, 1e300, -1.0, 2 * MAX_KW, Raw("NaN"),
                Raw("1e999"), Raw("1" * 400))


class Insider(ScriptedAgent):
    """A roster member that plays the day but sends hostile frames of its own around
    every answer: its own messages mutated, wrong rounds and days, other agents' names
    (from a second connection too), out-of-range and extreme values. Each ``answer_*``
    returns (hostile frames, its valid answer, hostile frames from its second connection);
    in a swarm, after ``join``, it sends them itself."""

    def __init__(self, agent: ScriptedAgent, rng: random.Random, victims: list[str], plan: dict):
        super().__init__(agent.name, agent.registration, agent.answer, agent.reading_kw)
        self.rng, self.victims = rng, victims
        self.plan = plan  # (day, round) -> the value all insiders offer first (they collude)
        self.own = self.second = self.result = None

    def join(self, swarm: Swarm, result: FuzzResult) -> zmq.Socket:
        """Play in ``swarm``, counting in ``result``; its second connection."""
        self.own, self.result = swarm.socket_of[self.name], result
        self.second = swarm.connect(f"{self.name}#2")
        return self.second

    def _send(self, answer) -> list:
        bad, valid, second = answer
        for frame in bad + valid:
            self.own.send(frame)
        for frame in second:
            self.second.send(frame)
        self.result.frames += len(bad) + len(second)
        self.result.insider_frames += len(bad) + len(second)
        return []

    def opening(self, day: int) -> list:
        return self._send(self.answer_registration())

    def receive(self, msg) -> list:
        if isinstance(msg, Signal):
            return self._send(self.answer_signal(msg))
        if isinstance(msg, Clearing):
            return self._send(self.answer_clearing(msg))
        if isinstance(msg, Error):
            self.result.errors += 1
        return []

    def _mutated(self, *bases) -> bytes:
        msg = json.loads(encode(self.rng.choice(bases)))
        mutate(self.rng, msg)
        if msg.get("type") == "register" or not isinstance(msg.get("sender"), str):
            msg["sender"] = self.name  # a forged registration would take a victim's place
        return dumps(msg)

    def answer_registration(self):
        own = self.register()
        return [self._mutated(own) for _ in range(self.rng.randrange(8))], [encode(own)], []

    def answer_signal(self, signal):
        rng, good = self.rng, self.on_signal(signal)
        reading = Meter(sender=self.name, day=signal.day, body=MeterBody(period=0, p_kw=1.0))
        frames = [self._mutated(good, reading, Heartbeat(sender=self.name), self.register())
                  for _ in range(rng.randrange(4, 16))]
        frames += [encode(good.model_copy(update=bad)) for bad in (
            {"round": signal.round + rng.choice((1, 5))}, {"day": signal.day + 1},
            {"sender": rng.choice(self.victims)})]
        raw, colluding = json.loads(encode(good)), json.loads(encode(good))
        raw["body"]["quantities_kw"]["p2v"][rng.randrange(PERIODS)] = rng.choice(OUT_OF_RANGE)
        value = self.plan.setdefault((signal.day, signal.round), rng.choice(OUT_OF_RANGE))
        colluding["body"]["quantities_kw"]["p2v"] = [value] * PERIODS
        extreme = rng.choice((MAX_KW, 5e-324, 0.0, 123456.789))  # valid: may be taken
        frames += [dumps(raw), encode(Heartbeat(sender=self.name)), encode(self.register()),
                   encode(reading), encode(good.model_copy(update={"body": OfferBody(
                       quantities_kw={"p2v": [extreme] * PERIODS})}))]
        rng.shuffle(frames)
        return [dumps(colluding), *frames], [encode(good)], [encode(self.register()),
                                                              encode(good)]

    def answer_clearing(self, clearing):
        rng, readings = self.rng, self.meters(clearing)
        frames = [self._mutated(*readings[:4]) for _ in range(rng.randrange(4, 16))]
        frames += [encode(m.model_copy(update={"body": MeterBody(
            period=m.body.period, p_kw=rng.choice((MAX_KW, -MAX_KW, 0.0)))}))
            for m in readings[:3]]  # taken first: the valid readings of these are duplicates
        frames += [encode(readings[0].model_copy(update={"sender": rng.choice(self.victims)})),
                   encode(readings[0].model_copy(update={"body": MeterBody(period=PERIODS,
                                                                           p_kw=0.0)})),
                   encode(self.register(clearing.day + 1))]
        return frames, [encode(m) for m in readings], [encode(readings[1])]


def play_day(endpoint: str, agents: list[ScriptedAgent], options: dict | None = None,
             insiders: list[Insider] = (), flood: Flood | None = None, budget: int = 0,
             result: FuzzResult | None = None, timeout_s: float = WAIT_S) -> dict | None:
    """Play day 0 with ``agents`` (and hostile ``insiders``) in a swarm while ``flood``
    sends up to ``budget`` frames; each agent's clearing and settlement (JSON), or None if
    the day did not settle within ``timeout_s`` of silence."""
    result = result or FuzzResult()
    swarm = Swarm(endpoint, [*agents, *insiders], options)

    def fire():
        if flood and flood.sent < budget and flood.outstanding < BATCH:
            flood.fire(min(BATCH, budget - flood.sent))

    try:
        others = {insider.join(swarm, result): _drain for insider in insiders}
        others.update({sock: flood.drain for sock in (flood.sockets if flood else ())})
        if not swarm.play(0, math.inf, quiet_s=timeout_s, until=[a.name for a in agents],
                          tick=fire, others=others):
            return None
        return {a.name: {"clearing": a.clearing.body.model_dump(mode="json"),
                         "settlement": a.settlement.body.model_dump(mode="json")}
                for a in agents}
    finally:
        swarm.close()


def _drain(sock: zmq.Socket) -> None:
    """Read and forget every frame waiting on ``sock``."""
    while sock.poll(0):
        sock.recv_multipart()


def _child(rng: random.Random) -> random.Random:
    """A generator of its own for one connection or agent: what each sends is the same for
    a seed, however their frames interleave."""
    return random.Random(rng.getrandbits(64))


def _curve_options(directory: Path) -> tuple[dict, list[dict]]:
    """The admitted key's socket options, and those of a self-made key and of no key."""
    server = load_certificate(directory / f"{CURVE_SERVER_KEY}{CURVE_PUBLIC}")[0]
    public, secret = load_certificate(directory / CURVE_PRIVATE_DIR
                                      / f"{CURVE_DEFAULT_CLIENT}{CURVE_SECRET}")
    admitted = {zmq.CURVE_SERVERKEY: server, zmq.CURVE_PUBLICKEY: public,
                zmq.CURVE_SECRETKEY: secret}
    own_public, own_secret = zmq.curve_keypair()
    self_made = {**admitted, zmq.CURVE_PUBLICKEY: own_public, zmq.CURVE_SECRETKEY: own_secret}
    return admitted, [self_made, {}]


def _flood_part(part: str, n: int, rng: random.Random, result: FuzzResult, connections: int,
                workdir: Path, reference: dict, curve_keys: Path | None = None) -> bool:
    """Strangers flood a service waiting for registrations, then the wire agents play
    the day on it (restarting after each crash); whether that day equals ``reference``."""
    agents = wire_community()
    roster = [a.name for a in agents]
    options, refused = _curve_options(curve_keys) if curve_keys else ({}, [])
    sent = 0
    while len(result.crashes) < MAX_CRASHES:
        service = _serve(roster, workdir, curve_keys)
        flood = Flood(service.endpoint, _child(rng), result, connections, roster, options,
                      refused)
        try:
            survived = flood.run(n - sent, lambda s=service: _alive(s, options))
            sent += flood.sent
            if not survived:
                result.crashes.append(_crash(part, service))
                continue
            day = play_day(service.endpoint, agents, options)
            service.wait(WAIT_S)
            return day == reference
        except (TimeoutError, AssertionError, ProtocolError, zmq.ZMQError) as exc:
            if not _alive(service):
                result.crashes.append(_crash(part, service))
            print(f"{part}: the day failed ({type(exc).__name__}: {exc})", file=sys.stderr)
            return False
        finally:
            flood.close()
            service.close()
            result.dropped += service.dropped
            result.refused_handshakes += service.refused_handshakes
    return False


def _insider_part(n: int, rng: random.Random, result: FuzzResult, connections: int,
                  workdir: Path) -> bool:
    """Days with three hostile roster members and a flood of strangers, until ``n`` frames
    are sent; whether every honest agent's day settled each time."""
    agents = wire_community()
    honest = [a.name for a in agents]
    start, cleared = result.frames, True
    while result.frames - start < n and len(result.crashes) < MAX_CRASHES:
        plan: dict = {}
        insiders = [Insider(replace(agents[i], name=name), _child(rng), honest, plan)
                    for name, i in (("m1", 0), ("m2", 1), ("m3", 3))]
        roster = [*honest, *(i.name for i in insiders)]
        service = _serve(roster, workdir)
        flood = Flood(service.endpoint, _child(rng), result, connections, roster)
        try:
            budget = max(0, (n - (result.frames - start)) // 2)
            day = play_day(service.endpoint, agents, insiders=insiders, flood=flood,
                           budget=min(budget, 2000), result=result)
            if not flood.settle(lambda s=service: _alive(s)) or day is None:
                cleared = False
                if not _alive(service):
                    result.crashes.append(_crash("insiders", service))
                continue
            service.wait(WAIT_S)
            failed = set(service.days[0]["failed"]) & set(honest)
            cleared = cleared and not failed and all(len(g) == 2 for g in day.values())
        finally:
            flood.close()
            service.close()
            result.dropped += service.dropped
    return cleared


def run_campaign(frames: int = 10_000, seed: int = 0, connections: int = 8,
                 workdir: str | Path | None = None) -> FuzzResult:
    """Send about ``frames`` hostile frames (``SHARE`` of them in each part) at fresh
    in-process services; what they did."""
    rng, result, t0 = random.Random(seed), FuzzResult(), time.monotonic()
    rngs = {part: _child(rng) for part in SHARE}
    reference = reference_day(wire_community())
    with tempfile.TemporaryDirectory(prefix="lemgrid-fuzz-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        keys = work / "keys"
        if not (keys / CURVE_CLIENTS_DIR).is_dir():
            make_keys(keys)
        counts = {p: int(frames * share) for p, share in SHARE.items()}
        counts["plain"] += frames - sum(counts.values())
        result.days["plain"] = _flood_part("plain", counts["plain"], rngs["plain"], result,
                                           connections, work, reference)
        result.days["insiders"] = _insider_part(counts["insiders"], rngs["insiders"], result,
                                                connections, work)
        result.days["curve"] = _flood_part("curve", counts["curve"], rngs["curve"], result,
                                           connections, work, reference, curve_keys=keys)
    result.seconds = time.monotonic() - t0
    return result


def run_against(endpoint: str, frames: int = 10_000, seed: int = 0, connections: int = 8,
                options: dict | None = None) -> FuzzResult:
    """Strangers flood the coordinator at ``endpoint`` (serving the wire agents' roster
    with the default P2V parameters, waiting for registrations), then the wire agents play
    its day, which must equal the day played in process."""
    rng, result, t0 = random.Random(seed), FuzzResult(), time.monotonic()
    agents = wire_community()
    flood = Flood(endpoint, rng, result, connections, [a.name for a in agents], options)
    try:
        if flood.run(frames, lambda: probe(endpoint, options)):
            result.days["endpoint"] = play_day(endpoint, agents, options) == reference_day(agents)
        else:
            result.crashes.append(Crash("endpoint", "stopped answering", "", None))
            result.days["endpoint"] = False
    finally:
        flood.close()
    result.seconds = time.monotonic() - t0
    return result


def table(result: FuzzResult, seed: int) -> str:
    """The campaign's figures, one a line."""
    days = ", ".join(f"{p} {'yes' if ok else 'NO'}" for p, ok in result.days.items())
    rows = [
        ("frames sent", (f"{result.frames} ({result.insider_frames} by insiders, "
                         f"{result.refused_frames} over refused keys)")),
        ("connections", result.connections),
        ("raw TCP bursts", result.raw_bursts),
        ("error replies", result.errors),
        ("other replies", result.other_replies),
        ("dropped/unanswered", f"{result.dropped}/{result.unanswered}"),
        ("bad replies", result.bad_replies),
        ("refused handshakes", result.refused_handshakes),
        ("crashes", len(result.crashes)),
        ("clears a day afterwards", f"{'yes' if result.cleared else 'no'} ({days})"),
        ("wall time", f"{result.seconds:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"coordinator wire fuzz, seed {seed}"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    for crash in result.crashes:
        frame = "" if crash.frame is None else f"; frame {crash.frame[:120]!r}"
        lines.append(f"  crash ({crash.part}): {crash.error} in {crash.where}{frame}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.wire.fuzz",
                                description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10_000, help="hostile frames to send")
    p.add_argument("--seed", type=int, default=0, help="the frames each connection sends are the same for a seed")
    p.add_argument("--connections", type=int, default=8, help="stranger connections a service")
    p.add_argument("--endpoint", default=None,
                   help="flood the coordinator running there instead (see the module's help)")
    args = p.parse_args(argv)
    if args.endpoint:
        result = run_against(args.endpoint, args.frames, args.seed, args.connections)
    else:
        result = run_campaign(args.frames, args.seed, args.connections)
    print(table(result, args.seed), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
