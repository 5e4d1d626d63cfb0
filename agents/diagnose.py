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


def explain_infeasible(d: ProsumerData | EVData) -> str:
    """The first reason found why ``d`` has no feasible plan, as one line."""
    kind = "prosumer" if isinstance(d, ProsumerData) else "EV"
    if d.battery is not None and (msg := _battery_bounds(kind, d.name, d.battery)):
        return msg
    return _explain_ev(d) if isinstance(d, EVData) else _explain_prosumer(d)
