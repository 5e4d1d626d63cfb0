"""Protocol round trips and the errors bad frames produce."""

import json

import numpy as np
import pytest

from lemgrid.coordinator.mechanisms.base import MarketData
from lemgrid.coordinator.mechanisms.p2v_rules import CORE as P2V
from lemgrid.coordinator.protocol import (
    PROTOCOL_VERSION,
    Clearing,
    ClearingBody,
    Meter,
    MeterBody,
    Offer,
    OfferBody,
    ProtocolError,
    Register,
    RegisterBody,
    decode,
    encode,
    merge_meters,
    period_values,
    series_array,
)
from lemgrid.coordinator.session import MarketSession

P2V_PARAMS = P2V.params_type().with_data(MarketData(p2v_eur_per_kwh=0.0686))  # faia2021's


def test_round_trip():
    msg = Offer(sender="ev01", day=0, round=2, body=OfferBody(quantities_kw={"p2v": [0.0, 1.5]}))
    back = decode(encode(msg))
    assert back == msg and back.v == PROTOCOL_VERSION


@pytest.mark.parametrize("frame, code", [
    (b"\xff\x00", "malformed"),
    (b"[1, 2]", "malformed"),
    (b'{"v": 99, "type": "offer"}', "version"),
    (b'{"v": 1, "type": "offer"}', "version"),
    (b'{"v": true, "type": "offer"}', "version"),
    (b'{"v": 7, "type": "gossip", "sender": "x"}', "unknown_type"),
    (b'{"v": 7, "type": ["offer"], "sender": "x"}', "unknown_type"),
    (b'{"v": 7, "type": "offer", "sender": "x", "body": {"p2v_kw": [1]}}', "malformed"),
    (b'{"v": 7, "type": "offer", "sender": "x", "body": {"quantities_kw": {"p2v": [NaN]}}}',
     "malformed"),
    (b'{"v": 7, "type": "meter", "sender": "x", "body": {"period": -1, "p_kw": 1}}',
     "malformed"),
    (b'{"v": 7, "type": "offer", "sender": "a b", "body": {"quantities_kw": {}}}', "malformed"),
    (b"[" * 100_000 + b"]" * 100_000, "malformed"),
])
def test_bad_frames(frame, code):
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert info.value.code == code


def test_private_fields_are_refused():
    """The offer body has no field for load, PV or state of charge."""
    frame = json.dumps({"v": 7, "type": "offer", "sender": "p1",
                        "body": {"quantities_kw": {"p2v": [1.0]}, "load_kw": [2.0]}}).encode()
    with pytest.raises(ProtocolError, match="body.load_kw: Extra inputs are not permitted"):
        decode(frame)


def test_session_refuses_duplicate_late_and_unknown_offers():
    mech = P2V
    session = MarketSession(mech, P2V_PARAMS)
    session.register(Register(sender="p1", body=RegisterBody(
        kind="prosumer", periods=1, period_h=0.25, limits_kw={"p2v": [1.0]})))
    session.register(Register(sender="v1", body=RegisterBody(
        kind="ev", periods=1, period_h=0.25, limits_kw={"p2v": [1.0]})))
    session.start()
    offer = Offer(sender="p1", round=1, body=OfferBody(quantities_kw={"p2v": [0.0]}))
    session.offer(offer)
    codes = []
    for bad in (offer, Offer(sender="p1", round=7, body=OfferBody(quantities_kw={"p2v": [0.0]})),
                Offer(sender="zz", round=1, body=OfferBody(quantities_kw={"p2v": [0.0]})),
                Offer(sender="v1", round=1, body=OfferBody(quantities_kw={"p2v": [0.0, 1.0]})),
                Offer(sender="v1", round=1, body=OfferBody(quantities_kw={"net": [0.0]}))):
        with pytest.raises(ProtocolError) as info:
            session.offer(bad)
        codes.append(info.value.code)
    assert codes == ["duplicate", "late", "unknown_agent", "malformed", "malformed"]
    assert session.waiting_for == ["v1"]


def test_session_refuses_a_kind_its_mechanism_does_not_serve():
    mech = P2V
    session = MarketSession(mech, P2V_PARAMS)
    with pytest.raises(ProtocolError, match="does not serve building agents") as info:
        session.register(Register(sender="h1", body=RegisterBody(
            kind="building", periods=1, period_h=0.25)))
    assert info.value.code == "forbidden"


