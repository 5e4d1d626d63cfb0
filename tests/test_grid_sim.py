"""grid.simulator: driven through its mosaik API directly, then inside a small mosaik World."""

from typing import ClassVar

import mosaik
import mosaik_api_v3
import pytest

from lemgrid.grid.simulator import OUTPUT_ATTRS, GridSimulator, agent_name

BUS_OF = {"alice": 3, "bob": 8, "carol": 10}
P_KW = {"alice": 40.0, "bob": 120.0, "carol": -30.0}
PERIOD_S = 900


def _grid(limits=None) -> GridSimulator:
    sim = GridSimulator()
    meta = sim.init("Grid-0", time_resolution=1.0)
    assert meta["models"]["Grid"]["attrs"][0] == "p_kw"
    entities = sim.create(1, "Grid", network="feeder11", bus_of=BUS_OF, limits=limits)
    children = entities[0].pop("children")
    assert entities == [{"eid": "grid", "type": "Grid"}]
    assert children == ([{"eid": f"bus-{b}", "type": "Bus"} for b in range(11)]
                        + [{"eid": f"line-{k}", "type": "Line"} for k in range(10)])
    return sim


def _inputs(p_kw: dict[str, float]) -> dict:
    return {"grid": {"p_kw": {f"Agents-0.{name}": value for name, value in p_kw.items()}}}


def test_agent_name_is_the_entity_id():
    assert agent_name("Agents-0.alice") == "alice"
    assert agent_name("a.b.c") == "c"


def test_simulator_api_for_two_periods():
    sim = _grid(limits={"v_min_pu": 0.999})
    assert sim.step(0, _inputs(P_KW), max_advance=1800) == PERIOD_S
    first = sim.get_data({"grid": ["vm_pu", "loading_pct", "converged", "voltage_violations"]})
    assert len(first["grid"]["vm_pu"]) == 11 and len(first["grid"]["loading_pct"]) == 10
    assert first["grid"]["converged"] is True
    assert first["grid"]["voltage_violations"] > 0  # bob's bus 8 is below 0.999 pu
    doubled = {name: 2 * value for name, value in P_KW.items()}
    assert sim.step(PERIOD_S, _inputs(doubled), max_advance=1800) == 2 * PERIOD_S
    second = sim.get_data({"grid": ["vm_pu", "losses_kw", "p_slack_kw"]})["grid"]
    assert second["vm_pu"][8] < first["grid"]["vm_pu"][8]
    assert second["p_slack_kw"] == pytest.approx(260.0 + second["losses_kw"], abs=1e-6)
    assert [result.period for result in sim.results] == [0, 1]
    summary = sim.get_summary()
    assert summary["network"] == "feeder11" and summary["pf_failures"] == 0


def test_buses_and_lines_are_entities_with_scalars():
    """feeder11 (11 kV, no line charging, unity power factor): bob's bus 8 consumes his
    0.120 MW; line 9 (bus 9 → leaf bus 10) carries carol's 30 kW, so its current is
    0.030 MW / (√3 · 11 kV · vm_10); each bus's voltage is the Grid's list entry."""
    sim = _grid()
    sim.step(0, _inputs(P_KW), max_advance=0)
    grid = sim.get_data({"grid": ["vm_pu"]})["grid"]
    data = sim.get_data({"bus-8": ["vm_pu", "va_degree", "p_mw"], "bus-10": ["vm_pu"],
                         "line-9": ["loading_pct", "i_ka"]})
    assert data["bus-8"]["vm_pu"] == grid["vm_pu"][8]
    assert data["bus-8"]["p_mw"] == pytest.approx(0.120, abs=1e-12)
    assert data["bus-8"]["va_degree"] < 0  # a load bus lags the slack
    vm_10 = data["bus-10"]["vm_pu"]
    assert data["line-9"]["i_ka"] == pytest.approx(0.030 / (3 ** 0.5 * 11 * vm_10), rel=1e-9)
    with pytest.raises(ValueError, match="no output"):
        sim.get_data({"line-9": ["vm_pu"]})
    with pytest.raises(ValueError, match="no entity"):
        sim.get_data({"bus-99": ["vm_pu"]})


