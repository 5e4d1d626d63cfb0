"""The scenario schema: one strict pydantic model; ``scenario.schema.json`` is generated
from it (``python -m lemgrid.scenarios.schema``) and checked in.

Unknown keys are errors. Loading reports every problem as one line naming the file,
the field path, what is wrong and what is allowed.
"""

from __future__ import annotations

import ast
import collections
import csv
import functools
import importlib.util
import inspect
import json
import math
import re
from pathlib import Path
from typing import Annotated, Literal, NamedTuple, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from lemgrid.agents.data import polygon_problem
from lemgrid.coordinator.mechanisms.base import MarketParams
from lemgrid.grid.community_lv import place_community
from lemgrid.grid.networks import NETWORKS, load_network, published_loads
from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.catalog import APPLIANCES, BATTERY_TYPES, EV_MODELS, clock_h

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")
HOURS = 24  # rows of an hourly profile file
MAX_PROFILE_BYTES = 1024 * 1024  # an hourly profile file is at most this big
MAX_FILE_BYTES = 32 * 1024 * 1024  # a scenario file is at most this big
MAX_YAML_DEPTH = 64  # nesting levels of a scenario file
MAX_YAML_NODES = 1_000_000  # YAML aliases may expand a file to at most this many values
MAX_SERIES_VALUES = 50_000_000  # agents × days × periods of a run
MAX_ERROR_LINES = 20  # lines of one report; the rest are counted
EV_SOC_MIN_FRAC = 0.10  # RECON: an EV is never driven below 10 % of its usable capacity
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="time as HH:MM")]
HHMM24 = Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$",
                              description="time as HH:MM, 24:00 the end of the day")]
NonNeg = Annotated[float, Field(ge=0)]
HostPort = Annotated[str, Field(pattern=r"^[^:\s]+:\d+$", description="host:port")]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Uniform(Strict):
    """A value drawn uniformly from [lo, hi] with the scenario's seed."""

    uniform: tuple[float, float]

    @model_validator(mode="after")
    def _ordered(self):
        lo, hi = self.uniform
        if lo > hi:
            raise ValueError(f"uniform: [{lo:g}, {hi:g}] has its low above its high; allowed: "
                             "[low, high] with low ≤ high")
        return self


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
    peak_times: list[HHMM] = ["08:15", "19:45"]
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
    load: LoadProfile = LoadProfile()
    pv: PVProfile = PVProfile()

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
    """A dispatchable generator (MODELS.md §C): output in [p_min_kw, p_max_kw] in every
    period (no on/off: p_min_kw > 0 makes it must-run) at ½·a·g² + b·g + c €/h."""

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
    """A CHP unit (MODELS.md §C, Fig. 12.9): power and heat inside a convex polygon, at
    ½·a_p·p² + b_p·p + ½·a_h·h² + b_h·h + c €/h."""

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
    """A building that produces (MODELS.md §C): a load, a heat demand, a generator and a
    CHP unit; no PV, wind, battery, flexible loads or consumer demand limit."""

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


LINK_TARGET = r"^(agent:\S+|grid|bus:\d+|line:\d+)$"
LINK_TARGETS = ("agent:NAME, grid (the network's totals), bus:N or line:N (a bus or line of "
                "the network by its index)")


