"""The scenario schema: one strict pydantic model; ``scenario.schema.json`` is generated
from it (``python -m lemgrid.scenarios.schema``) and checked in.

Unknown keys are errors. Loading reports every problem as one line naming the file,
the field path, what is wrong and what is allowed.

- ``models``: the strict models of a scenario's parts (tariffs, market, grid, runtime,
  templates, explicit agents, co-simulators, ...), each checking its own fields;
- ``checks``: the checks across fields, and the agent naming the community builder shares;
- ``scenario``: ``Scenario``, the parts together, which runs the checks;
- ``yaml_loader``: reading the file (its size, UTF-8, safe YAML without duplicate keys,
  deep nesting or alias bombs) and ``--set`` overrides;
- ``error_format``: a pydantic ValidationError as one line per problem;
- ``scenario_error``: ``ScenarioError``, which they raise;
- here: ``load_scenario`` (read, override, validate), ``resolve_scenario`` and
  ``json_schema``, and the names the rest of lemgrid imports from the schema.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from lemgrid.scenarios.schema.checks import (
    _spans,
    agent_count,
    agent_kinds,
    bus_profile_agents,
    is_path_key,
    network_consumers,
)
from lemgrid.scenarios.schema.error_format import _format
from lemgrid.scenarios.schema.models import (
    EV_SOC_MIN_FRAC,
    BuildingTemplate,
    BusProfilesTemplate,
    Choice,
    ChpConfig,
    Counts,
    EVTemplate,
    ExplicitBuilding,
    ExplicitEV,
    ExplicitProsumer,
    GeneratorConfig,
    NetworkLoadsTemplate,
    ProsumerTemplate,
    Uniform,
)
from lemgrid.scenarios.schema.profiles import TMY_SHIPPED
from lemgrid.scenarios.schema.scenario import Scenario
from lemgrid.scenarios.schema.scenario_error import ScenarioError, _show
from lemgrid.scenarios.schema.yaml_loader import (
    MAX_FILE_BYTES,
    SCHEMA_PATH,
    _parse_yaml,
    _read_text,
    apply_overrides,
    shipped_scenarios,
)

__all__ = [
    "EV_SOC_MIN_FRAC",
    "MAX_FILE_BYTES",
    "SCHEMA_PATH",
    "BuildingTemplate",
    "BusProfilesTemplate",
    "Choice",
    "ChpConfig",
    "Counts",
    "EVTemplate",
    "ExplicitBuilding",
    "ExplicitEV",
    "ExplicitProsumer",
    "GeneratorConfig",
    "NetworkLoadsTemplate",
    "ProsumerTemplate",
    "Scenario",
    "ScenarioError",
    "Uniform",
    "_spans",
    "agent_count",
    "agent_kinds",
    "apply_overrides",
    "bus_profile_agents",
    "json_schema",
    "load_scenario",
    "network_consumers",
    "resolve_scenario",
    "shipped_scenarios",
]


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
    weather = raw.get("weather")
    if isinstance(weather, dict) and isinstance(weather.get("file"), str) \
            and weather["file"] not in TMY_SHIPPED:
        raw["weather"] = _resolve_paths(weather, path.resolve().parent)
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
