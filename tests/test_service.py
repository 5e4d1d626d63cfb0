"""The coordinator service over ZeroMQ: distributed days equal the in-process ones, bad
frames are answered with errors, silent agents are timed out.

Every socket binds or connects on a random port and is closed with ``linger=0`` by a
fixture or a context manager, whatever the test does.
"""

import argparse
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import numpy as np
import pytest
import zmq

from lemgrid.agents.client import CoordinatorClient, CoordinatorUnavailable
from lemgrid.agents.market_agent import MarketAgent
from lemgrid.agents.realise import Actuals
from lemgrid.agents.solver import AgentInfeasible
from lemgrid.coordinator.arguments import add_coordinator_arguments
from lemgrid.coordinator.mechanisms.base import MarketData, dump_market
from lemgrid.coordinator.mechanisms.p2v_rules import CORE as P2V
from lemgrid.coordinator.mechanisms.p2v_rules import P2VParams
from lemgrid.coordinator.protocol import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Error,
    ErrorBody,
    Heartbeat,
    Meter,
    MeterBody,
    Offer,
    OfferBody,
    Register,
    RegisterBody,
    Settlement,
    SettlementBody,
    Signal,
    SignalBody,
    Terms,
    decode,
    encode,
)
from lemgrid.coordinator.records import read_days
from lemgrid.coordinator.service import (
    CoordinatorService,
    build_service,
    day_summary,
    read_roster,
)
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.run.inprocess import run_decentralized
from lemgrid.scenarios.run.market import mechanism_setup, plugin
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS

P2V_PARAMS = P2VParams().with_data(MarketData(p2v_eur_per_kwh=0.0686))  # faia2021's price
WAIT_S = 10.0  # longest any test waits for one answer or for the service to finish
DRAIN_S = 0.05  # the services here linger this long after the last settlement
REALISE_S = WAIT_S / 2  # the services here wait this long for the next meter reading
SHORT_S = 0.3  # deadlines and timeouts of the tests that time something out
PERIODS = 4  # the raw agents' horizon
PERIOD_H = 0.25


# -- fixtures and helpers ------------------------------------------------------------------
@contextmanager
def serving(roster, params=None, mechanism=P2V, **kwargs):
    """A coordinator serving in a thread on a random port; always closed."""
    service = CoordinatorService(mechanism, params or P2V_PARAMS, roster,
                                 **{"drain_s": DRAIN_S, "realisation_timeout_s": REALISE_S,
                                    "keep_log": True, **kwargs})
    try:
        service.serve_in_thread()
        yield service
    finally:
        service.close()


@pytest.fixture
def sockets():
    """Raw sockets (linger 0) on one context, closed after the test."""
    ctx, made = zmq.Context(), []

    def make(kind, identity=None):
        sock = ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if identity:
            sock.setsockopt(zmq.IDENTITY, identity.encode())
        made.append(sock)
        return sock

    yield make
    for sock in made:
        sock.close(linger=0)
    ctx.term()


@pytest.fixture
def dealer(sockets):
    def connect(endpoint, identity):
        sock = sockets(zmq.DEALER, identity)
        sock.connect(endpoint)
        return sock
    return connect


def send(sock, msg):
    sock.send(encode(msg) if not isinstance(msg, bytes) else msg)
    return msg


def recv(sock, timeout_s=WAIT_S):
    assert sock.poll(timeout_s * 1000), "no answer from the coordinator"
    return decode(sock.recv())


def register(name, kind="prosumer", day=0, periods=PERIODS, p2v_max_kw=3.0):
    """A P2V agent joins: a prosumer sells, an EV buys, up to ``p2v_max_kw``."""
    return Register(sender=name, day=day, body=RegisterBody(
        kind=kind, periods=periods, period_h=PERIOD_H, limits_kw={"p2v": [p2v_max_kw]}))


def zero_offer(name, round_=1, periods=PERIODS):
    return Offer(sender=name, round=round_, body=OfferBody(quantities_kw={"p2v": [0.0] * periods}))


def meters(name, position_kw, day=0, skip=()):
    """One reading per period: the agent realises its day-ahead position exactly."""
    return [Meter(sender=name, day=day, body=MeterBody(period=t, p_kw=p))
            for t, p in enumerate(position_kw) if t not in skip]


def answer_until(last, socks):
    """Answer every signal with nothing and every clearing with one meter reading per
    period, until each agent (name=socket) has received a message of type ``last``;
    return the errors they received."""
    errors, poller = [], zmq.Poller()
    for sock in socks.values():
        poller.register(sock, zmq.POLLIN)
    waiting = dict(socks)
    while waiting:
        ready = dict(poller.poll(WAIT_S * 1000))
        assert ready, f"no answer from the coordinator for {', '.join(waiting)}"
        for name, sock in list(waiting.items()):
            if sock not in ready:
                continue
            msg = decode(sock.recv())
            if msg.type == "signal":
                send(sock, zero_offer(name, msg.round).model_copy(update={"day": msg.day}))
            elif msg.type == "error":
                errors.append(msg)
            elif msg.type == "clearing" and last != "clearing":
                for reading in meters(name, msg.body.position_kw, msg.day):
                    send(sock, reading)
            if msg.type == last:
                del waiting[name]
    return errors


def until_clearing(**socks):
    """The market part of the day only (nobody meters)."""
    return answer_until("clearing", socks)


def until_settlement(**socks):
    """The whole day: market, a meter reading per period, settlement."""
    return answer_until("settlement", socks)


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