class CosimLink(Strict):
    """Connect one of the co-simulator's entities with an agent or the grid simulator:
    ``to`` sends the entity's attributes there, ``from`` brings theirs to the entity."""

    entity: int = Field(0, ge=0, description="index into the co-simulator's entities")
    to: str | None = Field(None, pattern=LINK_TARGET, description=LINK_TARGETS)
    from_: str | None = Field(None, alias="from", pattern=LINK_TARGET, description=LINK_TARGETS)
    attrs: dict[str, str] = Field(min_length=1, description="source attribute → destination "
                                  "attribute")

    @model_validator(mode="after")
    def _one_direction(self):
        if (self.to is None) == (self.from_ is None):
            raise ValueError("give exactly one of 'to' and 'from'")
        return self


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
            if link.entity >= len(self.entities):
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
    """Active buildings (MODELS.md §E): non-flexible load, flexible loads, PV, a small
    wind turbine, a battery, a consumer demand limit and a power injection limit."""

    kind: Literal["building"]
    count: int = Field(gt=0)
    name_prefix: str = "h"
    contracted_kva: KeyDist
    load_kwh_per_day: NumDist = Field(8.0, description="mean non-flexible energy a day")
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
    community of MODELS.md §D): a prosumer agent named ``<name_prefix><bus>`` per bus, a
    consumer (the ``load`` profile, no PV) on a load bus, a PV-only prosumer (the ``pv``
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


class Scenario(Strict):
    name: str
    description: str = ""
    seed: int = Field(ge=0)
    horizon: Horizon = Horizon()
    tariffs: Tariffs = Tariffs()
    market: Market = Field(default_factory=_default_market)
    solver: Solver = Solver()
    grid: GridConfig = GridConfig()
    runtime: Runtime = Runtime()
    forecast_error: ForecastError = ForecastError()
    community: Community = Community()
    templates: list[Template] = []
    agents: list[Explicit] = []
    cosimulators: list[Cosimulator] = Field(default_factory=list, description="other mosaik "
                                            "simulators, linked to agents or the grid")
    _source: str = PrivateAttr("scenario")  # the file it came from, for error lines

    @property
    def source(self) -> str:
        return self._source

    @model_validator(mode="before")
    @classmethod
    def _named_mechanism(cls, raw):
        """A market that names no mechanism has the default one."""
        market = raw.get("market") if isinstance(raw, dict) else None
        if isinstance(market, dict) and "mechanism" not in market:
            raw = {**raw, "market": {"mechanism": DEFAULT_MECHANISM, **market}}
        return raw

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if name.strip() in ("", ".", "..") or re.search(r"[/\\\x00-\x1f]", name):
            raise ValueError(f"{name!r} cannot name the results folder results/<name>; "
                             "allowed: a name without '/', '\\' or control characters")
        return name

    @model_validator(mode="after")
    def _cross_checks(self):
        problems = [*_check_keys(self), *_check_lengths(self), *_check_cosims(self),
                    *_check_flexible(self), *_check_mechanism(self), *_check_times(self),
                    *_check_trips(self), *_check_network(self), *_check_chp(self)]
        problems = problems or _check_size(self) or _check_names(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _keys(dist) -> list[str]:
    if dist is None:
        return []
    if isinstance(dist, str):
        return [dist]
    return list(dist.choice if isinstance(dist, Choice) else dist.counts)


def _check_keys(s: Scenario) -> list[str]:
    kva = list(s.tariffs.fixed_eur_per_day)
    out = []
    for where, items in (("templates", s.templates), ("agents", s.agents)):
        for i, a in enumerate(items):
            equipment = a.model if a.kind == "ev" else getattr(a, "battery", None)
            known = EV_MODELS if a.kind == "ev" else BATTERY_TYPES
            for key in _keys(equipment):
                if key not in known:
                    out.append(f"{where}.{i}: unknown {'EV model' if a.kind == 'ev' else 'battery'} "
                               f"{key!r}; allowed: {', '.join(known)}")
            for key in _keys(getattr(a, "contracted_kva", None)):
                if key not in kva:
                    out.append(f"{where}.{i}.contracted_kva: {key!r} has no entry in "
                               f"tariffs.fixed_eur_per_day; allowed: {', '.join(kva) or 'none'}")
            for field in ("battery", "model", "contracted_kva"):
                dist = getattr(a, field, None)
                if isinstance(dist, Counts) and sum(dist.counts.values()) != a.count:
                    out.append(f"{where}.{i}.{field}.counts: add up to "
                               f"{sum(dist.counts.values())}, must equal count {a.count}")
    return out


def _check_flexible(s: Scenario) -> list[str]:
    """Flexible loads name catalogue appliances and fit their windows."""
    out = []
    for i, tpl in enumerate(s.templates):
        for j, load in enumerate(getattr(tpl, "flexible", [])):
            where = f"templates.{i}.flexible.{j}"
            if isinstance(load, str):
                if load not in FLEXIBLE:
                    out.append(f"{where}: unknown flexible appliance {load!r}; allowed: "
                               f"{', '.join(FLEXIBLE)}")
                continue
            start, end = (clock_h(w) for w in load.window)
            if end <= start:
                out.append(f"{where}.window: {load.window[0]}–{load.window[1]} must end after "
                           "it starts, within the day")
            elif end - start < load.duration_h - 1e-9:
                out.append(f"{where}: {load.name} runs {load.duration_h:g} h but its window "
                           f"{load.window[0]}–{load.window[1]} is {end - start:g} h")
    return out


def _check_chp(s: Scenario) -> list[str]:
    """CHP polygons are convex polygons (``agents.data.polygon_problem``)."""
    out = []
    for where, items in (("templates", s.templates), ("agents", s.agents)):
        for i, a in enumerate(items):
            chp = getattr(a, "chp", None)
            if chp is None or not (problem := polygon_problem(chp.vertices_kw)):
                continue
            name = a.name if where == "agents" else f"{a.name_prefix}*"
            out.append(f"{where}.{i}.chp.vertices_kw: CHP polygon of {name} {problem}")
    return out


def _check_mechanism(s: Scenario) -> list[str]:
    """The mechanism serves every agent kind of the scenario, has the mode asked for, its
    network check is one, and its own problems (its plug-in's ``scenario_problems``)."""
    m = s.market
    mech = mechanisms.get(m.mechanism)
    if m.mode == "centralized" and mech.run_centralized is None:
        having = [n for n, x in mechanisms.registry().items() if x.run_centralized]
        return [(f"market.mode: {mech.name} has no centralized mode (use decentralized); "
                 f"mechanisms with one: {', '.join(having) or 'none'}")]
    out = []
    if m.network_check != "none":
        checks = mechanisms.network_checks()
        if m.network_check not in checks:
            out.append(f"market.network_check: {m.network_check!r} is not a network check; "
                       f"allowed: none, {', '.join(checks)}")
        elif m.mode == "centralized":
            out.append(f"market.network_check: {m.network_check} needs a decentralized market")
        elif m.model_copy(update={"network_check": "none"}).operator_takes_part():
            out.append(f"market.network_check: in this {mech.name} market the network "
                       "operator already takes part; the check is for markets without it")
    kinds = {AGENT_KIND.get(a.kind, a.kind) for a in [*s.templates, *s.agents]}
    wrong = sorted(kinds - mech.kinds)
    if wrong:
        out.append(f"market.mechanism: {mech.name} does not serve {', '.join(wrong)} agents "
                   f"(it serves {', '.join(sorted(mech.kinds))}); mechanisms for this "
                   f"community: {', '.join(mechanisms.serving(kinds)) or 'none'}")
    if not out and mech.scenario_problems is not None:
        out += mech.scenario_problems(s)
    return out


def _check_times(s: Scenario) -> list[str]:
    """Clock times the community builder turns into periods start a period."""
    step = s.horizon.period_minutes
    times = []
    if s.tariffs.dynamic is None and s.tariffs.day_ahead is None:
        tou = s.tariffs.time_of_use
        times += [("tariffs.time_of_use.peak_start", tou.peak_start),
                  ("tariffs.time_of_use.peak_end", tou.peak_end)]
    for i, tpl in enumerate(s.templates):
        if tpl.kind == "ev":
            where, tr = f"templates.{i}.trips", tpl.trips
            times += [(f"{where}.first_away", tr.first_away), (f"{where}.last_away", tr.last_away)]
            times += [(f"{where}.peak_times.{j}", t) for j, t in enumerate(tr.peak_times)]
    return [f"{where}: {t} is not the start of a {step}-minute period; allowed: times on "
            f"the horizon's {step}-minute grid (00:00, {step // 60:02d}:{step % 60:02d}, ...)"
            for where, t in times if round(clock_h(t) * 60) % step]


def _check_trips(s: Scenario) -> list[str]:
    """An EV template's trips fit its EVs and its trip window (``generate_ev_trips``)."""
    out, step = [], s.horizon.period_minutes
    for i, tpl in enumerate(s.templates):
        if tpl.kind != "ev":
            continue
        tr, where = tpl.trips, f"templates.{i}.trips"
        peak = round(0.9 * tpl.count) if tr.peak_count is None else tr.peak_count
        total = round(tr.mean_away_periods * tpl.count) if tr.away_periods_total is None \
            else tr.away_periods_total
        if total == 0:
            continue
        if not 1 <= peak <= tpl.count:
            out.append(f"{where}.peak_count: {peak} EVs away at the peaks but the template has "
                       f"{tpl.count}; allowed: 1 to {tpl.count}")
            continue
        first, last = (round(clock_h(t) * 60) for t in (tr.first_away, tr.last_away))
        if first % step or last % step:
            continue  # _check_times says so
        lo, hi = peak * len(set(tr.peak_times)), peak * ((last - first) // step + 1)
        if not lo <= total <= hi:
            field = "away_periods_total" if tr.away_periods_total is not None \
                else "mean_away_periods"
            out.append(f"{where}.{field}: {total} EV-periods away do not fit {peak} EVs at each "
                       f"of {len(set(tr.peak_times))} peak(s) in the {tr.first_away}–"
                       f"{tr.last_away} window; allowed: {lo} to {hi} EV-periods")
    return out


def _check_size(s: Scenario) -> list[str]:
    """A run's per-period series fit in memory: agents × days × periods is bounded."""
    agents = agent_count(s)
    values = max(agents, 1) * s.horizon.days * s.horizon.periods
    if values <= MAX_SERIES_VALUES:
        return []
    where = "horizon.days" if s.horizon.days * s.horizon.periods > MAX_SERIES_VALUES \
        else "templates"
    return [(f"{where}: {agents} agents × {s.horizon.days} days × {s.horizon.periods} periods "
            f"= {values:.3g} values per series; allowed: at most {MAX_SERIES_VALUES:,}")]


def agent_count(s: Scenario) -> int:
    """How many agents the scenario makes (without naming them: a count may be huge)."""
    sizes = {"network_loads": lambda t: len(published_loads(s.grid.network)),
             "bus_profiles": lambda t: len(bus_profile_agents(s, t))}
    return sum(sizes.get(t.kind, lambda t: t.count)(t) for t in s.templates) + len(s.agents)


def agent_names(s: Scenario) -> list[str]:
    """Every agent's name, as the community builder gives them (templates, then agents)."""
    names = []
    for tpl in s.templates:
        if tpl.kind == "network_loads":
            names += [name for name, _ in network_consumers(s, tpl)]
            continue
        if tpl.kind == "bus_profiles":
            names += [a.name for a in bus_profile_agents(s, tpl)]
            continue
        width = len(str(tpl.count))
        names += [f"{tpl.name_prefix}{k + 1:0{width}d}" for k in range(tpl.count)]
    return names + [a.name for a in s.agents]


def network_consumers(s: Scenario, tpl: NetworkLoadsTemplate) -> list[tuple[str, int]]:
    """(name, bus) of each consumer a network_loads template makes: one per bus with a
    published load of the scenario's network."""
    width = len(str(max((b for b, _, _ in published_loads(s.grid.network)), default=0)))
    return [(f"{tpl.name_prefix}{b:0{width}d}", b) for b, _, _ in published_loads(s.grid.network)]


@functools.cache
def _plain_network(network: str):
    """A registered network as its builder makes it without options, built once per
    process (validation reads its tables and graph; nothing may change it)."""
    return load_network(network)


@functools.cache
def leaf_placement(network: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(load buses, PV buses) of the authors' rule on a registered network."""
    placement = place_community(_plain_network(network))
    return placement.load_buses, placement.pv_buses


class BusAgent(NamedTuple):
    name: str
    bus: int
    load: bool  # the template's load profile
    pv: bool  # the template's PV profile


def bus_profile_agents(s: Scenario, tpl: BusProfilesTemplate) -> list[BusAgent]:
    """The agents a bus_profiles template makes: the PV buses in placement order, then the
    buses with a load only (the order in which the authors' matching breaks ties)."""
    if tpl.placement == "leaves":
        load_buses, pv_buses = leaf_placement(s.grid.network)
    else:
        load_buses, pv_buses = tpl.placement.load_buses, tpl.placement.pv_buses
    return [BusAgent(f"{tpl.name_prefix}{bus}", bus, bus in load_buses, bus in pv_buses)
            for bus in dict.fromkeys([*pv_buses, *load_buses])]


PLURAL = {"bus": "buses", "line": "lines"}


def _spans(indices) -> str:
    """Sorted integers as runs: ``0–10, 12–20``."""
    runs: list[list[int]] = []
    for k in sorted(indices):
        if runs and k == runs[-1][1] + 1:
            runs[-1][1] = k
        else:
            runs.append([k, k])
    return ", ".join(f"{a}–{b}" if b > a else f"{a}" for a, b in runs) or "none"


def _no_such(network: str, kind: str, index: int) -> str | None:
    """What is wrong with bus or line ``index`` of ``network`` (its pandapower index, as the
    grid simulator names them), None if the network has it."""
    known = {int(k) for k in getattr(_plain_network(network), kind).index}
    if index in known:
        return None
    return f"{network} has no {kind} {index}; allowed: {PLURAL[kind]} {_spans(known)}"


def _link_targets(c: Cosimulator):
    """(link index, field, target) of each of a co-simulator's links."""
    for j, link in enumerate(c.links):
        yield (j, "to", link.to) if link.to is not None else (j, "from", link.from_)


def _takes_ampacity(network: str) -> bool:
    return "ampacity_ka" in inspect.signature(NETWORKS[network]).parameters


def _check_network(s: Scenario) -> list[str]:
    """Every bus and line the scenario names is one of its network's: grid.ampacity_ka's
    lines, grid.buses, bus_profiles placements and co-simulator links ``bus:N``/``line:N``.
    The network is built (once per process) only when the scenario names one."""
    g, out, refs = s.grid, [], []  # refs: (field, kind, index)
    if g.ampacity_ka is not None and not _takes_ampacity(g.network):
        takers = [n for n in NETWORKS if _takes_ampacity(n)]
        out.append(f"grid.ampacity_ka: {g.network} keeps its own line ratings (its builder "
                   f"takes no ampacity_ka); allowed: null, or a network that takes it: "
                   f"{', '.join(takers)}")
    elif isinstance(g.ampacity_ka, dict):
        refs += [(f"grid.ampacity_ka.{line}", "line", line) for line in g.ampacity_ka]
    refs += [(f"grid.buses.{name}", "bus", bus) for name, bus in g.buses.items()]
    for i, tpl in enumerate(s.templates):
        if tpl.kind == "bus_profiles" and tpl.placement != "leaves":
            refs += [(f"templates.{i}.placement.{field}.{k}", "bus", bus)
                     for field in ("load_buses", "pv_buses")
                     for k, bus in enumerate(getattr(tpl.placement, field))]
    for i, c in enumerate(s.cosimulators):
        for j, field, target in _link_targets(c):
            kind, _, index = target.partition(":")
            if kind in PLURAL:
                refs.append((f"cosimulators.{i}.links.{j}.{field}: co-simulator {c.name}",
                             kind, int(index)))
    return out + [f"{where}: {problem}" for where, kind, index in refs
                  if (problem := _no_such(g.network, kind, index))]


def _check_names(s: Scenario) -> list[str]:
    """The scenario has agents, their names are unique, and grid.buses and co-simulator
    links ``agent:NAME`` name them."""
    names = agent_names(s)
    if not names:
        return [_no_agents(s)]
    seen, twice = set(), []
    for name in names:
        if name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    out = []
    if twice:
        out.append(f"templates: agent names used twice: {', '.join(twice[:5])}"
                   f"{' ...' if len(twice) > 5 else ''}; allowed: a distinct name_prefix per "
                   "template and explicit agent names no template makes")
    unknown = [n for n in s.grid.buses if n not in seen]
    if unknown:
        out.append(f"grid.buses.{unknown[0]}: no agent of that name; allowed: agent names, "
                   f"e.g. {', '.join(names[:3])}")
    for i, c in enumerate(s.cosimulators):
        out += [f"cosimulators.{i}.links.{j}.{field}: co-simulator {c.name}: {target} names no "
                f"agent of the scenario; allowed: agent:NAME with an agent's name, e.g. "
                f"{', '.join(names[:3])}" for j, field, target in _link_targets(c)
                if target.startswith("agent:") and target.removeprefix("agent:") not in seen]
    return out


def _no_agents(s: Scenario) -> str:
    """Why a scenario makes no agent (a market needs at least one)."""
    if not s.templates and not s.agents:
        return ("templates: the scenario has no agents (no templates and no explicit agents); "
                "allowed: at least one template or explicit agent")
    kinds = ", ".join(dict.fromkeys(t.kind for t in s.templates))
    return (f"templates: the scenario has no agents ({kinds} on {s.grid.network} make none: "
            f"the network has no loads of its own); allowed: at least one agent, from a "
            f"network with loads, another template or an explicit agent")


def _check_lengths(s: Scenario) -> list[str]:
    out, seen = [], set()
    for i, a in enumerate(s.agents):
        arrays = {"prosumer": ("load_kw", "pv_kw"), "ev": ("away", "trip_kwh"),
                  "building": ("load_kw", "heat_demand_kw")}[a.kind]
        need = s.horizon.periods * s.horizon.days
        for field in arrays:
            values = getattr(a, field)
            n = need if values is None else len(values)
            single = a.kind == "building"  # one value stands for every period
            if n != need and not (single and n == 1):
                days = f"{n / s.horizon.periods:g} day(s)" if n % s.horizon.periods == 0 \
                    else f"{n} values"
                out.append(f"agents.{i}.{field}: covers {days}, must cover horizon.days = "
                           f"{s.horizon.days} × horizon.periods = {s.horizon.periods} "
                           f"({need} values){' or be one value' if single else ''}")
        if a.name in seen:
            out.append(f"agents.{i}.name: {a.name!r} is used twice; allowed: a name of its own")
        seen.add(a.name)
    return out


def _check_cosims(s: Scenario) -> list[str]:
    """Co-simulators have names of their own, code this Python can start and the files
    they read; they need the distributed runtime."""
    out, names = [], set()
    for i, c in enumerate(s.cosimulators):
        if c.name in names or c.name in ("Grid", "Collector") or c.name.startswith("Agents"):
            out.append(f"cosimulators.{i}.name: {c.name!r} is taken")
        names.add(c.name)
        out += [f"cosimulators.{i}.{field}: co-simulator {c.name}: {problem}"
                for field, problem in [*_cosim_code(c), *_cosim_files(c)]]
    if s.runtime.agent_service and s.runtime.agent_hosts:
        out.append("runtime.agent_service: give it or runtime.agent_hosts, not both")
    if s.cosimulators and (s.runtime.kind != "distributed" or s.market.mode != "decentralized"):
        out.append("cosimulators: need runtime.kind distributed and market.mode "
                   "decentralized (they are mosaik simulators)")
    return out


PYTHON_START = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)")
PYTHON_MODULE_CMD = re.compile(r"%\(python\)s\s+-m\s+(\S+)")  # a cmd that runs a module


def _cosim_code(c: Cosimulator) -> list[tuple[str, str]]:
    """(field, problem) where the code a co-simulator names cannot be found: ``python:
    module:Class`` (the module by ``importlib.util.find_spec``, the class in the module's
    source, see ``_module_names``), or the module of a ``cmd`` ``%(python)s -m MODULE``.
    Nothing is imported but the module's parent packages: its own top-level code runs in
    the run, not here."""
    if c.python is not None:
        match = PYTHON_START.fullmatch(c.python)
        if match is None:
            return [("python", (f"{c.python!r} is not of the form module:Class; allowed: "
                                "module:Class, e.g. lemgrid.scenarios.cosim.monitor:VoltageMonitor"))]
        module, cls = match.groups()
        spec, problem = _find_module(module)
        if problem:
            return [("python", (f"{problem}; allowed: module:Class, a module this Python "
                                "can import"))]
        names = _module_names(spec)
        if names is not None and cls not in names[0]:
            return [("python", (f"module {module} has no {cls!r}; allowed: a class it "
                                f"defines: {', '.join(names[1]) or 'none'}"))]
        return []
    match = PYTHON_MODULE_CMD.match(c.cmd or "")
    problem = match and _find_module(match[1])[1]
    return [("cmd", f"{problem}; allowed: a module this Python can import")] if problem else []


def _find_module(module: str):
    """(spec, None) of an importable module, else (None, what is wrong)."""
    try:
        spec = importlib.util.find_spec(module)  # imports the parent packages only
    except ModuleNotFoundError:
        spec = None
    except Exception as exc:  # noqa: BLE001 - a parent package that fails on import
        return None, f"module {module} cannot be imported ({type(exc).__name__}: {exc})"
    return (spec, None) if spec is not None else (None, f"no module named {module!r}")


def _module_names(spec) -> tuple[set[str], list[str]] | None:
    """(names bound at a module's top level, its classes in source order) read from its
    source, or None where the source cannot tell: no Python source, ``from x import *``, a
    module ``__getattr__``, names made by ``globals()``, or ``vars()``, ``setattr`` or
    ``exec`` run at the top level."""
    origin = spec.origin or ""
    if not origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(origin).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    names, classes, todo = set(), [], collections.deque(tree.body)
    dynamic = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                  and n.func.id == "globals" for n in ast.walk(tree))
    while todo and not dynamic:
        node = todo.popleft()
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)  # its body binds nothing at the top level
            classes += [node.name] if isinstance(node, ast.ClassDef) else []
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            dynamic = any(a.name == "*" for a in node.names)
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            dynamic = node.func.id in ("vars", "setattr", "exec")
        todo += ast.iter_child_nodes(node)
    return None if dynamic or "__getattr__" in names else (names, classes)


def _cosim_files(c: Cosimulator) -> list[tuple[str, str]]:
    """(field, problem) for each file a co-simulator started here reads that does not
    exist: its ``sim_params`` and entities' ``path``, ``*_path`` and ``*file`` parameters
    (``is_path_key``), except files it writes: under ``{out}`` or with a key starting
    ``out`` (``output_file``). A connected co-simulator reads its own host's files."""
    if c.connect is not None:
        return []
    given = [*_file_params(c.sim_params, "sim_params"),
             *(p for k, e in enumerate(c.entities) for p in _file_params(e, f"entities.{k}"))]
    allowed = ("allowed: an existing file (a relative path is taken from the scenario file's "
               "folder), or {out}/NAME for a file it writes in the results folder")
    return [(field, f"no file {path}; {allowed}") for field, path in given
            if not Path(path).exists()]


def _file_params(value, where: str):
    """(field, path) of the files a co-simulator parameter names that it reads."""
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else []
    for key, v in items:
        if is_path_key(key) and isinstance(v, str):
            if "{out}" not in v and not key.startswith("out"):
                yield f"{where}.{key}", v
        else:
            yield from _file_params(v, f"{where}.{key}")


def is_path_key(key) -> bool:
    """A parameter that names a file: ``path``, ``*_path`` or ``*file`` (mosaik-csv's
    ``datafile``, its writer's ``output_file``)."""
    return isinstance(key, str) and (key == "path" or key.endswith(("_path", "file")))


def _resolve_paths(value, base: Path):
    """Relative file parameters (``is_path_key``: co-simulator parameters, bus_profiles
    templates' profiles) → from ``base``."""
    if isinstance(value, dict):
        return {k: (str(base / v) if is_path_key(k) and isinstance(v, str) and "{out}" not in v
                    and not Path(v).is_absolute()
                    else _resolve_paths(v, base)) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_paths(v, base) for v in value]
    return value


def _printable(text: str) -> str:
    """``text`` with newlines and other unprintable characters escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace")
                   .decode("ascii") for c in text)


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``lines`` holds one message per problem."""

    def __init__(self, lines: list[str]):
        lines = [_printable(line) for line in lines]  # one line each, always
        super().__init__("\n".join(lines))
        self.lines = lines


# -- reading the file ----------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML with at most ``MAX_YAML_DEPTH`` levels of nesting."""

    _depth = 0

    def compose_node(self, parent, index):
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_YAML_DEPTH} levels of nesting; allowed: at most "
                f"{MAX_YAML_DEPTH}", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where and what of a PyYAML error: 'at line L, column C: problem (context)'."""
    if isinstance(exc, yaml.reader.ReaderError):
        pos = exc.position
        line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return (f"at line {line}, column {column}: character U+{ord(char):04X} is not allowed; "
                "allowed: printable text (no control characters)")
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"({str(exc).splitlines()[0]})"
    mark = exc.problem_mark or exc.context_mark
    where = f"at line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = exc.problem or exc.context or "unknown problem"
    if exc.problem and exc.context:
        cm = exc.context_mark
        problem += f" ({exc.context}" + (f" from line {cm.line + 1}, column {cm.column + 1})"
                                         if cm else ")")
    if "constructor for the tag" in problem:
        problem += "; allowed: plain YAML, no tags"
    if "'\\t'" in problem:
        problem += "; allowed: indenting with spaces, not tabs"
    return where + problem


def _big(n: int) -> str:
    return f"{n:,}" if n < 10**12 else f"about 10^{len(str(n)) - 1}"


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "top level"


def _children(node: yaml.Node) -> list[tuple]:
    if isinstance(node, yaml.MappingNode):
        return [(getattr(k, "value", "?"), c) for k, v in node.value for c in (k, v)]
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    return []


def _check_duplicates(node: yaml.MappingNode, path: tuple, where: str) -> None:
    seen: dict[tuple, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        ident, line = (key.tag, key.value), key.start_mark.line + 1
        if ident in seen:
            lines = f"line {line}" if seen[ident] == line else f"lines {seen[ident]} and {line}"
            raise ScenarioError([(f"{where}: {_dotted((*path, key.value))}: key given twice "
                                 f"({lines}); allowed: each key once in a mapping")])
        seen[ident] = line


def _check_nodes(root: yaml.Node, where: str) -> None:
    """Refuse duplicate keys, aliases that contain themselves and alias bombs: aliases may
    add at most ``MAX_YAML_NODES`` values to the file."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack = [(root, (), False)]
    while stack:
        node, path, closing = stack.pop()
        if closing:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for _, c in _children(node))
            continue
        if id(node) in size:
            continue
        if id(node) in open_:
            raise ScenarioError([(f"{where}: {_dotted(path)}: a YAML alias refers to a node "
                                 "that contains it; allowed: aliases of finished nodes")])
        open_.add(id(node))
        stack.append((node, path, True))
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(node, path, where)
        stack += [(c, (*path, label), False) for label, c in reversed(_children(node))]
    added = size[id(root)] - len(size)
    if added > MAX_YAML_NODES:
        label, _ = max(_children(root), key=lambda lc: size[id(lc[1])], default=(None, root))
        raise ScenarioError([(f"{where}: {_dotted(() if label is None else (label,))}: YAML "
                             f"aliases expand the file by {_big(added)} values (an alias "
                             f"bomb?); allowed: at most {MAX_YAML_NODES:,} values added by "
                             "aliases")])