def cleared_pair(periods: int, offer_kw: float) -> MarketSession:
    """A P2V session of one seller p1 and one buyer v1 (1 kW limits) whose one round
    offered ``offer_kw`` in every period, cleared."""
    mech = P2V
    session = MarketSession(mech, P2V_PARAMS)
    for name, kind in (("p1", "prosumer"), ("v1", "ev")):
        session.register(Register(sender=name, body=RegisterBody(
            kind=kind, periods=periods, period_h=0.25, limits_kw={"p2v": [1.0]})))
    session.start()
    for name in ("p1", "v1"):
        session.offer(Offer(sender=name, round=1, body=OfferBody(
            quantities_kw={"p2v": [offer_kw] * periods})))
    assert session.close_round() == {} and set(session.clear()) == {"p1", "v1"}
    return session


def test_session_meters_and_settles_a_day():
    """One seller and one buyer trade 1 kW for one 15-min period at 0.0686 €/kWh: the
    buyer pays 1 × 0.25 × 0.0686 = 0.01715 €. A second reading of the period is a
    duplicate, a reading for another period than the day has is malformed."""
    session = cleared_pair(1, 1.0)
    reading = Meter(sender="v1", body=MeterBody(period=0, p_kw=1.2))
    session.meter(reading)
    codes = []
    for bad in (reading, Meter(sender="v1", body=MeterBody(period=1, p_kw=1.0))):
        with pytest.raises(ProtocolError) as info:
            session.meter(bad)
        codes.append(info.value.code)
    assert codes == ["duplicate", "malformed"] and session.unmetered == {"p1"}
    bills = session.settle()
    assert bills["v1"].body.traded_eur == pytest.approx([0.01715], abs=1e-15)
    assert bills["p1"].body.position_kw == [-1.0]


def test_a_meter_message_covers_consecutive_periods_whole_or_not_at_all():
    """A 4-period day: readings for periods 1-2 in one message fill exactly those two;
    one for 2-3 overlaps period 2 and is refused whole (period 3 stays unmetered), one
    for 3-4 runs past the day (malformed); 0 and 3 one by one complete the day.
    merge_meters joins single-period readings into that shape."""
    session = cleared_pair(4, 0.0)
    joined = merge_meters([Meter(sender="v1", body=MeterBody(period=t, p_kw=p))
                           for t, p in ((1, 1.5), (2, 2.5))])
    assert (joined.body.period, joined.body.p_kw) == (1, [1.5, 2.5])
    session.meter(joined)
    codes = []
    for first, values in ((2, [9.0, 9.0]), (3, [9.0, 9.0])):
        with pytest.raises(ProtocolError) as info:
            session.meter(Meter(sender="v1", body=MeterBody(period=first, p_kw=values)))
        codes.append(info.value.code)
    assert codes == ["duplicate", "malformed"]
    assert np.isnan(session.meters["v1"][[0, 3]]).all()
    assert session.meters["v1"][1:3].tolist() == [1.5, 2.5]
    for t, p in ((0, 0.5), (3, 3.5)):
        session.meter(Meter(sender="v1", body=MeterBody(period=t, p_kw=p)))
    assert session.meters["v1"].tolist() == [0.5, 1.5, 2.5, 3.5]
    assert session.unmetered == {"p1"}


def test_a_clearing_names_a_trade_by_its_periods_or_by_the_whole_day():
    """A bilateral clearing's per-counterparty series as ``{period: value}`` (0 in the
    periods it does not name) or as a list: both travel and read back as the same four
    periods, [0, 2.5, 0, −1] kW; a period below 0 is refused."""
    body = ClearingBody(position_kw=[0.0] * 4, converged=True,
                        by_counterparty_kw={"power": {"a": {1: 2.5, 3: -1.0},
                                                      "b": [0.0, 2.5, 0.0, -1.0]}})
    back = decode(encode(Clearing(sender="coordinator", day=0, round=1, body=body))).body
    a, b = back.by_counterparty_kw["power"]["a"], back.by_counterparty_kw["power"]["b"]
    assert a == {1: 2.5, 3: -1.0}
    np.testing.assert_array_equal(series_array(a, 4), [0.0, 2.5, 0.0, -1.0])
    np.testing.assert_array_equal(series_array(a, 4), series_array(b, 4))
    assert period_values(a) == [(1, 2.5), (3, -1.0)]
    assert period_values(b) == [(0, 0.0), (1, 2.5), (2, 0.0), (3, -1.0)]
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        ClearingBody(position_kw=[0.0], converged=True,
                     by_counterparty_kw={"power": {"a": {-1: 1.0}}})

