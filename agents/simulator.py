"""The agents' mosaik simulator: a thin adapter around ``MarketAgent``.

One simulator process hosts one or more agents (entity id = agent name). At the first
step of a day every hosted agent plans its day through the market (ZeroMQ client to
the coordinator, one thread per agent); every step it outputs its realised power at
the grid connection for the current period.

Start it as a mosaik ``cmd`` simulator: ``python -m agents.simulator %(addr)s``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import threading
from pathlib import Path

import mosaik_api_v3
import numpy as np

from agents.client import run_agent
from agents.data import data_from_dict, net_load_kw
from agents.market_agent import MarketAgent

FLOW_ATTRS = ["buy_kw", "sell_kw", "p2v_kw", "p2v_offered_kw", "pv_kw", "load_kw", "ch_kw",
              "dis_kw"]
# Inputs a co-simulator may send at the start of a day: the day's profile (one value per
# period) that replaces the agent's own before it plans.
PROFILE_INPUTS = {"load_profile_kw": "load_kw", "pv_profile_kw": "pv_kw"}
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Agent": {"public": True, "params": ["agents"],
                  "attrs": ["p_kw", *FLOW_ATTRS, "cost_eur", "soc_kwh", "pid", "rss_mb",
                            "ok", *PROFILE_INPUTS]},
    },
}


class AgentSimulator(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.data: dict[str, object] = {}  # agent name -> its private data
        self.agents: dict[str, MarketAgent] = {}  # built at the first step, in parallel
        self.failures: dict[str, str] = {}
        self.period_s, self.endpoint, self.solver = 900, None, {}
        self.curve_keys, self.key_name = None, None  # CURVE key directory and client key
        self.period = 0

    def init(self, sid, time_resolution=1.0, endpoint="tcp://127.0.0.1:5555", period_s=900,
             solver=None, results_dir=None, curve_keys=None, key_name=None):
        self.endpoint, self.period_s, self.solver = endpoint, int(period_s), solver or {}
        self.curve_keys, self.key_name = curve_keys, key_name
        self.results_dir = Path(results_dir) if results_dir else None
        return self.meta

    def create(self, num, model, agents):
        if len(agents) != num:
            raise ValueError(f"create: {num} entities asked for but {len(agents)} agents given")
        out = []
        for raw in agents:
            data = data_from_dict(raw)
            self.data[data.name] = data
            out.append({"eid": data.name, "type": model})
        return out

    def step(self, time, inputs, max_advance):
        periods = next(iter(self.data.values())).horizon.periods
        self.period = (time // self.period_s) % periods
        if self.period == 0:
            self._apply_profiles(inputs)
            self._plan_day()
        return time + self.period_s

    def _apply_profiles(self, inputs: dict) -> None:
        """Day profiles from co-simulators replace the agents' own; a wrong one fails
        that agent (recorded, outputs ok = False), not the simulation."""
        for name, attrs in inputs.items():
            for attr, field in PROFILE_INPUTS.items():
                for source, values in attrs.get(attr, {}).items():
                    try:
                        self.data[name] = replace_profile(self.data[name], field, values)
                    except ValueError as exc:
                        self.failures[name] = f"{attr} from {source}: {exc}"
                    self.agents.pop(name, None)  # rebuilt with the new profile

    def _plan_day(self) -> None:
        """Every hosted agent joins the market in its own thread. Models are built first,
        one after another (Pyomo model building is not thread-safe), at this first step so
        that the processes of a community build theirs at the same time."""
        for name, data in self.data.items():
            if name not in self.agents and name not in self.failures:
                try:
                    self.agents[name] = MarketAgent(data, **self.solver)
                    _inject_fault(self.agents[name])
                except Exception as exc:  # noqa: BLE001 - recorded; outputs ok = False
                    self.failures[name] = f"{type(exc).__name__}: {exc}"
        threads = [threading.Thread(target=self._join_market, args=(name,), daemon=True)
                   for name in self.agents]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _join_market(self, name: str) -> None:
        try:
            settled = run_agent(self.agents[name], self.endpoint, curve_keys=self.curve_keys,
                                key_name=self.key_name)
            if settled is not None and self.results_dir is not None:
                write_schedule(self.results_dir / f"{name}.json", settled,
                               self.agents[name].round_costs_eur)
        except Exception as exc:  # noqa: BLE001 - recorded; the agent outputs ok = False
            self.failures[name] = f"{type(exc).__name__}: {exc}"

    def _value(self, name: str, attr: str):
        agent = self.agents.get(name)
        sched, t = (agent.settled if agent else None), self.period
        if attr == "pid":
            return os.getpid()
        if attr == "rss_mb":  # this process's peak resident memory
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if attr == "ok":
            return sched is not None
        if sched is None:
            return 0.0 if attr == "p_kw" else None
        if attr == "p_kw":
            return float(net_load_kw(sched.kind, sched.flows_kw)[t])
        if attr in FLOW_ATTRS:
            values = sched.flows_kw.get(attr)
            return 0.0 if values is None else float(values[t])
        if attr == "cost_eur":
            return float(sched.cost_eur[t])
        return None if sched.soc_kwh is None else float(np.asarray(sched.soc_kwh)[t])

    def get_data(self, outputs):
        return {eid: {a: self._value(eid, a) for a in attrs}
                for eid, attrs in outputs.items()}


def replace_profile(data, field: str, values) -> object:
    """``data`` with its ``field`` profile replaced by ``values`` (kW per period)."""
    if not hasattr(data, field):
        raise ValueError(f"a {type(data).__name__} has no {field} profile")
    arr = np.asarray(values, float)
    if arr.shape != (data.horizon.periods,) or not np.all(np.isfinite(arr)) or arr.min() < 0:
        raise ValueError(f"expected {data.horizon.periods} finite values >= 0, got "
                         f"{arr.size} (min {np.nanmin(arr) if arr.size else 'n/a'})")
    return dataclasses.replace(data, **{field: arr})


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


def write_schedule(path: Path, sched, round_costs_eur: dict[int, float]) -> None:
    """The settled day and the planned cost per round as JSON: a copy that survives this
    simulation if mosaik stops."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"agent": sched.agent, "kind": sched.kind,
            "flows_kw": {k: np.asarray(v).tolist() for k, v in sched.flows_kw.items()},
            "soc_kwh": None if sched.soc_kwh is None else np.asarray(sched.soc_kwh).tolist(),
            "round_costs_eur": {str(r): c for r, c in round_costs_eur.items()}}
    path.write_text(json.dumps(data))


def main():
    return mosaik_api_v3.start_simulation(AgentSimulator(), "lemgrid agent simulator",
                                         configure_logging=False)


if __name__ == "__main__":
    main()