def _parse_yaml(text: str, where: str):
    """The data of one YAML document; ScenarioError naming ``where`` on bad YAML, duplicate
    keys, deep nesting or alias bombs."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{where}: not valid YAML {_yaml_problem(exc, text)}"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCHEMA_PATH.parent.glob("*.yaml"))


def _read_text(path: Path) -> str:
    """The file's text: at most ``MAX_FILE_BYTES``, UTF-8."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError([(f"{path}: cannot read ({exc.strerror or exc}); allowed: a "
                             "scenario file (YAML) or a shipped scenario: "
                             f"{', '.join(shipped_scenarios())}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError([(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB; allowed: a "
                             f"scenario file of at most {MAX_FILE_BYTES >> 20} MiB")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start
        line, column = data.count(b"\n", 0, at) + 1, at - data.rfind(b"\n", 0, at)
        utf16 = " (the file looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ScenarioError([(f"{path}: line {line}, column {column}: byte 0x{data[at]:02x} is "
                             f"not UTF-8{utf16}; allowed: UTF-8 text")]) from None


# -- reporting validation errors -----------------------------------------------------------

_SCALAR_TAGS = re.compile(r"str|float|int|bool|constrained-\w+|function-.*|literal\[.*\]")
_FORMS = {"float": "a number", "constrained-float": "a number from 0 to 1",
          "Uniform": "{uniform: [low, high]}", "Choice": "{choice: {KEY: weight, ...}}",
          "Counts": "{counts: {KEY: number of agents, ...}}",
          "FlexibleLoadSpec": "{name, rating_kw, duration_h, window: [HH:MM, HH:MM]}",
          "literal['leaves']": "leaves", "BusPlacement": "{load_buses: [...], pv_buses: [...]}"}
