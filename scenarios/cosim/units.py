"""Units of the attributes a co-simulator link connects, and the factor a value is
multiplied by on its way.

The mosaik ecosystem names units in attribute names, in SI units and brackets
(``P[MW]``, ``Q[MVar]``, ``DNI[W/m2]``); lemgrid's own attributes carry theirs as a
suffix (``load_kw``, ``vm_pu``, ``loading_pct``, ``trafo_p_mw``). Where both ends of a
connection name a unit, the value is converted; a link may state the unit of its
co-simulator's attributes (``unit: W``, for a simulator whose names carry none, such as
``P_out``) or a plain factor (``scale: 0.001``). Nothing here imports mosaik.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple


class Unit(NamedTuple):
    quantity: str  # what it measures: units of one quantity convert into each other
    factor: float  # value in the quantity's base unit = value × factor


UNITS = {
    "W": Unit("power", 1.0), "kW": Unit("power", 1e3), "MW": Unit("power", 1e6),
    "GW": Unit("power", 1e9),
    "var": Unit("reactive power", 1.0), "kvar": Unit("reactive power", 1e3),
    "Mvar": Unit("reactive power", 1e6),
    "VA": Unit("apparent power", 1.0), "kVA": Unit("apparent power", 1e3),
    "MVA": Unit("apparent power", 1e6),
    "Wh": Unit("energy", 1.0), "kWh": Unit("energy", 1e3), "MWh": Unit("energy", 1e6),
    "W/m2": Unit("irradiance", 1.0), "kW/m2": Unit("irradiance", 1e3),
    "A": Unit("current", 1.0), "kA": Unit("current", 1e3),
    "V": Unit("voltage", 1.0), "kV": Unit("voltage", 1e3),
    "pu": Unit("per unit", 1.0),
    "%": Unit("percentage", 1.0),
    "deg": Unit("angle", 1.0),
}
# spellings the ecosystem uses for the same units (matched without regard to case)
SPELLINGS = {"w/m²": "W/m2", "w/m^2": "W/m2", "kw/m²": "kW/m2", "kw/m^2": "kW/m2",
             "p.u.": "pu", "percent": "%", "degree": "deg", "°": "deg"}
_BY_LOWER = {u.lower(): u for u in UNITS} | SPELLINGS
BRACKET = re.compile(r"\[([^\]]+)\]\s*$")  # P[MW] -> MW
# lemgrid's own attributes: the unit is the name's suffix (agents' inputs are kW)
OWN_SUFFIXES = {"_kw": "kW", "_kwh": "kWh", "_mw": "MW", "_pu": "pu", "_pct": "%",
                "_ka": "kA", "_degree": "deg"}


def known(name: str) -> str | None:
    """The unit ``name`` spells (any case, ``W/m²`` as ``W/m2``), None if unknown."""
    return _BY_LOWER.get(name.strip().lower())


def allowed() -> str:
    return ", ".join(UNITS)


def named_unit(attr: str, own: bool) -> str | None:
    """The unit an attribute's name states: a ``[unit]`` ending, or (``own``: lemgrid's
    agents and grid) the suffix; None where the name states none. A bracket this module
    does not know raises ValueError."""
    match = BRACKET.search(attr)
    if match:
        unit = known(match[1])
        if unit is None:
            raise ValueError(f"attribute {attr!r} names unit {match[1]!r}, which lemgrid "
                             f"does not know; allowed: {allowed()}, or the link's scale")
        return unit
    if own:
        return next((u for s, u in OWN_SUFFIXES.items() if attr.lower().endswith(s)), None)
    return None


def factor(src: str, dest: str) -> float:
    """What a value in unit ``src`` is multiplied by to be in unit ``dest``."""
    a, b = UNITS[src], UNITS[dest]
    if a.quantity != b.quantity:
        raise ValueError(f"{src} is {a.quantity}, {dest} is {b.quantity}: they do not "
                         "convert")
    return a.factor / b.factor


class End(NamedTuple):
    """One end of a connection: the attribute, whether it is lemgrid's own (an agent's or
    the grid's), and the unit the link states for it (its co-simulator's ``unit``)."""

    attr: str
    own: bool
    stated: str | None = None


def conversion(src: End, dest: End, scale: float | None = None) -> float:
    """The factor from ``src``'s value to ``dest``'s: ``scale`` if the link gives one,
    else from the units both ends state (1 where neither does). ValueError says what
    does not fit: different quantities, an unknown bracket unit, or a stated unit the
    other end cannot be converted to because its name states none."""
    if scale is not None:
        return scale
    units = [end.stated or named_unit(end.attr, end.own) for end in (src, dest)]
    if None not in units:
        return factor(*units)
    stated = src.stated or dest.stated
    if stated:
        unnamed = dest if units[1] is None else src
        raise ValueError(f"unit {stated} given, but {unnamed.attr!r} names no unit to "
                         f"convert it to; allowed: a scale instead of unit")
    return 1.0


def check_scale(value: float) -> float:
    if not math.isfinite(value) or value == 0:
        raise ValueError(f"scale {value} is not a finite factor ≠ 0")
    return value