BODIES = [m.model_fields["body"].annotation for m in MESSAGE_TYPES.values()]
MODELS = [*MESSAGE_TYPES.values(), *BODIES, Terms]
PROTOCOL_FIELDS = set().union(*(m.model_fields for m in MODELS))
# The market keys coordinator/protocol.py names; a dict of these is keyed by commodity.
COMMODITIES = {"p2v", "net", "power", "heat", "import", "export", "cdl", "pil"}
BY_COMMODITY = {"limits_kw", "terms", "quantities_kw", "prices_eur_per_kwh"}
BY_AGENT = {"by_counterparty", "by_counterparty_kw"}  # agent -> commodity -> terms or series


def outside_protocol(node, path="msg", keyed_by=None):
    """Paths of every key, at any depth, that no protocol model declares: a field name
    no model has, or in a dict keyed by commodity, a key that is no commodity (a private
    profile, say ``load_kw``, passed off as one)."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if keyed_by == "agent":
                yield from outside_protocol(value, where, "commodity")
            elif keyed_by == "commodity" and key not in COMMODITIES:
                yield where
            elif keyed_by == "commodity":
                yield from outside_protocol(value, where)
            elif key not in PROTOCOL_FIELDS:
                yield where
            else:
                inner = "agent" if key in BY_AGENT else "commodity" if key in BY_COMMODITY \
                    else None
                yield from outside_protocol(value, where, inner)
    elif isinstance(node, list):
        for item in node:
            yield from outside_protocol(item, f"{path}[]")


def log_problems(path):
    """Lines of messages.jsonl that are not (t, dir, peer, protocol message)."""
    problems = []
    for n, line in enumerate(read_log(path), 1):
        msg = line.get("msg")
        if set(line) != {"t", "dir", "peer", "msg"} or line["dir"] not in ("in", "out"):
            problems.append(f"line {n}: {sorted(line)}")
        elif line["dir"] == "in" and set(msg) == {"raw", "error"}:
            continue  # an undecodable frame, kept as text and answered with an error
        else:
            problems += [f"line {n}: {p}" for p in outside_protocol(msg)]
    return problems


# -- distributed days equal the in-process days ----------------------------------------------
def market_agents(s, community, actuals=None):
    """The scenario's agents as the in-process runtime configures them."""
    so, family = s.solver, plugin(s).strategy
    return [MarketAgent(d, family, (actuals or {}).get(d.name), mip_rel_gap=so.mip_rel_gap,
                        time_limit_s=so.time_limit_s, lp_first=so.lp_first) for d in community]


def run_days(s, community, actuals=None, extra=(), play=None, **kwargs):
    """The scenario's agents, each with its own client, against a service serving the
    scenario's days; each day every client plays the whole day in its own thread, and
    ``play(endpoint)`` acts out the roster members ``extra`` meanwhile on the first day.
    Returns each agent's settled days, the (closed) clients that kept every settlement
    and error, the agents and the (closed) service."""
    mech, params = mechanism_setup(s)
    agents = {a.name: a for a in market_agents(s, community, actuals)}
    settled = {n: [] for n in agents}
    with (serving([*agents, *extra], params, mech, days=s.horizon.days,
                  **kwargs) as service,
          ExitStack() as stack, ThreadPoolExecutor(len(agents)) as pool):
        clients = {n: stack.enter_context(CoordinatorClient(a, service.endpoint,
                                                            timeout_s=WAIT_S / 2))
                   for n, a in agents.items()}
        try:
            for day in range(s.horizon.days):
                for agent in agents.values():  # one at a time: building Pyomo models is
                    agent.start_day(day)  # not thread-safe (register() keeps the model)
                futures = {n: pool.submit(c.run, day) for n, c in clients.items()}
                if play and day == 0:
                    play(service.endpoint)
                for name, future in futures.items():
                    settled[name].append(future.result(WAIT_S))
            service.wait(WAIT_S)
        except BaseException:
            service.stop()  # the clients then give up within their retries
            raise
    return settled, clients, agents, service


def assert_same_schedule(got, ref, what):
    """One settled day: every flow, the energy and every cost, to 1e-9."""
    assert got.status == ref.status == "settled", what
    assert got.flows_kw.keys() == ref.flows_kw.keys(), what
    for key, values in ref.flows_kw.items():
        np.testing.assert_allclose(got.flows_kw[key], values, rtol=0, atol=1e-9,
                                   err_msg=f"{what}: {key}")
    assert (got.soc_kwh is None) == (ref.soc_kwh is None), what
    if ref.soc_kwh is not None:
        np.testing.assert_allclose(got.soc_kwh, ref.soc_kwh, rtol=0, atol=1e-9, err_msg=what)
    np.testing.assert_allclose(got.cost_eur, ref.cost_eur, rtol=0, atol=1e-9, err_msg=what)
    assert got.costs_eur.keys() == ref.costs_eur.keys(), what
    for key, values in ref.costs_eur.items():
        np.testing.assert_allclose(got.costs_eur[key], values, rtol=0, atol=1e-9,
                                   err_msg=f"{what}: {key}")


