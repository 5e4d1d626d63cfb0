"""The strict pydantic models of a scenario's parts: horizon, tariffs, the market (a union
of the registered mechanisms' parameter models), solver, grid, runtime, forecast error,
community, agent templates, explicit agents and co-simulators. Each checks its own fields;
the checks across fields are ``checks``'s, the whole scenario is ``scenario.Scenario``."""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import (
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from lemgrid.agents.data import MODEL_BUILDS
from lemgrid.coordinator.mechanisms.base import MarketParams
from lemgrid.grid import POWER_FLOW_SOLVERS
from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.catalog import APPLIANCES, clock_h
from lemgrid.scenarios.cosim.entities import entity_index
from lemgrid.scenarios.cosim.units import End, check_scale, conversion, known
from lemgrid.scenarios.cosim.units import allowed as allowed_units
from lemgrid.scenarios.schema.base import Fraction, NonNeg, Strict, Uniform
from lemgrid.scenarios.schema.profiles import (
    PVWatts,
    StandardLoad,
    WindTurbine,
    load_field,
    pv_field,
)
from lemgrid.scenarios.schema.scenario_error import _show

HOURS = 24  # rows of an hourly profile file
MAX_PROFILE_BYTES = 1024 * 1024  # an hourly profile file is at most this big
EV_SOC_MIN_FRAC = 0.10  # RECON: an EV is never driven below 10 % of its usable capacity
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="time as HH:MM")]
HHMM24 = Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$",
                              description="time as HH:MM, 24:00 the end of the day")]
HostPort = Annotated[str, Field(pattern=r"^[^:\s]+:\d+$", description="host:port")]


def _check_range(value, lo: float, hi: float | None = None, why: str = ""):
    """A number or the bounds of a ``uniform`` within [lo, hi]."""
    bounds = value.uniform if isinstance(value, Uniform) else (value,)
    if value is not None and not all(lo <= b <= (hi if hi is not None else b) for b in bounds):
        shown = f"uniform [{bounds[0]:g}, {bounds[1]:g}]" if len(bounds) == 2 else f"{value:g}"
        span = f"from {lo:g} to {hi:g}" if hi is not None else f"≥ {lo:g}"
        raise ValueError(f"{shown} is out of range{why}; allowed: values {span}")
    return value


class Choice(Strict):
    """A key drawn independently for each agent with the given weights."""

    choice: dict[str, NonNeg] = Field(min_length=1)

    @model_validator(mode="after")
    def _some_weight(self):
        if not sum(self.choice.values()) > 0:
            raise ValueError("choice: every weight is 0; allowed: weights ≥ 0, at least one > 0")
        return self


class Counts(Strict):
    """Exactly ``n`` agents get each key; which agents is shuffled with the seed."""

    counts: dict[str, Annotated[int, Field(ge=0)]] = Field(min_length=1)


class Horizon(Strict):
    periods: int = Field(96, gt=0)
    period_minutes: int = Field(15, gt=0)
    days: int = Field(1, ge=1)
    start: dt.date | None = Field(None, description="the first day's date (YYYY-MM-DD): "
                                  "standard load profiles and PVWatts draw every day for its "
                                  "date; null: no calendar (day 1, 2, ...)")
    holidays: list[dt.date] = Field(default_factory=list, description="dates the standard "
                                    "load profiles treat as Sundays")

    @model_validator(mode="after")
    def _one_day(self):
        if self.periods * self.period_minutes != 1440:
            raise ValueError(f"periods × period_minutes must be 1440 (one day), got "
                             f"{self.periods} × {self.period_minutes}")
        return self


class TimeOfUse(Strict):
    """Two-rate tariff: peak price in [peak_start, peak_end), off-peak otherwise."""

    off_peak_eur_per_kwh: NonNeg = 0.0922
    peak_eur_per_kwh: NonNeg = 0.1838
    peak_start: HHMM = "08:15"
    peak_end: HHMM = "22:15"


class P2VPrice(Strict):
    """``midpoint``: (lowest time-of-use price + feed-in)/2; ``fixed``: ``value``."""

    rule: Literal["midpoint", "fixed"] = "midpoint"
    value_eur_per_kwh: NonNeg | None = None

    @model_validator(mode="after")
    def _value_for_fixed(self):
        if (self.rule == "fixed") != (self.value_eur_per_kwh is not None):
            raise ValueError("value_eur_per_kwh is required with rule 'fixed' and only then")
        return self


