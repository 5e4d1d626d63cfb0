"""The scenario schema: one strict pydantic model; ``scenario.schema.json`` is generated
from it (``python -m scenarios.schema``) and checked in.

Unknown keys are errors. Loading reports every problem as one line naming the file,
the field path, what is wrong and what is allowed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

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

from coordinator.mechanisms import MECHANISMS
from scenarios.catalog import APPLIANCES, BATTERY_TYPES, EV_MODELS, clock_h

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="time as HH:MM")]
HHMM24 = Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$",
                              description="time as HH:MM, 24:00 the end of the day")]
NonNeg = Annotated[float, Field(ge=0)]
HostPort = Annotated[str, Field(pattern=r"^[^:\s]+:\d+$", description="host:port")]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Uniform(Strict):
    """A value drawn uniformly from [lo, hi] with the scenario's seed."""

    uniform: tuple[float, float]


class Choice(Strict):
    """A key drawn independently for each agent with the given weights."""

    choice: dict[str, NonNeg] = Field(min_length=1)


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


class Tariffs(Strict):
    dynamic: DynamicPrices | None = None
    time_of_use: TimeOfUse = TimeOfUse()
    feed_in_eur_per_kwh: NonNeg = 0.045
    p2v_price: P2VPrice = P2VPrice()
    export_fraction: Fraction = Field(0.5, description="export limit ÷ contracted power")
    fixed_eur_per_day: dict[str, NonNeg] = Field(
        default_factory=dict, description="daily fixed cost by contracted power (kVA)")


class Market(Strict):
    mechanism: str = Field("p2v_rules", description="a registered mechanism: "
                           + ", ".join(MECHANISMS))
    mode: Literal["decentralized", "centralized"] = "decentralized"
    p2v: bool = Field(True, description="p2v_rules: false gives retail and export only "
                      "(scenario A)")
    tolerance_kw: NonNeg = Field(0.001, description="p2v_rules: supply-demand error; amc, "
                                 "gdrmc: change of the quotes between rounds")
    max_rounds: int = Field(5, ge=1, description="p2v_rules: at most this many rounds")
    price_rounds: int = Field(1, ge=1, description="amc, gdrmc: rounds of price discovery "
                              "(participants re-plan against the announced prices); 1 is the "
                              "one-shot market, quotes planned at the grid's prices")
    damping: Fraction = Field(0.5, description="amc, gdrmc: weight of a round's prices in "
                              "the prices announced for the next")
    pil: bool = Field(True, description="the utility imposes power injection limits: each "
                      "building's own under p2g, the locality's sum under amc and gdrmc")
    demand_limit: bool = Field(True, description="amc, gdrmc: the locality's demand limit "
                               "(sum of the consumer demand limits) applies")
    cdl_factor: float = Field(2.5, ge=1, description="import above a consumer demand limit "
                              "costs this × the price")
    penalty_rate: NonNeg = Field(0.2, description="amc, gdrmc: violation cost rate ρ on the "
                                 "deviation from the quote")

    @field_validator("mechanism")
    @classmethod
    def _known_mechanism(cls, name: str) -> str:
        if name not in MECHANISMS:
            raise ValueError(f"unknown mechanism {name!r}; allowed: {', '.join(MECHANISMS)}")
        return name


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

    network: Literal["case33bw", "feeder11", "cigre_lv"] = "case33bw"
    ampacity_ka: NonNeg | None = Field(None, description="line thermal limit; null: the "
                                       "network's documented default")
    keep_network_loads: bool = Field(False, description="keep the network case's own loads "
                                     "as background load")
    background_kw_per_bus: NonNeg = 0.0
    buses: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="agent name → bus; the others by a seeded rule")
    v_min_pu: float = Field(0.95, gt=0)
    v_max_pu: float = Field(1.05, gt=0)
    max_loading_pct: float = Field(100.0, gt=0)
    power_factor: float = Field(1.0, gt=0, le=1)


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


class EVTemplate(Strict):
    kind: Literal["ev"]
    count: int = Field(gt=0)
    name_prefix: str = "ev"
    model: KeyDist
    contracted_kva: KeyDist
    initial_soc: Fraction | Uniform = 0.6
    end_soc_min: Fraction | None = Field(None, description="null: the initial SoC")
    trips: Trips = Trips()


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


