"""One-line reasons why an agent's day has no feasible plan.

Called after the solver reports infeasibility; it re-checks the agent's data with
simple bounds (greedy charging, power headroom) to name the first cause it finds.
"""

from __future__ import annotations

import numpy as np

from agents.data import BatterySpec, EVData, ProsumerData


def _battery_bounds(kind: str, name: str, b: BatterySpec) -> str | None:
    if not b.soc_min_kwh <= b.e0_kwh <= b.capacity_kwh:
        return (f"{kind} {name}: initial energy {b.e0_kwh:.1f} kWh is outside the battery's "
                f"range {b.soc_min_kwh:.1f}–{b.capacity_kwh:.1f} kWh")
    if b.e_end_min_kwh > b.capacity_kwh:
        return (f"{kind} {name}: the day must end with {b.e_end_min_kwh:.1f} kWh but the "
                f"battery holds at most {b.capacity_kwh:.1f} kWh")
    return None


def _explain_ev(d: EVData) -> str:
    b, h = d.battery, d.horizon.period_h
    power = min(b.charge_max_kw, d.buy_max_kw + d.p2v_max_kw)
    energy, trip_start, held = b.e0_kwh, None, b.e0_kwh
    for t in range(d.horizon.periods):
        if d.away[t] and trip_start is None:
            trip_start, held = t, energy
        elif not d.away[t]:
            trip_start = None
            energy = min(b.capacity_kwh, energy + h * b.eta_charge * power)
        energy -= float(d.trip_kwh[t])
        if energy < b.soc_min_kwh - 1e-9:
            start = trip_start if trip_start is not None else t
            end = start
            while end + 1 < d.horizon.periods and d.away[end + 1]:
                end += 1
            need = float(np.sum(d.trip_kwh[start:end + 1])) + b.soc_min_kwh
            return (f"EV {d.name}: trips need {need:.1f} kWh, battery can hold at most "
                    f"{held:.1f} kWh before {d.horizon.label(start)}")
    if energy < b.e_end_min_kwh - 1e-9:
        return (f"EV {d.name}: the day must end with {b.e_end_min_kwh:.1f} kWh but at most "
                f"{energy:.1f} kWh can be charged by the end of the day")
    return f"EV {d.name}: no feasible charging plan under the current limits"


def _explain_prosumer(d: ProsumerData) -> str:
    dis = d.battery.discharge_max_kw if d.battery is not None else 0.0
    for t in range(d.horizon.periods):
        pv, load = float(d.pv_kw[t]), float(d.load_kw[t])
        if load > d.buy_max_kw + dis + pv + 1e-9:
            return (f"prosumer {d.name}: load {load:.1f} kW at {d.horizon.label(t)} exceeds "
                    f"contracted {d.buy_max_kw:.1f} kW + battery {dis:.1f} kW + PV {pv:.1f} kW")
    return f"prosumer {d.name}: no feasible plan (battery energy or end-of-day target)"


def explain_infeasible(d: ProsumerData | EVData) -> str:
    """The first reason found why ``d`` has no feasible plan, as one line."""
    kind = "prosumer" if isinstance(d, ProsumerData) else "EV"
    if d.battery is not None and (msg := _battery_bounds(kind, d.name, d.battery)):
        return msg
    return _explain_ev(d) if isinstance(d, EVData) else _explain_prosumer(d)