def assert_same_days(settled, service, reference, compare_limits=True):
    """Every agent's every settled day and every day's rounds (the service's day records)
    equal the in-process run's."""
    days = read_days(service.records_path) if service.records_path else service.days
    assert [d["day"] for d in days] == [d.day for d in reference]
    for record, ref in zip(days, reference):
        day = ref.day
        assert record["settlements"].keys() == ref.schedules.keys()
        for name, schedule in ref.schedules.items():
            assert_same_schedule(settled[name][day], schedule, f"{name}, day {day + 1}")
        rounds, ref_rounds = record["rounds"], [r.record for r in ref.rounds]
        assert [r["round"] for r in rounds] == [r.round for r in ref_rounds]
        for got, want in zip(rounds, ref_rounds):
            assert abs(got["error_kw"] - want.error_kw) <= 1e-9
            assert got["per_period"].keys() == want.per_period.keys()
            for key, values in want.per_period.items():
                np.testing.assert_allclose(got["per_period"][key], values, rtol=0, atol=1e-9,
                                           err_msg=f"day {day + 1}, round {want.round}: {key}")
            assert got["scalars"]["rule_applied"] == want.scalars["rule_applied"]
            if compare_limits:
                assert got["scalars"] == want.scalars
        assert record["converged"] == ref.converged


@pytest.fixture(scope="module")
def tiny():
    s = load_scenario(SCENARIOS / "tiny.yaml")
    community = build_community(s)
    return s, community, run_decentralized(s, community)


@pytest.fixture(scope="module")
def distributed(tiny, tmp_path_factory):
    s, community, _ = tiny
    log = tmp_path_factory.mktemp("round_trip") / "messages.jsonl"
    return (*run_days(s, community, log_path=log), log)


def test_distributed_day_equals_in_process(tiny, distributed):
    settled, clients, _, service, _ = distributed
    reference = tiny[2]
    assert len(reference) == 1 and reference[0].failed == {}
    assert_same_days(settled, service, reference)
    assert service.days[0]["failed"] == service.result.failed == {} and service.gone == {}
    assert len(service.days[0]["rounds"]) == 5  # tiny.yaml needs every rule
    for name, client in clients.items():
        assert (client.errors, client.bad_frames, list(client.settlements)) == ([], [], [0])
        assert client.settlements[0].body.model_dump(mode="json") == \
            service.days[0]["settlements"][name]


def test_log_holds_only_protocol_fields(distributed):
    """messages.jsonl is the audit trail: nothing in it that the protocol does not declare
    (so no load, PV or state of charge, not even as a commodity key), every register,
    signal, offer, clearing, meter and settlement is there, and the only realised figure
    on the wire is each agent's net power at its connection."""
    settled, _, agents, service, log = distributed
    session = service.result
    assert log_problems(log) == []
    lines = read_log(log)
    assert len(lines) == len(session.log)  # no bad frames in a clean day: log = session.log
    assert {line["msg"]["msg_id"] for line in lines} == {m.msg_id for m in session.log}
    n, periods, rounds = len(agents), session.periods, len(session.state.records)
    assert Counter(line["msg"]["type"] for line in lines) == {
        "register": n, "signal": n * rounds, "offer": n * rounds, "clearing": n,
        "meter": n, "settlement": n}  # a whole-day client meters its day in one message
    assert {line["dir"] for line in lines if line["msg"]["type"] in ("meter", "offer")} == {"in"}
    for name, days in settled.items():
        readings = sorted((line["msg"]["body"]["period"] + i, p)
                          for line in lines if line["msg"]["type"] == "meter"
                          and line["msg"]["sender"] == name
                          for i, p in enumerate(line["msg"]["body"]["p_kw"]))
        assert len(readings) == periods
        assert readings == list(enumerate(days[0].flows_kw["net_kw"].tolist())), name


def test_log_check_finds_private_fields(tmp_path):
    """The check above would see a private field anywhere in a logged message, of any
    type, and a private profile passed off as a commodity."""
    log = tmp_path / "messages.jsonl"
    offer = zero_offer("p1").model_dump(mode="json")
    meter = meters("p1", [0.0])[0].model_dump(mode="json")
    signal = Signal(sender="coordinator", body=SignalBody(
        terms={"p2v": Terms(limit_kw=[1.0])})).model_dump(mode="json")
    bill = Settlement(sender="coordinator", body=SettlementBody(
        position_kw=[0.0], traded_eur=[0.0], deviation_eur=[0.0], violation_eur=[0.0]))
    bill = bill.model_dump(mode="json")
    lines = [register("p1").model_dump(mode="json"),  # clean
             {**offer, "load_kw": [1.0]},
             {**offer, "body": {**offer["body"], "soc_kwh": [1.0]}},
             {**offer, "body": {"quantities_kw": {"p2v": [0.0]},
                                "by_counterparty_kw": {"ev1": {"pv_kw": [1.0]}}}},
             {**offer, "body": {"quantities_kw": {"load_kw": [2.0]}}},
             {**meter, "body": {**meter["body"], "soc_kwh": 3.0}},
             {**signal, "body": {"terms": {"p2v": {"limit_kw": [1.0], "pv_kw": [2.0]}}}},
             {**signal, "body": {"by_counterparty": {"ev1": {"p2v": {"soc_kwh": [1.0]}}}}},
             {**bill, "body": {**bill["body"], "load_kw": [1.0]}},
             {"raw": "not json", "error": "malformed: not JSON"}]
    log.write_text("".join(json.dumps({"t": 0, "dir": "in", "peer": "p1", "msg": m}) + "\n"
                           for m in lines))
    assert log_problems(log) == ["line 2: msg.load_kw", "line 3: msg.body.soc_kwh",
                                 "line 4: msg.body.by_counterparty_kw.ev1.pv_kw",
                                 "line 5: msg.body.quantities_kw.load_kw",
                                 "line 6: msg.body.soc_kwh",
                                 "line 7: msg.body.terms.p2v.pv_kw",
                                 "line 8: msg.body.by_counterparty.ev1.p2v.soc_kwh",
                                 "line 9: msg.body.load_kw"]