_PATTERNS = {r"^([01]\d|2[0-3]):[0-5]\d$": "a time HH:MM from 00:00 to 23:59, in quotes",
             r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$": "a time HH:MM from 00:00 to 24:00, in quotes",
             r"^[^:\s]+:\d+$": "host:port", r"^tcp://[^:]+:\d+$": "tcp://HOST:PORT",
             r"^[A-Za-z]\w*$": "a letter, then letters, digits or _",
             r"^(agent:\S+|grid)$": "agent:NAME or grid", r"^\w+$": "letters, digits or _"}
_KIND_TAGS = ("prosumer", "ev", "building", "network_loads", "bus_profiles")
_TIMES = {"peak_start", "peak_end", "first_away", "last_away", "peak_times", "window"}


def _models() -> dict[str, type[BaseModel]]:
    return {m.__name__: m for m in Strict.__subclasses__()}


def _is_tag(part) -> bool:
    """A union member pydantic adds to an error's location (``str``, ``Choice``, ...)."""
    return isinstance(part, str) and (part in _models() or bool(_SCALAR_TAGS.fullmatch(part)))


def _member(tag: str) -> str:
    """``function-after[_ordered(), Uniform]`` -> ``Uniform``."""
    match = re.fullmatch(r"function-\w+\[.*,\s*(\w+)\]", tag)
    return match[1] if match else tag