class DynamicPrices(Strict):
    """Hourly real-time buy and feed-in prices over the run, synthesized from the seed
    (``scenarios/community/households.py``); they replace the time-of-use and feed-in
    prices for every agent and are the grid prices of a locality market."""

    buy_mean_eur_per_kwh: NonNeg = 0.09
    sell_ratio: Fraction = 0.45
    sell_ratio_spread: Fraction = 0.10

    @model_validator(mode="after")
    def _inside(self):
        lo, hi = self.sell_ratio - self.sell_ratio_spread, self.sell_ratio + self.sell_ratio_spread
        if self.buy_mean_eur_per_kwh <= 0:
            raise ValueError("buy_mean_eur_per_kwh: 0 gives no prices; allowed: a price > 0")
        if not 0 < lo <= hi < 1:
            raise ValueError(f"sell_ratio ± sell_ratio_spread = {lo:g}–{hi:g} leaves (0, 1); "
                             "allowed: 0 < sell_ratio − spread and sell_ratio + spread < 1")
        return self


class DayAhead(Strict):
    """Hourly day-ahead prices (€/MWh, 24 values, the same every day of the run), which
    retail follows: agents buy at the day-ahead price + ``buy_adder_eur_per_kwh`` and are
    paid ``sell_factor`` × the day-ahead price for feed-in. They replace the time-of-use
    and feed-in prices for every agent."""

    eur_per_mwh: Annotated[list[NonNeg], Field(min_length=24, max_length=24)]
    buy_adder_eur_per_kwh: NonNeg = Field(0.06, description="network access, charges and "
                                          "the retailer's margin on top of the day-ahead price")
    sell_factor: Fraction = Field(1.0, description="feed-in paid at this × the day-ahead "
                                  "price")


class Tariffs(Strict):
    dynamic: DynamicPrices | None = None
    day_ahead: DayAhead | None = None
    time_of_use: TimeOfUse = TimeOfUse()
    feed_in_eur_per_kwh: NonNeg = 0.045
    p2v_price: P2VPrice = P2VPrice()
    export_fraction: Fraction = Field(0.5, description="export limit ÷ contracted power")
    fixed_eur_per_day: dict[str, NonNeg] = Field(
        default_factory=dict, description="daily fixed cost by contracted power (kVA)")

    @field_validator("fixed_eur_per_day")
    @classmethod
    def _kva_keys(cls, fixed: dict) -> dict:
        for key in fixed:
            try:
                ok = 0 < float(key) < float("inf")
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"key {key!r} is not a contracted power; allowed: kVA as "
                                 "text, e.g. \"6.90\"")
        return fixed


def _market_type():
    """The scenario's ``market``: the registered mechanisms' parameter models, told apart by
    ``mechanism`` (each model is its mechanism's one definition of its parameters)."""
    models = tuple(m.params for m in mechanisms.registry().values())
    return Annotated[Union[models], Field(discriminator="mechanism")]  # noqa: UP007


Market = _market_type()
DEFAULT_MECHANISM = next(iter(mechanisms.registry()))  # a market that names no mechanism


def _default_market() -> MarketParams:
    return mechanisms.get(DEFAULT_MECHANISM).params()


class ForecastError(Strict):
    """What really happens differs from the forecast the agents plan with: per period the
    realised load, PV and wind are the forecast × (1 + e), e normal with these relative
    standard deviations, drawn from the scenario's seed; 0 turns an error off."""

    load: NonNeg = 0.0
    pv: NonNeg = 0.0
    wind: NonNeg = 0.0


class Solver(Strict):
    mip_rel_gap: NonNeg = 1e-6
    time_limit_s: float = Field(60.0, gt=0)
    lp_first: bool = True
    centralized_mip_rel_gap: NonNeg = 1e-6
    centralized_time_limit_s: float = Field(900.0, gt=0)
    agent_models: Literal[MODEL_BUILDS] = Field(
        MODEL_BUILDS[0], description="template: each agent's model is filled in from its "
        "structure's model, built once per process; pyomo: built directly, agent by agent "
        "(the reference, slower); see "
        "docs/concepts/agents.md#how-an-agents-model-is-built")
    release_models: bool = Field(
        False, description="let go of each agent's HiGHS instance between its solves and "
        "start the next solve from a new one at the same basis (models from templates): a "
        "faia2021 household keeps 0.18 MB instead of 1.4 MB, at the same speed; an agent "
        "may then pick another of its equally cheap plans, so a market's result can differ "
        "(for communities too large for the memory)")


