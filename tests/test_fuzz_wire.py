"""Fuzzing the coordinator's wire (tests/wire/fuzz.py): ``decode`` answers every frame with
a message or a ProtocolError the service can send back, and a running service answers
hostile frames, never stops and still clears a real day.

Property tests are derandomized (the same examples on every run); the campaign here is a
few hundred frames of ``make fuzz``'s seeded one. Each bug the fuzzing found has a
regression test named after it.
"""

import json
import random

import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from lemgrid.coordinator import service as service_module
from lemgrid.coordinator.mechanisms.p2v_rules import CORE as P2V
from lemgrid.coordinator.mechanisms.p2v_rules import P2VParams
from lemgrid.coordinator.protocol import (
    MAX_DETAIL,
    MAX_KW,
    MESSAGE_CLASSES,
    Error,
    ErrorBody,
    Heartbeat,
    Offer,
    OfferBody,
    ProtocolError,
    Register,
    RegisterBody,
    decode,
    encode,
)
from lemgrid.coordinator.session import MarketSession
from tests.wire.fuzz import P2V_PARAMS

from .conftest import run_session
from .test_auth import assert_same_market, market_day, plain_day, tiny  # noqa: F401 - fixtures
from .test_service import (  # noqa: F401 - sockets and dealer are fixtures
    PERIODS,
    WAIT_S,
    dealer,
    meters,
    read_log,
    recv,
    register,
    send,
    serving,
    sockets,
    until_settlement,
    zero_offer,
)
from .wire.fuzz import (
    FIELDS,
    Flood,
    FuzzResult,
    Raw,
    dumps,
    hostile_payloads,
    reference_day,
    run_campaign,
    valid_messages,
    wire_community,
    with_value,
    wrong_field_frames,
)