def _mechanism_tag(loc: tuple, i: int) -> bool:
    """Part ``i`` of an error location is the market's mechanism pydantic adds
    (``market.p2v_rules.tolerance_kw``)."""
    return i == 1 and len(loc) > 1 and loc[0] == "market" and loc[1] in mechanisms.registry()


def _foreign_parameter(name: str, key) -> str:
    """Why ``key`` is no parameter of mechanism ``name``, and which mechanisms have it."""
    fields = mechanisms.get(name).params.model_fields
    own = ", ".join([f for f in fields if f not in MarketParams.model_fields]
                    + list(MarketParams.model_fields))  # its own first, then every market's
    having = [n for n, m in mechanisms.registry().items() if key in m.params.model_fields]
    if not having:
        return f"unknown key; allowed: {own}"
    return f"not a parameter of {name} (it is one of {', '.join(having)}); allowed: {own}"


def _kinds(where) -> list[str]:
    members = {"templates": (ProsumerTemplate, EVTemplate, BuildingTemplate,
                             NetworkLoadsTemplate, BusProfilesTemplate),
               "agents": (ExplicitProsumer, ExplicitEV, ExplicitBuilding)}.get(where, ())
    return [m.model_fields["kind"].annotation.__args__[0] for m in members]


@functools.cache
def _live_schema() -> dict:
    return Scenario.model_json_schema()