class GridConfig(Strict):
    """The distribution network the grid simulator checks every period."""

    network: Literal["case33bw", "feeder11", "cigre_lv", "village_1"] = "case33bw"
    ampacity_ka: Annotated[float, Field(gt=0)] | dict[Annotated[int, Field(ge=0)],
                                                         Annotated[float, Field(gt=0)]] \
        | None = Field(None, description="line thermal limit (kA), one value for every line or "
                       "line index → value; null: the network's documented default")
    keep_network_loads: bool = Field(False, description="keep the network case's own loads "
                                     "as background load")
    background_kw_per_bus: NonNeg = 0.0
    buses: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="agent name → bus; the others by a seeded rule")
    v_min_pu: float = Field(0.95, gt=0)
    v_max_pu: float = Field(1.05, gt=0)
    max_loading_pct: float = Field(100.0, gt=0)
    reverse_flow_pct: float = Field(
        100.0, ge=0, le=100, description="the most active power a transformer may feed back "
        "from its LV to its HV side, % of its sn_mva (a DSO's reverse-power limit; 100: as "
        "forward); the AC check counts a period above it as a transformer violation and the "
        "network operator's clearance keeps trades below it")
    power_factor: float = Field(1.0, gt=0, le=1)
    solver: Literal[POWER_FLOW_SOLVERS] = Field(
        POWER_FLOW_SOLVERS[0], description="the AC power flow's solver: lemgrid's "
        "Newton-Raphson on the admittance matrices pandapower builds, results computed on "
        "arrays (pandapower's own where the net has equipment it does not model); "
        "pandapower's Newton-Raphson with its result tables; or lightsim2grid's (all the "
        "same voltages to 1e-6 pu; lightsim2grid is an optional package: pip install "
        "'lemgrid[grid]'); see docs/scenarios.md#the-grid-section")

    @field_validator("solver")
    @classmethod
    def _installed(cls, value):
        import importlib.util

        if value == "lightsim2grid" and importlib.util.find_spec(value) is None:
            raise ValueError(f"{value} is not installed; allowed: "
                             f"{', '.join(POWER_FLOW_SOLVERS[:2])}, or install it "
                             f"(pip install 'lemgrid[grid]')")
        return value

    @field_validator("ampacity_ka", mode="before")
    @classmethod
    def _ampacity(cls, value):
        """A limit that is no limit is one line here (the union would give several); which
        lines the network has is ``_check_network``'s."""
        allowed = "allowed: kA > 0 for every line, {line index: kA > 0, ...} or null"
        if value is None:
            return value
        if not isinstance(value, dict):
            if not _positive(value):
                raise ValueError(f"{_show(value)} is not a thermal limit; {allowed}")
            return value
        for line, i_ka in value.items():
            if not (type(line) is int and line >= 0 or isinstance(line, str) and line.isdigit()):
                raise ValueError(f"key {_show(line)} is not a line index; {allowed}")
            if not _positive(i_ka):
                raise ValueError(f"line {line}: {_show(i_ka)} is not a thermal limit; {allowed}")
        return value

    @model_validator(mode="after")
    def _voltage_band(self):
        if self.v_min_pu >= self.v_max_pu:
            raise ValueError(f"v_min_pu {self.v_min_pu:g} is not below v_max_pu "
                             f"{self.v_max_pu:g}; allowed: v_min_pu < v_max_pu")
        return self


def _positive(value) -> bool:
    """A finite number above 0 (not a boolean, not text)."""
    return type(value) in (int, float) and math.isfinite(value) and value > 0


class Runtime(Strict):
    """How agents run: ``distributed`` (mosaik processes + ZeroMQ coordinator process) or
    ``inprocess`` (everything in the runner's process; same market results)."""

    kind: Literal["distributed", "inprocess"] = "distributed"
    agents_per_process: int = Field(1, ge=1)
    launcher: Literal["fork", "cmd"] = Field("fork", description="fork: pre-bound sockets, "
                                             "one fork per process; cmd: mosaik starts each")
    connect: list[str] = Field(default_factory=list, description="host:port of agent "
                               "simulators already running, one per process group")
    agent_hosts: list[HostPort] = Field(
        default_factory=list, description="host:port of each `lemgrid serve-agents` shard, in "
        "shard order; shard i's process groups listen on consecutive ports from that port")
    agent_service: HostPort | None = Field(
        None, description="NAME:PORT: the agent hosts are the replicas of one service behind "
        "the DNS name NAME (a scaled compose service), shard i the i-th address in order; "
        "instead of agent_hosts")
    agent_service_replicas: int = Field(1, ge=1, le=1000, description="how many replicas "
                                        "agent_service has")
    coordinator: str | None = Field(None, pattern=r"^tcp://[^:]+:\d+$", description="endpoint "
                                    "of a running `lemgrid coordinator`; null: start one")
    grid_host: HostPort | None = Field(None, description="host:port of a running `lemgrid "
                                       "grid`; null: start one")
    connect_retries: int = Field(60, ge=1, description="tries to reach each running simulator")
    connect_retry_s: float = Field(1.0, gt=0, description="seconds between those tries")
    curve_keys: str | None = Field(None, description="folder made by `lemgrid keys`: "
                                   "CURVE-authenticate agents to the coordinator")
    coordinator_host: str = "127.0.0.1"
    round_deadline_s: float = Field(30.0, gt=0)
    realisation_timeout_s: float = Field(60.0, gt=0, description="longest silence between "
                                         "meter readings before the coordinator settles the "
                                         "day without the missing agents")
    registration_timeout_s: float = Field(60.0, gt=0)
    agent_nice: int = Field(10, ge=0, le=19, description="forked agent processes run this "
                            "much below normal CPU priority (0: the same), so that the "
                            "coordinator and mosaik, which every agent waits for, are not "
                            "starved when agents outnumber the cores many times")
    meter_periods: int = Field(4, ge=1, le=100_000, description="periods of meter readings "
                               "an agent sends in one message (1: every period; 4: hourly "
                               "with 15-minute periods; at least the day's periods: once a "
                               "day, after its last period)")
    agent_step: Literal["auto", "period"] = Field(
        "auto", description="auto: an agent process no co-simulator links to steps once a "
        "day (it realises its day after the market at once, the grid reads each period's "
        "power from that day's series); period: every agent process steps every period")
    agent_connection: Literal["auto", "own"] = Field(
        "auto", description="auto: the agents of a process that hosts more than one share "
        "one connection to the coordinator, each message in an envelope naming its agent; "
        "own: every agent its own connection")
    coordinator_timeout_s: float = Field(30.0, gt=0, description="an agent that hears "
                                         "nothing from the coordinator this long (its "
                                         "re-sent message unanswered) declares it gone")


