"""The checks across fields that ``Scenario`` runs once its parts are valid, each giving
one line per problem: catalogue keys and contracted powers, list lengths, flexible loads,
clock times, EV trips, the mechanism and the agent kinds it serves, every bus, line and
agent the scenario names, co-simulators' code and files, CHP polygons and the run's size.
With them the agent naming the community builder shares (``agent_names``,
``network_consumers``, ``bus_profile_agents``)."""

from __future__ import annotations

import ast
import collections
import functools
import importlib.util
import inspect
import re
from pathlib import Path
from typing import NamedTuple, Protocol

from lemgrid.agents.data import polygon_problem
from lemgrid.coordinator.mechanisms.base import MarketParams
from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.catalog import BATTERY_TYPES, EV_MODELS, clock_h
from lemgrid.scenarios.schema.models import (
    AGENT_KIND,
    FLEXIBLE,
    BusProfilesTemplate,
    Choice,
    Cosimulator,
    Counts,
    Explicit,
    GridConfig,
    Horizon,
    NetworkLoadsTemplate,
    Runtime,
    Tariffs,
    Template,
    Uniform,
)
from lemgrid.scenarios.schema.profiles import (
    TMY_SHIPPED,
    ClearSkyWeather,
    PVWatts,
    Site,
    StandardLoad,
    TMYWeather,
    library_turbines,
)

MAX_SERIES_VALUES = 50_000_000  # agents × days × periods of a run


class ScenarioFields(Protocol):
    """What the checks read of a ``Scenario`` (``scenario.py``, which runs the checks and so
    cannot be imported here)."""

    horizon: Horizon
    tariffs: Tariffs
    market: MarketParams
    grid: GridConfig
    runtime: Runtime
    templates: list[Template]
    agents: list[Explicit]
    cosimulators: list[Cosimulator]
    site: Site | None
    weather: ClearSkyWeather | TMYWeather | None


def _keys(dist) -> list[str]:
    if dist is None:
        return []
    if isinstance(dist, str):
        return [dist]
    return list(dist.choice if isinstance(dist, Choice) else dist.counts)


def _check_keys(s: ScenarioFields) -> list[str]:
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


def _check_flexible(s: ScenarioFields) -> list[str]:
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


def _check_chp(s: ScenarioFields) -> list[str]:
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


def agent_kinds(s: ScenarioFields) -> set[str]:
    """The kinds of agent the scenario's templates and explicit agents make."""
    return {AGENT_KIND.get(a.kind, a.kind) for a in [*s.templates, *s.agents]}


def _check_mechanism(s: ScenarioFields) -> list[str]:
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
    kinds = agent_kinds(s)
    wrong = sorted(kinds - mech.kinds)
    if wrong:
        out.append(f"market.mechanism: {mech.name} does not serve {', '.join(wrong)} agents "
                   f"(it serves {', '.join(sorted(mech.kinds))}); mechanisms for this "
                   f"community: {', '.join(mechanisms.serving(kinds)) or 'none'}")
    if not out and "heat" not in mech.commodities:
        out += _heat_without_market(s, mech.name)
    if not out and mech.scenario_problems is not None:
        out += mech.scenario_problems(s)
    return out


def _most_heat_kw(chp) -> float:
    """The most heat a CHP unit makes: its polygon's highest vertex (0 without one)."""
    return max((h for _, h in chp.vertices_kw), default=0.0) if chp is not None else 0.0


def _heat_without_market(s: ScenarioFields, name: str) -> list[str]:
    """Buildings whose heat demand their own CHP unit cannot meet need a heat market."""
    trading = [n for n, m in mechanisms.registry().items() if "heat" in m.commodities]
    out = []
    for where, items in (("templates", s.templates), ("agents", s.agents)):
        for i, a in enumerate(items):
            demand = getattr(a, "heat_demand_kw", None)
            if demand is None:
                continue
            most = (max(demand, default=0.0) if isinstance(demand, list)
                    else max(_bounds(demand)))
            chp = getattr(a, "chp", None)
            made = _most_heat_kw(chp)
            if most > made + 1e-9:
                who = a.name if where == "agents" else f"{a.name_prefix}*"
                own = "it has no CHP unit" if chp is None else f"its CHP unit makes at most {made:g}"
                out.append(f"{where}.{i}.heat_demand_kw: building {who} needs up to "
                           f"{most:g} kW_th, {own}, and {name} trades no heat; allowed: a "
                           f"mechanism with a heat market ({', '.join(trading) or 'none'}), "
                           "or a CHP unit that meets it")
    return out


def _bounds(value) -> tuple[float, ...]:
    """A number, or a uniform draw's bounds."""
    return tuple(value.uniform) if isinstance(value, Uniform) else (float(value),)


def _check_times(s: ScenarioFields) -> list[str]:
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


def _check_trips(s: ScenarioFields) -> list[str]:
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