def _schema_node(loc: tuple) -> dict:
    """The JSON schema of the mapping at ``loc`` (a pydantic error location)."""
    schema = _live_schema()
    node, defs = schema, schema.get("$defs", {})
    for part in loc:
        part = _member(part) if isinstance(part, str) else part
        node = _resolve(node, defs)
        options = [_resolve(o, defs) for o in node.get("anyOf", node.get("oneOf", []))]
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif part in defs:
            node = defs[part]
        else:
            node = next((o for o in options if o.get("properties", {}).get("kind", {})
                         .get("const") == part), None) or next(
                (o["properties"][part] for o in options if part in o.get("properties", {})), {})
    node = _resolve(node, defs)
    if "properties" not in node:
        node = next((o for o in (_resolve(o, defs) for o in node.get("anyOf", []))
                     if "properties" in o), node)
    return node


def _allowed_keys(loc: tuple) -> str:
    """The keys the schema allows beside the last part of ``loc``."""
    return ", ".join(_schema_node(loc[:-1]).get("properties", {})) or "see scenario.schema.json"


def _resolve(node: dict, defs: dict) -> dict:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _tags(loc: tuple, raw) -> list[int]:
    """Where pydantic put union members in an error location (``templates.0.prosumer``,
    ``battery.Counts``, ``[key]``): parts that are no key of the input there."""
    out, node = [], raw
    for i, part in enumerate(loc):
        kind = (i == 2 and loc[0] in ("templates", "agents") and part in _KIND_TAGS
                or _mechanism_tag(loc, i))
        known = isinstance(node, dict) and part in node or isinstance(node, list) \
            and isinstance(part, int) and 0 <= part < len(node)
        if known and not kind:
            node = node[part]
        elif kind or part == "[key]" or _is_tag(part):
            out.append(i)
        else:
            node = None
    return out


