"""Seeded synthetic daily profiles for prosumers (load, PV) and EVs (trips).

Every random draw comes from the ``numpy.random.Generator`` passed in, so the same seed
gives identical arrays.  Pure functions: no files, no output.

Figures from the paper (Faia et al. 2021, "Case Study"), reproduced exactly when passed
as totals: 50 prosumers with 2001.89 kWh of load, 1417.82 kWh of PV energy and 248.8 kW
of installed PV; 40 EVs with 780 trips (one trip = one EV away during one 15-min period),
nobody away before 06:15 or after the 23:30 period, 36 EVs away at the 08:15 and 19:45
peaks.  Everything else (the shapes, the spreads between agents, speeds) is RECON: the
paper shows its profiles only as figures.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MINUTES_PER_DAY = 24 * 60
_HHMM = re.compile(r"^(\d{2}):(\d{2})$")

# RECON shape parameters (hours of the day).
SUNRISE_H, SUNSET_H = 6.5, 20.0  # a sunny (summer) day in Portugal: PV from ~06:30 to 20:00
PV_SHAPE_EXPONENT = 1.3  # sin(.)**1.3 bell: peak ~0.75 kW per installed kW at 5.7 kWh/kW
MAX_HUMP_WIDTH_H = 2.5  # widest half-width (sigma) of a trip hump
MAX_DAILY_TRIP_KWH = 16.0  # RECON: < half of a 40 kWh battery, so every catalogue EV copes


@dataclass
class ProsumerProfile:
    load_kw: np.ndarray  # shape (periods,), mean power in each period, >= 0
    pv_kw: np.ndarray  # shape (periods,), available PV power, >= 0, zero at night
    pv_installed_kw: float


@dataclass
class EVTrips:
    away: np.ndarray  # shape (periods,), bool: True while the EV is on the road (not plugged)
    trip_kwh: np.ndarray  # shape (periods,), energy drawn from the battery in each period


# --------------------------------------------------------------------------- time labels


def _step_minutes(period_h: float) -> int:
    step = period_h * 60
    if period_h <= 0 or abs(step - round(step)) > 1e-9 or MINUTES_PER_DAY % round(step):
        raise ValueError(f"period_h={period_h!r} must be a whole number of minutes dividing a day")
    return round(step)


def period_index(hhmm: str, period_h: float = 0.25) -> int:
    """The period that STARTS at ``hhmm``: ``"08:15"`` -> 33 with 15-min periods."""
    match = _HHMM.match(hhmm) if isinstance(hhmm, str) else None
    if match is None:
        raise ValueError(f"time must be text 'HH:MM' (e.g. '08:15'), got {hhmm!r}")
    hours, minutes = int(match[1]), int(match[2])
    if hours > 23 or minutes > 59:
        raise ValueError(f"time {hhmm!r} is not a time of day (00:00 to 23:59)")
    step = _step_minutes(period_h)
    start = hours * 60 + minutes
    if start % step:
        raise ValueError(f"time {hhmm!r} is not the start of a {step}-minute period")
    return start // step


def period_label(t: int, period_h: float = 0.25) -> str:
    """Start time of period ``t`` as ``HH:MM``: 33 -> ``"08:15"`` with 15-min periods."""
    step = _step_minutes(period_h)
    if not 0 <= t < MINUTES_PER_DAY // step:
        raise ValueError(f"period {t!r} is outside the day (0 to {MINUTES_PER_DAY // step - 1})")
    minutes = int(t) * step
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --------------------------------------------------------------------------- prosumers


def _mid_hours(periods: int, period_h: float) -> np.ndarray:
    return (np.arange(periods) + 0.5) * period_h % 24


def _bump(hours: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / sigma) ** 2)


def _load_shape(hours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RECON residential shape: night base, morning and evening peaks, per-household
    random peak times and sizes, and +-15 % period-to-period noise."""
    morning = _bump(hours, 7.5 + rng.normal(0, 0.5), 1.0) * 0.8 * rng.uniform(0.6, 1.4)
    midday = _bump(hours, 13.0 + rng.normal(0, 0.5), 1.5) * 0.35 * rng.uniform(0.6, 1.4)
    evening = _bump(hours, 20.0 + rng.normal(0, 0.75), 1.5) * 1.2 * rng.uniform(0.6, 1.4)
    base = 0.3 * rng.uniform(0.7, 1.3)
    noise = rng.lognormal(0.0, 0.15, size=hours.size)
    return (base + morning + midday + evening) * noise