class LoadProfile(Strict):
    total_kwh: NonNeg | None = Field(None, description="sum over the template's agents")
    mean_kwh: NonNeg = 40.0


class PVProfile(Strict):
    total_kwh: NonNeg | None = None
    total_installed_kw: NonNeg | None = None
    mean_installed_kw: NonNeg = 5.0
    yield_kwh_per_kw: NonNeg = 5.7


class Trips(Strict):
    away_periods_total: int | None = Field(None, ge=0, description="EV-periods on the road")
    peak_count: int | None = Field(None, ge=0)
    first_away: HHMM = "06:15"
    last_away: HHMM = "23:30"
    peak_times: list[HHMM] = ["08:15", "19:45"]  # noqa: RUF012 - a pydantic field
    mean_speed_km_per_h: NonNeg = 30.0
    mean_away_periods: NonNeg = 19.5

    @model_validator(mode="after")
    def _window(self):
        first, last = clock_h(self.first_away), clock_h(self.last_away)
        if first > last:
            raise ValueError(f"first_away {self.first_away} is after last_away "
                             f"{self.last_away}; allowed: a window within one day")
        if not self.peak_times or len(set(self.peak_times)) < len(self.peak_times):
            raise ValueError(f"peak_times {self.peak_times} is empty or repeats a time; "
                             "allowed: distinct times, at least one")
        outside = [t for t in self.peak_times if not first <= clock_h(t) <= last]
        if outside:
            raise ValueError(f"peak_times {', '.join(outside)} outside the trip window; "
                             f"allowed: times from {self.first_away} to {self.last_away}")
        return self


KeyDist = str | Choice | Counts
NumDist = float | Uniform


class ProsumerTemplate(Strict):
    kind: Literal["prosumer"]
    count: int = Field(gt=0)
    name_prefix: str = "p"
    battery: KeyDist | None = Field(None, description="battery type key(s); null: none")
    contracted_kva: KeyDist
    battery_initial_soc: Fraction | Uniform = 0.5
    battery_end_soc_min: Fraction | None = Field(None, description="null: the initial SoC")
    load: load_field(LoadProfile) = LoadProfile()
    pv: pv_field(PVProfile) = PVProfile()

    @field_validator("battery_initial_soc")
    @classmethod
    def _soc(cls, value):
        return _check_range(value, 0, 1, " for a state of charge")


V2G_DISCHARGE = ("V2G: the EV may discharge its battery into the grid while plugged in "
                 "(never while charging), sold at the feed-in price")
V2G_DISCHARGE_MAX = ("kW the battery may discharge with V2G; null: the EV's charge limit, "
                     "min(the model's AC charge kW, contracted kVA); its export at the "
                     "connection is at most min(this, contracted kVA); only with discharge: "
                     "true")


def _check_discharge(ev):
    """``discharge_max_kw`` only where the EV discharges."""
    if ev.discharge_max_kw is not None and not ev.discharge:
        raise ValueError(f"discharge_max_kw: {ev.discharge_max_kw:g} is given but discharge "
                         "is false; allowed: discharge_max_kw only with discharge: true")
    return ev


class EVTemplate(Strict):
    kind: Literal["ev"]
    count: int = Field(gt=0)
    name_prefix: str = "ev"
    model: KeyDist
    contracted_kva: KeyDist
    initial_soc: Fraction | Uniform = 0.6
    end_soc_min: Fraction | None = Field(None, description="null: the initial SoC")
    trips: Trips = Trips()
    discharge: bool = Field(False, description=V2G_DISCHARGE)
    discharge_max_kw: NonNeg | None = Field(None, description=V2G_DISCHARGE_MAX)

    @field_validator("initial_soc", "end_soc_min")
    @classmethod
    def _soc(cls, value):
        return _check_range(value, EV_SOC_MIN_FRAC, 1,
                            " (an EV is never below 10 % of its battery)")

    @model_validator(mode="after")
    def _discharge(self):
        return _check_discharge(self)


