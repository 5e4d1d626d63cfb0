"""Who may speak: ``lemgrid keys``, CURVE on the coordinator's socket, and the identity
checks of the service.

A connection without an admitted key never reaches the service; a CURVE day clears
exactly like a plain one; an agent that speaks as another is refused, logged and changes
nothing. Sockets come from test_service's fixtures (closed with ``linger=0``); every wait
has a timeout.
"""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import zmq

from lemgrid.agents.client import (
    CoordinatorClient,
    CoordinatorUnavailable,
    curve_client_keys,
    run_agent,
)
from lemgrid.coordinator.auth import is_loopback, make_keys
from lemgrid.coordinator.protocol import Heartbeat, Meter, MeterBody, Offer, OfferBody
from lemgrid.scenarios.cli import main
from lemgrid.scenarios.community.builder import build_community
from lemgrid.scenarios.run.market import mechanism_setup
from lemgrid.scenarios.schema import load_scenario

from .conftest import SCENARIOS
from .test_service import (  # noqa: F401 - sockets and dealer are fixtures
    SHORT_S,
    WAIT_S,
    InfeasibleEV,
    dealer,
    log_problems,
    market_agents,
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


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A key directory with the shared client key ``agents``."""
    directory = tmp_path_factory.mktemp("keys")
    make_keys(directory)
    return directory


@pytest.fixture
def curve_dealer(sockets):  # noqa: F811 - the fixture of test_service
    """A DEALER with CURVE socket options (see ``curve_client_keys``)."""
    def connect(endpoint, identity, options):
        sock = sockets(zmq.DEALER, identity)
        for option, value in options.items():
            sock.setsockopt(option, value)
        sock.connect(endpoint)
        return sock
    return connect


def eventually(condition, timeout_s=WAIT_S):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def reconnect(connect, msg, timeout_s=WAIT_S):
    """Connect, send ``msg``; return the socket and the answer. A ROUTER drops, without a
    word, a connection whose identity an older one still holds: so connect again after
    SHORT_S without an answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock = connect()
        send(sock, msg)
        if sock.poll(SHORT_S * 1000):
            return sock, recv(sock)
        sock.close(linger=0)
    raise AssertionError("no answer from the coordinator")


# -- keys -------------------------------------------------------------------------------------
def test_keys_command_writes_once(tmp_path, capsys):
    d = tmp_path / "keys"
    assert main(["keys", str(d)]) == 0
    files = ["coordinator.key", "coordinator.key_secret", "clients/agents.key",
             "private/agents.key_secret"]
    out = capsys.readouterr().out
    assert [line.removeprefix("wrote ") for line in out.splitlines()[:-1]] == \
        [str(d / f) for f in files]
    assert (d / "private/agents.key_secret").stat().st_mode & 0o077 == 0
    before = {f: (d / f).read_bytes() for f in files}
    assert main(["keys", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and "agents" in err
    assert {f: (d / f).read_bytes() for f in files} == before
    assert main(["keys", str(d), "--clients", "host2"]) == 0  # the coordinator's key stays
    assert (d / "coordinator.key").read_bytes() == before["coordinator.key"]
    assert (d / "clients/host2.key").is_file()
    assert main(["keys", str(d), "--force"]) == 0
    assert (d / "coordinator.key").read_bytes() != before["coordinator.key"]


def test_loopback_by_default():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://[::1]:5555")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://10.0.0.2:5555")
    with serving(["p1"]) as service:
        assert is_loopback(service.endpoint)


# -- CURVE ------------------------------------------------------------------------------------
def test_curve_admits_only_listed_keys(keys, dealer, curve_dealer, tmp_path):  # noqa: F811
    """No key, a self-made key pair and another key directory are all dropped at the
    handshake: no answer, nothing logged, nothing registered. The right key registers."""
    log = tmp_path / "messages.jsonl"
    right = curve_client_keys(keys, "agents")
    public, secret = zmq.curve_keypair()
    self_made = {**right, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret}
    other_keys = tmp_path / "other"
    make_keys(other_keys)
    with serving(["p1", "ev1"], curve_keys=keys, log_path=log) as service:
        refused = [dealer(service.endpoint, "p1"), curve_dealer(service.endpoint, "p1", self_made)]
        for sock in refused:
            send(sock, register("p1"))
        with (CoordinatorClient(InfeasibleEV(), service.endpoint, timeout_s=SHORT_S / 3,
                                retries=2, curve_keys=other_keys) as client,
              pytest.raises(CoordinatorUnavailable, match="'agents' admitted")):
            client.run()
        assert not any(sock.poll(SHORT_S * 1000) for sock in refused)
        eventually(lambda: service.refused_handshakes >= 3)
        assert service._routes == {} and read_log(log) == []
        p1 = curve_dealer(service.endpoint, "p1", right)
        ev1 = curve_dealer(service.endpoint, "ev1", right)
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.failed == {} and session.settlements.keys() == {"p1", "ev1"}
    assert {"client key not admitted",  # the self-made key pair
            "handshake did not decrypt: client holds another coordinator key"} \
        <= set(service.curve.refused)  # the plain DEALER: a mismatch, or its socket's errno
    assert {line["peer"] for line in read_log(log)} == {"p1", "ev1"}


class Recording:
    """A market agent that keeps the bodies of its clearing and its settlement."""

    def __init__(self, agent):
        self.agent, self.name, self.clearing, self.settlement = agent, agent.name, None, None

    def register(self, day=0):
        return self.agent.register(day)

    def on_signal(self, msg):
        return self.agent.on_signal(msg)

    def on_clearing(self, msg):
        self.clearing = msg.body
        return self.agent.on_clearing(msg)

    def realise_day(self):
        return self.agent.realise_day()

    def on_settlement(self, msg):
        self.settlement = None if msg is None else msg.body
        return self.agent.on_settlement(msg)


@pytest.fixture(scope="module")
def tiny():
    s = load_scenario(SCENARIOS / "tiny.yaml")
    return s, build_community(s)


def market_day(tiny, curve_keys=None, extra=(), play=None, **kwargs):
    """tiny.yaml's agents, each with its own client (CURVE with ``curve_keys``) playing the
    whole day in its own thread; ``play(endpoint)`` acts out the roster members ``extra``
    meanwhile. Returns each agent's clearing and settlement bodies, its settled schedule,
    the session and what ``play`` returned."""
    s, community = tiny
    mech, params = mechanism_setup(s)
    agents = [Recording(a) for a in market_agents(s, community)]
    for a in agents:  # one at a time: building Pyomo models is not thread-safe
        a.agent.start_day(0)
    roster = [a.name for a in agents] + list(extra)
    with serving(roster, params, mech, curve_keys=curve_keys, **kwargs) as service:
        with ThreadPoolExecutor(len(agents) + 1) as pool:
            futures = {a.name: pool.submit(run_agent, a, service.endpoint,
                                           timeout_s=WAIT_S / 2, curve_keys=curve_keys)
                       for a in agents}
            played = pool.submit(play, service.endpoint) if play else None
            settled = {n: f.result(WAIT_S) for n, f in futures.items()}
            played = played.result(WAIT_S) if played else None
        session = service.wait(WAIT_S)
    assert all(len(days) == 1 for days in settled.values())  # run_agent: one settled day
    return ({a.name: a.clearing for a in agents}, {a.name: a.settlement for a in agents},
            {n: days[0] for n, days in settled.items()}, session, played)


@pytest.fixture(scope="module")
def plain_day(tiny):
    return market_day(tiny)


def assert_same_market(day, reference, compare_limits=True):
    """The same clearings, settlements, settled schedules (every flow and cost) and round
    records, to the last bit."""
    (clearings, bills, settled, session, _), (ref_clearings, ref_bills, ref_settled,
                                              ref_session, _) = day, reference
    assert {n: clearings[n] for n in ref_clearings} == ref_clearings
    assert {n: bills[n] for n in ref_bills} == ref_bills
    assert {n: session.settlements[n] for n in ref_bills} == ref_session.settlements
    for name, ref in ref_settled.items():
        got = settled[name]
        assert got.flows_kw.keys() == ref.flows_kw.keys(), name
        assert all(np.array_equal(got.flows_kw[k], v) for k, v in ref.flows_kw.items()), name
        assert np.array_equal(got.soc_kwh, ref.soc_kwh), name
        assert np.array_equal(got.cost_eur, ref.cost_eur), name
        assert got.costs_eur.keys() == ref.costs_eur.keys(), name
        assert all(np.array_equal(got.costs_eur[k], v) for k, v in ref.costs_eur.items()), name
    got, ref = session.state.records, ref_session.state.records
    assert [(r.round, r.scalars["rule_applied"], r.error_kw) for r in got] == \
        [(r.round, r.scalars["rule_applied"], r.error_kw) for r in ref]
    for g, r in zip(got, ref):
        assert g.per_period.keys() == r.per_period.keys()
        assert all(np.array_equal(g.per_period[k], v) for k, v in r.per_period.items())
        assert not compare_limits or g.scalars == r.scalars
    assert session.state.converged == ref_session.state.converged


def test_curve_day_clears_like_plain_day(tiny, plain_day, keys):
    day = market_day(tiny, curve_keys=keys)
    assert day[3].failed == plain_day[3].failed == {}
    assert day[3].settlements.keys() == set(day[2]) == {a.name for a in tiny[1]}
    assert len(day[3].state.records) == 5  # every rule applied
    assert any(np.any(b.quantities_kw["p2v"]) for b in day[0].values())  # P2V is traded
    assert_same_market(day, plain_day)


# -- identities -------------------------------------------------------------------------------
def mallory(keys, curve_dealer, periods):
    """A registered roster member that, in round 1, offers in ev1's name and registers p1
    from a second connection, then offers nothing of its own; once cleared, it sends a
    meter reading in ev1's name, then meters its own (empty) day. Returns the three
    forged messages and the answers to them (and anything else it received but signals,
    its clearing and its settlement)."""
    def play(endpoint):
        options = curve_client_keys(keys, "agents")
        me, second = (curve_dealer(endpoint, n, options) for n in ("mallory", "mallory2"))
        send(me, register("mallory", "ev", periods=periods, p2v_max_kw=7.0))
        forged, answers = [], []
        while (msg := recv(me)).type != "settlement":
            if msg.type == "signal" and not forged:
                forged.append(send(me, Offer(sender="ev1", round=msg.round, body=OfferBody(
                    quantities_kw={"p2v": [50.0] * periods}))))
                answers.append(recv(me))
                forged.append(send(second, register("p1")))
                answers.append(recv(second))
            if msg.type == "signal":
                send(me, zero_offer("mallory", msg.round, periods))
            elif msg.type == "clearing":
                forged.append(send(me, Meter(sender="ev1", body=MeterBody(period=0,
                                                                          p_kw=50.0))))
                answers.append(recv(me))
                for reading in meters("mallory", msg.body.position_kw):
                    send(me, reading)
            else:
                answers.append(msg)
        return forged, answers
    return play


def test_agent_speaking_for_another_is_refused_and_changes_nothing(
        tiny, plain_day, keys, curve_dealer, tmp_path):
    log = tmp_path / "messages.jsonl"
    periods = tiny[0].horizon.periods
    day = market_day(tiny, keys, extra=["mallory"], log_path=log,
                     play=mallory(keys, curve_dealer, periods))
    forged, answers = day[4]
    assert [m.type for m in forged] == ["offer", "register", "meter"]
    assert [(a.type, a.body.code, a.body.ref_msg_id) for a in answers] == \
        [("error", "forbidden", m.msg_id) for m in forged]
    assert "registered as 'mallory', not 'ev1'" in answers[0].body.detail
    assert "'p1' is registered from another connection" in answers[1].body.detail
    assert "registered as 'mallory', not 'ev1'" in answers[2].body.detail
    session = day[3]
    assert not {m.msg_id for m in forged} & {m.msg_id for m in session.log}  # never in the market
    assert session.failed == {}
    assert session.settlements.keys() == {*plain_day[3].settlements, "mallory"}
    assert not np.isnan(session.meters["ev1"]).any()  # ev1's own readings, every period
    assert_same_market(day, plain_day, compare_limits=False)  # mallory's limits count too
    lines = read_log(log)
    for m in forged[::2]:  # the two forged in mallory's connection
        at = next(n for n, line in enumerate(lines) if line["msg"]["msg_id"] == m.msg_id)
        assert (lines[at]["dir"], lines[at]["peer"], lines[at]["msg"]["sender"]) == \
            ("in", "mallory", "ev1")
        answer = next(line for line in lines[at:] if line["peer"] == "mallory"
                      and line["msg"]["type"] == "error")
        assert answer["msg"]["body"]["code"] == "forbidden"
        assert answer["msg"]["body"]["ref_msg_id"] == m.msg_id
    second = [(line["dir"], line["msg"]["type"]) for line in lines if line["peer"] == "mallory2"]
    assert second == [("in", "register"), ("out", "error")]
    assert log_problems(log) == []


def test_agent_bound_to_its_key(curve_dealer, tmp_path):
    """With a key of its own, p1 is registered only through that key, and a connection
    that takes over p1's identity with another key is refused; p1's own key reconnects."""
    keys = tmp_path / "keys"
    make_keys(keys, ["agents", "p1"])
    shared, own = curve_client_keys(keys, "agents"), curve_client_keys(keys, "p1")
    with serving(["p1", "ev1"], curve_keys=keys) as service:
        endpoint = service.endpoint
        for identity, options, msg in [("x1", shared, register("p1")),
                                       ("x2", own, register("ev1", "ev"))]:
            sock = curve_dealer(endpoint, identity, options)
            send(sock, msg)
            answer = recv(sock)
            assert (answer.body.code, answer.body.ref_msg_id) == ("forbidden", msg.msg_id)
        p1, ev1 = curve_dealer(endpoint, "p1", own), curve_dealer(endpoint, "ev1", shared)
        send(p1, register("p1"))
        send(ev1, register("ev1", "ev"))
        assert recv(p1).type == recv(ev1).type == "signal"
        p1.close(linger=0)
        impostor, answer = reconnect(lambda: curve_dealer(endpoint, "p1", shared),
                                     zero_offer("p1"))
        assert answer.body.code == "forbidden" and "key 'p1'" in answer.body.detail
        impostor.close(linger=0)
        p1, answer = reconnect(lambda: curve_dealer(endpoint, "p1", own), Heartbeat(sender="p1"))
        assert answer.type == "heartbeat"
        send(p1, zero_offer("p1"))
        send(ev1, zero_offer("ev1"))
        assert until_settlement(p1=p1, ev1=ev1) == []
        session = service.wait(WAIT_S)
    assert session.failed == {} and session.settlements.keys() == {"p1", "ev1"}