def test_agent_that_goes_silent_is_dropped(tiny, dealer):
    """A sixth roster member registers and never offers: round 1 closes at its deadline and
    the others' day is the in-process day (its offer counts as nothing)."""
    s, community, reference = tiny

    def ghost(endpoint):
        send(dealer(endpoint, "ghost"), register("ghost", "ev", periods=96, p2v_max_kw=7.0))

    settled, _, _, service = run_days(s, community, extra=["ghost"], play=ghost,
                                      round_deadline_s=1.0)
    assert service.result.failed == {"ghost": "missed the round-1 deadline"}
    assert service.gone == {"ghost": "day 1: missed the round-1 deadline"}
    assert_same_days(settled, service, reference, compare_limits=False)


TWO_DAYS = ["horizon.days=2",  # tiny.yaml cut to one prosumer and one EV
            "templates.0.count=1", "templates.0.battery={counts: {byd_hvm_13_8: 1}}",
            "templates.1.count=1", "templates.1.model={counts: {nissan_leaf_40: 1}}"]


def test_two_days_over_the_wire_equal_in_process(tmp_path):
    """Two P2V agents play two whole days through their clients against one service.
    p1's real load is 30 % above its forecast, so its battery covers the difference and
    ends day 1 well below where it started: day 2's model starts from that energy. Both
    days' settlements arrive, and every settled day equals the in-process run's."""
    s = load_scenario(SCENARIOS / "tiny.yaml", TWO_DAYS)
    community = build_community(s)
    assert [d.name for d in community] == ["p1", "ev1"] and s.horizon.days == 2
    p1 = community[0]
    actuals = {"p1": Actuals(load_kw=1.3 * p1.load_kw)}
    reference = run_decentralized(s, community, actuals)
    assert [(d.day, d.failed) for d in reference] == [(0, {}), (1, {})]
    folder = tmp_path / "rounds"
    settled, clients, agents, service = run_days(s, community, actuals, records_path=folder)

    assert service.result.day == 1 and service.gone == {}
    assert [(d["day"], d["failed"]) for d in service.days] == [(0, {}), (1, {})]
    days = read_days(folder)  # on disk, one file per day; the service keeps a summary
    assert sorted(p.name for p in folder.iterdir()) == ["day_0001.json", "day_0002.json"]
    assert [day_summary(d) for d in days] == service.days
    for name, client in clients.items():
        assert (client.errors, client.bad_frames) == ([], []), name
        assert len(settled[name]) == 2 and sorted(client.settlements) == [0, 1], name
        for day, msg in client.settlements.items():
            assert msg.day == day
            assert msg.body.model_dump(mode="json") == days[day]["settlements"][name]
    day1 = settled["p1"][0]
    assert agents["p1"].day_data.battery.e0_kwh == day1.soc_kwh[-1]  # day 2 starts there
    assert day1.soc_kwh[-1] < p1.battery.e0_kwh - 1.0  # and not where day 1 started
    assert any(np.any(days[1].p2v_kw) for days in settled.values())  # P2V traded on day 2
    assert_same_days(settled, service, reference)


# -- bad frames -----------------------------------------------------------------------------
def frame(**fields):
    raw = {"v": PROTOCOL_VERSION, "type": "offer", "msg_id": "m-bad", "sender": "p1", "day": 0, "round": 1,
           "body": {"quantities_kw": {"p2v": [0.0] * PERIODS}}}
    return json.dumps({**raw, **fields}).encode()


def offer_frame(quantities, **fields):
    return frame(body={"quantities_kw": quantities}, **fields)


def meter_frame(period=0, **fields):
    return frame(type="meter", round=0, body={"period": period, "p_kw": 0.0}, **fields)


ZEROS = [0.0] * PERIODS
BILL = {"position_kw": ZEROS, "traded_eur": ZEROS, "deviation_eur": ZEROS,
        "violation_eur": ZEROS}
# case: (frames p1 sends, expected error code, its ref_msg_id, when: in round 1 or after
# the clearing); every frame but the last is accepted
BAD_FRAMES = {
    "version": ([frame(v=99)], "version", "m-bad", "market"),
    "previous_version": ([frame(v=1)], "version", "m-bad", "market"),
    "not_json": ([b"offer p2v 1.0 kW"], "malformed", None, "market"),
    "unknown_type": ([frame(type="gossip")], "unknown_type", "m-bad", "market"),
    "private_field": ([frame(body={"quantities_kw": {"p2v": ZEROS}, "load_kw": [2.0] * PERIODS})],
                      "malformed", "m-bad", "market"),
    "v1_body": ([frame(body={"p2v_kw": ZEROS})], "malformed", "m-bad", "market"),
    "not_finite": ([offer_frame({"p2v": [float("nan")] * PERIODS})], "malformed", "m-bad",
                   "market"),
    "bad_key": ([offer_frame({"p2v kw": ZEROS})], "malformed", "m-bad", "market"),
    "bad_sender": ([frame(sender="p 1")], "malformed", "m-bad", "market"),
    "no_p2v": ([offer_frame({"net": ZEROS})], "malformed", "m-bad", "market"),
    "short": ([offer_frame({"p2v": ZEROS[1:]})], "malformed", "m-bad", "market"),
    "negative": ([offer_frame({"p2v": [-1.0] * PERIODS})], "malformed", "m-bad", "market"),
    "duplicate": ([frame(msg_id="m-first"), frame()], "duplicate", "m-bad", "market"),
    "late": ([frame(round=7)], "late", "m-bad", "market"),
    "early_meter": ([meter_frame()], "late", "m-bad", "market"),
    "other_sender": ([frame(sender="ev1")], "forbidden", "m-bad", "market"),
    "coordinator_type": ([frame(type="signal", body={})], "forbidden", "m-bad", "market"),
    "settlement": ([frame(type="settlement", body=BILL)], "forbidden", "m-bad", "market"),
    "offer_after_clearing": ([frame()], "late", "m-bad", "realisation"),
    "meter_duplicate": ([meter_frame(msg_id="m-first"), meter_frame()], "duplicate", "m-bad",
                        "realisation"),
    "meter_period": ([meter_frame(PERIODS)], "malformed", "m-bad", "realisation"),
    "meter_day": ([meter_frame(day=1)], "late", "m-bad", "realisation"),
    "meter_other_sender": ([meter_frame(sender="ev1")], "forbidden", "m-bad", "realisation"),
}


