"""Protocol round trips and the errors bad frames produce."""

import json

import pytest

from coordinator.mechanisms import get_mechanism
from coordinator.protocol import (
    PROTOCOL_VERSION,
    Offer,
    OfferBody,
    ProtocolError,
    Register,
    RegisterBody,
    decode,
    encode,
)
from coordinator.session import MarketSession


def test_round_trip():
    msg = Offer(sender="ev01", day=0, round=2, body=OfferBody(p2v_kw=[0.0, 1.5]))
    back = decode(encode(msg))
    assert back == msg and back.v == PROTOCOL_VERSION


@pytest.mark.parametrize("frame, code", [
    (b"\xff\x00", "malformed"),
    (b"[1, 2]", "malformed"),
    (b'{"v": 99, "type": "offer"}', "version"),
    (b'{"v": 1, "type": "gossip", "sender": "x"}', "unknown_type"),
    (b'{"v": 1, "type": "offer", "sender": "x", "body": {"p2v_kw": [-1]}}', "malformed"),
])
def test_bad_frames(frame, code):
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert info.value.code == code


def test_private_fields_are_refused():
    """The offer body has no field for load, PV or state of charge."""
    frame = json.dumps({"v": 1, "type": "offer", "sender": "p1",
                        "body": {"p2v_kw": [1.0], "load_kw": [2.0]}}).encode()
    with pytest.raises(ProtocolError, match="body.load_kw: Extra inputs are not permitted"):
        decode(frame)


def test_session_refuses_duplicate_late_and_unknown_offers():
    mech = get_mechanism("p2v_rules")
    session = MarketSession(mech, mech.params_type())
    session.register(Register(sender="p1", body=RegisterBody(kind="prosumer", side="seller",
                                                             periods=1, p2v_max_kw=1.0)))
    session.start()
    offer = Offer(sender="p1", round=1, body=OfferBody(p2v_kw=[0.0]))
    session.offer(offer)
    codes = []
    for bad in (offer, Offer(sender="p1", round=7, body=OfferBody(p2v_kw=[0.0])),
                Offer(sender="zz", round=1, body=OfferBody(p2v_kw=[0.0]))):
        with pytest.raises(ProtocolError) as info:
            session.offer(bad)
        codes.append(info.value.code)
    assert codes == ["duplicate", "late", "unknown_agent"]
    assert session.waiting_for == []
