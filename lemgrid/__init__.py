"""lemgrid: a distributed multi-agent co-simulation of local electricity markets.

The public API, imported on first use (``import lemgrid`` itself is light):

- ``load_scenario(path, overrides=None) -> Scenario``: read and validate a scenario file
  (a path, or ``resolve_scenario(name)`` for a shipped one); ``ScenarioError`` lists
  every problem, one line each.
- ``run(scenario, out) -> dict``: run it, write every result into ``out``, return
  ``summary.json``'s content.
- ``read_results(out) -> Run``: a results folder read back (summary, resolved config,
  result tables).
- ``mechanisms() -> dict[str, Mechanism]``: the mechanism registry; ``Mechanism``,
  ``MarketCore``, ``MarketParams``, ``MarketData`` and ``RunContext`` are what a
  mechanism plug-in is written with (docs/mechanisms/writing.md).

The packages are ``lemgrid.agents``, ``lemgrid.coordinator``, ``lemgrid.grid`` and
``lemgrid.scenarios``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

__all__ = ["MarketCore", "MarketData", "MarketParams", "Mechanism", "RunContext", "Scenario",
           "ScenarioError", "load_scenario", "mechanisms", "read_results", "resolve_scenario",
           "run"]

_LAZY = {  # name -> module it comes from
    "Scenario": "lemgrid.scenarios.schema", "ScenarioError": "lemgrid.scenarios.schema",
    "load_scenario": "lemgrid.scenarios.schema",
    "resolve_scenario": "lemgrid.scenarios.schema",
    "Mechanism": "lemgrid.scenarios.mechanisms", "RunContext": "lemgrid.scenarios.mechanisms",
    "MarketCore": "lemgrid.coordinator.mechanisms.base",
    "MarketData": "lemgrid.coordinator.mechanisms.base",
    "MarketParams": "lemgrid.coordinator.mechanisms.base",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lemgrid' has no attribute {name!r}")


def run(scenario, out: str | Path, progress: bool = False) -> dict:
    """Run ``scenario`` (a ``Scenario``, or a path or shipped name to load); write its
    results into ``out``; return its summary."""
    from lemgrid.scenarios.run.world import run_scenario
    from lemgrid.scenarios.schema import load_scenario, resolve_scenario

    if not hasattr(scenario, "market"):
        scenario = load_scenario(resolve_scenario(str(scenario)))
    return run_scenario(scenario, Path(out), progress=progress)


def read_results(out: str | Path):
    """A results folder read back (``lemgrid.scenarios.results.report.Run``)."""
    from lemgrid.scenarios.results.report import Run

    return Run.load(Path(out))


def mechanisms() -> dict:
    """Every registered mechanism by name (built-ins and entry points)."""
    from lemgrid.scenarios.mechanisms import registry

    return dict(registry())