@pytest.mark.parametrize("case", BAD_FRAMES)
def test_bad_frame_is_answered_logged_and_survived(case, dealer, tmp_path):
    frames, code, ref, when = BAD_FRAMES[case]
    accepted = [decode(f) for f in frames[:-1]]
    log = tmp_path / "messages.jsonl"
    with serving(["p1", "ev1"], log_path=log) as service:
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        assert recv(p1).type == recv(ev1).type == "signal"
        if when == "realisation":
            send(p1, zero_offer("p1"))
            send(ev1, zero_offer("ev1"))
            assert until_clearing(p1=p1, ev1=ev1) == []
        for f in frames:
            send(p1, f)
        error = recv(p1)
        assert (error.type, error.body.code, error.body.ref_msg_id) == ("error", code, ref)
        if when == "market":
            if not accepted:  # the duplicate case has offered already
                send(p1, zero_offer("p1"))
            send(ev1, zero_offer("ev1"))
        else:
            for reading in meters("p1", ZEROS, skip={m.body.period for m in accepted}):
                send(p1, reading)
            for reading in meters("ev1", ZEROS):
                send(ev1, reading)
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.done and session.failed == {} and service.gone == {}
    assert session.settlements.keys() == {"p1", "ev1"}
    lines = read_log(log)
    answer = next(n for n, line in enumerate(lines) if line["msg"].get("type") == "error")
    assert lines[answer]["dir"] == "out" and lines[answer]["peer"] == "p1"
    before = lines[answer - 1]  # the frame it answers, logged just before
    assert before["dir"] == "in" and before["peer"] == "p1"
    if "raw" in before["msg"]:  # undecodable: kept as text with the reason
        assert before["msg"] == {"raw": frames[-1].decode(), "error": f"{code}: "
                                 f"{lines[answer]['msg']['body']['detail']}"}
    else:
        assert before["msg"]["msg_id"] == ref
    assert log_problems(log) == []


def test_strangers_are_refused_and_heartbeats_answered(dealer):
    with serving(["p1", "ev1"]) as service:
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        stranger = dealer(service.endpoint, "zz")
        send(p1, register("p1"))
        again = send(p1, register("p1"))
        answer = recv(p1)
        assert (answer.body.code, answer.body.ref_msg_id) == ("duplicate", again.msg_id)
        send(stranger, Heartbeat(sender="zz"))
        assert recv(stranger).type == "heartbeat"
        for msg, code in [(register("zz"), "unknown_agent"),  # not in the roster
                          (register("p1"), "forbidden"),  # p1 is registered elsewhere
                          (zero_offer("zz"), "unknown_agent")]:
            send(stranger, msg)
            answer = recv(stranger)
            assert (answer.body.code, answer.body.ref_msg_id) == (code, msg.msg_id)
        send(ev1, register("ev1", "ev"))
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.failed == {} and session.settlements.keys() == {"p1", "ev1"}


def test_a_host_speaks_for_each_of_its_agents_in_its_envelope_only(dealer):
    """One connection registers p1 and ev1, each message after a frame naming its agent,
    and gets every answer in the same envelope. Refused, each with ``forbidden`` in the
    envelope it came in: an offer for ev1 in p1's envelope, and p1 registered again from
    the same connection without an envelope (another route), and (first) a registration
    over a route of more frames than a delimiter and an envelope."""
    with serving(["p1", "ev1"]) as service:
        host = dealer(service.endpoint, "host-0")

        def speak(envelope, msg):
            host.send_multipart([envelope.encode(), encode(msg)])
            return msg

        def hear():
            assert host.poll(WAIT_S * 1000), "no answer from the coordinator"
            envelope, frame = host.recv_multipart()
            return envelope.decode(), decode(frame)

        long = register("p1")
        host.send_multipart([b"a", b"b", b"p1", encode(long)])
        assert host.poll(WAIT_S * 1000)
        *route, frame = host.recv_multipart()
        answer = decode(frame)
        assert (route, answer.body.code, answer.body.ref_msg_id) == (
            [b"a", b"b", b"p1"], "forbidden", long.msg_id)
        assert "a route of 4 frames" in answer.body.detail
        speak("p1", register("p1"))
        speak("ev1", register("ev1", "ev"))
        signals = dict(hear() for _ in range(2))
        assert {n: m.type for n, m in signals.items()} == {"p1": "signal", "ev1": "signal"}
        bad = speak("p1", zero_offer("ev1"))
        envelope, answer = hear()
        assert (envelope, answer.body.code, answer.body.ref_msg_id) == ("p1", "forbidden",
                                                                        bad.msg_id)
        assert "the envelope names 'p1', not 'ev1'" in answer.body.detail
        again = send(host, register("p1"))  # one frame: the answer comes in one
        answer = recv(host)
        assert (answer.body.code, answer.body.ref_msg_id) == ("forbidden", again.msg_id)
        for name in ("p1", "ev1"):
            speak(name, zero_offer(name))
        clearings = dict(hear() for _ in range(2))
        assert {n: m.type for n, m in clearings.items()} == {"p1": "clearing",
                                                             "ev1": "clearing"}
        for name, clearing in clearings.items():
            for reading in meters(name, clearing.body.position_kw):
                speak(name, reading)
        settlements = dict(hear() for _ in range(2))
        assert {n: m.type for n, m in settlements.items()} == {"p1": "settlement",
                                                               "ev1": "settlement"}
        session = service.wait(WAIT_S)
    assert session.failed == {} and service.dropped == 0