def _check_size(s: ScenarioFields) -> list[str]:
    """A run's per-period series fit in memory: agents × days × periods is bounded."""
    agents = agent_count(s)
    values = max(agents, 1) * s.horizon.days * s.horizon.periods
    if values <= MAX_SERIES_VALUES:
        return []
    where = "horizon.days" if s.horizon.days * s.horizon.periods > MAX_SERIES_VALUES \
        else "templates"
    return [(f"{where}: {agents} agents × {s.horizon.days} days × {s.horizon.periods} periods "
            f"= {values:.3g} values per series; allowed: at most {MAX_SERIES_VALUES:,}")]


def _networks():
    """The network registry (``grid.networks``), imported when a check needs a network:
    it imports pandapower, which the command line does not need before then."""
    from lemgrid.grid import networks

    return networks


def published_loads(network: str) -> tuple[tuple[int, float, float], ...]:
    """The network case's own loads per bus, from the table (no network is built)."""
    from lemgrid.grid.network_loads import PUBLISHED_LOADS

    return PUBLISHED_LOADS[network]


def agent_count(s: ScenarioFields) -> int:
    """How many agents the scenario makes (without naming them: a count may be huge)."""
    sizes = {"network_loads": lambda t: len(published_loads(s.grid.network)),
             "bus_profiles": lambda t: len(bus_profile_agents(s, t))}
    return sum(sizes.get(t.kind, lambda t: t.count)(t) for t in s.templates) + len(s.agents)


def agent_names(s: ScenarioFields) -> list[str]:
    """Every agent's name, as the community builder gives them (templates, then agents)."""
    return [n for names in _per_template(s) for n in names] + [a.name for a in s.agents]


def _per_template(s: ScenarioFields) -> list[list[str]]:
    """The names of each template's agents."""
    out = []
    for tpl in s.templates:
        if tpl.kind == "network_loads":
            out.append([name for name, _ in network_consumers(s, tpl)])
        elif tpl.kind == "bus_profiles":
            out.append([a.name for a in bus_profile_agents(s, tpl)])
        else:
            width = len(str(tpl.count))
            out.append([f"{tpl.name_prefix}{k + 1:0{width}d}" for k in range(tpl.count)])
    return out


def network_consumers(s: ScenarioFields, tpl: NetworkLoadsTemplate) -> list[tuple[str, int]]:
    """(name, bus) of each consumer a network_loads template makes: one per bus with a
    published load of the scenario's network."""
    width = len(str(max((b for b, _, _ in published_loads(s.grid.network)), default=0)))
    return [(f"{tpl.name_prefix}{b:0{width}d}", b) for b, _, _ in published_loads(s.grid.network)]


@functools.cache
def _plain_network(network: str):
    """A registered network as its builder makes it without options, built once per
    process (validation reads its tables and graph; nothing may change it)."""
    return _networks().load_network(network)


