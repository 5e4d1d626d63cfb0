"""The agents' mosaik simulator: a thin adapter around ``MarketAgent``.

One simulator process hosts one or more agents (entity id = agent name), each with one
ZeroMQ client for the whole run. At the first step of every day each hosted agent builds
its day model and joins that day's market (one thread per agent); every step it realises
the period (battery re-dispatched against what actually happened), sends its meter
reading to the coordinator and outputs its realised power at the grid connection. A
process that nothing but the grid reads and nothing feeds (``step="day"``) steps once a
day instead: it realises the whole day after the market and outputs it as ``p_kw_day``,
one value per period, which the grid reads period by period (the same flows: no
co-simulator reports a period to it, and the grid sends it nothing). At the
end of each day it writes its realised day to ``results_dir`` (a copy that survives the
simulation if mosaik stops). If the co-simulation stops early (another simulator died),
the agents finish the day and play the run's remaining days with the coordinator on
their own, so the market finishes without the co-simulation.

Start it as a mosaik ``cmd`` simulator: ``python -m lemgrid.agents.simulator %(addr)s``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import resource
import threading
import time as time_module
from pathlib import Path

import mosaik_api_v3
import numpy as np

from lemgrid.agents.client import DEFAULT_KEY_NAME, CoordinatorClient, curve_client_keys
from lemgrid.agents.data import OperatorData, data_from_dict
from lemgrid.agents.host import HostConnection
from lemgrid.agents.market_agent import MarketAgent
from lemgrid.agents.model import read_templates
from lemgrid.agents.realise import Actuals
from lemgrid.coordinator.protocol import REQUEST_RETRIES, REQUEST_TIMEOUT_S, merge_meters

SETTLEMENT_WAIT_S = 10.0  # at the end, how long to wait for the last day's settlements
# The realised day, per period (the runner adds the market's quantities and the bill).
REALISED_ATTRS = ["net_kw", "pv_kw", "wind_kw", "load_kw", "flex_kw", "ch_kw", "dis_kw",
                  "gen_kw", "chp_kw", "chp_heat_kw", "heat_in_kw", "soc_kwh", "quote_kw"]
# Inputs a co-simulator may send at the start of a day: the day's profile (one value per
# period) that replaces the agent's own forecast before it plans.
PROFILE_INPUTS = {"load_profile_kw": "load_kw", "pv_profile_kw": "pv_kw"}
# Inputs a co-simulator may send every period: what really happens in it (the realised
# load and PV availability, kW summed over the sources; an EV plugged in or not). The
# day-ahead plan stays the agent's quote; the period is realised against these.
PERIOD_INPUTS = ("load_kw", "pv_kw", "plugged")
STEPS = ("period", "day")  # how often a process steps (``init``'s ``step``)
CONNECTIONS = ("own", "auto")  # ``init``'s ``connection``: a connection per agent, or shared
# hybrid: it steps by itself (every period, or once a day), no input triggers it, and a
# day's series (``p_kw_day``) is an event sent once, which the grid keeps for the day
META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "Agent": {"public": True, "params": ["agents"],
                  "attrs": ["p_kw", "p_kw_day", *REALISED_ATTRS, "pid", "rss_mb", "ok",
                            *PROFILE_INPUTS, "plugged"],
                  "trigger": [], "non-persistent": ["p_kw_day"]},
    },
}


def agent_to_dict(data_dict: dict, actuals: Actuals | None) -> dict:
    """A hosted agent's start-up parameters: its data and, if any, its actual profiles."""
    extra = {} if actuals is None else {
        k: np.asarray(v).tolist() for k, v in dataclasses.asdict(actuals).items()
        if v is not None}
    return {**data_dict, "actuals": extra}


