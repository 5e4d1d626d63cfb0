"""mosaik-api-v3 adapter around `grid.powerflow.GridModel`: one power flow per period.

The network is a `Grid` entity (eid ``grid``) whose children are its buses and lines, as
mosaik's pandapower adapter offers them, so that any mosaik component can be wired to one:

- `Bus` ``bus-N`` (N the pandapower bus index): outputs `vm_pu`, `va_degree` and `p_mw`
  (the bus's net consumption, res_bus.p_mw); input `p_kw`, a load (+) or generation (−)
  a co-simulator puts on the bus, summed over its sources, each period;
- `Line` ``line-N``: outputs `loading_pct` and `i_ka`.

Every agent entity connects its `p_kw` (net consumption, negative when exporting) to the
Grid's `p_kw`, or, where its simulator steps once a day, its `p_kw_day` (the day's values,
one per period, an event sent once at the day's start) to the Grid's `p_kw_day`, which
the Grid keeps and of which each period takes its own; mosaik
delivers them as ``{"<sid>.<eid>": value}`` and the agent name is the part after the last
".", so **agent entity ids must equal the agent names used in `bus_of`**. The Grid's outputs per period are the network's: `vm_pu` (list per bus),
`loading_pct` (list per line), `trafo_p_mw` (list per two-winding transformer: MW
delivered into its LV network, negative in reverse flow), `trafo_loading_pct` (list per
transformer), violation counts, `converged`, `losses_kw`, `p_slack_kw`. Values of a
period whose power flow failed are None (JSON has no NaN).

The network's own published loads (e.g. case33bw's 3.7 MW) are dropped unless
`keep_network_loads=True`: consumption is the agents' plus the scenario's `background_kw`
(per bus in net.bus order, constant or one row per period) plus the buses' inputs.

Start it in-process with ``{"python": "lemgrid.grid.simulator:GridSimulator"}`` or as a process
with ``{"cmd": "%(python)s -m lemgrid.grid.simulator %(addr)s"}``.
"""

import contextlib
import math
import threading
from dataclasses import fields

import mosaik_api_v3
import numpy as np

from lemgrid.grid import POWER_FLOW_SOLVERS
from lemgrid.grid.networks import load_network
from lemgrid.grid.powerflow import GridLimits, GridModel, PeriodResult, grid_summary

DEFAULT_PERIOD_S = 900
GRID_EID = "grid"
OUTPUT_ATTRS = ["vm_pu", "loading_pct", "trafo_p_mw", "trafo_loading_pct",
                "voltage_violations", "line_violations", "trafo_violations", "converged",
                "losses_kw", "p_slack_kw"]
BUS_ATTRS = {"vm_pu": "vm_pu", "va_degree": "va_degree", "p_mw": "bus_p_mw"}  # -> result
LINE_ATTRS = {"loading_pct": "loading_pct", "i_ka": "i_ka"}
CHILDREN = {"bus": ("Bus", BUS_ATTRS), "line": ("Line", LINE_ATTRS)}  # eid prefix -> model
# hybrid: it steps every period by itself, and a day's series (``p_kw_day``, an event
# sent once a day) also triggers it; every output holds until the next period's
META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {
        "Grid": {
            "public": True,
            "params": ["network", "network_options", "bus_of", "limits", "period_s",
                       "background_kw", "power_factor", "keep_network_loads", "solver"],
            "attrs": ["p_kw", "p_kw_day", *OUTPUT_ATTRS],
            "trigger": ["p_kw_day"], "non-persistent": [],
        },
        "Bus": {"public": False, "params": [], "attrs": ["p_kw", *BUS_ATTRS],
                "trigger": [], "non-persistent": []},
        "Line": {"public": False, "params": [], "attrs": [*LINE_ATTRS],
                 "trigger": [], "non-persistent": []},
    },
    "extra_methods": ["get_summary"],
}


def child_eid(kind: str, index: int) -> str:
    """The eid of bus or line ``index`` (its pandapower index): ``bus-3``, ``line-7``."""
    return f"{kind}-{index}"


def agent_name(full_id: str) -> str:
    """`"AgentSim-0.alice"` -> `"alice"`: the entity id part of a mosaik full id."""
    return full_id.rsplit(".", 1)[-1]


def limits_from_dict(options: dict | None) -> GridLimits:
    """`GridLimits` from a scenario dict, rejecting unknown keys by name."""
    allowed = {field.name for field in fields(GridLimits)}
    unknown = sorted(set(options or {}) - allowed)
    if unknown:
        raise ValueError(f"unknown grid limits {unknown}; allowed: {sorted(allowed)}")
    return GridLimits(**(options or {}))


def _json_list(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(value) else float(value) for value in values.tolist()]


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


