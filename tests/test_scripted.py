"""The scripted protocol agent (coordinator/scripted.py) message by message, and the line
between the product and the test harnesses: no product module imports hypothesis or the
tests, and the scripted agent knows no mechanism (a bench passes its answers in)."""

import re

import pytest

from lemgrid.coordinator.protocol import (
    Clearing,
    ClearingBody,
    Error,
    ErrorBody,
    Heartbeat,
    Offer,
    OfferBody,
    RegisterBody,
    Settlement,
    SettlementBody,
    Signal,
    SignalBody,
    Terms,
)
from lemgrid.coordinator.scripted import ScriptedAgent
from lemgrid.scenarios.mechanisms import registry

from .test_architecture import ROOT, imports, modules

BODY = RegisterBody(kind="prosumer", periods=2, period_h=1.0, limits_kw={"p2v": [3.0]})
SIGNAL = Signal(sender="coordinator", day=3, round=2, body=SignalBody(
    terms={"p2v": Terms(limit_kw=[3.0, 0.0])}))
CLEARING = Clearing(sender="coordinator", day=3, body=ClearingBody(position_kw=[0.5, 0.25],
                                                                    converged=True))
SETTLEMENT = Settlement(sender="coordinator", day=3, body=SettlementBody(
    position_kw=[0.5, 0.25], traded_eur=[0.0, 0.0], deviation_eur=[0.0, 0.0],
    violation_eur=[0.0, 0.0]))


def readings(messages) -> list[tuple[int, list[float]]]:
    return [(m.body.period, m.body.p_kw) for m in messages]


def test_data_answers_and_readings():
    """Offered as given, in the signal's day and round; one reading a period, as given."""
    a = ScriptedAgent("a1", BODY, {"net": [1.0, -2.0]}, [1.5, -2.5])
    assert a.register(3).body == BODY and a.register(3).day == 3
    (offer,) = a.receive(SIGNAL)
    assert isinstance(offer, Offer) and (offer.sender, offer.day, offer.round) == ("a1", 3, 2)
    assert offer.body.quantities_kw == {"net": [1.0, -2.0]}
    assert readings(a.receive(CLEARING)) == [(0, [1.5]), (1, [-2.5])]
    assert a.clearing is CLEARING and not a.settled(3)
    assert a.receive(SETTLEMENT) == [] and a.settled(3) and not a.settled(4)
    assert a.receive(Heartbeat(sender="coordinator")) == []


def test_callable_answers_and_the_cleared_position():
    """A callable sees the signal (here: offer the limits it was sent, 3 and 0 kW) and may
    sit a round out (None); without readings the agent realises its position."""
    rounds = []

    def answer(signal):
        rounds.append(signal.round)
        return None if len(rounds) > 1 else OfferBody(
            quantities_kw={"p2v": signal.body.terms["p2v"].limit_kw})

    a = ScriptedAgent("a1", BODY, answer)
    assert a.receive(SIGNAL)[0].body.quantities_kw == {"p2v": [3.0, 0.0]}
    assert a.receive(SIGNAL) == [] and rounds == [2, 2]
    assert readings(a.receive(CLEARING)) == [(0, [0.5]), (1, [0.25])]


def test_a_late_agent_never_answers_but_was_signalled():
    a = ScriptedAgent("a1", BODY, None)
    assert a.late and a.receive(SIGNAL) == [] and 3 in a.signalled_at


def test_errors_are_counted_and_gone_retires_the_agent():
    """An error counts; ``gone`` does not, and the agent opens no day after it. A new day
    forgets the last day's clearing and settlement."""
    a = ScriptedAgent("a1", BODY, {"net": [0.0, 0.0]})
    a.receive(SETTLEMENT)
    assert [m.day for m in a.opening(4)] == [4] and a.settlement is None
    a.receive(Error(sender="coordinator", body=ErrorBody(code="late", detail="too late")))
    assert (a.errors, a.gone) == (1, None)
    a.receive(Error(sender="coordinator", body=ErrorBody(code="gone", detail="a1 left")))
    assert (a.errors, a.gone) == (1, "a1 left") and a.opening(5) == []


PRODUCT = ("agents", "coordinator", "grid", "scenarios")


@pytest.mark.parametrize("package", PRODUCT)
def test_the_product_imports_no_test_harness(package):
    bad = [f"{p.relative_to(ROOT)} imports {n}" for p in modules(package) for n in imports(p)
           if n.split(".")[0] in ("hypothesis", "tests")]
    assert not bad, bad


def test_the_scripted_agent_knows_no_mechanism():
    path = ROOT / "coordinator" / "scripted.py"
    assert not [n for n in imports(path) if n.startswith("lemgrid.coordinator.mechanisms")]
    text = path.read_text()
    named = [m for m in registry() if re.search(rf"\b{re.escape(m)}\b", text, re.IGNORECASE)]
    assert not named, named