def test_a_bus_input_is_a_load_on_that_bus():
    """Two co-simulators put 50 and −20 kW on bus 5: the slack supplies the agents' 130
    kW plus 30 kW plus the losses, and bus 5 consumes 0.030 MW."""
    sim = _grid()
    inputs = _inputs(P_KW) | {"bus-5": {"p_kw": {"Load-0.l0": 50.0, "PV-0.p0": -20.0}}}
    sim.step(0, inputs, max_advance=0)
    grid = sim.get_data({"grid": ["p_slack_kw", "losses_kw"]})["grid"]
    assert grid["p_slack_kw"] == pytest.approx(130.0 + 30.0 + grid["losses_kw"], abs=1e-6)
    assert sim.get_data({"bus-5": ["p_mw"]})["bus-5"]["p_mw"] == pytest.approx(0.030, abs=1e-12)
    sim.step(PERIOD_S, _inputs(P_KW), max_advance=0)  # no input: the bus load is 0 again
    grid = sim.get_data({"grid": ["p_slack_kw", "losses_kw"]})["grid"]
    assert grid["p_slack_kw"] == pytest.approx(130.0 + grid["losses_kw"], abs=1e-6)


def test_network_loads_are_dropped_unless_kept():
    for keep, load_kw in [(False, 0.0), (True, 3715.0)]:
        sim = GridSimulator()
        sim.init("Grid-0")
        sim.create(1, "Grid", network="case33bw", bus_of={"alice": 17}, keep_network_loads=keep)
        sim.step(0, _inputs({"alice": 100.0}), max_advance=0)
        data = sim.get_data({"grid": ["losses_kw", "p_slack_kw"]})["grid"]
        assert data["p_slack_kw"] == pytest.approx(load_kw + 100.0 + data["losses_kw"], abs=1e-6)


def test_failed_period_is_reported_as_none():
    sim = _grid()
    sim.step(0, _inputs({"alice": 1e6}), max_advance=0)
    data = sim.get_data({"grid": ["converged", "vm_pu", "losses_kw"]})["grid"]
    assert data["converged"] is False and data["losses_kw"] is None
    assert data["vm_pu"] == [None] * 11
    assert sim.get_data({"bus-3": ["vm_pu"], "line-0": ["i_ka"]}) == {
        "bus-3": {"vm_pu": None}, "line-0": {"i_ka": None}}
    assert sim.get_summary()["pf_failures"] == 1


def test_simulator_rejects_bad_setup():
    sim = GridSimulator()
    sim.init("Grid-0")
    with pytest.raises(ValueError, match="v_nominal"):
        sim.create(1, "Grid", network="feeder11", bus_of=BUS_OF, limits={"v_nominal": 1})
    with pytest.raises(ValueError, match="allowed"):
        sim.create(1, "Grid", network="ieee13")
    sim.create(1, "Grid", network="feeder11", bus_of=BUS_OF)
    with pytest.raises(ValueError, match="exactly one"):
        sim.create(1, "Grid", network="feeder11", bus_of=BUS_OF)


# --- a real mosaik World ----------------------------------------------------------------


class FakeAgents(mosaik_api_v3.Simulator):
    """Agents with a constant `p_kw`; the entity id is the agent name."""

    def __init__(self):
        super().__init__({"type": "time-based", "models": {
            "Agent": {"public": True, "params": ["name", "p_kw"], "attrs": ["p_kw"]}}})
        self.p_kw = {}

    def create(self, num, model, name, p_kw):
        self.p_kw[name] = p_kw
        return [{"eid": name, "type": model}]

    def step(self, time, inputs, max_advance):
        return time + PERIOD_S

    def get_data(self, outputs):
        return {eid: {"p_kw": self.p_kw[eid]} for eid in outputs}


class Collector(mosaik_api_v3.Simulator):
    """Records every input it receives, per step, in the class attribute `records`."""

    records: ClassVar[list[dict]] = []

    def __init__(self):
        super().__init__({"type": "time-based", "models": {
            "Monitor": {"public": True, "params": [], "attrs": [], "any_inputs": True}}})

    def create(self, num, model):
        return [{"eid": "monitor", "type": model}]

    def step(self, time, inputs, max_advance):
        values = {attr: next(iter(sources.values()))
                  for attr, sources in inputs["monitor"].items()}
        Collector.records.append({"time": time, **values})
        return time + PERIOD_S

    def get_data(self, outputs):
        return {}


