"""A pydantic ``ValidationError`` of a scenario as one line per problem: ``source: field:
what is wrong; what is allowed``. The union members pydantic adds to error locations are
taken out, the member the input was meant for is picked, and the keys and forms allowed
are read from the scenario's JSON schema."""

from __future__ import annotations

import functools
import re

from pydantic import BaseModel, ValidationError

from lemgrid.coordinator.mechanisms.base import MarketParams
from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.catalog import BATTERY_TYPES, EV_MODELS
from lemgrid.scenarios.schema.models import (
    FLEXIBLE,
    BuildingTemplate,
    BusProfilesTemplate,
    EVTemplate,
    ExplicitBuilding,
    ExplicitEV,
    ExplicitProsumer,
    NetworkLoadsTemplate,
    ProsumerTemplate,
    Strict,
)
from lemgrid.scenarios.schema.scenario import Scenario
from lemgrid.scenarios.schema.scenario_error import _show

MAX_ERROR_LINES = 20  # lines of one report; the rest are counted
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