class GridSimulator(mosaik_api_v3.Simulator):
    """Runs `GridModel.step` once per mosaik step and keeps every `PeriodResult`."""

    def __init__(self):
        super().__init__(META)
        self.sid = None
        self.time_resolution = 1.0
        self.model: GridModel | None = None
        self.network_name: str | None = None
        self.period_ticks = DEFAULT_PERIOD_S
        self.results: list[PeriodResult] = []
        self.days: dict[str, tuple[str, list[float]]] = {}  # source → (agent, its p_kw_day)
        self._preparing: threading.Thread | None = None  # GridModel.prepare, at create

    def init(self, sid, time_resolution=1.0, **sim_params):
        if sim_params:
            raise ValueError(f"GridSimulator takes no sim params, got {sorted(sim_params)}")
        self.sid = sid
        self.time_resolution = float(time_resolution)
        return self.meta

    def create(self, num, model, network="case33bw", network_options=None, bus_of=None,
               limits=None, period_s=DEFAULT_PERIOD_S, background_kw=None, power_factor=1.0,
               keep_network_loads=False, solver=POWER_FLOW_SOLVERS[0]):
        if model != "Grid" or num != 1 or self.model is not None:
            raise ValueError(f"GridSimulator hosts exactly one Grid entity; asked for {num} "
                             f"{model!r} with {0 if self.model is None else 1} existing")
        self.period_ticks = round(period_s / self.time_resolution)
        if self.period_ticks < 1:
            raise ValueError(f"period_s={period_s} is shorter than the time resolution")
        net = load_network(network, **(network_options or {}))
        bus_of = {str(agent): int(bus) for agent, bus in (bus_of or {}).items()}
        self.model = GridModel(net, bus_of, background_kw=background_kw,
                               power_factor=power_factor, limits=limits_from_dict(limits),
                               keep_network_loads=keep_network_loads, solver=solver)
        self.network_name = network
        self._preparing = threading.Thread(target=self._prepare, daemon=True)
        self._preparing.start()
        self._position = {child_eid("bus", b): i for i, b in enumerate(self.model.bus_ids)}
        self._position |= {child_eid("line", k): i for i, k in enumerate(self.model.line_ids)}
        children = [{"eid": eid, "type": CHILDREN[eid.split("-")[0]][0]}
                    for eid in self._position]
        return [{"eid": GRID_EID, "type": "Grid", "children": children}]

    def _prepare(self) -> None:
        """The model's power-flow case, built while mosaik sets the world up and the
        market runs (``GridModel.prepare``); a failure here is met again, and reported, by
        the first step."""
        with contextlib.suppress(Exception):
            self.model.prepare()

    def step(self, time, inputs, max_advance):
        if self._preparing is not None:
            self._preparing.join()
            self._preparing = None
        own = inputs.get(GRID_EID, {})
        period = time // self.period_ticks
        p_kw: dict[str, float] = {}
        for full_id, value in own.get("p_kw", {}).items():
            name = agent_name(full_id)
            p_kw[name] = p_kw.get(name, 0.0) + float(value)
        for full_id, day in own.get("p_kw_day", {}).items():  # sent at the day's start
            self.days[full_id] = (agent_name(full_id), day)
        for name, day in self.days.values():  # the period's value of each agent's day
            p_kw[name] = p_kw.get(name, 0.0) + float(day[period % len(day)])
        bus_kw = {int(eid.split("-")[1]): sum(float(v) for v in attrs.get("p_kw", {}).values())
                  for eid, attrs in inputs.items() if eid.startswith("bus-")}
        self.results.append(self.model.step(period, p_kw, bus_kw))
        return time + self.period_ticks

    def get_data(self, outputs):
        if not self.results:
            raise RuntimeError("get_data called before the first Grid step")
        result = self.results[-1]
        values = self._outputs(result)
        data = {}
        for eid, attrs in outputs.items():
            if eid == GRID_EID:
                own = values
            elif eid in self._position:
                own = self._child_outputs(result, eid)
            else:
                raise ValueError(f"no entity {eid!r}")
            unknown = sorted(set(attrs) - set(own))
            if unknown:
                raise ValueError(f"no output {unknown} on entity {eid!r}")
            data[eid] = {attr: own[attr] for attr in attrs}
        return data

    def _child_outputs(self, result: PeriodResult, eid: str) -> dict:
        """A bus's or line's scalars of the period (None where it did not converge)."""
        i = self._position[eid]
        return {attr: _json_float(float(getattr(result, field)[i]))
                for attr, field in CHILDREN[eid.split("-")[0]][1].items()}

    @staticmethod
    def _outputs(result: PeriodResult) -> dict:
        return {
            "vm_pu": _json_list(result.vm_pu),
            "loading_pct": _json_list(result.loading_pct),
            "trafo_p_mw": _json_list(result.trafo_p_mw),
            "trafo_loading_pct": _json_list(result.trafo_loading_pct),
            "voltage_violations": result.voltage_violations,
            "line_violations": result.line_violations,
            "trafo_violations": result.trafo_violations,
            "converged": result.converged,
            "losses_kw": _json_float(result.losses_kw),
            "p_slack_kw": _json_float(result.p_slack_kw),
        }

    def get_summary(self) -> dict:
        """Extra method: the summary.json `grid` block over every period run so far."""
        return grid_summary(self.results, self.model.limits, self.network_name,
                            self.period_ticks * self.time_resolution / 3600,
                            self.model.trafo_rating_mva)


def main():
    """Entry point for mosaik's `cmd` starter: `python -m lemgrid.grid.simulator ADDR`."""
    return mosaik_api_v3.start_simulation(GridSimulator(), "lemgrid grid simulator",
                                         configure_logging=False)


if __name__ == "__main__":
    main()