def _world(agents: str):
    """A world of the grid on feeder11, the agents' simulator class ``agents`` of this
    module and the collector; the world, the grid entity and the agents' simulator."""
    Collector.records = []
    world = mosaik.World({
        "Grid": {"python": "lemgrid.grid.simulator:GridSimulator"},
        "Agents": {"python": f"tests.test_grid_sim:{agents}"},
        "Collector": {"python": "tests.test_grid_sim:Collector"},
    }, skip_greetings=True)
    grid = world.start("Grid").Grid(network="feeder11", bus_of=BUS_OF, period_s=PERIOD_S)
    return world, grid, world.start("Agents")


def test_grid_simulator_in_a_mosaik_world():
    world, grid, agent_sim = _world("FakeAgents")
    for name, p_kw in P_KW.items():
        world.connect(agent_sim.Agent(name=name, p_kw=p_kw), grid, "p_kw")
    monitor = world.start("Collector").Monitor()
    world.connect(grid, monitor, *OUTPUT_ATTRS)
    world.run(until=4 * PERIOD_S, print_progress=False)

    records = Collector.records
    assert [record["time"] for record in records] == [0, 900, 1800, 2700]
    for record in records:
        assert record["converged"] is True
        assert isinstance(record["voltage_violations"], int)
        assert isinstance(record["line_violations"], int)
        assert len(record["vm_pu"]) == 11
        assert record["p_slack_kw"] == pytest.approx(130.0 + record["losses_kw"], abs=1e-6)


class ScheduleAgents(mosaik_api_v3.Simulator):
    """Agents that follow a schedule of `p_kw`, one value per period: every period
    (``day_periods=0``), or a day's values at once as `p_kw_day` (an event, sent once) at
    each day's start, as lemgrid's agent simulator does."""

    def __init__(self):
        super().__init__({"type": "hybrid", "models": {"Agent": {
            "public": True, "params": ["name", "schedule", "day_periods"],
            "attrs": ["p_kw", "p_kw_day"], "trigger": [], "non-persistent": ["p_kw_day"]}}})
        self.schedule, self.day_periods, self.k = {}, 0, 0

    def create(self, num, model, name, schedule, day_periods):
        self.schedule[name], self.day_periods = schedule, day_periods
        return [{"eid": name, "type": model}]

    def step(self, time, inputs, max_advance):
        self.k = time // PERIOD_S
        return time + PERIOD_S * (self.day_periods or 1)

    def get_data(self, outputs):
        n = self.day_periods
        return {eid: {"p_kw": self.schedule[eid][self.k],
                      "p_kw_day": self.schedule[eid][self.k:self.k + n]} for eid in outputs}


def _schedule_world(day_periods: int) -> list[dict]:
    """Two days of three periods on feeder11, the agents stepping every period or daily."""
    world, grid, agent_sim = _world("ScheduleAgents")
    attr = "p_kw_day" if day_periods else "p_kw"
    for i, name in enumerate(BUS_OF):
        schedule = [10.0 * (i + 1) * (k % 4 - 1) for k in range(6)]  # imports and exports
        world.connect(agent_sim.Agent(name=name, schedule=schedule, day_periods=day_periods),
                      grid, attr)
    world.connect(grid, world.start("Collector").Monitor(), *OUTPUT_ATTRS)
    world.run(until=6 * PERIOD_S, print_progress=False)
    return Collector.records


def test_a_day_stepping_agent_gives_the_grid_each_period_of_its_day():
    """An agent stepping once a day sends its day as `p_kw_day`; the grid takes period
    k's value at each step: every period's power flow equals the one with the same
    powers sent period by period (a second method: the per-period connection)."""
    daily, every = _schedule_world(3), _schedule_world(0)
    assert [r["time"] for r in daily] == [k * PERIOD_S for k in range(6)]
    assert len({r["losses_kw"] for r in every}) > 2  # the schedule changes the flows
    for a, b in zip(daily, every, strict=True):
        assert a == b