class AgentSimulator(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.data: dict[str, object] = {}  # agent name -> its private data
        self.actuals: dict[str, Actuals] = {}
        self.agents: dict[str, MarketAgent] = {}
        self.clients: dict[str, CoordinatorClient] = {}
        self.failures: dict[str, str] = {}
        self.period_s, self.endpoint, self.solver, self.family = 900, None, {}, "limits"
        self.curve_keys, self.key_name = None, None  # CURVE key directory and client key
        self.connection = "own"  # "auto": the hosted agents share one (agents.host)
        self._host = None  # the shared connection, once the first client needs it
        self.day, self.period, self.periods = 0, 0, 96
        self.days = 1  # the run's days: after an early stop the agents play the rest alone
        self.first_day = 0  # the day at simulation time 0 (a resumed run starts later)
        self.timeout_s = REQUEST_TIMEOUT_S * REQUEST_RETRIES  # coordinator silence -> gone
        self.results_dir: Path | None = None
        self._prebuild: threading.Thread | None = None  # first-day models built at start-up
        self._prebuilt: set[str] = set()
        self.meter_periods = 1  # periods of readings an agent sends in one meter message
        self.whole_day = False  # step="day": one step a day realises all its periods
        self._unsent: dict[str, list] = {}  # agent -> its meter readings not sent yet
        self._failures_written: set[str] = set()
        # The hosted agents solve one at a time: HiGHS's time limit is wall-clock, and a
        # hundred concurrent solves in each of 100 processes on 2 cores made 2,213 of
        # 10,000 agents hit it (each solve waits its turn instead, on the clock of none).
        self._solving = threading.Lock()

    def init(self, sid, time_resolution=1.0, endpoint="tcp://127.0.0.1:5555", period_s=900,
             solver=None, results_dir=None, curve_keys=None, key_name=None, family="limits",
             days=1, coordinator_timeout_s=None, first_day=0, meter_periods=1,
             templates=None, step="period", connection="own"):
        if step not in STEPS:
            raise ValueError(f"step={step!r}; allowed: {', '.join(STEPS)}")
        if connection not in CONNECTIONS:
            raise ValueError(f"connection={connection!r}; allowed: {', '.join(CONNECTIONS)}")
        self.connection = connection
        self.whole_day = step == "day"
        self.endpoint, self.period_s, self.solver = endpoint, int(period_s), solver or {}
        if templates and Path(templates).is_file():  # the runner's; elsewhere built here
            read_templates(Path(templates))
        self.curve_keys, self.key_name, self.family = curve_keys, key_name, family
        self.results_dir = Path(results_dir) if results_dir else None
        self.days, self.first_day = int(days), int(first_day)
        self.timeout_s = float(coordinator_timeout_s or self.timeout_s)
        self.meter_periods = max(int(meter_periods), 1)
        return self.meta

    def create(self, num, model, agents):
        if len(agents) != num:
            raise ValueError(f"create: {num} entities asked for but {len(agents)} agents given")
        out = []
        for raw in agents:
            raw = dict(raw)
            actuals = raw.pop("actuals", None) or {}
            data = data_from_dict(raw)
            self.data[data.name] = data
            self.actuals[data.name] = Actuals(**{k: np.asarray(v, float)
                                                 for k, v in actuals.items()})
            self.periods = data.horizon.periods
            out.append({"eid": data.name, "type": model})
        self._prebuild = threading.Thread(target=self._build_first_day, daemon=True)
        self._prebuild.start()
        return out

    def _build_first_day(self) -> None:
        """Build the hosted agents' first-day models while mosaik is still setting up the
        world (every process at once), instead of at the first step."""
        for name in list(self.data):
            try:
                self._agent(name).start_day(self.first_day)
                self._prebuilt.add(name)
            except Exception:  # noqa: BLE001 - the first step builds it again and records
                self._prebuilt.discard(name)

    def _agent(self, name: str):
        """The hosted agent ``name`` (created on first use)."""
        if name not in self.agents:
            data = self.data[name]
            if isinstance(data, OperatorData):
                # imported here: its network models (pandapower, cvxpy) would add 270 MB
                # and 1.4 s to every agent process forked from the launcher
                from lemgrid.agents.operator import OperatorAgent
                self.agents[name] = OperatorAgent(data)
            else:
                self.agents[name] = MarketAgent(data, self.family, self.actuals[name],
                                                **self.solver)
        return self.agents[name]

    def step(self, time, inputs, max_advance):
        k = time // self.period_s
        self.day, self.period = divmod(k, self.periods)
        self.day += self.first_day
        if self.period == 0:
            if self._prebuild is not None:  # the first day's models, built at start-up
                self._prebuild.join()
                self._prebuild = None
            self._apply_profiles(inputs)
            self._plan_day()
        if self.whole_day:
            first = self.period
            for t in range(first, self.periods):
                self.period = t
                self._realise()
            return time + (self.periods - first) * self.period_s
        self._realise(inputs)
        return time + self.period_s

    def _realise(self, inputs: dict | None = None) -> None:
        """Every active agent realises the current period (against what co-simulators
        report of it) and sends its meter readings every ``meter_periods`` periods and at
        the end of the day, in one message."""
        last = self.period == self.periods - 1
        for name in self._active():
            agent = self.agents[name]
            try:
                observed = period_inputs((inputs or {}).get(name, {}))
                unsent = self._unsent.setdefault(name, [])
                unsent.append(agent.realise(self.period, observed))
                if last or len(unsent) >= self.meter_periods:
                    self.clients[name].send(merge_meters(unsent))
                    unsent.clear()
            except Exception as exc:  # noqa: BLE001 - recorded; the agent outputs ok = False
                self._send_unsent(name)
                self._fail(name, f"day {self.day + 1}: {type(exc).__name__}: {exc}")
        if self.period == self.periods - 1:
            self._write_days()

    def finish_day(self) -> None:
        """The co-simulation stopped mid-day: realise the rest of the day on its own (the
        meters keep running), so the coordinator can settle the day."""
        if not self.clients or not self._active() or self.period >= self.periods - 1:
            return
        for t in range(self.period + 1, self.periods):
            self.period = t
            self._realise()

    def _active(self) -> list[str]:
        return [n for n, a in self.agents.items()
                if n not in self.failures and a.plan is not None and a.day == self.day]

    def _apply_profiles(self, inputs: dict) -> None:
        """Day profiles from co-simulators replace the agents' own forecasts for the day;
        a wrong one fails that agent (recorded, outputs ok = False), not the simulation."""
        for name, attrs in inputs.items():
            for attr, field in PROFILE_INPUTS.items():
                for source, values in attrs.get(attr, {}).items():
                    try:
                        self.data[name] = replace_profile(self.data[name], field, values,
                                                          self.day)
                    except ValueError as exc:
                        self._fail(name, f"{attr} from {source}: {exc}")
                    self._prebuilt.discard(name)  # its first-day model is stale
                    if name in self.agents:
                        self.agents[name].data = self.data[name]

    def _plan_day(self) -> None:
        """Every hosted agent joins the day's market in its own thread. Models are built
        first, one after another (Pyomo model building is not thread-safe): the first
        day's at start-up (``_build_first_day``), later days' at their first step."""
        for name in self.data:
            if name in self.failures:
                continue
            try:
                agent = self._agent(name)
                if name not in self.clients:
                    host = self._host_connection()
                    self.clients[name] = CoordinatorClient(
                        agent, host.endpoint if host else self.endpoint,
                        curve_keys=None if host else self.curve_keys,
                        key_name=self.key_name, timeout_s=self.timeout_s / REQUEST_RETRIES,
                        retries=REQUEST_RETRIES)
                    _one_at_a_time(agent, self._solving)
                    _inject_fault(agent)
                if name in self._prebuilt and self.day == self.first_day:
                    self._prebuilt.discard(name)  # built at start-up on the same data
                else:
                    agent.start_day(self.day)
            except Exception as exc:  # noqa: BLE001 - recorded; outputs ok = False
                self._fail(name, f"day {self.day + 1}: {type(exc).__name__}: {exc}")
        names = [n for n in self.agents if n not in self.failures]
        threads = [threading.Thread(target=self._join_market, args=(n,), daemon=True)
                   for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _host_connection(self) -> HostConnection | None:
        """The process's one connection for its agents (``connection`` "auto" and more
        than one agent hosted), started with the first client; None: a connection each."""
        if self._host is None and self.connection == "auto" and len(self.data) > 1:
            keys = (curve_client_keys(self.curve_keys, self.key_name or DEFAULT_KEY_NAME)
                    if self.curve_keys is not None else None)
            self._host = HostConnection(self.endpoint, keys)
        return self._host

    def _join_market(self, name: str) -> None:
        client = self.clients[name]
        try:
            if client.run_day(self.day) is None:  # the client has told the coordinator
                self.failures[name] = client.failure or "no plan"
        except Exception as exc:  # noqa: BLE001 - recorded; the agent outputs ok = False
            self._fail(name, f"day {self.day + 1}: {type(exc).__name__}: {exc}")

    def _send_unsent(self, name: str) -> None:
        """The periods agent ``name`` realised before it failed still reach the market."""
        unsent = self._unsent.pop(name, [])
        with contextlib.suppress(Exception):  # else settled at its day-ahead position
            if unsent:
                self.clients[name].send(merge_meters(unsent))

    def _fail(self, name: str, reason: str) -> None:
        """Record why agent ``name`` leaves the run and tell the coordinator, which would
        otherwise wait for it until a deadline."""
        self.failures[name] = reason
        client = self.clients.get(name)
        if client is not None:
            with contextlib.suppress(Exception):  # else the coordinator's deadlines do
                client.leave(self.day, reason)

    def _write_days(self) -> None:
        if self.results_dir is None:
            return
        for name in self._active():
            write_realised(self.results_dir / f"{name}.json", self.agents[name])
        for name, reason in self.failures.items():  # the agent's own account, once
            if name not in self._failures_written:
                write_failure(self.results_dir / f"{name}.json", name, self.day, reason)
                self._failures_written.add(name)

    def _value(self, name: str, attr: str, active: set[str]):
        agent = self.agents.get(name)
        live = agent is not None and name in active
        if attr == "pid":
            return os.getpid()
        if attr == "rss_mb":  # this process's peak resident memory
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if attr == "ok":
            return live
        if attr == "p_kw_day":  # what it realised of the day (0 after a failure)
            realised = agent.realised.get("net_kw") if agent is not None else None
            took_part = realised is not None and agent.day == self.day
            return realised.tolist() if took_part else [0.0] * self.periods
        if not live:
            return 0.0 if attr == "p_kw" else None
        if attr == "quote_kw":
            return float(agent.planned_net_kw()[self.period])
        values = agent.realised.get("net_kw" if attr == "p_kw" else attr)
        return None if values is None else float(values[self.period])

    def get_data(self, outputs):
        active = set(self._active())  # once per step, not per agent and attribute
        return {eid: {a: self._value(eid, a, active) for a in attrs}
                for eid, attrs in outputs.items()}

    def play_remaining_days(self) -> None:
        """The co-simulation stopped early: play the run's remaining days (market and
        realisation) without it. Agents the coordinator no longer answers have failed
        already and sit them out."""
        if not self.clients:
            return
        while self.day < self.days - 1 and any(n not in self.failures for n in self.data):
            self.day, self.period = self.day + 1, 0
            self._plan_day()
            for t in range(self.periods):
                self.period = t
                self._realise()

    def finalize(self):
        """The end, normal or not: finish the day and play the remaining days if the
        co-simulation stopped early, wait (bounded) for the last day's settlements, so the
        last meter readings have reached the coordinator before the sockets close, then
        close them. Idempotent."""
        self.finish_day()
        self.play_remaining_days()
        deadline = time_module.monotonic() + SETTLEMENT_WAIT_S  # for all hosted agents
        for name in [n for n in self._active() if n in self.clients]:
            left = max(deadline - time_module.monotonic(), 0.0)
            self.clients[name].wait_settlement(self.day, left)
        for client in self.clients.values():
            client.close()
        self.clients = {}
        if self._host is not None:
            self._host.close()
            self._host = None


def period_inputs(attrs: dict) -> dict[str, float]:
    """One agent's per-period inputs from co-simulators (``PERIOD_INPUTS``): powers summed
    over their sources, ``plugged`` 1.0 only if every source says so."""
    out = {}
    for attr in PERIOD_INPUTS:
        values = [v for v in attrs.get(attr, {}).values() if v is not None]
        if values:
            out[attr] = float(min(map(bool, values))) if attr == "plugged" else float(sum(values))
    return out


def replace_profile(data, field: str, values, day: int = 0) -> object:
    """``data`` with day ``day`` of its ``field`` profile replaced by ``values`` (kW per
    period)."""
    if not hasattr(data, field):
        raise ValueError(f"a {type(data).__name__} has no {field} profile")
    n = data.horizon.periods
    arr = np.asarray(values, float)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)) or arr.min() < 0:
        raise ValueError(f"expected {n} finite values >= 0, got "
                         f"{arr.size} (min {np.nanmin(arr) if arr.size else 'n/a'})")
    whole = np.array(getattr(data, field), float)
    whole[day * n:(day + 1) * n] = arr
    return dataclasses.replace(data, **{field: whole})


