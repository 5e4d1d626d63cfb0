"""Runs of many days: an agent's data cover the whole run (every per-period array holds
``days × periods`` values) and each day's model is built from that day's slice, starting
from the energy the previous day left in the battery."""

from __future__ import annotations

import dataclasses

import numpy as np

from lemgrid.agents.diagnose import greedy_energy_kwh


def _arrays(obj) -> dict[str, np.ndarray]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if isinstance(getattr(obj, f.name), np.ndarray)}


def days_covered(data) -> int:
    """Whole days every per-period array of ``data`` (and its tariff) covers."""
    periods = data.horizon.periods
    lengths = [len(a) for a in (*_arrays(data).values(), *_arrays(data.tariff).values())]
    return min(lengths) // periods if lengths else 0


def _sliced(obj, day: int, periods: int):
    cut = slice(day * periods, (day + 1) * periods)
    return dataclasses.replace(obj, **{k: a[cut] for k, a in _arrays(obj).items()})


def day_slice(data, day: int, e0_kwh: float | None = None):
    """``data`` for day ``day`` only, its battery starting with ``e0_kwh`` (default: the
    data's own initial energy). An EV's end-of-day target is capped at what it can
    recharge after that day's trips (RECON: an EV back at 23:45 cannot refill that day)."""
    periods = data.horizon.periods
    if day >= days_covered(data):
        raise ValueError(f"{data.name}: its data cover {days_covered(data)} day(s), "
                         f"day {day + 1} was asked for")
    one = _sliced(data, day, periods)
    one = dataclasses.replace(one, tariff=_sliced(data.tariff, day, periods))
    if one.battery is not None and e0_kwh is not None:
        one = dataclasses.replace(one, battery=dataclasses.replace(one.battery, e0_kwh=e0_kwh))
    if hasattr(one, "trip_kwh"):  # an EV
        one = _cap_ev_target(one)
    return one


def _cap_ev_target(d):
    b = d.battery
    reachable = float(greedy_energy_kwh(dataclasses.replace(d, p2v_max_kw=0.0))[-1])
    if reachable < b.e_end_min_kwh:
        target = max(reachable, b.soc_min_kwh)
        d = dataclasses.replace(d, battery=dataclasses.replace(b, e_end_min_kwh=target))
    return d