class CosimLink(Strict):
    """Connect one of the co-simulator's entities with an agent or the grid simulator:
    ``to`` sends the entity's attributes there, ``from`` brings theirs to the entity."""

    entity: int = Field(0, ge=0, description="index into the co-simulator's entities")
    to: str | None = Field(None, pattern=r"^(agent:\S+|grid)$", description="agent:NAME or grid")
    from_: str | None = Field(None, alias="from", pattern=r"^(agent:\S+|grid)$",
                              description="agent:NAME or grid")
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
    and a relative ``path``/``*_path`` is taken from the scenario file's folder."""

    name: str = Field(pattern=r"^[A-Za-z]\w*$")
    python: str | None = Field(None, description="module:Class, in the runner's process")
    cmd: str | None = Field(None, description="command; %(python)s and %(addr)s as in mosaik")
    connect: HostPort | None = Field(None, description="a simulator already running")
    sim_params: dict = Field(default_factory=dict, description="passed to its init")
    model: str
    entities: list[dict] = Field(default_factory=lambda: [{}], min_length=1,
                                 description="one entity per item: its model parameters")
    links: list[CosimLink] = Field(default_factory=list)

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


Template = Annotated[ProsumerTemplate | EVTemplate | BuildingTemplate,
                     Field(discriminator="kind")]
Explicit = Annotated[ExplicitProsumer | ExplicitEV, Field(discriminator="kind")]


class Scenario(Strict):
    name: str
    description: str = ""
    seed: int = Field(ge=0)
    horizon: Horizon = Horizon()
    tariffs: Tariffs = Tariffs()
    market: Market = Market()
    solver: Solver = Solver()
    grid: GridConfig = GridConfig()
    runtime: Runtime = Runtime()
    forecast_error: ForecastError = ForecastError()
    templates: list[Template] = []
    agents: list[Explicit] = []
    cosimulators: list[Cosimulator] = Field(default_factory=list, description="other mosaik "
                                            "simulators, linked to agents or the grid")
    _source: str = PrivateAttr("scenario")  # the file it came from, for error lines

    @property
    def source(self) -> str:
        return self._source

    @model_validator(mode="after")
    def _cross_checks(self):
        problems = [*_check_keys(self), *_check_lengths(self), *_check_cosims(self),
                    *_check_flexible(self), *_check_mechanism(self)]
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
            equipment = a.model if a.kind == "ev" else a.battery
            known = EV_MODELS if a.kind == "ev" else BATTERY_TYPES
            for key in _keys(equipment):
                if key not in known:
                    out.append(f"{where}.{i}: unknown {'EV model' if a.kind == 'ev' else 'battery'} "
                               f"{key!r}; allowed: {', '.join(known)}")
            for key in _keys(a.contracted_kva):
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


def _check_mechanism(s: Scenario) -> list[str]:
    """The mechanism serves every agent kind of the scenario."""
    mech = MECHANISMS.get(s.market.mechanism)
    if mech is None:
        return []
    if s.market.mode == "centralized" and mech.name != "p2v_rules":
        return [(f"market.mode: centralized is the counterpart of p2v_rules only; "
                f"{mech.name} has none (use decentralized)")]
    kinds = {a.kind for a in [*s.templates, *s.agents]}
    wrong = sorted(kinds - mech.kinds)
    if not wrong:
        return []
    serving = [n for n, m in MECHANISMS.items() if kinds <= m.kinds]
    return [(f"market.mechanism: {mech.name} does not serve {', '.join(wrong)} agents (it "
             f"serves {', '.join(sorted(mech.kinds))}); mechanisms for this community: "
             f"{', '.join(serving) or 'none'}")]


def _check_lengths(s: Scenario) -> list[str]:
    out, seen = [], set()
    for i, a in enumerate(s.agents):
        arrays = ("load_kw", "pv_kw") if a.kind == "prosumer" else ("away", "trip_kwh")
        need = s.horizon.periods * s.horizon.days
        for field in arrays:
            n = len(getattr(a, field))
            if n != need:
                days = f"{n / s.horizon.periods:g} day(s)" if n % s.horizon.periods == 0 \
                    else f"{n} values"
                out.append(f"agents.{i}.{field}: covers {days}, must cover horizon.days = "
                           f"{s.horizon.days} × horizon.periods = {s.horizon.periods} "
                           f"({need} values)")
        if a.name in seen:
            out.append(f"agents.{i}.name: {a.name!r} is used twice")
        seen.add(a.name)
    return out