def test_kind_the_mechanism_does_not_serve_is_refused(dealer):
    """A building registers for the P2V market: refused when the market opens, and the
    day goes on without it."""
    with serving(["p1", "ev1", "h1"]) as service:
        p1, ev1, h1 = (dealer(service.endpoint, n) for n in ("p1", "ev1", "h1"))
        building = send(h1, register("h1", "building"))
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        answer = recv(h1)
        assert (answer.body.code, answer.body.ref_msg_id) == ("forbidden", building.msg_id)
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.failed == {"h1": "mechanism p2v_rules does not serve building agents "
                                    "(it serves ev, prosumer)"}
    assert list(session.roster) == ["p1", "ev1"] and not h1.poll(0)


# -- time-outs ------------------------------------------------------------------------------
def test_missing_agent_fails_at_registration_timeout(dealer):
    with serving(["p1", "ev1", "ghost"], registration_timeout_s=SHORT_S) as service:
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.failed == {"ghost": "never registered"}
    assert service.gone == {"ghost": "day 1: never registered"}


def test_heartbeating_agent_that_goes_silent_expires_early(dealer):
    """The round deadline is long; p1 promised heartbeats, so silence ends it sooner. The
    market part is the point: ev1 stops at its clearing, so at the realisation timeout
    (short here too) it leaves the run without a meter reading, settled at its day-ahead
    position (its contract stands: nothing cleared, nothing billed)."""
    with serving(["p1", "ev1"], round_deadline_s=WAIT_S, heartbeat_expiry_s=SHORT_S,
                 realisation_timeout_s=SHORT_S) as service:
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(p1, Heartbeat(sender="p1"))
        assert recv(p1).type == "heartbeat"
        send(ev1, register("ev1", "ev"))
        assert until_clearing(ev1=ev1) == []
        session = service.wait(WAIT_S / 2)
    assert session.failed == {
        "p1": f"silent for more than {SHORT_S:g} s in round 1 (heartbeat expired)"}
    assert session.unmetered_failed == {
        "ev1": f"day 1: {PERIODS} period(s) without a meter reading after {SHORT_S:g} s of "
               "silence (settled at its day-ahead position)"}
    assert set(service.gone) == {"p1", "ev1"}
    bill = session.settlements["ev1"]
    assert bill.position_kw == [0.0] * PERIODS and bill.traded_eur == [0.0] * PERIODS
    assert recv(ev1).type == "settlement"


class InfeasibleEV:
    """An agent whose solver finds no plan."""

    name = "ev1"

    def register(self, day=0):
        return register("ev1", "ev", day)

    def on_signal(self, msg):
        raise AgentInfeasible("ev1: the trip needs more energy than the battery holds")


def test_solver_failure_stops_the_client_which_tells_the_coordinator(dealer):
    """The infeasible EV leaves with its reason: round 1 closes at once, not at its
    deadline (an hour here), and p1 is settled alone."""
    with serving(["p1", "ev1"], round_deadline_s=3600.0) as service:
        p1 = dealer(service.endpoint, "p1")
        send(p1, register("p1"))
        with CoordinatorClient(InfeasibleEV(), service.endpoint, timeout_s=WAIT_S) as client:
            assert client.run() is None
        assert "battery holds" in client.failure
        assert until_settlement(p1=p1) == []
        session = service.wait(WAIT_S)
    assert session.failed == {"ev1": f"day 1: {client.failure}"}
    assert session.settlements.keys() == {"p1"}


def test_an_agent_that_cannot_start_leaves_before_registering(dealer):
    """ev1 tells that it leaves before it registers (its model failed): the market opens
    without waiting for the registration timeout (an hour here). A second connection
    that speaks for the registered p1 is refused; an unknown name is refused."""
    with serving(["p1", "ev1"], registration_timeout_s=3600.0) as service:
        p1, ev1, other = (dealer(service.endpoint, n) for n in ("p1", "ev1", "x"))
        send(p1, register("p1"))
        assert not p1.poll(SHORT_S * 1000)  # no signal: ev1 is still expected
        gone = ErrorBody(code="gone", detail="day 1: AgentInfeasible: trips need 44 kWh")
        send(other, Error(sender="p1", body=gone))
        send(other, Error(sender="zz", body=gone))
        codes = [recv(other).body.code, recv(other).body.code]
        send(ev1, Error(sender="ev1", body=gone))
        errors = until_settlement(p1=p1)
        session = service.wait(WAIT_S)
    assert codes == ["forbidden", "unknown_agent"] and errors == []
    assert session.failed == {"ev1": "day 1: AgentInfeasible: trips need 44 kWh"}
    assert session.settlements.keys() == {"p1"}