class ExplicitProsumer(Strict):
    kind: Literal["prosumer"]
    name: str
    load_kw: list[NonNeg]
    pv_kw: list[NonNeg]
    battery: str | None = None
    contracted_kva: str
    battery_initial_soc: Fraction = 0.5
    battery_end_soc_min: Fraction | None = None


class ExplicitEV(Strict):
    kind: Literal["ev"]
    name: str
    model: str
    away: list[bool]
    trip_kwh: list[NonNeg]
    contracted_kva: str
    initial_soc: Fraction = 0.6
    end_soc_min: Fraction | None = None
    discharge: bool = Field(False, description=V2G_DISCHARGE)
    discharge_max_kw: NonNeg | None = Field(None, description=V2G_DISCHARGE_MAX)

    @field_validator("initial_soc", "end_soc_min")
    @classmethod
    def _soc(cls, value):
        return _check_range(value, EV_SOC_MIN_FRAC, 1,
                            " (an EV is never below 10 % of its battery)")

    @model_validator(mode="after")
    def _discharge(self):
        return _check_discharge(self)


class GeneratorConfig(Strict):
    """A dispatchable generator (docs/models.md#generator): output in [p_min_kw, p_max_kw] in
    every period (no on/off: p_min_kw > 0 makes it must-run) at ½·a·g² + b·g + c €/h."""

    p_min_kw: NonNeg = 0.0
    p_max_kw: NonNeg
    a_eur_per_kw2h: NonNeg = Field(0.0, description="a of ½·a·g² (€/kW²h)")
    b_eur_per_kwh: float = Field(0.0, description="b of b·g (€/kWh)")
    c_eur_per_h: float = Field(0.0, description="c, paid every hour (€/h)")

    @model_validator(mode="after")
    def _ordered(self):
        if self.p_min_kw > self.p_max_kw:
            raise ValueError(f"p_min_kw: {self.p_min_kw:g} is above p_max_kw "
                             f"{self.p_max_kw:g}; allowed: p_min_kw ≤ p_max_kw")
        return self


class ChpConfig(Strict):
    """A CHP unit (docs/models.md#chp-unit; Vahidinasab et al., Fig. 12.9): power and heat
    inside a convex polygon, at ½·a_p·p² + b_p·p + ½·a_h·h² + b_h·h + c €/h."""

    vertices_kw: list[tuple[NonNeg, NonNeg]] = Field(
        description="the feasible polygon's vertices [power kW_el, heat kW_th] in order "
        "(clockwise or counter-clockwise), each once; at least 3, convex")
    a_p_eur_per_kw2h: NonNeg = 0.0
    b_p_eur_per_kwh: float = 0.0
    a_h_eur_per_kw2h: NonNeg = 0.0
    b_h_eur_per_kwh: float = 0.0
    c_eur_per_h: float = 0.0


PER_PERIOD = ("one value for every period, or one per period of the run "
              "(horizon.days × horizon.periods)")


class ExplicitBuilding(Strict):
    """A building that produces (docs/models.md#producing-buildings-generator-chp-unit-and-heat):
    a load, a heat demand, a generator and a CHP unit; no PV, wind, battery, flexible loads
    or consumer demand limit."""

    kind: Literal["building"]
    name: str
    load_kw: list[NonNeg] = Field(min_length=1, description="kW, " + PER_PERIOD)
    heat_demand_kw: list[NonNeg] | None = Field(
        None, min_length=1, description="kW_th, " + PER_PERIOD + "; null: none. A CHP unit "
        "meets it (or a heat market, where one is open)")
    generator: GeneratorConfig | None = None
    chp: ChpConfig | None = None
    buy_max_kw: NonNeg | None = Field(None, description="connection import limit; null: the "
                                      "peak load (after community.scale)")
    sell_max_kw: NonNeg | None = Field(None, description="connection export limit; null: the "
                                       "generator's and the CHP unit's most power together")
    contracted_kva: str | None = Field(None, description="a key of tariffs.fixed_eur_per_day "
                                       "(its fixed cost); null: no fixed cost")


LINK_TARGET = r"^(agent:\S+|grid|bus:\d+|line:\d+|cosim:[A-Za-z]\w*/\S+|template:\S+)$"
LINK_TARGETS = ("agent:NAME, grid (the network's totals), bus:N or line:N (a bus or line of "
                "the network by its index), cosim:NAME/ENTITY (an entity of another "
                "co-simulator, named as in entity), or with each: template:N (template N's "
                "agents, N its index or name_prefix) or a list of these")
ENTITY_REF = ("an index into the co-simulator's entities (0), an index path to a child "
              "(0/3: entity 0's child 3), or an entity's eid (House_3)")


