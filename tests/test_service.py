"""The coordinator service over ZeroMQ: a distributed day equals the in-process one, bad
frames are answered with errors, silent agents are timed out.

Every socket binds or connects on a random port and is closed with ``linger=0`` by a
fixture or a context manager, whatever the test does.
"""

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
import zmq

from agents.client import CoordinatorClient, CoordinatorUnavailable, run_agent
from agents.market_agent import MarketAgent
from agents.solver import AgentInfeasible
from coordinator.mechanisms.p2v_rules import P2VParams
from coordinator.protocol import (
    MESSAGE_TYPES,
    Heartbeat,
    Offer,
    OfferBody,
    Register,
    RegisterBody,
    decode,
    encode,
)
from coordinator.service import CoordinatorService, add_arguments, build_service, read_roster
from scenarios.community.builder import build_community, p2v_price
from scenarios.run.inprocess import mechanism_params, run_decentralized
from scenarios.schema import load_scenario

from .conftest import SCENARIOS

WAIT_S = 10.0  # longest any test waits for one answer or for the service to finish
DRAIN_S = 0.05  # the services here linger this long after the clearing
SHORT_S = 0.3  # deadlines and timeouts of the tests that time something out
PERIODS = 4  # the raw agents' horizon


# -- fixtures and helpers ------------------------------------------------------------------
@contextmanager
def serving(roster, params=None, **kwargs):
    """A coordinator serving in a thread on a random port; always closed."""
    service = CoordinatorService("p2v_rules", params or P2VParams(), roster,
                                 **{"drain_s": DRAIN_S, **kwargs})
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


def register(name, side="seller", day=0, periods=PERIODS, p2v_max_kw=3.0):
    kind = "prosumer" if side == "seller" else "ev"
    return Register(sender=name, day=day, body=RegisterBody(kind=kind, side=side, periods=periods,
                                                            p2v_max_kw=p2v_max_kw))


def zero_offer(name, round_=1):
    return Offer(sender=name, round=round_, body=OfferBody(p2v_kw=[0.0] * PERIODS))


def until_clearing(**socks):
    """Answer every signal with nothing until each agent (name=socket) has its clearing;
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
                send(sock, zero_offer(name, msg.round))
            elif msg.type == "error":
                errors.append(msg)
            elif msg.type == "clearing":
                del waiting[name]
    return errors


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


BODIES = [m.model_fields["body"].annotation for m in MESSAGE_TYPES.values()]
MODELS = [*MESSAGE_TYPES.values(), *BODIES]
PROTOCOL_FIELDS = set().union(*(m.model_fields for m in MODELS))
KEYED_BY_AGENT = {"by_counterparty_kw"}  # its keys are agent names, its values quantities


def outside_protocol(node, path="msg"):
    """Paths of every key, at any depth, that no protocol model declares."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in PROTOCOL_FIELDS:
                yield f"{path}.{key}"
            elif key in KEYED_BY_AGENT:
                yield from (p for v in (value or {}).values()
                           for p in outside_protocol(v, f"{path}.{key}"))
            else:
                yield from outside_protocol(value, f"{path}.{key}")
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


# -- a distributed day equals the in-process day ---------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    s = load_scenario(SCENARIOS / "tiny.yaml")
    community = build_community(s)
    return s, community, run_decentralized(s, community, p2v_price(s))


def market_agents(s, community):
    so = s.solver
    return [MarketAgent(d, so.mip_rel_gap, so.time_limit_s, so.lp_first) for d in community]


def run_day(s, community, extra=(), play=None, **kwargs):
    """tiny.yaml's agents, each with its own client in its own thread, against a service;
    ``extra`` names roster members that ``play(endpoint)`` acts out meanwhile.
    Returns each agent's settled schedule and the session."""
    agents = market_agents(s, community)
    roster = [a.name for a in agents] + list(extra)
    with serving(roster, mechanism_params(s, p2v_price(s))[1], **kwargs) as service:
        with ThreadPoolExecutor(len(agents)) as pool:
            futures = {a.name: pool.submit(run_agent, a, service.endpoint, timeout_s=WAIT_S / 2)
                       for a in agents}
            if play:
                play(service.endpoint)
            settled = {n: f.result(WAIT_S) for n, f in futures.items()}
        return settled, service.wait(WAIT_S)