def test_client_gives_up_on_a_silent_coordinator(sockets):
    """Lazy Pirate: register, re-send after each timeout, give up after ``retries``."""
    router = sockets(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    with (CoordinatorClient(InfeasibleEV(), endpoint, timeout_s=0.1, retries=3) as client,
          pytest.raises(CoordinatorUnavailable, match=endpoint)):
        client.run()
    received = []
    while router.poll(0):
        received.append(decode(router.recv_multipart()[-1]))
    assert [m.type for m in received] == ["register"] * 3
    assert len({m.msg_id for m in received}) == 1  # the same message, re-sent


# -- command line ---------------------------------------------------------------------------
def test_service_from_arguments(tmp_path):
    roster = tmp_path / "roster.txt"
    roster.write_text("p1\n# a comment\nev1  # the EV\n\n")
    assert read_roster(str(roster)) == ["p1", "ev1"] == read_roster("p1, ev1")
    parse = add_coordinator_arguments(argparse.ArgumentParser()).parse_args
    params = P2VParams(tolerance_kw=0.01, max_rounds=3).with_data(
        MarketData(p2v_eur_per_kwh=0.07))
    (tmp_path / "params.json").write_text(json.dumps(dump_market(P2V, params)))
    args = parse(["--roster", str(roster), "--params", str(tmp_path / "params.json"),
                  "--log", str(tmp_path / "messages.jsonl")])
    with build_service(args) as service:
        assert service.roster == ["p1", "ev1"]
        assert (service.first_day, service.last_day, service.records_path) == (0, 0, None)
        assert service.endpoint.startswith("tcp://127.0.0.1:")
        assert not service.endpoint.endswith(":0")
    args = parse(["--roster", "p1,ev1", "--params", str(tmp_path / "params.json"),
                  "--day", "2", "--days", "3", "--realisation-timeout-s", "0.5",
                  "--records", str(tmp_path / "days.json"), "--log", ""])
    with build_service(args) as service:
        assert service.mechanism.name == "p2v_rules"
        assert service.params == service.session.params == params
        assert service.params.data.p2v_eur_per_kwh == 0.07
        assert (service.first_day, service.last_day, service.session.day) == (2, 4, 2)
        assert service.realisation_timeout_s == 0.5 and service.log_path is None
        assert service.records_path == tmp_path / "days.json"
    (tmp_path / "params.json").write_text(json.dumps({**dump_market(P2V, params),
                                                      "params": {"rho": 1.0}}))
    with pytest.raises(ValueError, match="not a market description"):
        build_service(args)


def test_limits_of_the_wrong_length_are_refused_and_the_day_goes_on(dealer):
    """A registration whose P2V limit has 2 values for a 4-period day is malformed: the
    agent never enters the market (before, it crashed the mechanism's first rule)."""
    with serving(["p1", "ev1"], registration_timeout_s=SHORT_S) as service:
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        bad = register("ev1", "ev")
        send(ev1, bad.model_copy(update={"body": bad.body.model_copy(
            update={"limits_kw": {"p2v": [7.0, 7.0]}})}))
        error = recv(ev1)
        assert (error.type, error.body.code) == ("error", "malformed")
        assert error.body.detail == "body.limits_kw.p2v: expected 1 or 4 values"
        assert until_settlement(p1=p1) == []
        session = service.wait(WAIT_S)
    assert service.error is None and list(session.settlements) == ["p1"]
    assert session.failed == {"ev1": "body.limits_kw.p2v: expected 1 or 4 values"}


def test_an_agent_that_left_the_run_is_not_served_again(dealer):
    """p1 registers early for day 2, then meters nothing on day 1: it leaves the run,
    its early registration is dropped, and a later one is answered "gone", which ends
    its client's day at once (before, the client re-sent it until the service stopped)."""
    with serving(["p1", "ev1"], days=2, realisation_timeout_s=SHORT_S) as service:
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        assert until_clearing(p1=p1, ev1=ev1) == []
        send(p1, register("p1", day=1))
        for msg in meters("ev1", [0.0] * PERIODS):
            send(ev1, msg)
        assert recv(ev1).type == "settlement"
        send(ev1, register("ev1", "ev", day=1))
        assert until_settlement(ev1=ev1) == []
        assert recv(p1).type == "settlement"  # day 1, at its day-ahead position
        send(p1, register("p1", day=1))
        refused = recv(p1)
        assert (refused.type, refused.body.code) == ("error", "gone")
        p1.close(linger=0)  # the agent's process restarts: a new client, the same identity
        client = CoordinatorClient(_Stub("p1"), service.endpoint, timeout_s=WAIT_S)
        try:
            assert client.run_day(1) is None
            assert client.failure.startswith("p1 left the run: day 1: 4 period(s) without")
        finally:
            client.close()
        service.wait(WAIT_S)
    assert "p1" in service.gone and list(service.days[1]["settlements"]) == ["ev1"]


class _Stub:
    """Just enough of an agent to register (its day is never played)."""

    def __init__(self, name):
        self.name = name

    def register(self, day):
        return register(self.name, day=day)


def test_a_rounds_deadline_runs_from_its_last_signal_sent(monkeypatch):
    """Sending takes time (10,000 signals took a coordinator 27 s on 2 cores its agents
    kept busy): the round's 30 s count from the last signal, not the first. A clock that
    the two sends advance by 5 s each: sent at 100, last out at 110, deadline 140."""
    import lemgrid.coordinator.service as service_module
    clock = [100.0]
    monkeypatch.setattr(service_module.time, "monotonic", lambda: clock[0])
    service = CoordinatorService(P2V, P2VParams(), ["a", "b"], round_deadline_s=30.0)
    try:
        def send(route, msg):
            clock[0] += 5.0
        monkeypatch.setattr(service, "_send", send)
        service._routes = {"a": [b"a"], "b": [b"b"]}
        service._deliver({"a": "signal a", "b": "signal b"}, 100.0)
        assert (service.phase, service._deadline) == ("market", 140.0)
    finally:
        service.close()


class _QuietAgent:
    """An agent that offers nothing and takes its clearing as its plan."""
    name = "p1"

    def register(self, day=0):
        return register("p1", day=day)

    def on_signal(self, msg):
        return zero_offer("p1", msg.round)

    def on_clearing(self, msg):
        return msg.body


def test_client_re_sends_a_held_offer_ever_more_patiently(sockets):
    """A coordinator that answers each re-sent offer with ``duplicate`` (it holds the
    offer; the round is long): the client waits 0.1, 0.2, 0.4, 0.8 s (doubling up to
    HELD_PATIENCE_MAX = 8 timeouts) before the next re-send, so a 1.8 s round sees 4
    re-sends where one every 0.1 s would make 17; the clearing still reaches it."""
    from lemgrid.coordinator.protocol import Clearing, ClearingBody, Error, ErrorBody

    router = sockets(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    with ThreadPoolExecutor(1) as pool, CoordinatorClient(
            _QuietAgent(), f"tcp://127.0.0.1:{port}", timeout_s=0.1, retries=3) as client:
        plan = pool.submit(client.run_day, 0)
        route, frame = router.recv_multipart()
        assert decode(frame).type == "register"
        router.send_multipart([route, encode(Signal(sender="coordinator", round=1,
                                                    body=SignalBody(terms={})))])
        offers, start = [], time.monotonic()
        while time.monotonic() - start < 1.8:
            if router.poll(50):
                route, frame = router.recv_multipart()
                offer = decode(frame)
                offers.append(offer.msg_id)
                if len(offers) > 1:
                    router.send_multipart([route, encode(Error(
                        sender="coordinator", round=1, body=ErrorBody(
                            code="duplicate", detail="p1 already offered in round 1",
                            ref_msg_id=offer.msg_id)))])
        router.send_multipart([route, encode(Clearing(sender="coordinator", round=1, body=
                                                      ClearingBody(position_kw=[0.0] * 4,
                                                                   converged=True)))])
        assert plan.result(timeout=WAIT_S).converged
    assert len(set(offers)) == 1  # the one offer, re-sent
    assert 3 <= len(offers) - 1 <= 5  # re-sends at ≈ 0.1, 0.3, 0.7, 1.5 s (not 17)


def test_clients_of_a_process_share_one_context(sockets):
    """Every client of a process uses the process's one ZeroMQ context (one I/O thread,
    not two per agent: 10,000 agents in 100 processes ran out of process ids); closing
    one client leaves the others' sockets working."""
    router = sockets(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    a = CoordinatorClient(_QuietAgent(), f"tcp://127.0.0.1:{port}", timeout_s=0.1)
    b = CoordinatorClient(_QuietAgent(), f"tcp://127.0.0.1:{port}", timeout_s=0.1,
                          identity="p2")
    try:
        assert a.context is b.context
        a.close()
        b.send(register("p2"))
        assert router.poll(WAIT_S * 1000)
        assert decode(router.recv_multipart()[-1]).sender == "p2"
    finally:
        b.close()


def test_agents_of_one_host_connection_are_served_as_their_own(tmp_path):
    """Two clients (p1, ev1) behind one ``HostConnection`` (agents.host; in-process
    sockets, so on the process's shared context like the agents' clients): the
    coordinator sees one connection, each agent in its envelope (logged as
    ``host-…/p1``), and each client gets its own signal, clearing and settlement; closing
    the host ends its thread."""
    from lemgrid.agents.host import HostConnection

    with serving(["p1", "ev1"], log_path=tmp_path / "messages.jsonl") as service:
        host = HostConnection(service.endpoint)
        clients = []
        try:
            for name in ("p1", "ev1"):
                sock = zmq.Context.instance().socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.IDENTITY, name.encode())
                sock.connect(host.endpoint)
                clients.append(sock)
            p1, ev1 = clients
            send(p1, register("p1"))
            send(ev1, register("ev1", "ev"))
            assert until_settlement(p1=p1, ev1=ev1) == []
            session = service.wait(WAIT_S)
        finally:
            for sock in clients:
                sock.close(linger=0)
            host.close()
        assert not host._thread.is_alive()
    assert session.failed == {} and session.settlements.keys() == {"p1", "ev1"}
    peers = {line["peer"] for line in read_log(tmp_path / "messages.jsonl")}
    assert len({p.split("/")[0] for p in peers}) == 1 and all("/" in p for p in peers)
    assert {p.split("/")[1] for p in peers} == {"p1", "ev1"}
