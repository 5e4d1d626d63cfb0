"""Turn a validated scenario into the agents' private data (seeded, reproducible).

Template ``i`` draws from ``numpy.random.default_rng([seed, i])``, so adding a
template never changes the agents of the others.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from agents.data import BatterySpec, EVData, Horizon, ProsumerData, Tariff
from agents.diagnose import greedy_energy_kwh
from scenarios.catalog import BATTERY_TYPES, EV_MODELS
from scenarios.community.profiles import generate_ev_trips, generate_prosumers, period_index
from scenarios.schema import (
    Choice,
    Counts,
    EVTemplate,
    ExplicitEV,
    ExplicitProsumer,
    ProsumerTemplate,
    Scenario,
    Uniform,
)

EV_SOC_MIN_FRAC = 0.10  # RECON: an EV is never driven below 10 % of its usable capacity


def horizon_of(s: Scenario) -> Horizon:
    return Horizon(s.horizon.periods, s.horizon.period_minutes / 60)


def p2v_price(s: Scenario) -> float:
    """The P2V price: midpoint of the lowest retail price and the feed-in tariff."""
    rule = s.tariffs.p2v_price
    if rule.rule == "fixed":
        return rule.value_eur_per_kwh
    tou = s.tariffs.time_of_use
    return (min(tou.off_peak_eur_per_kwh, tou.peak_eur_per_kwh) + s.tariffs.feed_in_eur_per_kwh) / 2


def tariff_for(s: Scenario, kva: str) -> Tariff:
    """Time-of-use prices per period; peak in [peak_start, peak_end)."""
    h = horizon_of(s)
    tou = s.tariffs.time_of_use
    t = np.arange(h.periods)
    peak = (t >= period_index(tou.peak_start, h.period_h)) & (t < period_index(tou.peak_end,
                                                                                h.period_h))
    price = np.where(peak, tou.peak_eur_per_kwh, tou.off_peak_eur_per_kwh)
    return Tariff(price, s.tariffs.feed_in_eur_per_kwh, p2v_price(s),
                  s.tariffs.fixed_eur_per_day[kva])


def draw_keys(dist, n: int, rng: np.random.Generator) -> list:
    """``n`` keys from a fixed key, a weighted choice or exact shuffled counts."""
    if dist is None or isinstance(dist, str):
        return [dist] * n
    if isinstance(dist, Choice):
        keys = list(dist.choice)
        w = np.array(list(dist.choice.values()), float)
        return [keys[i] for i in rng.choice(len(keys), size=n, p=w / w.sum())]
    assert isinstance(dist, Counts)
    keys = [k for k, c in dist.counts.items() for _ in range(c)]
    return [keys[i] for i in rng.permutation(len(keys))]


def draw_numbers(dist, n: int, rng: np.random.Generator) -> np.ndarray:
    if isinstance(dist, Uniform):
        return rng.uniform(*dist.uniform, size=n)
    return np.full(n, float(dist))


def _battery(key: str | None, soc0: float, soc_end: float | None) -> BatterySpec | None:
    if key is None:
        return None
    b = BATTERY_TYPES[key]
    cap = b.capacity_kwh
    return BatterySpec(cap, b.soc_min_frac * cap, b.max_charge_kw, b.max_discharge_kw,
                       b.eta_charge, b.eta_discharge, soc0 * cap,
                       (soc0 if soc_end is None else soc_end) * cap)


def _ev_battery(key: str, kva: float, soc0: float, soc_end: float | None) -> BatterySpec:
    m = EV_MODELS[key]
    cap = m.capacity_kwh
    return BatterySpec(cap, EV_SOC_MIN_FRAC * cap, min(m.max_charge_kw, kva), 0.0,
                       m.eta_charge, 1.0, soc0 * cap, (soc0 if soc_end is None else soc_end) * cap)


def _prosumer(s: Scenario, name, kva, load, pv, battery) -> ProsumerData:
    export = s.tariffs.export_fraction * float(kva)
    return ProsumerData(name, horizon_of(s), tariff_for(s, kva), np.asarray(load, float),
                        np.asarray(pv, float), battery, buy_max_kw=float(kva),
                        sell_max_kw=export, p2v_max_kw=export if s.market.p2v else 0.0)


def _ev(s: Scenario, name, kva, model, away, trip_kwh, battery) -> EVData:
    """An EV whose end-of-day target is capped at what it can recharge before midnight
    (RECON: an EV back from its last trip at 23:45 cannot refill its battery that day)."""
    p2v_max = battery.charge_max_kw if s.market.p2v else 0.0
    d = EVData(name, horizon_of(s), tariff_for(s, kva), np.asarray(away, bool),
               np.asarray(trip_kwh, float), battery, buy_max_kw=float(kva), p2v_max_kw=p2v_max)
    reachable = float(greedy_energy_kwh(replace(d, p2v_max_kw=0.0))[-1])
    if reachable < battery.e_end_min_kwh:
        d = replace(d, battery=replace(battery, e_end_min_kwh=max(reachable, battery.soc_min_kwh)))
    return d


def _from_prosumer_template(s: Scenario, tpl: ProsumerTemplate, rng) -> list[ProsumerData]:
    h, n = horizon_of(s), tpl.count
    kinds = draw_keys(tpl.battery, n, rng)
    kvas = draw_keys(tpl.contracted_kva, n, rng)
    soc0 = draw_numbers(tpl.battery_initial_soc, n, rng)
    profiles = generate_prosumers(
        n, rng, periods=h.periods, period_h=h.period_h, total_load_kwh=tpl.load.total_kwh,
        total_pv_kwh=tpl.pv.total_kwh, total_pv_installed_kw=tpl.pv.total_installed_kw,
        mean_load_kwh=tpl.load.mean_kwh, mean_pv_installed_kw=tpl.pv.mean_installed_kw,
        pv_yield_kwh_per_kw=tpl.pv.yield_kwh_per_kw)
    width = len(str(n))
    return [_prosumer(s, f"{tpl.name_prefix}{i + 1:0{width}d}", kvas[i], p.load_kw, p.pv_kw,
                      _battery(kinds[i], soc0[i], tpl.battery_end_soc_min))
            for i, p in enumerate(profiles)]


def _from_ev_template(s: Scenario, tpl: EVTemplate, rng) -> list[EVData]:
    h, n = horizon_of(s), tpl.count
    models = draw_keys(tpl.model, n, rng)
    kvas = draw_keys(tpl.contracted_kva, n, rng)
    soc0 = draw_numbers(tpl.initial_soc, n, rng)
    tr = tpl.trips
    trips = generate_ev_trips(
        n, rng, [EV_MODELS[m].consumption_kwh_per_km for m in models], periods=h.periods,
        period_h=h.period_h, away_periods_total=tr.away_periods_total,
        first_away=tr.first_away, last_away=tr.last_away, peak_times=tr.peak_times,
        peak_count=tr.peak_count, mean_speed_km_per_h=tr.mean_speed_km_per_h,
        mean_away_periods=tr.mean_away_periods)
    width = len(str(n))
    return [_ev(s, f"{tpl.name_prefix}{i + 1:0{width}d}", kvas[i], models[i], tp.away,
                tp.trip_kwh, _ev_battery(models[i], float(kvas[i]), soc0[i], tpl.end_soc_min))
            for i, tp in enumerate(trips)]


def _explicit(s: Scenario, a: ExplicitProsumer | ExplicitEV) -> ProsumerData | EVData:
    if isinstance(a, ExplicitProsumer):
        return _prosumer(s, a.name, a.contracted_kva, a.load_kw, a.pv_kw,
                         _battery(a.battery, a.battery_initial_soc, a.battery_end_soc_min))
    bat = _ev_battery(a.model, float(a.contracted_kva), a.initial_soc, a.end_soc_min)
    return _ev(s, a.name, a.contracted_kva, a.model, a.away, a.trip_kwh, bat)


def build_community(s: Scenario) -> list[ProsumerData | EVData]:
    """Every agent of the scenario: templates first (in file order), then explicit agents."""
    agents: list[ProsumerData | EVData] = []
    for i, tpl in enumerate(s.templates):
        rng = np.random.default_rng([s.seed, i])
        build = _from_prosumer_template if tpl.kind == "prosumer" else _from_ev_template
        agents += build(s, tpl, rng)
    agents += [_explicit(s, a) for a in s.agents]
    names = [a.name for a in agents]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"agent names used twice: {', '.join(duplicates)}")
    return agents
