"""One-line reasons why an agent's day has no feasible plan.

Called after the solver reports infeasibility; it re-checks the agent's data with
simple bounds (greedy charging, power headroom) to name the first cause it finds.
"""

from __future__ import annotations

import numpy as np

from lemgrid.agents.data import (
    AgentData,
    BatterySpec,
    BuildingData,
    EVData,
    FlexibleLoad,
    ProsumerData,
)

LABELS = {ProsumerData: "prosumer", EVData: "EV", BuildingData: "building"}


def _battery_bounds(kind: str, name: str, b: BatterySpec) -> str | None:
    if not b.soc_min_kwh <= b.e0_kwh <= b.capacity_kwh:
        return (f"{kind} {name}: initial energy {b.e0_kwh:.1f} kWh is outside the battery's "
                f"range {b.soc_min_kwh:.1f}–{b.capacity_kwh:.1f} kWh")
    if b.e_end_min_kwh > b.capacity_kwh:
        return (f"{kind} {name}: the day must end with {b.e_end_min_kwh:.1f} kWh but the "
                f"battery holds at most {b.capacity_kwh:.1f} kWh")
    return None


def greedy_energy_kwh(d: EVData) -> np.ndarray:
    """Energy on board after each period when the EV charges at full power whenever it
    is plugged (capacity and trips respected, the floor ignored): an upper bound."""
    b, h = d.battery, d.horizon.period_h
    gain = h * b.eta_charge * min(b.charge_max_kw, d.buy_max_kw + d.p2v_max_kw)
    energy, out = b.e0_kwh, np.empty(d.horizon.periods)
    for t in range(d.horizon.periods):
        if not d.away[t]:
            energy = min(b.capacity_kwh, energy + gain)
        energy -= float(d.trip_kwh[t])
        out[t] = energy
    return out


def _explain_ev(d: EVData) -> str:
    b, n = d.battery, d.horizon.periods
    energy = greedy_energy_kwh(d)
    low = np.nonzero(energy < b.soc_min_kwh - 1e-9)[0]
    if low.size:
        start = end = int(low[0])
        while start > 0 and d.away[start - 1]:
            start -= 1
        while end + 1 < n and d.away[end + 1]:
            end += 1
        held = energy[start - 1] if start > 0 else b.e0_kwh
        need = float(np.sum(d.trip_kwh[start:end + 1])) + b.soc_min_kwh
        return (f"EV {d.name}: trips need {need:.1f} kWh, battery can hold at most "
                f"{held:.1f} kWh before {d.horizon.label(start)}")
    if energy[-1] < b.e_end_min_kwh - 1e-9:
        return (f"EV {d.name}: the day must end with {b.e_end_min_kwh:.1f} kWh but at most "
                f"{energy[-1]:.1f} kWh can be charged by the end of the day")
    return f"EV {d.name}: no feasible charging plan under the current limits"


def _explain_prosumer(d: ProsumerData) -> str:
    dis = d.battery.discharge_max_kw if d.battery is not None else 0.0
    for t in range(d.horizon.periods):
        pv, load = float(d.pv_kw[t]), float(d.load_kw[t])
        if load > d.buy_max_kw + dis + pv + 1e-9:
            return (f"prosumer {d.name}: load {load:.1f} kW at {d.horizon.label(t)} exceeds "
                    f"contracted {d.buy_max_kw:.1f} kW + battery {dis:.1f} kW + PV {pv:.1f} kW")
    return f"prosumer {d.name}: no feasible plan (battery energy or end-of-day target)"


def _window(f: FlexibleLoad, periods: int) -> range:
    return range(max(f.window_start, 0), min(f.window_end, periods))


def _producers_kw(d: BuildingData) -> tuple[float, float]:
    """(least, most) power a building's generator and CHP unit make together (kW)."""
    units = [(g.p_min_kw, g.p_max_kw) for g in (d.generator,) if g is not None]
    units += [d.chp.power_range_kw()] if d.chp is not None else []
    return sum(lo for lo, _ in units), sum(hi for _, hi in units)


def _supply_kw(d: BuildingData, t: int) -> float:
    """Most power a building can draw in period t: connection, battery, PV, wind,
    generator and CHP unit."""
    dis = d.battery.discharge_max_kw if d.battery is not None else 0.0
    return d.buy_max_kw + dis + float(d.pv_kw[t]) + float(d.wind_kw[t]) + _producers_kw(d)[1]


