"""A scenario's co-simulators in the mosaik world: started and their entities created
before the agents (so a wrong entity name stops the run before any agent process
starts), then linked to agents, the grid and one another with each value converted to
the unit its destination takes. Every problem is one line naming the co-simulator and
the link; all of them are reported together, before the first period."""

from __future__ import annotations

from pathlib import Path

from lemgrid.grid.simulator import child_eid
from lemgrid.scenarios.cosim.entities import find, of_type
from lemgrid.scenarios.run.errors import RunError
from lemgrid.scenarios.schema import Scenario
from lemgrid.scenarios.schema.checks import template_agents
from lemgrid.scenarios.schema.models import CosimLink, Cosimulator


class CosimError(RunError):
    """A co-simulator that cannot be started, created or linked as the scenario says: a
    scenario error found at run time (one line per problem)."""

    exit_code = 2


def fill_out(value, out: Path):
    """``{out}`` in string values → the run's results folder."""
    if isinstance(value, dict):
        return {k: fill_out(v, out) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_out(v, out) for v in value]
    return value.replace("{out}", str(out)) if isinstance(value, str) else value


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (mosaik's and simulators' span several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def start_cosimulators(world, s: Scenario, out: Path, start) -> dict[str, list]:
    """Start each co-simulator (``start(world, name, s, **sim_params)``), create its
    entities and check that every entity and co-simulator target its links name exists;
    the entities ``create`` returned, by co-simulator."""
    created = {}
    for c in s.cosimulators:
        sim = start(world, c.name, s, **fill_out(c.sim_params, out))
        try:
            factory = getattr(sim, c.model)
            created[c.name] = [factory(**fill_out(params, out)) for params in c.entities]
        except Exception as exc:  # noqa: BLE001 - mosaik's or the simulator's complaint
            raise CosimError(f"cosimulators.{c.name}: {one_line(exc)}") from None
    problems = []  # agents and the grid do not exist yet: their targets stand for them
    for where, link, src, dest, _ in _connections(s, created, lambda t: t, problems):
        problems += [f"{where}: {p}" for a, b in link.attrs.items()
                     if (p := _missing(src, dest, a, b))]
    if problems:
        raise CosimError("\n".join(problems))
    return created


def linked_agents(s: Scenario) -> set[str]:
    """The agents some co-simulator's link names, either way (their processes step every
    period: a co-simulator sends or reads their values period by period)."""
    names = set()
    for c in s.cosimulators:
        for link in c.links:
            for target in link.targets:
                kind, _, ref = target.partition(":")
                if kind == "agent":
                    names.add(ref)
                elif kind == "template":
                    names.update(template_agents(s, ref) or ())
    return names


def connect_cosimulators(world, s: Scenario, created: dict[str, list], agents: dict,
                         grid) -> None:
    """Every link of every co-simulator, attribute by attribute (each with its unit
    factor as mosaik's transform); all failed connections in one CosimError."""
    def resolve(target: str):
        found = link_target(target, agents, grid)
        if found is None:
            raise LookupError(f"no {target.replace(':', ' ')}")
        return found

    problems = []
    for where, link, src, dest, target in _connections(s, created, resolve, problems):
        problems += [f"{where}: {p}" for a, b in link.attrs.items()
                     if (p := _connect(world, src, dest, a, b, link.factor(a, target)))]
    if problems:
        raise CosimError("\n".join(problems))


def _connections(s: Scenario, created: dict[str, list], resolve, problems: list[str]):
    """Every connection the links make, in order: (the link's field name, the link, the
    source and destination entities, the target as named); a link whose entity or target
    is missing adds its line to ``problems`` instead."""
    for c in s.cosimulators:
        for i, link in enumerate(c.links):
            where = f"cosimulators.{c.name}.links.{i}"
            try:
                pairs = _pairs(s, c, link, created, resolve)
            except LookupError as exc:
                problems.append(f"{where}.{exc.args[0]}")
                continue
            for entity, other, target in pairs:
                src, dest = (entity, other) if link.to is not None else (other, entity)
                yield where, link, src, dest, target


def _pairs(s: Scenario, c: Cosimulator, link: CosimLink, created: dict[str, list],
           resolve) -> list[tuple]:
    """(this co-simulator's entity, the other end, its target) of each connection a link
    makes; LookupError ``FIELD: problem`` where an entity or target is missing."""
    entities = created[c.name]
    try:
        mine = of_type(entities, link.each) if link.each else [find(entities, link.entity)]
    except LookupError as exc:
        raise LookupError(f"{'each' if link.each else 'entity'}: {c.name}: {exc}") from None
    targets = []
    for target in link.targets:
        if target.startswith("template:"):
            targets += [f"agent:{n}" for n in template_agents(s, target.split(":", 1)[1])]
        else:
            targets.append(target)
    others = []
    for target in targets:
        try:
            others.append((cosim_entity(target, created) if target.startswith("cosim:")
                           else resolve(target), target))
        except LookupError as exc:
            raise LookupError(f"{link.field}: {exc}") from None
    if len(mine) == 1:
        return [(mine[0], other, t) for other, t in others]
    if len(others) == 1:
        return [(e, *others[0]) for e in mine]
    if len(mine) < len(others):
        raise LookupError(f"each: {c.name} created {len(mine)} entities of type "
                          f"{link.each} for {len(others)} targets; allowed: at most "
                          f"{len(mine)} targets, or one for all")
    return [(e, other, t) for e, (other, t) in zip(mine, others)]


def cosim_entity(target: str, created: dict[str, list]):
    """The entity ``cosim:NAME/ENTITY`` names (ENTITY an index, index path or eid)."""
    name, _, ref = target.removeprefix("cosim:").partition("/")
    try:
        return find(created[name], ref)
    except LookupError as exc:
        raise LookupError(f"{target}: {name}: {exc}") from None


def link_target(target: str, agents: dict, grid):
    """The mosaik entity a link names: ``grid``, ``bus:N``/``line:N`` (the grid's child
    entities) or ``agent:NAME``; None if there is none."""
    if target == "grid":
        return grid
    kind, _, key = target.partition(":")
    if kind in ("bus", "line"):
        return grid.children_dict.get(child_eid(kind, int(key)))
    return agents.get(key)


def _connect(world, src, dest, src_attr: str, dest_attr: str, factor: float) -> str | None:
    """Connect one attribute pair; what is wrong with it, None if it connected."""
    missing = _missing(src, dest, src_attr, dest_attr)
    if missing:
        return missing
    what = f"{_name(src)}.{src_attr} → {_name(dest)}.{dest_attr}"
    try:
        if factor == 1.0:
            world.connect(src, dest, (src_attr, dest_attr))
        else:
            world.connect(src, dest, (src_attr, dest_attr), transform=Scaled(factor))
    except Exception as exc:  # noqa: BLE001 - mosaik's ScenarioError and kin, in full
        errors = getattr(exc, "errors", None) or [exc]
        return f"{what}: {'; '.join(one_line(e) for e in errors)}"
    return None


def _missing(src, dest, src_attr: str, dest_attr: str) -> str | None:
    """What attribute of the pair its entity lacks, None if both have theirs; an end that
    is a target's name (an agent or the grid, before they exist) is not checked."""
    out = []
    if not isinstance(src, str) and src_attr not in src.model_mock.output_attrs:
        out.append(f"{src.full_id} ({src.type}) has no output {src_attr!r}; allowed: "
                   f"{_attrs(src.model_mock.output_attrs)}{_children_with(src, src_attr)}")
    if not isinstance(dest, str) and dest_attr not in dest.model_mock.input_attrs:
        out.append(f"{dest.full_id} ({dest.type}) takes no input {dest_attr!r}; allowed: "
                   f"{_attrs(dest.model_mock.input_attrs)}")
    return (f"{_name(src)}.{src_attr} → {_name(dest)}.{dest_attr}: {'; '.join(out)}"
            if out else None)


def _children_with(entity, attr: str) -> str:
    """Where a parent lacks an output its children have, how to name them."""
    kinds = list(dict.fromkeys(c.type for c in entity.children
                               if attr in c.model_mock.output_attrs))
    if not kinds:
        return ""
    return (f" (its children of type {', '.join(kinds)} have it: name one by its eid or "
            f"index path, or link each: {kinds[0]})")


def _name(end) -> str:
    return end if isinstance(end, str) else end.full_id


def _attrs(attrs) -> str:
    """A model's attributes as a list (a model with ``any_inputs`` takes any)."""
    try:
        return ", ".join(sorted(attrs)) or "none"
    except TypeError:  # mosaik's OutSet: every attribute but a few
        return "any"


class Scaled:
    """mosaik's ``transform``: a value (or each of a list's values) times ``factor``;
    None stays None."""

    def __init__(self, factor: float):
        self.factor = factor

    def __call__(self, value):
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value * self.factor