def _clean_loc(loc: tuple, raw) -> tuple:
    """``loc`` without union members (``templates.0.prosumer.count`` -> ``templates.0.count``)."""
    tags = _tags(loc, raw)
    return tuple(p for i, p in enumerate(loc) if i not in tags)


def _lookup(raw, loc: tuple):
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pick(members: dict[str, list], value) -> str | None:
    """The union member the input was meant for: the model sharing most keys with a
    mapping, or the scalar type that failed a constraint rather than the type."""
    models = _models()
    if isinstance(value, dict):
        shared = {t: len({str(k) for k in value} & {f.alias or n for n, f in
                                                    models[t].model_fields.items()})
                  for t in members if t in models}
        best = max(shared.values(), default=0)
        winners = [t for t, n in shared.items() if n == best]
        return winners[0] if best and len(winners) == 1 else None
    scalars = [t for t in members if t not in models]
    return next((t for t in scalars if not any(e["type"].endswith(("_type", "_parsing"))
                                               for e in members[t])),
                "str" if "str" in scalars and isinstance(value, (bool, int, float)) else None)


def _forms(tags, field) -> str:
    keys = {"battery": list(BATTERY_TYPES), "model": list(EV_MODELS), "flexible": FLEXIBLE}
    forms = [(f"a key ({', '.join(keys[field])})" if field in keys else
              "a key of tariffs.fixed_eur_per_day" if field == "contracted_kva" else "text")
             if t == "str" else _FORMS.get(t, t) for t in tags]
    return ", ".join(forms[:-1]) + f" or {forms[-1]}" if len(forms) > 1 else forms[0]


def _message(err: dict, raw) -> tuple[tuple, str]:
    """(field path, what is wrong; what is allowed) of one pydantic error."""
    loc, kind, value = _clean_loc(err["loc"], raw), err["type"], err.get("input")
    ctx, msg = err.get("ctx") or {}, err["msg"].removeprefix("Value error, ")
    if err["loc"][-1:] == ("[key]",) or kind == "invalid_key":
        what = "a boolean" if isinstance(value, bool) else "empty" if value is None else \
            "a number" if isinstance(value, (int, float)) else type(value).__name__
        msg = f"key {_show(value)} is {what}, not text; allowed: text keys (put it in quotes)"
        loc = (*loc[:-1], str(value)) if kind == "invalid_key" else loc
    elif kind == "extra_forbidden" and _mechanism_tag(err["loc"], 1):
        msg = _foreign_parameter(err["loc"][1], loc[-1])
    elif kind == "extra_forbidden":
        msg = f"unknown key; allowed: {_allowed_keys(err['loc'])}"
    elif kind == "union_tag_invalid" and loc == ("market",):
        loc += ("mechanism",)
        msg = (f"unknown mechanism {ctx.get('tag')!r}; allowed: "
               f"{', '.join(mechanisms.registry())} (lemgrid mechanisms lists them)")
    elif kind == "union_tag_not_found":
        msg = f"missing key 'kind'; allowed kinds: {', '.join(_kinds(loc[0]))}"
    elif kind == "union_tag_invalid":
        loc += ("kind",)
        msg = f"{ctx.get('tag')!r} is not a kind; allowed: {', '.join(_kinds(loc[0]))}"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        keys = (f" with kind: {', '.join(_kinds(loc[0]))}" if len(loc) == 2 and _kinds(loc[0])
                else f" with keys {_allowed_keys(err['loc'] + ('?',))}")
        msg = f"{_show(value)} is not a mapping; allowed: a mapping" + (
            keys if kind != "dict_type" and "schema" not in keys else "")
    elif kind == "missing":
        required = _schema_node(err["loc"][:-1]).get("required", [])
        msg += f"; required keys here: {', '.join(required)}" if required else ""
    elif kind == "tuple_type":
        msg = f"{_show(value)} is not a list; allowed: a list of two values, [first, second]"
    elif kind == "list_type":
        msg = f"{_show(value)} is not a list; allowed: a list (items starting with '- ')"
    elif kind == "string_type" and type(value) is int and _TIMES & set(map(str, loc)):
        hhmm = f"{value // 60:02d}:{value % 60:02d}"
        msg = (f"YAML reads the unquoted time {hhmm} as the number {value}; allowed: a time "
               f"in quotes, \"{hhmm}\"")
    elif kind == "string_type" and isinstance(value, (bool, int, float)):
        what = "a boolean" if isinstance(value, bool) else "a number"
        msg = f"{_show(value)} is {what}, not text; allowed: text (put it in quotes)"
    elif kind == "string_pattern_mismatch":
        msg = (f"{_show(value)} is not of the right form; allowed: "
               f"{_PATTERNS.get(ctx.get('pattern'), 'text matching ' + str(ctx.get('pattern')))}")
    elif kind not in ("value_error", "assertion_error", "missing"):
        msg += f" (got {_show(value)})"
    return loc, msg