class CosimLink(Strict):
    """Connect one of the co-simulator's entities (``entity``), or every entity of a type
    (``each``), with agents, the grid simulator or another co-simulator's entities: ``to``
    sends the entity's attributes there, ``from`` brings theirs to the entity. With
    ``each``, the entities are paired in order with the targets (a list or a template's
    agents; extra entities stay unlinked), or all go to one target. Values are converted
    where both attribute names state a unit (``P[MW]`` → ``pv_kw``: × 1000), by ``unit``
    (the unit of this co-simulator's attributes in the link) or by ``scale``."""

    entity: int | str | None = Field(None, description=ENTITY_REF + "; null: 0 (or each)")
    each: str | None = Field(None, pattern=r"^\S+$", description="every entity of this type "
                             "(model name) the co-simulator created, children included, in "
                             "order")
    to: str | list[str] | None = Field(None, description=LINK_TARGETS)
    from_: str | list[str] | None = Field(None, alias="from", description=LINK_TARGETS)
    attrs: dict[str, str] = Field(min_length=1, description="source attribute → destination "
                                  "attribute")
    unit: str | None = Field(None, description="the unit of this co-simulator's attributes "
                             "in the link (W, kW, MW, W/m2, ...); null: from their names")
    scale: float | None = Field(None, description="factor every value is multiplied by "
                                "(replaces unit conversion); null: by units")

    @model_validator(mode="after")
    def _one_direction(self):
        if (self.to is None) == (self.from_ is None):
            raise ValueError("give exactly one of 'to' and 'from'")
        if self.each is not None and self.entity is not None:
            raise ValueError("give entity or each, not both")
        if self.unit is not None and self.scale is not None:
            raise ValueError("give unit or scale, not both")
        if self.scale is not None:
            check_scale(self.scale)
        if self.unit is not None and known(self.unit) is None:
            raise ValueError(f"unit: {self.unit!r} is not a unit lemgrid knows; allowed: "
                             f"{allowed_units()}")
        if not self.targets:
            raise ValueError(f"{self.field}: an empty list; allowed: {LINK_TARGETS}")
        for target in self.targets:
            if not re.match(LINK_TARGET, target):
                raise ValueError(f"{self.field}: {target!r} is not a link target; allowed: "
                                 f"{LINK_TARGETS}")
        if self.each is None and (isinstance(self.target, list)
                                  or self.target.startswith("template:")):
            raise ValueError(f"{self.field}: a list or template takes each (one entity per "
                             "target)")
        if (isinstance(self.entity, str) and not self.entity.strip()) or (
                isinstance(self.entity, int) and self.entity < 0):
            raise ValueError(f"entity: {self.entity!r}; allowed: {ENTITY_REF}")
        for target in self.targets:
            for attr in self.attrs:
                self.factor(attr, target)
        return self

    def factor(self, attr: str, target: str) -> float:
        """What the values of source attribute ``attr`` are multiplied by on their way
        to (``from``: from) ``target``; ValueError naming the attribute where the units
        do not fit."""
        mine = End(attr if self.to is not None else self.attrs[attr], False,
                   self.stated_unit)
        theirs = End(self.attrs[attr] if self.to is not None else attr,
                     not target.startswith("cosim:"))
        src, dest = (mine, theirs) if self.to is not None else (theirs, mine)
        try:
            return conversion(src, dest, self.scale)
        except ValueError as exc:
            raise ValueError(f"attrs.{attr}: {exc}") from None

    @property
    def target(self) -> str | list[str]:
        return self.to if self.to is not None else self.from_

    @property
    def targets(self) -> list[str]:
        return self.target if isinstance(self.target, list) else [self.target]

    @property
    def field(self) -> str:
        return "to" if self.to is not None else "from"

    @property
    def stated_unit(self) -> str | None:
        return None if self.unit is None else known(self.unit)