def _short_window(d: BuildingData) -> str | None:
    for f in d.flexible:
        if f.duration_periods > (n := len(_window(f, d.horizon.periods))):
            return (f"building {d.name}: flexible load {f.name} needs {f.duration_periods} "
                    f"periods but its window {f.window_start}-{f.window_end} has {n}")
    return None


def _load_above_supply(d: BuildingData) -> str | None:
    dis = d.battery.discharge_max_kw if d.battery is not None else 0.0
    made = _producers_kw(d)[1]
    producers = f" + generator and CHP {made:.1f} kW" if made > 0 else ""
    for t in range(d.horizon.periods):
        load, pv, wind = float(d.load_kw[t]), float(d.pv_kw[t]), float(d.wind_kw[t])
        if load > _supply_kw(d, t) + 1e-9:
            return (f"building {d.name}: load {load:.1f} kW at {d.horizon.label(t)} exceeds "
                    f"contracted {d.buy_max_kw:.1f} kW + battery {dis:.1f} kW + PV {pv:.1f} kW "
                    f"+ wind {wind:.1f} kW{producers}")
    return None


def _heat_unmet(d: BuildingData) -> str | None:
    """Heat demand the CHP unit cannot match with no heat bought or sold (the heat market
    closed): above its most heat (0 without a CHP unit) or below its least."""
    if not d.has_heat:
        return None
    lo, hi = d.chp.heat_range_kw() if d.chp is not None else (0.0, 0.0)
    demand = d.heat_demand_kw if d.heat_demand_kw is not None else np.zeros(d.horizon.periods)
    closed = "and no heat is bought (the heat market is closed)"
    for t in range(d.horizon.periods):
        heat, at = float(demand[t]), d.horizon.label(t)
        if heat > hi + 1e-9 and d.chp is None:
            return (f"building {d.name}: heat demand {heat:.1f} kW_th at {at} but it has no "
                    f"CHP unit, {closed}")
        if heat > hi + 1e-9:
            return (f"building {d.name}: heat demand {heat:.1f} kW_th at {at} exceeds the "
                    f"{hi:.1f} kW_th its CHP unit can make, {closed}")
        if heat < lo - 1e-9:
            return (f"building {d.name}: its CHP unit makes at least {lo:.1f} kW_th but the "
                    f"heat demand at {at} is {heat:.1f} kW_th, and no heat is sold (the heat "
                    "market is closed)")
    return None


def _must_run_above_sinks(d: BuildingData) -> str | None:
    """The generator's and CHP unit's least power above all the building can take: load,
    flexible loads, battery charging and export."""
    least = _producers_kw(d)[0]
    if least <= 0:
        return None
    charge = d.battery.charge_max_kw if d.battery is not None else 0.0
    flexible = sum(f.rating_kw for f in d.flexible)
    for t in range(d.horizon.periods):
        export = d.sell_max_kw if d.pil_kw is None else min(d.sell_max_kw, float(d.pil_kw[t]))
        sinks = float(d.load_kw[t]) + flexible + charge + export
        if least > sinks + 1e-9:
            return (f"building {d.name}: its generator and CHP unit make at least {least:.1f} "
                    f"kW but at {d.horizon.label(t)} load, flexible loads, battery and export "
                    f"take at most {sinks:.1f} kW")
    return None


def _flexible_does_not_fit(d: BuildingData) -> str | None:
    """A flexible load that fits (on top of the non-flexible load) in fewer periods of
    its window than it must run."""
    for f in d.flexible:
        window = _window(f, d.horizon.periods)
        fits = sum(float(d.load_kw[t]) + f.rating_kw <= _supply_kw(d, t) + 1e-9 for t in window)
        if f.duration_periods > fits:
            return (f"building {d.name}: flexible load {f.name} ({f.rating_kw:.1f} kW) fits in "
                    f"{fits} periods of its window {f.window_start}-{f.window_end}, needs "
                    f"{f.duration_periods}")
    return None


def _explain_building(d: BuildingData) -> str:
    return (_short_window(d) or _heat_unmet(d) or _load_above_supply(d)
            or _must_run_above_sinks(d) or _flexible_does_not_fit(d)
            or f"building {d.name}: no feasible plan (battery energy, end-of-day target or "
               "flexible loads together)")


EXPLAIN = {ProsumerData: _explain_prosumer, EVData: _explain_ev, BuildingData: _explain_building}


def explain_infeasible(d: AgentData) -> str:
    """The first reason found why ``d`` has no feasible plan, as one line."""
    if d.battery is not None and (msg := _battery_bounds(LABELS[type(d)], d.name, d.battery)):
        return msg
    return EXPLAIN[type(d)](d)
