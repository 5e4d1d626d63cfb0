"""A mosaik simulator that watches bus voltages: each ``Monitor`` entity takes the grid
simulator's ``vm_pu`` (one value per bus) every period and appends one CSV row: period,
lowest and highest voltage, and how many buses are below or above its limits.

Start it in-process as ``python: lemgrid.scenarios.cosim.monitor:VoltageMonitor`` or as mosaik
``cmd``: ``%(python)s -m lemgrid.scenarios.cosim.monitor %(addr)s``.
"""

from __future__ import annotations

import math
from pathlib import Path

import mosaik_api_v3
from loguru import logger

HEADER = "period,v_min_pu,v_max_pu,buses_below,buses_above\n"
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {"Monitor": {"public": True, "params": ["path", "v_min_pu", "v_max_pu"],
                           "attrs": ["vm_pu"]}},
}


class VoltageMonitor(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.period_s, self.monitors = 900, {}

    def init(self, sid, time_resolution=1.0, period_s=900):
        self.period_s = int(period_s)
        return self.meta

    def create(self, num, model, path, v_min_pu=0.95, v_max_pu=1.05):
        out = []
        for _ in range(num):
            eid = f"monitor-{len(self.monitors)}"
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(HEADER)
            self.monitors[eid] = (Path(path), float(v_min_pu), float(v_max_pu))
            out.append({"eid": eid, "type": model})
        return out

    def step(self, time, inputs, max_advance):
        for eid, attrs in inputs.items():
            path, lo, hi = self.monitors[eid]
            for vm in attrs.get("vm_pu", {}).values():
                ok = [v for v in vm or [] if v is not None and math.isfinite(v)]
                row = (time // self.period_s, min(ok, default=math.nan),
                       max(ok, default=math.nan), sum(v < lo for v in ok),
                       sum(v > hi for v in ok))
                with path.open("a") as f:
                    f.write(",".join(str(x) for x in row) + "\n")
        return time + self.period_s

    def get_data(self, outputs):
        return {}


def main():
    logger.disable("mosaik_api_v3")
    return mosaik_api_v3.start_simulation(VoltageMonitor(), "bus voltage monitor",
                                         configure_logging=False)


if __name__ == "__main__":
    main()