def _format(exc: ValidationError, source: str, raw=None) -> list[str]:
    """One line per problem: ``source: field: what is wrong; what is allowed``."""
    items: list = []  # errors and, for unions, (location, {member: errors})
    unions: dict[tuple, dict] = {}
    for err in exc.errors():
        at = next((i for i in _tags(err["loc"], raw) if err["loc"][i] not in _KIND_TAGS
                   and err["loc"][i] != "[key]" and not _mechanism_tag(err["loc"], i)), None)
        if at is None:
            items.append(err)
            continue
        key = err["loc"][:at]
        if key not in unions:
            unions[key] = {}
            items.append(key)
        unions[key].setdefault(_member(err["loc"][at]), []).append(err)
    problems = []
    for item in items:
        if isinstance(item, dict):
            problems.append(_message(item, raw))
            continue
        loc, members = _clean_loc(item, raw), unions[item]
        value = _lookup(raw, loc)
        chosen = _pick(members, value)
        if chosen is not None:
            problems += [_message(e, raw) for e in members[chosen]]
        else:
            field = next((p for p in reversed(loc) if isinstance(p, str)), "")
            problems.append((loc, (f"{_show(value)} is none of the allowed forms; allowed: "
                                  f"{_forms(members, field)}")))
    lines = []
    for loc, msg in _merge_items(problems):
        prefix = f"{source}: {'.'.join(str(p) for p in loc)}: " if loc else f"{source}: "
        lines += [prefix + part for part in msg.split("\n")]
    lines = list(dict.fromkeys(lines))
    if len(lines) > MAX_ERROR_LINES:
        more = len(lines) - MAX_ERROR_LINES + 1
        lines = [*lines[:MAX_ERROR_LINES - 1], f"{source}: and {more} more problems (not shown)"]
    return lines


def _merge_items(problems: list[tuple]) -> list[tuple]:
    """Alike problems of a list's items (``load_kw.0``, ``load_kw.1``, ...) as one."""
    entries, seen = [], {}
    for loc, msg in problems:
        key = (loc[:-1], re.sub(r" \(got .*\)$", "", msg)) if loc and isinstance(
            loc[-1], int) else None
        if key in seen:
            seen[key][2].append(loc[-1])
            continue
        entries.append([loc, msg, []])
        if key is not None:
            seen[key] = entries[-1]
    return [(loc, msg + (f"; the same for {len(more)} more item(s): "
                         f"{', '.join(map(str, more[:5]))}{', ...' if len(more) > 5 else ''}"
                         if more else "")) for loc, msg, more in entries]


def apply_overrides(raw: dict, overrides: list[str], source: str) -> dict:
    """Apply ``key.path=value`` settings (value parsed as YAML) to a raw scenario; a
    numeric part indexes a list (``templates.1.count=300``)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ScenarioError([f"{source}: --set {item!r}: expected key.path=value"])
        value = _parse_yaml(text, f"{source}: --set {key}")
        node = raw
        for depth, part in enumerate(parts):
            here, last = ".".join(parts[:depth]) or "the scenario", depth == len(parts) - 1
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                part = int(part)
            elif isinstance(node, list):
                allowed = f"indexes 0–{len(node) - 1}" if node else "none, it is empty"
                raise ScenarioError([(f"{source}: --set {key}: no such field to set, {here} is "
                                     f"a list of {len(node)}; allowed: {allowed}")])
            elif not isinstance(node, dict):
                raise ScenarioError([(f"{source}: --set {key}: no such field to set, {here} is "
                                     f"{_show(node)}; allowed: fields of mappings and lists")])
            elif not last and node.get(part) is None:
                node[part] = {}
            if last:
                node[part] = value
            else:
                node = node[part]
    return _switched_mechanism(raw, [o.partition("=")[0] for o in overrides])


def _switched_mechanism(raw: dict, keys: list[str]) -> dict:
    """Where ``--set market.mechanism=NAME`` switches the mechanism, the file's parameters
    of the mechanism it had are left behind (those set on the command line stay, and are
    checked against the new one's)."""
    market = raw.get("market")
    if "market.mechanism" not in keys or not isinstance(market, dict):
        return raw
    mech = mechanisms.registry().get(market.get("mechanism"))
    if mech is None:
        return raw
    given = {k.split(".", 2)[1] for k in keys if k.startswith("market.")}
    raw["market"] = {k: v for k, v in market.items()
                     if k in mech.params.model_fields or k in given}
    return raw


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario file; raise ScenarioError on any problem."""
    path = Path(path)
    raw = _parse_yaml(_read_text(path), str(path))
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else "a list" if isinstance(raw, list) \
            else f"the value {_show(raw)}"
        raise ScenarioError([(f"{path}: top level: a scenario must be a mapping of keys to "
                             f"values, got {got}; allowed: {', '.join(Scenario.model_fields)}")])
    raw = apply_overrides(raw, overrides or [], str(path))
    if isinstance(raw.get("cosimulators"), list):
        raw["cosimulators"] = _resolve_paths(raw["cosimulators"], path.resolve().parent)
    if isinstance(raw.get("templates"), list):
        raw["templates"] = [_resolve_paths(t, path.resolve().parent) if isinstance(t, dict)
                            and t.get("kind") == "bus_profiles" else t for t in raw["templates"]]
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(_format(exc, str(path), raw)) from None
    scenario._source = str(path)
    return scenario


def resolve_scenario(name: str) -> Path:
    """A path, or the name of a scenario shipped in ``scenarios/`` (e.g. ``faia2021``)."""
    path = Path(name)
    if path.exists() or path.suffix:
        return path
    return SCHEMA_PATH.with_name(f"{name}.yaml")



def json_schema() -> dict:
    return Scenario.model_json_schema()


if __name__ == "__main__":
    SCHEMA_PATH.write_text(json.dumps(json_schema(), indent=2) + "\n")
