"""The agents' mosaik simulator: a thin adapter around ``MarketAgent``.

One simulator process hosts one or more agents (entity id = agent name). At the first
step of a day every hosted agent plans its day through the market (ZeroMQ client to
the coordinator, one thread per agent); every step it outputs its realised power at
the grid connection for the current period.

Start it as a mosaik ``cmd`` simulator: ``python -m agents.simulator %(addr)s``.
"""

from __future__ import annotations

import os
import resource
import threading

import mosaik_api_v3
import numpy as np

from agents.client import run_agent
from agents.data import data_from_dict, net_load_kw
from agents.market_agent import MarketAgent

FLOW_ATTRS = ["buy_kw", "sell_kw", "p2v_kw", "p2v_offered_kw", "pv_kw", "load_kw", "ch_kw",
              "dis_kw"]
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Agent": {"public": True, "params": ["agents"],
                  "attrs": ["p_kw", *FLOW_ATTRS, "cost_eur", "soc_kwh", "pid", "rss_mb",
                            "ok"]},
    },
}


class AgentSimulator(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.data: dict[str, object] = {}  # agent name -> its private data
        self.agents: dict[str, MarketAgent] = {}  # built at the first step, in parallel
        self.failures: dict[str, str] = {}
        self.period_s, self.endpoint, self.solver = 900, None, {}
        self.period = 0

    def init(self, sid, time_resolution=1.0, endpoint="tcp://127.0.0.1:5555", period_s=900,
             solver=None):
        self.endpoint, self.period_s, self.solver = endpoint, int(period_s), solver or {}
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
            self._plan_day()
        return time + self.period_s

    def _plan_day(self) -> None:
        """Every hosted agent joins the market in its own thread (models are built there,
        so the processes of a community build theirs at the same time)."""
        threads = [threading.Thread(target=self._join_market, args=(name,), daemon=True)
                   for name in self.data]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _join_market(self, name: str) -> None:
        try:
            agent = self.agents.get(name) or MarketAgent(self.data[name], **self.solver)
            self.agents[name] = agent
            run_agent(agent, self.endpoint)
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


def main():
    return mosaik_api_v3.start_simulation(AgentSimulator(), "lemgrid agent simulator",
                                         configure_logging=False)


if __name__ == "__main__":
    main()