def assert_same_day(settled, session, reference, compare_limits=True):
    assert settled.keys() == reference.schedules.keys()
    for name, ref in reference.schedules.items():
        assert abs(settled[name].cost_eur.sum() - ref.cost_eur.sum()) <= 1e-9, name
        np.testing.assert_allclose(settled[name].p2v_kw, ref.p2v_kw, rtol=0, atol=1e-9)
    records, ref_records = session.state.records, [r.record for r in reference.rounds]
    assert len(records) == len(ref_records)
    for got, ref in zip(records, ref_records):
        assert (got.round, got.rule) == (ref.round, ref.rule)
        assert abs(got.error_kw - ref.error_kw) <= 1e-9
        np.testing.assert_allclose(got.sold_kw, ref.sold_kw, rtol=0, atol=1e-9)
        np.testing.assert_allclose(got.bought_kw, ref.bought_kw, rtol=0, atol=1e-9)
        if compare_limits:
            assert got.limits_changed == ref.limits_changed
    assert session.state.converged == reference.converged


@pytest.fixture(scope="module")
def distributed(tiny, tmp_path_factory):
    s, community, _ = tiny
    log = tmp_path_factory.mktemp("round_trip") / "messages.jsonl"
    return (*run_day(s, community, log_path=log), log)


def test_distributed_day_equals_in_process(tiny, distributed):
    settled, session, _ = distributed
    reference = tiny[2]
    assert_same_day(settled, session, reference)
    assert session.failed == reference.failed == {}
    assert len(session.state.records) == 5  # tiny.yaml needs every rule


def test_log_holds_only_protocol_fields(distributed):
    """messages.jsonl is the audit trail: nothing in it that the protocol does not declare
    (so no load, PV or state of charge), and every signal, offer and clearing is there."""
    _, session, log = distributed
    assert log_problems(log) == []
    lines = read_log(log)
    assert len(lines) == len(session.log)  # no bad frames in a clean day: log = session.log
    assert {line["msg"]["msg_id"] for line in lines} == {m.msg_id for m in session.log}


def test_log_check_finds_private_fields(tmp_path):
    """The check above would see a private field anywhere in a logged message."""
    log = tmp_path / "messages.jsonl"
    offer = zero_offer("p1").model_dump(mode="json")
    lines = [{**offer, "load_kw": [1.0]},
             {**offer, "body": {**offer["body"], "soc_kwh": [1.0]}},
             {**offer, "body": {"p2v_kw": [0.0], "by_counterparty_kw": {"ev1": [{"pv_kw": 1}]}}},
             {"raw": "not json", "error": "malformed: not JSON"}]
    log.write_text("".join(json.dumps({"t": 0, "dir": "in", "peer": "p1", "msg": m}) + "\n"
                           for m in lines))
    assert log_problems(log) == ["line 1: msg.load_kw", "line 2: msg.body.soc_kwh",
                                 "line 3: msg.body.by_counterparty_kw[].pv_kw"]


def test_agent_that_goes_silent_is_dropped(tiny, dealer):
    """A sixth roster member registers and never offers: round 1 closes at its deadline and
    the others' day is the in-process day (its offer counts as nothing)."""
    s, community, reference = tiny

    def ghost(endpoint):
        send(dealer(endpoint, "ghost"), register("ghost", "buyer", periods=96, p2v_max_kw=7.0))

    settled, session = run_day(s, community, extra=["ghost"], play=ghost, round_deadline_s=1.0)
    assert session.failed == {"ghost": "missed the round-1 deadline"}
    assert_same_day(settled, session, reference, compare_limits=False)


# -- bad frames -----------------------------------------------------------------------------
def frame(**fields):
    raw = {"v": 1, "type": "offer", "msg_id": "m-bad", "sender": "p1", "day": 0, "round": 1,
           "body": {"p2v_kw": [0.0] * PERIODS}}
    return json.dumps({**raw, **fields}).encode()