@functools.cache
def leaf_placement(network: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(load buses, PV buses) of the authors' rule on a registered network."""
    from lemgrid.grid.community_lv import place_community

    placement = place_community(_plain_network(network))
    return placement.load_buses, placement.pv_buses


class BusAgent(NamedTuple):
    name: str
    bus: int
    load: bool  # the template's load profile
    pv: bool  # the template's PV profile


def bus_profile_agents(s: ScenarioFields, tpl: BusProfilesTemplate) -> list[BusAgent]:
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
    """(link index, field, target) of every target of a co-simulator's links (field
    ``to.2`` for a list's third)."""
    for j, link in enumerate(c.links):
        if isinstance(link.target, list):
            yield from ((j, f"{link.field}.{k}", t) for k, t in enumerate(link.target))
        else:
            yield j, link.field, link.target


def template_agents(s: ScenarioFields, ref: str) -> list[str] | None:
    """The agents of the template ``template:REF`` names (REF its index in ``templates`` or
    its name_prefix), in the community's order; None if it names none."""
    names = _per_template(s)
    if ref.isdigit():
        return names[int(ref)] if int(ref) < len(names) else None
    return next((n for t, n in zip(s.templates, names)
                 if getattr(t, "name_prefix", None) == ref), None)


def _takes_ampacity(network: str) -> bool:
    return "ampacity_ka" in inspect.signature(_networks().NETWORKS[network]).parameters


def _check_network(s: ScenarioFields) -> list[str]:
    """Every bus and line the scenario names is one of its network's: grid.ampacity_ka's
    lines, grid.buses, bus_profiles placements and co-simulator links ``bus:N``/``line:N``.
    The network is built (once per process) only when the scenario names one."""
    g, out, refs = s.grid, [], []  # refs: (field, kind, index)
    if g.ampacity_ka is not None and not _takes_ampacity(g.network):
        takers = [n for n in _networks().NETWORKS if _takes_ampacity(n)]
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


def _check_names(s: ScenarioFields) -> list[str]:
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
    prefixes = [t.name_prefix for t in s.templates if hasattr(t, "name_prefix")]
    for i, c in enumerate(s.cosimulators):
        out += [f"cosimulators.{i}.links.{j}.{field}: co-simulator {c.name}: {target} names no "
                f"agent of the scenario; allowed: agent:NAME with an agent's name, e.g. "
                f"{', '.join(names[:3])}" for j, field, target in _link_targets(c)
                if target.startswith("agent:") and target.removeprefix("agent:") not in seen]
        out += [f"cosimulators.{i}.links.{j}.{field}: co-simulator {c.name}: {target} names no "
                f"template of the scenario; allowed: template:N with N from 0 to "
                f"{len(s.templates) - 1} or a name_prefix ({', '.join(prefixes)})"
                for j, field, target in _link_targets(c) if target.startswith("template:")
                and template_agents(s, target.removeprefix("template:")) is None]
    return out


def _no_agents(s: ScenarioFields) -> str:
    """Why a scenario makes no agent (a market needs at least one)."""
    if not s.templates and not s.agents:
        return ("templates: the scenario has no agents (no templates and no explicit agents); "
                "allowed: at least one template or explicit agent")
    kinds = ", ".join(dict.fromkeys(t.kind for t in s.templates))
    return (f"templates: the scenario has no agents ({kinds} on {s.grid.network} make none: "
            f"the network has no loads of its own); allowed: at least one agent, from a "
            f"network with loads, another template or an explicit agent")


def _check_lengths(s: ScenarioFields) -> list[str]:
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


def _check_cosims(s: ScenarioFields) -> list[str]:
    """Co-simulators have names of their own, code this Python can start and the files
    they read; they need the distributed runtime."""
    out, names = [], set()
    for i, c in enumerate(s.cosimulators):
        if c.name in names or c.name in ("Grid", "Collector") or c.name.startswith("Agents"):
            out.append(f"cosimulators.{i}.name: {c.name!r} is taken")
        names.add(c.name)
        out += [f"cosimulators.{i}.{field}: co-simulator {c.name}: {problem}"
                for field, problem in [*_cosim_code(c), *_cosim_files(c)]]
    others = [c.name for c in s.cosimulators]
    for i, c in enumerate(s.cosimulators):
        for j, field, target in _link_targets(c):
            name = target.removeprefix("cosim:").split("/")[0]
            if target.startswith("cosim:") and (name == c.name or name not in others):
                rest = ", ".join(n for n in others if n != c.name) or "none (it is the only one)"
                out.append(f"cosimulators.{i}.links.{j}.{field}: co-simulator {c.name}: "
                           f"{target} names no other co-simulator; allowed: cosim:NAME/ENTITY "
                           f"with NAME one of {rest}")
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
                                "module:Class, e.g. "
                                "lemgrid.scenarios.cosim.monitor:VoltageMonitor"))]
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


def _check_calendar(s: ScenarioFields) -> list[str]:
    """Standard load profiles need a calendar and periods the quarter hours fit; PVWatts
    arrays need a calendar, a site and weather; a TMY file must exist."""
    out, h = [], s.horizon
    for i, tpl in enumerate(s.templates):
        where = f"templates.{i}"
        if isinstance(getattr(tpl, "load", None), StandardLoad):
            if h.start is None:
                out.append(f"{where}.load: profile {tpl.load.profile} is drawn for dates; "
                           "allowed: with horizon.start (YYYY-MM-DD)")
            if h.period_minutes % 15 and 15 % h.period_minutes:
                out.append(f"{where}.load: profile {tpl.load.profile} is given per quarter "
                           f"hour, horizon.period_minutes is {h.period_minutes}; allowed: a "
                           "multiple of 15 or a divisor of 15")
        if isinstance(getattr(tpl, "pv", None), PVWatts):
            missing = [name for name, value in (("horizon.start", h.start), ("site", s.site),
                                                ("weather", s.weather)) if value is None]
            if missing:
                out.append(f"{where}.pv: a pvwatts array needs {', '.join(missing)}; allowed: "
                           "a scenario with horizon.start, site and weather")
        turbine = getattr(tpl, "wind", None)
        if turbine is not None:
            missing = [name for name, value in (("horizon.start", h.start),
                                                ("weather", s.weather)) if value is None]
            if missing:
                out.append(f"{where}.wind: a wind turbine needs {', '.join(missing)}; "
                           "allowed: a scenario with horizon.start and weather")
            if turbine.turbine is not None and turbine.turbine not in library_turbines():
                out.append(f"{where}.wind.turbine: {turbine.turbine!r} is not a turbine of "
                           f"windpowerlib's library with a power curve; allowed: "
                           f"{', '.join(library_turbines()[:8])}, ... or a power_curve")
    w = s.weather
    if isinstance(w, TMYWeather) and w.file not in TMY_SHIPPED and not Path(w.file).exists():
        out.append(f"weather.file: no file {w.file}; allowed: an existing TMY3 CSV or EPW "
                   f"file (relative to the scenario's folder) or one pvlib ships: "
                   f"{', '.join(TMY_SHIPPED)}")
    return out