class Cosimulator(Strict):
    """Any mosaik simulator, started the three ways mosaik knows, its entities created and
    linked to agents or the grid. In string values, ``{out}`` is the run's results folder
    and a relative ``path``, ``*_path`` or ``*file`` is taken from the scenario file's
    folder; such a file must exist unless the simulator writes it (under ``{out}``, or a
    key starting with ``out``) or is connected (it reads its own host's files). The module
    and class of ``python``, and the module of a ``cmd`` ``%(python)s -m MODULE``, must be
    importable here."""

    name: str = Field(pattern=r"^[A-Za-z]\w*$")
    python: str | None = Field(None, description="module:Class, in the runner's process")
    cmd: str | None = Field(None, description="command; %(python)s and %(addr)s as in mosaik")
    connect: HostPort | None = Field(None, description="a simulator already running")
    sim_params: dict = Field(default_factory=dict, description="passed to its init")
    model: str
    entities: list[dict] = Field(default_factory=lambda: [{}], min_length=1,
                                 description="one entity per item: its model parameters")
    links: list[CosimLink] = Field(default_factory=list)

    @field_validator("sim_params", "entities")
    @classmethod
    def _named_parameters(cls, value):
        for params in value if isinstance(value, list) else [value]:
            bad = next((k for k in params if not isinstance(k, str)), None)
            if bad is not None:
                raise ValueError(f"parameter {bad!r} is not a name; allowed: parameter names "
                                 "as text")
        return value

    @model_validator(mode="after")
    def _one_start(self):
        given = [k for k in ("python", "cmd", "connect") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of python, cmd, connect (got "
                             f"{', '.join(given) or 'none'})")
        for i, link in enumerate(self.links):
            first = entity_index(link.entity)
            if first is not None and first >= len(self.entities):
                raise ValueError(f"links.{i}.entity: {link.entity} but only "
                                 f"{len(self.entities)} entities")
        return self

    def start(self) -> dict:
        """The mosaik sim_config entry."""
        return {k: getattr(self, k) for k in ("python", "cmd", "connect") if getattr(self, k)}


class FlexibleLoadSpec(Strict):
    """A flexible load the HEMS may shift: it runs ``duration_h`` inside its window."""

    name: str = Field(pattern=r"^\w+$")
    rating_kw: float = Field(gt=0)
    duration_h: float = Field(gt=0)
    window: tuple[HHMM24, HHMM24]


FLEXIBLE = [k for k, a in APPLIANCES.items() if a.flexible]
# template kind -> the kind of agent it makes
AGENT_KIND = {"network_loads": "prosumer", "bus_profiles": "prosumer"}


class BuildingTemplate(Strict):
    """Active buildings (docs/models.md#building): non-flexible load, flexible loads, PV, a
    small wind turbine, a battery, a consumer demand limit and a power injection limit."""

    kind: Literal["building"]
    count: int = Field(gt=0)
    name_prefix: str = "h"
    contracted_kva: KeyDist
    load_kwh_per_day: NumDist = Field(8.0, description="mean non-flexible energy a day")
    load: StandardLoad | None = Field(None, description="the non-flexible load from a "
                                      "standard profile instead (replaces load_kwh_per_day)")
    pv: PVWatts | None = Field(None, description="PV by PVWatts instead (replaces pv_kw)")
    wind: WindTurbine | None = Field(None, description="a wind turbine by windpowerlib "
                                     "instead (replaces wind_kw)")
    flexible: list[str | FlexibleLoadSpec] = Field(
        default_factory=list, description="catalogue keys (" + ", ".join(FLEXIBLE)
        + ") or loads of their own; each building has all of them")
    pv_kw: NumDist = Field(0.0, description="installed PV")
    pv_yield_kwh_per_kw_day: NonNeg = 4.5
    wind_kw: NumDist = Field(0.0, description="rated power of the wind turbine")
    wind_mean_speed_m_s: NonNeg = 4.0
    battery: KeyDist | None = None
    battery_initial_soc: Fraction | Uniform = 0.5
    battery_end_soc_min: Fraction | None = None
    cdl_kw: NumDist = Field(description="consumer demand limit: import above it costs "
                            "market.cdl_factor × the price")
    pil_kw: NumDist | None = Field(None, description="power injection limit (export cap); "
                                   "null: none")
    heat_demand_kw: NumDist = Field(0.0, description="heat demand (kW_th), the same in every "
                                    "period")
    generator: GeneratorConfig | None = Field(None, description="each building has one")
    chp: ChpConfig | None = Field(None, description="each building has one")

    @field_validator("load_kwh_per_day", "pv_kw", "wind_kw", "cdl_kw", "pil_kw",
                     "heat_demand_kw")
    @classmethod
    def _non_negative(cls, value):
        return _check_range(value, 0)

    @field_validator("battery_initial_soc")
    @classmethod
    def _soc(cls, value):
        return _check_range(value, 0, 1, " for a state of charge")


class NetworkLoadsTemplate(Strict):
    """One consumer per load of the grid's network, on that load's bus (a prosumer agent
    named ``<name_prefix><bus>``): its load is the network's published load × an hourly
    shape (``shape``, 24 factors), with PV where ``pv_kw`` names its bus (seeded clear-sky
    days at ``pv_yield_kwh_per_kw_day``); it may import ``import_factor`` × its published
    load and export its PV. No fixed cost."""

    kind: Literal["network_loads"]
    name_prefix: str = "c"
    shape: Annotated[list[NonNeg], Field(min_length=24, max_length=24)]
    import_factor: float = Field(2.0, ge=1, description="connection import limit ÷ the "
                                 "published load")
    pv_kw: dict[Annotated[int, Field(ge=0)], NonNeg] = Field(
        default_factory=dict, description="bus → installed PV (kW)")
    pv_yield_kwh_per_kw_day: NonNeg = 4.5


def read_hourly_kw(path: Path, column: str) -> tuple[float, ...]:
    """The 24 values (kW, hours 0–23) of `column` in the CSV file at `path` (a header row,
    then one row per hour; a column ``Hour``, if there is one, must count 0 to 23)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc}); allowed: a CSV file, "
                         "a relative path taken from the scenario file's folder") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_PROFILE_BYTES >> 20} MiB; allowed: "
                         f"{HOURS} rows of hourly values")
    try:
        rows = list(csv.reader(data.decode("utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a UTF-8 CSV file ({exc}); allowed: a CSV file with a "
                         "header row") from None
    header, rows = (rows[0], rows[1:]) if rows else ([], [])
    if column not in header:
        raise ValueError(f"{path} has no column {column!r}; allowed: "
                         f"{', '.join(map(repr, header)) or 'none (the file is empty)'}")
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) != HOURS:
        raise ValueError(f"{path} has {len(rows)} rows of values; allowed: {HOURS}, one per "
                         "hour from 00:00")
    return tuple(_profile_value(path, header, row, k, column) for k, row in enumerate(rows))


def _profile_value(path: Path, header: list[str], row: list[str], k: int, column: str) -> float:
    """Row `k`'s kW in `column`; its ``Hour`` (if the file has one) must be k."""
    cells = dict(zip(header, row))
    if "Hour" in cells and cells["Hour"].strip() not in (str(k), f"{k}.0"):
        raise ValueError(f"{path}: row {k + 1} is hour {cells['Hour']!r}; allowed: hours 0 "
                         f"to {HOURS - 1} in order")
    text = cells.get(column, "")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{path}: hour {k}, column {column!r}: {text!r} is not a power; "
                         "allowed: kW ≥ 0")
    return value