def _check_cosims(s: Scenario) -> list[str]:
    out, names = [], set()
    for i, c in enumerate(s.cosimulators):
        if c.name in names or c.name in ("Grid", "Collector") or c.name.startswith("Agents"):
            out.append(f"cosimulators.{i}.name: {c.name!r} is taken")
        names.add(c.name)
    if s.cosimulators and (s.runtime.kind != "distributed" or s.market.mode != "decentralized"):
        out.append("cosimulators: need runtime.kind distributed and market.mode "
                   "decentralized (they are mosaik simulators)")
    return out


def _resolve_paths(value, base: Path):
    """Relative ``path``/``*_path`` values of co-simulator parameters → from ``base``."""
    if isinstance(value, dict):
        return {k: (str(base / v) if (k == "path" or k.endswith("_path")) and isinstance(v, str)
                    and "{out}" not in v and not Path(v).is_absolute()
                    else _resolve_paths(v, base)) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_paths(v, base) for v in value]
    return value


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``lines`` holds one message per problem."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def _allowed_keys(loc: tuple) -> str:
    """The keys the schema allows at ``loc`` (for 'unknown key' messages)."""
    schema = json.loads(SCHEMA_PATH.read_text()) if SCHEMA_PATH.exists() else {}
    node, defs = schema, schema.get("$defs", {})
    for part in loc[:-1]:
        node = _resolve(node, defs)
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            options = [_resolve(o, defs) for o in node.get("anyOf", node.get("oneOf", []))]
            node = next((o["properties"][part] for o in options
                         if part in o.get("properties", {})), {})
    node = _resolve(node, defs)
    return ", ".join(node.get("properties", {})) or "see scenario.schema.json"


def _resolve(node: dict, defs: dict) -> dict:
    while "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _clean_loc(loc: tuple) -> tuple:
    """Drop union-member tags pydantic adds to locations (``templates.0.prosumer.count``)."""
    out = []
    for i, part in enumerate(loc):
        tag = i > 0 and isinstance(loc[i - 1], int) and part in ("prosumer", "ev", "building")
        if not tag and not re.fullmatch(r"[A-Z]\w*|str|float|int|constrained-\w+|function.*", str(part)):
            out.append(part)
    return tuple(out)


def _format(exc: ValidationError, source: str) -> list[str]:
    lines, seen = [], set()
    for err in exc.errors():
        loc = _clean_loc(err["loc"])
        if loc and loc in seen:  # a union: report its first member's complaint only
            continue
        seen.add(loc)
        prefix = f"{source}: {'.'.join(str(p) for p in loc)}: " if loc else f"{source}: "
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key; allowed: {_allowed_keys(loc)}"
        for part in msg.split("\n"):
            lines.append(prefix + part)
    return list(dict.fromkeys(lines))


def apply_overrides(raw: dict, overrides: list[str], source: str) -> dict:
    """Apply ``key.path=value`` settings (value parsed as YAML) to a raw scenario; a
    numeric part indexes a list (``templates.1.count=300``)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ScenarioError([f"{source}: --set {item!r}: expected key.path=value"])
        *parents, last = key.split(".")
        node = raw
        try:
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
            if isinstance(node, list):
                node[int(last)] = yaml.safe_load(text)
            else:
                node[last] = yaml.safe_load(text)
        except (ValueError, IndexError, TypeError, AttributeError):
            raise ScenarioError([f"{source}: --set {key}: no such field to set"]) from None
    return raw


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario file; raise ScenarioError on any problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read ({exc.strerror})"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{path}: not valid YAML ({str(exc).splitlines()[0]})"]) from None
    if not isinstance(raw, dict):
        raise ScenarioError([f"{path}: a scenario must be a mapping of keys to values"])
    raw = apply_overrides(raw, overrides or [], str(path))
    if isinstance(raw.get("cosimulators"), list):
        raw["cosimulators"] = _resolve_paths(raw["cosimulators"], path.resolve().parent)
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(_format(exc, str(path))) from None
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