def _one_at_a_time(agent, lock: threading.Lock) -> None:
    """The agent answers signals (its solves) holding ``lock``, which every agent of the
    process shares."""
    answer = agent.on_signal

    def on_signal(msg):
        with lock:
            return answer(msg)
    agent.on_signal = on_signal


FAULT_ENV = "LEMGRID_FAULT_KILL"  # "agent:round": that agent's process dies in that round


def _inject_fault(agent: MarketAgent) -> None:
    """Fault injection for resilience tests: with ``LEMGRID_FAULT_KILL=ev1:2`` the process
    hosting ev1 exits abruptly when it receives the round-2 signal."""
    name, _, round_ = os.environ.get(FAULT_ENV, "").partition(":")
    if name != agent.name:
        return
    answer = agent.on_signal

    def on_signal(msg):
        if msg.round == int(round_ or 1):
            os._exit(9)
        return answer(msg)
    agent.on_signal = on_signal


def _update_record(path: Path, fresh: dict, change) -> None:
    """Apply ``change`` to the agent's JSON file (``fresh`` if there is none yet), stamp
    it with this process's id and peak memory, and write it to a temporary file, then
    rename it: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else fresh
    change(data)
    data["pid"] = os.getpid()  # the process that hosts it, and that one's peak memory
    data["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def write_realised(path: Path, agent: MarketAgent) -> None:
    """Append the agent's realised day and its planned cost per round to its JSON file:
    the runner's record of the agent (it collects nothing from the agents through
    mosaik)."""
    day = {
        "realised": {k: np.asarray(v).tolist() for k, v in agent.realised.items()},
        "quote_kw": agent.planned_net_kw().tolist(),
        "round_costs_eur": {str(r): c for (d, r), c in agent.round_costs_eur.items()
                            if d == agent.day},
        "round_solve_s": {str(r): c for (d, r), c in agent.round_solve_s.items()
                          if d == agent.day}}
    _update_record(path, {"agent": agent.name, "kind": agent.kind, "days": {}},
                   lambda data: data["days"].__setitem__(str(agent.day), day))


def write_failure(path: Path, name: str, day: int, reason: str) -> None:
    """Record in the agent's JSON file why it left the run (``failures``: day → reason),
    which the coordinator, seeing only its silence, cannot say."""
    _update_record(path, {"agent": name, "days": {}},
                   lambda data: data.setdefault("failures", {}).setdefault(str(day), reason))


def main():
    return mosaik_api_v3.start_simulation(AgentSimulator(), "lemgrid agent simulator",
                                         configure_logging=False)


if __name__ == "__main__":
    main()