def examples(n: int) -> settings:
    """Derandomized (CI sees the same examples), no deadline, ``n`` examples."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None)


ERROR_CODES = set(ErrorBody.model_fields["code"].annotation.__args__)


def decoded_or_refused(frame: bytes):
    """``decode``'s contract: a valid message that re-encodes to itself, or a ProtocolError
    with a code of the protocol, a short detail and an answer that can be sent."""
    try:
        msg = decode(frame)
    except ProtocolError as exc:
        assert exc.code in ERROR_CODES
        assert len(exc.detail) <= MAX_DETAIL
        answer = encode(Error(sender="coordinator", body=ErrorBody(
            code=exc.code, detail=exc.detail, ref_msg_id=exc.msg_id)))
        assert len(answer) < 1000 and decode(answer).body.ref_msg_id == exc.msg_id
        return None
    assert isinstance(msg, MESSAGE_CLASSES)
    assert decode(encode(msg)) == msg
    return msg


# -- decode ---------------------------------------------------------------------------------------
@examples(300)
@given(wrong_field_frames())
def test_decode_any_value_in_any_field(frame):
    decoded_or_refused(frame)


HOSTILE = [Raw("1" * 401), Raw("-" + "1" * 4301), Raw("1" * 20_000), Raw("NaN"),
           Raw("Infinity"), Raw("-Infinity"), Raw("1e999"), Raw("1e308"), Raw("-0"),
           Raw("[" * 10_000 + "]" * 10_000), Raw('{"a":' * 10_000 + "0" + "}" * 10_000),
           Raw(json.dumps("x" * 100_000)), Raw('"\\ud800"'), "\udfff", True, None, [], {},
           "p1", 1.5, 10**400]


@pytest.mark.parametrize("kind", sorted({k for k, _ in FIELDS}))
def test_decode_every_field_with_every_hostile_value(kind):
    """Every field of every message type (every depth), each hostile value: 10**400,
    Python's 4300-digit limit, NaN and infinities, nesting 10000 deep, long and
    unencodable strings, every JSON type."""
    for _, path in (f for f in FIELDS if f[0] == kind):
        for value in HOSTILE:
            decoded_or_refused(dumps(with_value(kind, path, value)))


@examples(300)
@given(hostile_payloads())
def test_decode_hostile_payloads(frame):
    decoded_or_refused(frame)


@examples(200)
@given(st.binary(max_size=600) | st.binary(max_size=8).map(lambda b: b'{"v": 7, ' + b))
def test_decode_random_bytes(frame):
    decoded_or_refused(frame)


@examples(200)
@given(valid_messages())
def test_valid_messages_round_trip(msg):
    assert decode(encode(msg)) == msg


def test_long_or_nested_frames_are_refused_in_short():
    for frame in [b"[" * 100_000 + b"]" * 100_000, json.dumps("x" * 1_000_000).encode(),
                  dumps({"v": 7, "type": "register", "sender": "p1", "msg_id": "m" * 10_000,
                         "body": {"kind": "ev", "periods": 1, "period_h": 1,
                                  "limits_kw": {"k" * 100_000: [1.0]}}})]:
        with pytest.raises(ProtocolError) as info:
            decode(frame)
        assert info.value.code == "malformed" and len(info.value.detail) <= MAX_DETAIL
        assert info.value.msg_id is None


# -- regressions: the bugs the fuzzing found --------------------------------------------------------
INTEGER_TOO_LONG = [b'{"v": 7, "type": "meter", "sender": "p1", "body": {"period": 0, "p_kw": '
                    + b"1" * 4301 + b"}}", b'{"v": ' + b"1" * 5000 + b"}", b"-" + b"1" * 20_000]
UNENCODABLE_MSG_ID = [b'{"v": 7, "msg_id": "\\ud800"}',
                      b'{"v": 7, "type": "heartbeat", "sender": "p1", "msg_id": "\xed\xa0\x80"}',
                      b'{"v": 7, "type": "gossip", "msg_id": "\\udfff\\ud800"}']


@pytest.mark.parametrize("frame", INTEGER_TOO_LONG)
def test_regression_integer_of_more_than_4300_digits_is_malformed(frame):
    """Bug: json.loads raises a plain ValueError (Python's limit on integer digits) that
    decode let through, and it stopped the service's thread."""
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert (info.value.code, info.value.detail) == ("malformed", "not JSON (ValueError)")


@pytest.mark.parametrize("frame", UNENCODABLE_MSG_ID)
def test_regression_unencodable_msg_id_is_not_quoted(frame):
    """Bug: a msg_id with a lone surrogate (escaped, or as raw bytes) was quoted in the
    error's ref_msg_id, which does not encode as UTF-8: sending the answer raised and
    stopped the service's thread."""
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert info.value.msg_id is None
    decoded_or_refused(frame)


@pytest.mark.parametrize("field", ["detail", "ref_msg_id"])
def test_regression_error_body_with_a_lone_surrogate_is_malformed(field):
    """Bug: the error body's strings had no constraint, so pydantic kept a lone surrogate
    and decode returned a message that does not encode (the service refused it as
    forbidden, but an agent's client would have kept it)."""
    frame = dumps(with_value("error", ("body", field), "\ud800"))
    with pytest.raises(ProtocolError, match=f"body.{field}: Input should be a valid string"):
        decode(frame)


def decode_code(frame):
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    return info.value.code


def test_regression_frames_that_stopped_the_service_are_answered(dealer):  # noqa: F811
    """The frames of the first two bugs, over the wire: each is answered (quoting no
    msg_id), and the day after them settles."""
    with serving(["p1", "ev1"]) as service:
        stranger = dealer(service.endpoint, "zz")
        for frame in INTEGER_TOO_LONG + UNENCODABLE_MSG_ID:
            send(stranger, frame)
            answer = recv(stranger)
            assert (answer.type, answer.body.code, answer.body.ref_msg_id) == \
                ("error", decode_code(frame), None)
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert service.error is None and service.dropped == 0
    assert session.failed == {} and session.settlements.keys() == {"p1", "ev1"}


def overflowing_offer(name, round_=1, value=1e308):
    return json.dumps({"v": 7, "type": "offer", "sender": name, "round": round_,
                       "body": {"quantities_kw": {"p2v": [value] * PERIODS}}}).encode()


def test_regression_overflowing_powers_are_refused(dealer):  # noqa: F811
    """Bug: finite but huge powers passed decode; two sellers offering 1e308 summed to
    infinity, rule 3 made an infinite (or NaN) limit and building the signal raised in the
    service's thread. Agents' powers are now at most MAX_KW: the offers are malformed and
    the day goes on."""
    for value in (1e308, 2 * MAX_KW, -2 * MAX_KW):
        with pytest.raises(ProtocolError, match="body.quantities_kw.p2v.0: Input should be"):
            decode(overflowing_offer("p1", value=value))
    with pytest.raises(ProtocolError, match="body.limits_kw.p2v.0"):
        decode(dumps({"v": 7, "type": "register", "sender": "p1", "body": {
            "kind": "ev", "periods": 1, "period_h": 1, "limits_kw": {"p2v": [1e308]}}}))
    with pytest.raises(ProtocolError, match="body.p_kw"):
        decode(dumps({"v": 7, "type": "meter", "sender": "p1",
                      "body": {"period": 0, "p_kw": -1e308}}))
    with serving(["p1", "p2", "ev1"]) as service:
        socks = {n: dealer(service.endpoint, n) for n in ("p1", "p2", "ev1")}
        for name, sock in socks.items():
            send(sock, register(name, "ev" if name == "ev1" else "prosumer", p2v_max_kw=MAX_KW))
        for name, sock in socks.items():
            assert recv(sock).type == "signal"
            send(sock, overflowing_offer(name))
            answer = recv(sock)
            assert (answer.type, answer.body.code) == ("error", "malformed")
        for name, sock in socks.items():
            send(sock, zero_offer(name))
        assert until_settlement(**socks) == []
        session = service.wait(WAIT_S)
    assert service.error is None and session.settlements.keys() == set(socks)


def test_largest_powers_keep_every_rule_finite():
    """At MAX_KW, every limit, offer and reading of two sellers and two buyers: all four
    rules, the clearing and the settlement stay finite (the bound's reason)."""
    mech = P2V
    session = MarketSession(mech, P2VParams(tolerance_kw=0.0))
    sides = {"p1": "prosumer", "p2": "prosumer", "ev1": "ev", "ev2": "ev"}
    for name, kind in sides.items():
        session.register(Register(sender=name, body=RegisterBody(
            kind=kind, periods=2, period_h=24, limits_kw={"p2v": [MAX_KW]})))
    signals = session.start()
    while signals:
        for name in signals:
            q = [MAX_KW, 0.0] if name.startswith("p") else [MAX_KW / 3, MAX_KW]
            session.offer(Offer(sender=name, round=session.round,
                                body=OfferBody(quantities_kw={"p2v": q})))
        signals = session.close_round()
    assert [r.scalars["rule_applied"] for r in session.state.records] == [1, 2, 3, 4, None]
    session.clear()
    for name in sides:
        for m in meters(name, [MAX_KW, -MAX_KW]):
            session.meter(m)
    bills = session.settle()
    assert bills.keys() == sides.keys()
    assert all(np.isfinite(v).all() for b in bills.values()
               for v in b.body.model_dump().values())


def test_a_frame_that_raises_anything_else_is_dropped_and_counted(dealer):  # noqa: F811
    """The safety net: an unexpected exception on a frame's way in drops that frame (no
    answer), counts it and logs it; the service goes on."""
    with serving(["p1", "ev1"]) as service:
        dispatch = service._dispatch

        def failing(route, msg, key):
            if msg.sender == "boom":
                raise RuntimeError("an unforeseen bug")
            return dispatch(route, msg, key)

        service._dispatch = failing
        boom = dealer(service.endpoint, "boom")
        send(boom, zero_offer("boom"))
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert service.error is None and service.dropped == 1 and not boom.poll(0)
    assert session.settlements.keys() == {"p1", "ev1"}


def test_a_frame_over_the_size_limit_closes_its_connection_only(dealer, monkeypatch,  # noqa: F811
                                                                  tmp_path):
    """A frame longer than MAX_FRAME_BYTES never reaches the service (its connection is
    closed); a long frame under it is answered and logged in part; the day goes on."""
    monkeypatch.setattr(service_module, "MAX_FRAME_BYTES", 200_000)
    log = tmp_path / "messages.jsonl"
    with serving(["p1", "ev1"], log_path=log) as service:
        big, long, other = (dealer(service.endpoint, n) for n in ("big", "long", "zz"))
        send(big, b"x" * 300_000)
        send(long, b"y" * 100_000)
        assert recv(long).body.code == "malformed"
        send(other, Heartbeat(sender="zz"))
        assert recv(other).type == "heartbeat" and not big.poll(100)
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.settlements.keys() == {"p1", "ev1"}
    lines = read_log(log)
    logged = next(line["msg"] for line in lines if line["peer"] == "long")
    assert logged["raw"] == "y" * service_module.LOGGED_RAW_BYTES
    assert logged["error"].endswith(f"(100000 bytes, the first "
                                    f"{service_module.LOGGED_RAW_BYTES} kept)")
    assert {line["peer"] for line in lines} == {"long", "zz", "p1", "ev1"}  # never "big"


# -- a running service ----------------------------------------------------------------------------
def test_service_answers_every_hypothesis_frame_then_clears_the_day(dealer):  # noqa: F811
    """A service waiting for p1 and ev1 gets hypothesis' frames (multipart garbage too)
    from one stranger; each is answered with exactly one valid message; then the day."""
    with serving(["p1", "ev1"]) as service:
        stranger = dealer(service.endpoint, "zz")
        counts = {"error": 0, "heartbeat": 0}

        @examples(300)
        @given(st.lists(st.binary(max_size=40), max_size=2),
               wrong_field_frames() | hostile_payloads())
        def answered(garbage, payload):
            try:
                msg = decode(payload)
            except ProtocolError:
                msg = None
            if isinstance(msg, Register) and msg.sender in ("p1", "ev1"):
                return  # a valid registration for the roster would take its place
            stranger.send_multipart([*garbage, payload])
            assert stranger.poll(WAIT_S * 1000), "no answer from the coordinator"
            answer = decode(stranger.recv_multipart()[-1])
            counts[answer.type] += 1
            assert not stranger.poll(0)  # one answer a frame

        answered()
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert service.error is None and service.dropped == 0 and counts["error"] > 100
    assert session.failed == {} and session.settlements.keys() == {"p1", "ev1"}


def test_campaign_of_a_few_hundred_frames():
    """``make fuzz`` in small: strangers, insiders, CURVE; no crash, every stranger's frame
    answered, and the wire agents' day after the flood equals the in-process one."""
    result = run_campaign(frames=400, seed=11, connections=4)
    assert result.crashes == [] and result.dropped == 0 and result.bad_replies == 0
    assert result.frames >= 400 and result.unanswered == 0 and result.raw_bursts > 0
    assert result.errors > 300 and result.refused_handshakes > 0
    assert result.days == {"plain": True, "insiders": True, "curve": True} and result.ok


def test_wire_community_day_runs_every_rule():
    """The campaign's check day is a real P2V day: every rule applies before it converges,
    and energy is traded."""
    agents = wire_community()
    session = run_session({a.name: a for a in agents}, P2V, P2V_PARAMS)
    assert [r.scalars["rule_applied"] for r in session.state.records] == [1, 2, 3, 4, None]
    assert session.state.converged
    day = reference_day(agents)
    assert sorted(day) == ["ev1", "ev2", "p1", "p2", "p3"]
    assert sum(sum(d["clearing"]["quantities_kw"]["p2v"]) for d in day.values()) > 10


def test_real_agents_clear_the_same_day_after_a_flood(tiny, plain_day):  # noqa: F811
    """tiny.yaml's agents play their day while strangers flood the service first (the
    market cannot open before zz, a roster member that only registers after the flood
    and then offers nothing): the day equals the day without the flood."""
    names = [d.name for d in tiny[1]] + ["zz"]
    result = FuzzResult()

    def flood_then_play(endpoint):
        flood = Flood(endpoint, random.Random(5), result, 4, names)
        try:
            assert flood.run(300, lambda: True)
        finally:
            flood.close()
        context = zmq.Context()
        zz = context.socket(zmq.DEALER)
        zz.setsockopt(zmq.LINGER, 0)
        zz.setsockopt(zmq.IDENTITY, b"zz")
        zz.connect(endpoint)
        try:
            send(zz, register("zz", "ev", periods=tiny[0].horizon.periods, p2v_max_kw=7.0))
            while (msg := recv(zz)).type != "settlement":
                if msg.type == "signal":
                    send(zz, zero_offer("zz", msg.round, tiny[0].horizon.periods))
                elif msg.type == "clearing":
                    for reading in meters("zz", msg.body.position_kw):
                        send(zz, reading)
        finally:
            zz.close(linger=0)
            context.term()

    day = market_day(tiny, extra=["zz"], play=flood_then_play)
    assert result.frames == 300 and result.unanswered == 0 and result.bad_replies == 0
    assert result.errors + result.other_replies == 300
    assert day[3].failed == {} and day[3].settlements.keys() == {*names}
    assert_same_market(day, plain_day, compare_limits=False)  # zz's limits count too
