"""A mosaik simulator that records every input it receives, per step.

It runs inside the runner's process (mosaik ``python`` start), so the world builder
reads the records straight from ``RECORDS`` after ``world.run``. It steps every period
(time-based) rather than on its inputs' arrival: mosaik 3.6 recomputes an event-based
simulator's progress from all its upstream simulators after every step of any simulator,
which with the grid's 90 agents upstream was most of a 90-process day's scheduling.
"""

from __future__ import annotations

import mosaik_api_v3

META = {"api_version": "3.0", "type": "time-based",
        "models": {"Collector": {"public": True, "any_inputs": True, "params": [], "attrs": []}}}

RECORDS: dict[str, list[tuple[int, str, str, object]]] = {}
STEP_HOOKS: list = []  # callables(time) the runner registers, e.g. its progress bar


class Collector(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.sid = None

    def init(self, sid, time_resolution=1.0, period_s=900):
        self.sid = sid
        self.period_ticks = max(round(period_s / time_resolution), 1)
        RECORDS[sid] = []
        return self.meta

    def create(self, num, model):
        return [{"eid": f"{model}{i}", "type": model} for i in range(num)]

    def step(self, time, inputs, max_advance):
        rows = RECORDS[self.sid]
        for attrs in inputs.values():
            for attr, sources in attrs.items():
                for src, value in sources.items():
                    rows.append((time, src.rsplit(".", 1)[-1], attr, value))
        for hook in STEP_HOOKS:
            hook(time)
        return time + self.period_ticks

    def get_data(self, outputs):
        return {}