BAD_FRAMES = {  # case: (frames p1 sends in round 1, expected error code, its ref_msg_id)
    "version": ([frame(v=99)], "version", "m-bad"),
    "not_json": ([b"offer p2v 1.0 kW"], "malformed", None),
    "unknown_type": ([frame(type="gossip")], "unknown_type", "m-bad"),
    "private_field": ([frame(body={"p2v_kw": [0.0] * PERIODS, "load_kw": [2.0] * PERIODS})],
                      "malformed", "m-bad"),
    "duplicate": ([frame(msg_id="m-first"), frame()], "duplicate", "m-bad"),
    "late": ([frame(round=7)], "late", "m-bad"),
    "other_sender": ([frame(sender="ev1")], "forbidden", "m-bad"),
    "coordinator_type": ([frame(type="signal", body={})], "forbidden", "m-bad"),
}


@pytest.mark.parametrize("case", BAD_FRAMES)
def test_bad_frame_is_answered_logged_and_survived(case, dealer, tmp_path):
    frames, code, ref = BAD_FRAMES[case]
    log = tmp_path / "messages.jsonl"
    with serving(["p1", "ev1"], log_path=log) as service:
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(ev1, register("ev1", "buyer"))
        assert recv(p1).type == recv(ev1).type == "signal"
        for f in frames:
            send(p1, f)
        error = recv(p1)
        assert (error.type, error.body.code, error.body.ref_msg_id) == ("error", code, ref)
        if case != "duplicate":  # the duplicate case has offered already
            send(p1, zero_offer("p1"))
        send(ev1, zero_offer("ev1"))
        assert until_clearing(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.done and session.failed == {}
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
        send(ev1, register("ev1", "buyer"))
        assert until_clearing(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.failed == {}


# -- time-outs ------------------------------------------------------------------------------
def test_missing_agent_fails_at_registration_timeout(dealer):
    with serving(["p1", "ev1", "ghost"], registration_timeout_s=SHORT_S) as service:
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(ev1, register("ev1", "buyer"))
        assert until_clearing(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.failed == {"ghost": "never registered"}


def test_heartbeating_agent_that_goes_silent_expires_early(dealer):
    """The round deadline is long; p1 promised heartbeats, so silence ends it sooner."""
    with serving(["p1", "ev1"], round_deadline_s=WAIT_S, heartbeat_expiry_s=SHORT_S) as service:
        p1, ev1 = dealer(service.endpoint, "p1"), dealer(service.endpoint, "ev1")
        send(p1, register("p1"))
        send(p1, Heartbeat(sender="p1"))
        assert recv(p1).type == "heartbeat"
        send(ev1, register("ev1", "buyer"))
        assert until_clearing(ev1=ev1) == []
        session = service.wait(WAIT_S / 2)
    assert "heartbeat expired" in session.failed["p1"]


class InfeasibleEV:
    """An agent whose solver finds no plan."""

    name = "ev1"

    def register(self, day=0):
        return register("ev1", "buyer", day)

    def on_signal(self, msg):
        raise AgentInfeasible("ev1: the trip needs more energy than the battery holds")


def test_solver_failure_stops_client_and_coordinator_times_it_out(dealer):
    with serving(["p1", "ev1"], round_deadline_s=SHORT_S) as service:
        p1 = dealer(service.endpoint, "p1")
        send(p1, register("p1"))
        with CoordinatorClient(InfeasibleEV(), service.endpoint, timeout_s=WAIT_S) as client:
            assert client.run() is None
        assert "battery holds" in client.failure
        assert until_clearing(p1=p1) == []
        session = service.wait(WAIT_S)
    assert session.failed == {"ev1": "missed the round-1 deadline"}


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
    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["--roster", str(roster), "--tolerance-kw", "0.01", "--max-rounds", "3",
         "--log", str(tmp_path / "messages.jsonl")])
    with build_service(args) as service:
        assert service.roster == ["p1", "ev1"]
        assert service.session.params == P2VParams(tolerance_kw=0.01, max_rounds=3)
        assert service.endpoint.startswith("tcp://127.0.0.1:")
        assert not service.endpoint.endswith(":0")