def _pv_shape(hours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RECON clear-sky bell over daylight, shifted by the panels' orientation, 3 % noise."""
    shift = np.clip(rng.normal(0.0, 0.15), -0.5, 0.5)
    phase = (hours - SUNRISE_H - shift) / (SUNSET_H - SUNRISE_H)
    bell = np.where((phase > 0) & (phase < 1), np.sin(np.pi * np.clip(phase, 0, 1)), 0.0)
    noise = np.clip(1 + rng.normal(0.0, 0.03, size=hours.size), 0.9, 1.1)
    return bell**PV_SHAPE_EXPONENT * noise


def _scaled(values: np.ndarray, total: float | None, what: str) -> np.ndarray:
    """``values`` times one factor so that they sum to ``total`` (unchanged if None)."""
    if total is None:
        return values
    current = float(np.sum(values))
    if current <= 0:
        if total == 0:
            return values * 0.0
        raise ValueError(f"cannot scale a zero {what} profile to a total of {total}")
    return values * (total / current)


def _per_period(shapes: np.ndarray, energy_kwh: np.ndarray, period_h: float) -> np.ndarray:
    """Rows of ``shapes`` scaled to hold ``energy_kwh`` each (a zero row stays zero)."""
    row = shapes.sum(axis=1, keepdims=True) * period_h
    safe = np.where(row > 0, row, 1.0)
    return shapes * (energy_kwh[:, None] / safe)


def generate_prosumers(n: int, rng: np.random.Generator, *, periods: int = 96,
                       period_h: float = 0.25, total_load_kwh: float | None = None,
                       total_pv_kwh: float | None = None,
                       total_pv_installed_kw: float | None = None,
                       mean_load_kwh: float = 40.0, mean_pv_installed_kw: float = 5.0,
                       pv_yield_kwh_per_kw: float = 5.7) -> list[ProsumerProfile]:
    """``n`` household load and PV profiles over one day.

    Paper totals (n=50): 2001.89 kWh load, 1417.82 kWh PV, 248.8 kW installed; when a
    ``total_*`` is given the profiles are scaled to meet it exactly.  Otherwise the
    per-prosumer means come from ``mean_*`` (defaults are the paper's means: 40 kWh, 5 kW,
    5.7 kWh/kW).  RECON: daily load uniform in 0.6-1.4 x the mean, installed PV uniform in
    0.4-1.6 x the mean (2-8 kW), specific yield uniform in 0.9-1.1 x the mean.
    """
    hours = _mid_hours(periods, period_h)
    load_kwh = _scaled(mean_load_kwh * rng.uniform(0.6, 1.4, n), total_load_kwh, "load")
    kwp = _scaled(mean_pv_installed_kw * rng.uniform(0.4, 1.6, n), total_pv_installed_kw, "kWp")
    pv_kwh = kwp * pv_yield_kwh_per_kw * rng.uniform(0.9, 1.1, n)
    load = _per_period(_rows([_load_shape(hours, rng) for _ in range(n)], periods), load_kwh,
                       period_h)
    shapes = _rows([_pv_shape(hours, rng) for _ in range(n)], periods)
    pv = _scaled(_per_period(shapes, pv_kwh, period_h), _over_h(total_pv_kwh, period_h), "PV")
    if np.any(pv > kwp[:, None] * (1 + 1e-9)):
        raise ValueError("PV energy too large for the installed kW: lower the PV total/yield")
    return [ProsumerProfile(load[i], pv[i], float(kwp[i])) for i in range(n)]


def _rows(rows: list[np.ndarray], periods: int) -> np.ndarray:
    return np.array(rows, dtype=float).reshape(len(rows), periods)


def _over_h(total_kwh: float | None, period_h: float) -> float | None:
    """An energy total as a sum of per-period powers (kWh / h)."""
    return None if total_kwh is None else total_kwh / period_h


# --------------------------------------------------------------------------- EV trips


def _hump_shape(t: np.ndarray, edges: list[int], period_h: float) -> np.ndarray:
    """RECON: one Gaussian-sided bump per peak, 1 at the peak; ``edges`` = [first, *peaks,
    last].  Each side's width is 0.45 x the distance to the next edge, at most 2.5 h, so
    the maximum of the bumps rises to each peak and falls to a trough in between."""
    g = np.zeros(t.size)
    widest = MAX_HUMP_WIDTH_H / period_h
    for j, peak in enumerate(edges[1:-1]):
        rise = max(min(0.45 * (peak - edges[j]), widest), 1.0)
        fall = max(min(0.45 * (edges[j + 2] - peak), widest), 1.0)
        sigma = np.where(t < peak, rise, fall)
        g = np.maximum(g, np.exp(-0.5 * ((t - peak) / sigma) ** 2))
    return g


def _fit_to_sum(g: np.ndarray, low: int, high: int, total: int) -> np.ndarray:
    """``low + (high - low) * g**a`` with the exponent ``a`` found so the sum is ``total``;
    powers of ``g`` keep every rise and fall of the shape."""
    lo, hi = -40.0, 40.0  # bisection on log(a); the sum falls as a grows
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.sum(low + (high - low) * g ** np.exp(mid)) > total:
            lo = mid
        else:
            hi = mid
    return low + (high - low) * g ** np.exp(hi)


def _round_to_total(x: np.ndarray, total: int, priority: np.ndarray) -> np.ndarray:
    """Integers summing to ``total``: floors, then +1 for the largest remainders (ties go to
    the higher ``priority``), which keeps a monotone sequence monotone."""
    counts = np.floor(x).astype(int)
    extra = int(np.clip(total - counts.sum(), 0, x.size))
    order = np.lexsort((-priority, -(x - counts)))
    counts[order[:extra]] += 1
    return counts


def _away_counts(periods: int, window: tuple[int, int], peaks: list[int], peak: int,
                 total: int, period_h: float) -> np.ndarray:
    """Per-period number of EVs away: ``peak`` at every peak period and below it elsewhere
    (unless the total cannot fit otherwise), >= 1 across the window when the total allows,
    0 outside the window, unimodal between troughs, summing to ``total`` exactly."""
    t = np.arange(window[0], window[1] + 1)
    free = ~np.isin(t, peaks)
    rest, slots = total - peak * len(peaks), int(free.sum())
    high = peak - 1 if rest <= (peak - 1) * slots else peak
    low = 1 if rest >= slots and high >= 1 else 0
    if not low * slots <= rest <= high * slots:
        raise ValueError(f"{total} EV-periods do not fit {len(peaks)} peaks of {peak} EVs "
                         f"in {t.size} periods")
    g = _hump_shape(t, [window[0], *peaks, window[1]], period_h)[free]
    counts = np.zeros(periods, dtype=int)
    counts[peaks] = peak
    counts[t[free]] = _round_to_total(_fit_to_sum(g, low, high, rest), rest, g)
    return counts


def _humps(counts: np.ndarray, window: tuple[int, int], peaks: list[int]) -> list[range]:
    """Split the window between consecutive peaks in the middle of the lowest stretch, so
    the EVs of the two bottom layers share that stretch."""
    cuts = [p + _middle_of_min(counts[p:q + 1]) + 1 for p, q in itertools.pairwise(peaks)]
    starts, ends = [window[0], *cuts], [*cuts, window[1] + 1]
    return [range(a, b) for a, b in zip(starts, ends)]


def _middle_of_min(seg: np.ndarray) -> int:
    lowest = np.flatnonzero(seg == seg.min())
    return int(lowest[(lowest.size - 1) // 2])


def _layer_cake(counts: np.ndarray, humps: list[range], n: int,
                rng: np.random.Generator) -> np.ndarray:
    """Layer k of a hump = its periods with count >= k (contiguous: the hump is unimodal);
    each layer goes to a different EV.  RECON: a random order of the EVs takes the layers
    of even humps from the longest, those of odd humps from the shortest, so an EV with
    a long morning gets a short evening."""
    away = np.zeros((n, counts.size), dtype=bool)
    order = rng.permutation(n)
    for j, hump in enumerate(humps):
        seg = counts[hump.start:hump.stop]
        for k in range(1, int(seg.max(initial=0)) + 1):
            ev = order[k - 1] if j % 2 == 0 else order[n - k]
            away[ev, hump.start + np.flatnonzero(seg >= k)] = True
    return away


def _speeds(away: np.ndarray, kwh_per_km: np.ndarray, rng: np.random.Generator,
            mean_kmh: float, period_h: float, max_daily_kwh: float) -> np.ndarray:
    """RECON: mean speed over the time away, normal around ``mean_kmh`` (sd 20 %, within
    +-50 %), lowered where needed so that no EV draws more than ``max_daily_kwh`` a day."""
    speed = np.clip(rng.normal(mean_kmh, 0.2 * mean_kmh, away.shape[0]),
                    0.5 * mean_kmh, 1.5 * mean_kmh)
    per_kmh = away.sum(axis=1) * period_h * kwh_per_km  # daily kWh per 1 km/h
    cap = np.divide(max_daily_kwh, per_kmh, out=np.full(speed.shape, np.inf),
                    where=per_kmh > 0)
    return np.minimum(speed, cap)


def generate_ev_trips(n: int, rng: np.random.Generator, consumption_kwh_per_km: Sequence[float],
                      *, periods: int = 96, period_h: float = 0.25,
                      away_periods_total: int | None = None, first_away: str = "06:15",
                      last_away: str = "23:30", peak_times: Sequence[str] = ("08:15", "19:45"),
                      peak_count: int | None = None, mean_speed_km_per_h: float = 30.0,
                      mean_away_periods: float = 19.5,
                      max_daily_trip_kwh: float = MAX_DAILY_TRIP_KWH) -> list[EVTrips]:
    """When each of ``n`` EVs is on the road and what it draws from its battery.

    Paper figures (n=40): 780 EV-periods away, none before ``first_away`` 06:15 or after
    the ``last_away`` 23:30 period, 36 EVs away at 08:15 and 19:45, the maxima.  For other
    ``n`` (RECON): ``round(mean_away_periods * n)`` EV-periods, ``round(0.9 * n)`` at peaks.
    A per-period count with one hump per peak is cut into layers (see ``_layer_cake``), so
    every EV has at most one contiguous block per hump.  ``trip_kwh`` = period_h x speed x
    consumption while away; RECON speeds keep each EV's day <= ``max_daily_trip_kwh``.
    """
    kwh_per_km = np.asarray(consumption_kwh_per_km, dtype=float)
    if kwh_per_km.shape != (n,):
        raise ValueError(f"need {n} consumption figures, got {kwh_per_km.size}")
    total = round(mean_away_periods * n) if away_periods_total is None else away_periods_total
    peak = round(0.9 * n) if peak_count is None else peak_count
    window, peaks = _window(first_away, last_away, peak_times, periods, period_h)
    if total == 0 or n == 0:
        away = np.zeros((n, periods), dtype=bool)
    else:
        if not 1 <= peak <= n:
            raise ValueError(f"peak_count={peak} must be between 1 and the {n} EVs")
        counts = _away_counts(periods, window, peaks, peak, total, period_h)
        away = _layer_cake(counts, _humps(counts, window, peaks), n, rng)
    speed = _speeds(away, kwh_per_km, rng, mean_speed_km_per_h, period_h, max_daily_trip_kwh)
    energy = np.where(away, period_h * (speed * kwh_per_km)[:, None], 0.0)
    return [EVTrips(away[v], energy[v]) for v in range(n)]


def _window(first: str, last: str, peak_times: Sequence[str], periods: int,
            period_h: float) -> tuple[tuple[int, int], list[int]]:
    """Checked (first, last) periods of the trip window and the sorted peak periods."""
    window = (period_index(first, period_h), period_index(last, period_h))
    peaks = sorted(period_index(p, period_h) for p in peak_times)
    if not 0 <= window[0] <= window[1] < periods:
        raise ValueError(f"trip window {first}-{last} is not inside the {periods} periods")
    if not peaks or len(set(peaks)) < len(peaks):
        raise ValueError(f"peak_times {list(peak_times)!r} must be distinct and not empty")
    if not (window[0] <= peaks[0] and peaks[-1] <= window[1]):
        raise ValueError(f"peak_times {list(peak_times)!r} must lie in {first}-{last}")
    return window, peaks
