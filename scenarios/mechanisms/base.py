"""The plug-in protocol: what a market mechanism is to lemgrid.

A mechanism is one ``Mechanism`` object. It holds its pure core (``core``, a
``coordinator.mechanisms.base.MarketCore``: the parameter model, the agent kinds served,
``init / step / clear / settle``), which is all the coordinator needs, and what the rest
of lemgrid asks of it: how its participants answer (``strategy``), its centralized
counterpart, its result tables, its report sections and figures and the KPIs it adds to
``lemgrid compare``. Nothing else in lemgrid names a mechanism.

Hooks are plain callables; a plug-in module imports only its core and light helpers at
module level and what its hooks need inside them (the registry loads plug-ins while the
scenario schema is being built, so a plug-in module cannot import the schema's users).

Hook signatures (every argument by keyword):

- ``run_centralized(scenario, start, actuals, progress, first_day, finished)``: run the
  days as one centralized model (``market.mode: centralized``); None: the mechanism has
  no centralized mode.
- ``precheck(ctx) -> dict``: before the market opens, e.g. the first day's centralized
  optimum (``ctx.known`` afterwards); a ``ScenarioError``/``RunError`` stops the run.
- ``results(ctx) -> dict``: write the mechanism's own tables into ``ctx.out`` and return
  the figures ``summary.json`` adds under ``market``.
- ``sections(run) -> list[Section]`` and ``figures() -> list[FigureSpec]``: the
  mechanism's part of ``report.html`` (``scenarios.results.sections``).
- ``scenario_problems(scenario) -> list[str]``: problems of a scenario under this
  mechanism that its parameter model alone cannot see (one line each, field first).
- ``bench(scenario, runs, info, out) -> int``: the mechanism's own ``lemgrid bench``
  (table printed, JSON written to ``out``); None: the days bench, or the decentralized
  against the centralized market where it has a centralized mode.
- ``check``: a coordinator-side wrapper ``(MarketCore) -> MarketCore`` that lets this
  mechanism check another one's trades (``market.network_check: <name>``).

One flag: ``retail_baseline`` marks a mechanism with no local market at all (every
participant buys and sells at its own tariff): ``lemgrid lab`` runs it as the yardstick
every participant's saving is measured against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lemgrid.coordinator.mechanisms.base import MarketCore, MarketParams, load_object


def lazy(path: str) -> Callable:
    """A hook that is the function at ``module:name``, imported at its first call (a
    plug-in module imports its hooks' modules no earlier: module docstring)."""
    def hook(*args, **kwargs):
        return load_object(path)(*args, **kwargs)

    hook.__qualname__ = f"lazy({path})"
    return hook


@dataclass(frozen=True, kw_only=True)
class Mechanism:
    core: MarketCore
    description: str  # one line: the market it models
    citation: str = ""  # the paper it comes from
    strategy: str  # its participants' strategy family (agents.strategies), or module:Class
    run_centralized: Callable | None = None
    precheck: Callable | None = None
    results: Callable | None = None
    tables: tuple[str, ...] = ()  # the tables ``results`` writes (name.parquet)
    sections: Callable | None = None
    figures: Callable | None = None
    kpis: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # compare KPI -> summary.json (section, key)
    traded_label: str = "traded kWh"  # what summary.json market.traded_kwh is, for a reader
    commodities: frozenset[str] = frozenset({"power"})  # what it trades (heat: a heat market)
    scenario_problems: Callable | None = None
    bench: Callable | None = None
    check: Callable | None = None
    retail_baseline: bool = False  # no local market: the lab's retail baseline
    origin: str = "built-in"  # where it was registered from (set by the registry)
    source: str = ""  # module:attribute it was loaded from (set by the registry)

    @property
    def name(self) -> str:
        return self.core.name

    @property
    def params(self) -> type[MarketParams]:
        return self.core.params_type

    @property
    def kinds(self) -> frozenset[str]:
        return self.core.kinds

    @property
    def default_rounds(self) -> int:
        return self.params.DEFAULT_ROUNDS


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """What a mechanism's hooks see of a run: the scenario, its community and placement,
    the finished days, their power flows and where the results go."""

    scenario: object  # scenarios.schema.Scenario
    out: Path
    community: list
    bus_of: dict
    days: list = field(default_factory=list)
    grid_days: list = field(default_factory=list)
    known: dict = field(default_factory=dict)  # day -> centralized optimum found before

    @property
    def period_h(self) -> float:
        return self.scenario.horizon.period_minutes / 60