class HourlyProfile(Strict):
    """24 hourly values in kW, one column of a CSV file (a header row, then hours 0–23);
    each hour is held for the periods it spans (a period that spans several hours gets
    their mean)."""

    path: str = Field(description="the CSV file; a relative path is taken from the scenario "
                      "file's folder")
    column: str = Field(description="the column of the header row")
    _kw: tuple[float, ...] = PrivateAttr(())

    @model_validator(mode="after")
    def _read(self):
        self._kw = read_hourly_kw(Path(self.path), self.column)
        return self

    @property
    def kw(self) -> tuple[float, ...]:
        """The 24 values, hours 0–23."""
        return self._kw


class BusPlacement(Strict):
    """Buses given by number: a load on each of ``load_buses``, PV on each of
    ``pv_buses``; a bus in both has both."""

    load_buses: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    pv_buses: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self):
        for field in ("load_buses", "pv_buses"):
            buses = getattr(self, field)
            twice = sorted({b for b in buses if buses.count(b) > 1})
            if twice:
                raise ValueError(f"{field}: bus {twice[0]} is given twice; allowed: each bus "
                                 "once")
        if not self.load_buses and not self.pv_buses:
            raise ValueError("no bus given; allowed: at least one bus in load_buses or "
                             "pv_buses")
        return self


class BusProfilesTemplate(Strict):
    """Agents on buses of the grid's network with hourly profiles from CSV files (the
    community of Vieira Fernandes et al. 2024, docs/mechanisms/clearance.md): a prosumer
    agent named ``<name_prefix><bus>`` per bus, a consumer (the ``load`` profile, no PV) on a load bus, a PV-only prosumer (the ``pv``
    profile, no load) on a PV bus, both in one agent on a bus that is both. Every load bus
    has the same profile, every PV bus the same. No battery, no fixed cost; retail prices
    from ``tariffs``."""

    kind: Literal["bus_profiles"]
    name_prefix: str = "b"
    placement: Literal["leaves"] | BusPlacement = Field(
        "leaves", description="leaves: the authors' rule (grid.community_lv.place_community): "
        "the degree-1 buses of the network graph in graph order, loads on every other leaf "
        "from the first, PV on the others, half the leaves each; or {load_buses: [...], "
        "pv_buses: [...]}")
    load: HourlyProfile = Field(description="kW of every load bus, hour by hour")
    pv: HourlyProfile = Field(description="kW of every PV bus, hour by hour")
    import_kw: NonNeg | None = Field(
        None, description="connection import limit of every agent; null: twice the agent's "
        "peak load over the run (after community.scale), so that it never binds")
    export_kw: NonNeg | None = Field(
        None, description="connection export limit of every agent; null: twice the agent's "
        "peak PV over the run (after community.scale), so that it never binds")


Template = Annotated[ProsumerTemplate | EVTemplate | BuildingTemplate | NetworkLoadsTemplate
                     | BusProfilesTemplate, Field(discriminator="kind")]
Explicit = Annotated[ExplicitProsumer | ExplicitEV | ExplicitBuilding,
                     Field(discriminator="kind")]


class Community(Strict):
    """Settings that apply to every agent of the scenario."""

    scale: NonNeg = Field(1.0, description="multiplies every agent's load and PV profile "
                          "(prosumer, building, network_loads and bus_profiles templates, "
                          "explicit prosumers and buildings) after they are drawn or read; EV "
                          "trip energy is not a profile and is left alone, and so are "
                          "buildings' wind, flexible loads, heat demand, generators and CHP "
                          "units and every connection, CDL and PIL limit given in kW")
