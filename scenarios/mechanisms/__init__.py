"""The mechanism registry: the built-in plug-ins (one list, ``BUILTIN``) and those other
packages register through the entry-point group ``lemgrid.mechanisms`` (an entry point
names a ``Mechanism`` object: ``auction = "my_package.auction:MECHANISM"``).

Plug-ins are loaded by name, so that this module imports none of them: the registry is
read while the scenario schema is built, and a plug-in's hooks use the schema's users.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import replace
from importlib.metadata import entry_points

from lemgrid.coordinator.mechanisms.base import load_object
from lemgrid.scenarios.mechanisms.base import Mechanism, RunContext, lazy

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "Mechanism", "RunContext", "get", "lazy",
           "network_checks", "of_market", "registry", "serving"]

ENTRY_POINT_GROUP = "lemgrid.mechanisms"
BUILTIN = (  # the first is a scenario's mechanism where it names none
    "lemgrid.scenarios.plugins.p2v_rules:MECHANISM",
    "lemgrid.scenarios.plugins.locality:AMC",
    "lemgrid.scenarios.plugins.locality:GDRMC",
    "lemgrid.scenarios.plugins.locality:P2G",
    "lemgrid.scenarios.plugins.admm:MECHANISM",
    "lemgrid.scenarios.plugins.clearance:MECHANISM",
    "lemgrid.scenarios.plugins.bilateral:MECHANISM",
)


def _entry_points() -> list[tuple[str, str, object]]:
    """(origin, source, plug-in) of every installed entry point; one that fails to load is
    left out with a warning naming it (a broken package does not break lemgrid)."""
    out = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "?"
        origin = f"entry point {ep.name} = {ep.value} ({dist})"
        try:
            out.append((origin, ep.value, ep.load()))
        except Exception as exc:  # noqa: BLE001 - any error of a foreign package
            print(f"warning: mechanism plug-in {ep.value} ({dist}) not loaded: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)
    return out


@functools.cache
def registry() -> dict[str, Mechanism]:
    """Every registered mechanism by name, the built-ins first."""
    out: dict[str, Mechanism] = {}
    found = [("built-in", p, load_object(p)) for p in BUILTIN] + _entry_points()
    for origin, source, mech in found:
        if not isinstance(mech, Mechanism):
            print(f"warning: {origin} is not a lemgrid Mechanism; left out", file=sys.stderr)
            continue
        if mech.name in out:
            print(f"warning: {origin} registers {mech.name!r} again ({out[mech.name].origin} "
                  "has it); left out", file=sys.stderr)
            continue
        out[mech.name] = replace(mech, origin=origin, source=source)
    return out


def get(name: str) -> Mechanism:
    try:
        return registry()[name]
    except KeyError:
        raise KeyError(f"unknown mechanism {name!r}; known: {', '.join(registry())}") from None


def serving(kinds: set[str]) -> list[str]:
    """The mechanisms that serve every one of ``kinds``."""
    return [n for n, m in registry().items() if kinds <= m.kinds]


def network_checks() -> list[str]:
    """The mechanisms that can check another one's trades (``market.network_check``)."""
    return [n for n, m in registry().items() if m.check is not None]


def of_market(mechanism: str | None, network_check: str = "none") -> list[Mechanism]:
    """The plug-ins of a market: its mechanism, then the one that checks its trades
    (``network_check``); a name no longer registered is left out."""
    known = registry()
    return [known[n] for n in dict.fromkeys((mechanism, network_check)) if n in known]
