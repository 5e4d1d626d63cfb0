"""Turn a validated scenario into the agents' private data (seeded, reproducible).

Template ``i`` draws from ``numpy.random.default_rng([seed, i])``, so adding a
template never changes the agents of the others. Every per-period array covers the whole
run (``days × periods`` values). Day 1 of a template is drawn exactly as a one-day run
draws it; day ``d`` > 1 draws new shapes from ``default_rng([seed, i, d])`` and keeps
each household's equipment, installed PV and level of consumption (its day-1 load energy
times a day factor uniform in 0.9–1.1, RECON). Forecast errors (``forecast_error``) are
drawn per agent from ``default_rng([seed, ACTUALS_STREAM, k])``, k the agent's position.
``community.scale`` multiplies every agent's load and PV after all draws (EVs untouched), so
a scale changes no draw.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from lemgrid.agents.data import (
    BatterySpec,
    BuildingData,
    ChpSpec,
    EVData,
    FlexibleLoad,
    GeneratorSpec,
    Horizon,
    ProsumerData,
    Tariff,
)
from lemgrid.agents.realise import Actuals
from lemgrid.scenarios.catalog import APPLIANCES, BATTERY_TYPES, EV_MODELS, clock_h
from lemgrid.scenarios.community.households import (
    forecast_actual,
    month_prices_eur_per_kwh,
    nonflexible_load_kw,
    pv_available_kw,
    wind_available_kw,
)
from lemgrid.scenarios.community.profiles import generate_ev_trips, generate_prosumers, period_index
from lemgrid.scenarios.schema import (
    EV_SOC_MIN_FRAC,
    BuildingTemplate,
    BusProfilesTemplate,
    Choice,
    ChpConfig,
    Counts,
    EVTemplate,
    ExplicitBuilding,
    ExplicitEV,
    ExplicitProsumer,
    GeneratorConfig,
    NetworkLoadsTemplate,
    ProsumerTemplate,
    Scenario,
    ScenarioError,
    Uniform,
    bus_profile_agents,
    network_consumers,
)
from lemgrid.scenarios.schema.checks import published_loads
from lemgrid.scenarios.schema.models import LoadProfile, PVProfile
from lemgrid.scenarios.schema.profiles import PVWatts, StandardLoad, WindTurbine

if TYPE_CHECKING:  # the library models bring pandas (0.3 s): imported where a scenario uses them
    from lemgrid.scenarios.community.library import Sky

ACTUALS_STREAM = 1_000_007  # the rng stream of forecast errors: [seed, ACTUALS_STREAM, k]
PRICES_STREAM = 1_000_009  # the rng stream of dynamic prices: [seed, PRICES_STREAM]
WEATHER_STREAM = 1_000_011  # the locality's sun and wind: [seed, WEATHER_STREAM]
LOAD_STREAM = 1_000_013  # a template's standard-profile households: [seed, template, ...]
PV_STREAM = 1_000_015  # a template's PVWatts arrays' sizes: [seed, template, PV_STREAM]
DAY_LOAD_SPREAD = 0.1  # RECON: a household's daily load energy varies ±10 % around day 1


def horizon_of(s: Scenario) -> Horizon:
    return Horizon(s.horizon.periods, s.horizon.period_minutes / 60)


def p2v_price(s: Scenario) -> float:
    """The P2V price: midpoint of the lowest retail price and the feed-in tariff."""
    rule = s.tariffs.p2v_price
    if rule.rule == "fixed":
        return rule.value_eur_per_kwh
    tou = s.tariffs.time_of_use
    return (min(tou.off_peak_eur_per_kwh, tou.peak_eur_per_kwh) + s.tariffs.feed_in_eur_per_kwh) / 2


def hour_of_period(h: Horizon) -> np.ndarray:
    """The hour of the day (0-23) each period starts in: where hourly data apply."""
    return np.floor(np.arange(h.periods) * h.period_h + 1e-9).astype(int) % 24


def grid_prices(s: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Retail buy and feed-in prices per period over the run: the day-ahead prices and
    their retail adders (``tariffs.day_ahead``), the seeded dynamic prices
    (``tariffs.dynamic``), else time of use (peak in [peak_start, peak_end)) and the
    feed-in tariff."""
    h, days = horizon_of(s), s.horizon.days
    if s.tariffs.day_ahead is not None:
        da = s.tariffs.day_ahead
        hourly = np.asarray(da.eur_per_mwh, float) / 1000.0
        day = hourly[hour_of_period(h)]
        return np.tile(day + da.buy_adder_eur_per_kwh, days), np.tile(da.sell_factor * day, days)
    if s.tariffs.dynamic is not None:
        dyn = s.tariffs.dynamic
        return month_prices_eur_per_kwh(
            np.random.default_rng([s.seed, PRICES_STREAM]), days, h.periods,
            buy_mean_eur_per_kwh=dyn.buy_mean_eur_per_kwh, sell_ratio=dyn.sell_ratio,
            sell_ratio_spread=dyn.sell_ratio_spread)
    tou = s.tariffs.time_of_use
    t = np.arange(h.periods)
    peak = (t >= period_index(tou.peak_start, h.period_h)) & (t < period_index(tou.peak_end,
                                                                                h.period_h))
    buy = np.tile(np.where(peak, tou.peak_eur_per_kwh, tou.off_peak_eur_per_kwh), days)
    return buy, np.full(len(buy), s.tariffs.feed_in_eur_per_kwh)


def tariff_for(s: Scenario, kva: str, prices: tuple[np.ndarray, np.ndarray]) -> Tariff:
    """An agent's tariff: the run's ``grid_prices`` and its contract's fixed cost."""
    buy, sell = prices
    return Tariff(buy, sell, p2v_price(s), s.tariffs.fixed_eur_per_day[kva])


def p2v_market(s: Scenario) -> bool:
    """Whether prosumers and EVs trade P2V under the scenario's market."""
    return s.market.agents_trade_p2v()


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
    return BatterySpec(capacity_kwh=cap, soc_min_kwh=b.soc_min_frac * cap,
                       charge_max_kw=b.max_charge_kw, discharge_max_kw=b.max_discharge_kw,
                       eta_charge=b.eta_charge, eta_discharge=b.eta_discharge, e0_kwh=soc0 * cap,
                       e_end_min_kwh=(soc0 if soc_end is None else soc_end) * cap)


def _ev_battery(key: str, kva: float, soc0: float, soc_end: float | None,
                discharge: bool = False, discharge_max_kw: float | None = None) -> BatterySpec:
    """An EV's battery: it charges at min(the model's AC charge kW, contracted kVA). Without
    V2G it never discharges (a trip's energy is drawn from it directly); with V2G
    (``discharge``) it discharges at most ``discharge_max_kw`` (None: its charge limit)
    through the charger, RECON: losing as much on the way out as on the way in."""
    m = EV_MODELS[key]
    cap = m.capacity_kwh
    charge = min(m.max_charge_kw, kva)
    dis, eta_dis = 0.0, 1.0
    if discharge:
        dis = charge if discharge_max_kw is None else float(discharge_max_kw)
        eta_dis = m.eta_charge
    return BatterySpec(capacity_kwh=cap, soc_min_kwh=EV_SOC_MIN_FRAC * cap, charge_max_kw=charge,
                       discharge_max_kw=dis, eta_charge=m.eta_charge, eta_discharge=eta_dis,
                       e0_kwh=soc0 * cap,
                       e_end_min_kwh=(soc0 if soc_end is None else soc_end) * cap)


def _prosumer(s: Scenario, name, kva, load, pv, battery, prices) -> ProsumerData:
    export = s.tariffs.export_fraction * float(kva)
    return ProsumerData(name, horizon_of(s), tariff_for(s, kva, prices), np.asarray(load, float),
                        np.asarray(pv, float), battery, buy_max_kw=float(kva),
                        sell_max_kw=export, p2v_max_kw=export if p2v_market(s) else 0.0)


def _ev(s: Scenario, name, kva, model, away, trip_kwh, battery, prices) -> EVData:
    """An EV (each day's end-of-day target is capped at what it can recharge after that
    day's trips when the day is planned: ``agents.days.day_slice``). A battery that may
    discharge (V2G) exports at most min(its discharge limit, contracted kVA)."""
    p2v_max = battery.charge_max_kw if p2v_market(s) else 0.0
    return EVData(name, horizon_of(s), tariff_for(s, kva, prices), np.asarray(away, bool),
                  np.asarray(trip_kwh, float), battery, buy_max_kw=float(kva),
                  p2v_max_kw=p2v_max,
                  sell_max_kw=min(float(battery.discharge_max_kw), float(kva)))


def _later_days(s: Scenario, i: int, draw) -> list:
    """``draw(rng)`` for days 2.. of template ``i``, each from its own stream."""
    return [draw(np.random.default_rng([s.seed, i, d])) for d in range(1, s.horizon.days)]


def _prosumer_profiles(s: Scenario, tpl: ProsumerTemplate, rng, n: int):
    h = horizon_of(s)
    return generate_prosumers(
        n, rng, periods=h.periods, period_h=h.period_h, total_load_kwh=tpl.load.total_kwh,
        total_pv_kwh=tpl.pv.total_kwh, total_pv_installed_kw=tpl.pv.total_installed_kw,
        mean_load_kwh=tpl.load.mean_kwh, mean_pv_installed_kw=tpl.pv.mean_installed_kw,
        pv_yield_kwh_per_kw=tpl.pv.yield_kwh_per_kw)


def _same_household(first, later, rng) -> tuple[np.ndarray, np.ndarray]:
    """A later day's draw rescaled to the household of day 1: its installed PV and its
    daily load energy times a day factor."""
    load = later.load_kw * first.load_kw.sum() / max(later.load_kw.sum(), 1e-12)
    load = load * rng.uniform(1 - DAY_LOAD_SPREAD, 1 + DAY_LOAD_SPREAD)
    pv = later.pv_kw * first.pv_installed_kw / max(later.pv_installed_kw, 1e-12)
    return load, pv


def _from_prosumer_template(s: Scenario, tpl: ProsumerTemplate, rng, i: int, prices):
    n = tpl.count
    kinds = draw_keys(tpl.battery, n, rng)
    kvas = draw_keys(tpl.contracted_kva, n, rng)
    soc0 = draw_numbers(tpl.battery_initial_soc, n, rng)
    loads, pvs = _library_profiles(s, tpl, i, n)
    if loads is None or pvs is None:  # what lemgrid's own synthesizer draws
        synthetic = tpl.model_copy(update={
            "load": LoadProfile() if loads is not None else tpl.load,
            "pv": PVProfile(mean_installed_kw=0.0) if pvs is not None else tpl.pv})
        first = _prosumer_profiles(s, synthetic, rng, n)
        later = _later_days(s, i, lambda r: [
            _same_household(f, x, r) for f, x in zip(first, _prosumer_profiles(s, synthetic, r, n))])
        if loads is None:
            loads = [np.concatenate([p.load_kw, *(day[k][0] for day in later)])
                     for k, p in enumerate(first)]
        if pvs is None:
            pvs = [np.concatenate([p.pv_kw, *(day[k][1] for day in later)])
                   for k, p in enumerate(first)]
    width = len(str(n))
    return [_prosumer(s, f"{tpl.name_prefix}{k + 1:0{width}d}", kvas[k], loads[k], pvs[k],
                      _battery(kinds[k], soc0[k], tpl.battery_end_soc_min), prices)
            for k in range(n)]


def _library_profiles(s: Scenario, tpl, i: int, n: int):
    """Template ``i``'s loads from its standard profile and PV from its PVWatts array, kW
    per period of the run (None where it names neither), each from the template's own
    stream; the array is computed once at 1 kWp and scaled to each agent's size (PVWatts
    is linear in it: DC, losses and the inverter sized at the DC rating all scale)."""
    h = s.horizon
    loads = pvs = None
    if isinstance(tpl.load, StandardLoad):
        from lemgrid.scenarios.community.library import run_dates, standard_loads

        loads = standard_loads(tpl.load, n, run_dates(h.start, h.days), h.period_minutes,
                               np.random.default_rng([s.seed, i, LOAD_STREAM]),
                               tuple(h.holidays))
    if isinstance(tpl.pv, PVWatts):
        kwp = draw_numbers(tpl.pv.kwp, n, np.random.default_rng([s.seed, i, PV_STREAM]))
        per_kwp = community_pv(s, tpl.pv, 1.0)
        pvs = [float(k) * per_kwp for k in kwp]
    return loads, pvs


def _community_sky(s: Scenario) -> Sky:
    """The sky the whole community shares (made once per scenario content)."""
    from lemgrid.scenarios.community.library import community_sky

    return community_sky(s.seed, s.horizon, s.site, s.weather)


def community_pv(s: Scenario, array: PVWatts, kwp: float) -> np.ndarray:
    """A PVWatts array of ``kwp`` under the community's sky, kW per period of the run."""
    from lemgrid.scenarios.community.library import pvwatts_kw

    sky = _community_sky(s)
    return pvwatts_kw(array, kwp, s.site, sky.irradiance, sky.temp_air_c,
                      sky.cooling_wind_m_s, sky.albedo)


def community_wind(s: Scenario, turbine: WindTurbine) -> np.ndarray:
    """A wind turbine under the community's wind, kW per period of the run."""
    from lemgrid.scenarios.community.library import wind_kw

    sky = _community_sky(s)
    return wind_kw(turbine, sky.wind_m_s, sky.wind_height_m)


def _ev_trips(s: Scenario, tpl: EVTemplate, rng, models: list[str]):
    h, tr = horizon_of(s), tpl.trips
    return generate_ev_trips(
        tpl.count, rng, [EV_MODELS[m].consumption_kwh_per_km for m in models],
        periods=h.periods, period_h=h.period_h, away_periods_total=tr.away_periods_total,
        first_away=tr.first_away, last_away=tr.last_away, peak_times=tr.peak_times,
        peak_count=tr.peak_count, mean_speed_km_per_h=tr.mean_speed_km_per_h,
        mean_away_periods=tr.mean_away_periods)


def _from_ev_template(s: Scenario, tpl: EVTemplate, rng, i: int, prices) -> list[EVData]:
    n = tpl.count
    models = draw_keys(tpl.model, n, rng)
    kvas = draw_keys(tpl.contracted_kva, n, rng)
    soc0 = draw_numbers(tpl.initial_soc, n, rng)
    days = [_ev_trips(s, tpl, rng, models), *_later_days(s, i, lambda r: _ev_trips(
        s, tpl, r, models))]
    width = len(str(n))
    return [_ev(s=s, name=f"{tpl.name_prefix}{k + 1:0{width}d}", kva=kvas[k], model=models[k],
                away=np.concatenate([d[k].away for d in days]),
                trip_kwh=np.concatenate([d[k].trip_kwh for d in days]),
                battery=_ev_battery(models[k], float(kvas[k]), soc0[k], tpl.end_soc_min, tpl.discharge, tpl.discharge_max_kw),
                prices=prices)
            for k in range(n)]


def _flexible_loads(tpl: BuildingTemplate, period_h: float) -> tuple[FlexibleLoad, ...]:
    """The template's flexible loads in periods: a load runs ⌈duration / Δt⌉ periods."""
    out = []
    for load in tpl.flexible:
        if isinstance(load, str):
            a = APPLIANCES[load]
            name, kw, hours, window = a.key, a.rating_kw, a.duration_h, a.window
        else:
            name, kw, hours, window = load.name, load.rating_kw, load.duration_h, load.window
        start, end = (round(clock_h(w) / period_h) for w in window)
        out.append(FlexibleLoad(name, kw, int(np.ceil(hours / period_h - 1e-9)), start, end))
    return tuple(out)


def locality_weather(s: Scenario, tpl: BuildingTemplate) -> tuple[np.ndarray, np.ndarray]:
    """PV availability per installed kW and wind availability per rated kW over the run:
    one sky and one wind for the whole locality."""
    h, rng = horizon_of(s), np.random.default_rng([s.seed, WEATHER_STREAM])
    pv = pv_available_kw(rng, s.horizon.days, h.periods, installed_kw=1.0,
                         yield_kwh_per_kw_day=tpl.pv_yield_kwh_per_kw_day)
    wind = wind_available_kw(rng, s.horizon.days, h.periods, rated_kw=1.0,
                             mean_speed_m_s=tpl.wind_mean_speed_m_s)
    return pv, wind


def _generator(cfg: GeneratorConfig | None) -> GeneratorSpec | None:
    if cfg is None:
        return None
    return GeneratorSpec(cfg.p_min_kw, cfg.p_max_kw, cfg.a_eur_per_kw2h, cfg.b_eur_per_kwh,
                         cfg.c_eur_per_h)


def _chp(cfg: ChpConfig | None) -> ChpSpec | None:
    if cfg is None:
        return None
    return ChpSpec(tuple(cfg.vertices_kw), cfg.a_p_eur_per_kw2h, cfg.b_p_eur_per_kwh,
                   cfg.a_h_eur_per_kw2h, cfg.b_h_eur_per_kwh, cfg.c_eur_per_h)


def _from_building_template(s: Scenario, tpl: BuildingTemplate, rng, i: int, prices):
    h, n, days = horizon_of(s), tpl.count, s.horizon.days
    kvas = draw_keys(tpl.contracted_kva, n, rng)
    kinds = draw_keys(tpl.battery, n, rng)
    soc0 = draw_numbers(tpl.battery_initial_soc, n, rng)
    load, pv, wind, cdl = (draw_numbers(getattr(tpl, f), n, rng)
                           for f in ("load_kwh_per_day", "pv_kw", "wind_kw", "cdl_kw"))
    pil = None if tpl.pil_kw is None or not s.market.pil else draw_numbers(tpl.pil_kw, n, rng)
    sun, breeze = locality_weather(s, tpl)
    flexible = _flexible_loads(tpl, h.period_h)
    standard, arrays = _library_profiles(s, tpl, i, n)
    turbine = None if tpl.wind is None else community_wind(s, tpl.wind)
    width, out = len(str(n)), []
    for k in range(n):
        name = f"{tpl.name_prefix}{k + 1:0{width}d}"
        nfl = nonflexible_load_kw(rng, days, h.periods, mean_kwh_per_day=float(load[k]))
        if standard is not None:
            nfl = standard[k]
        out.append(BuildingData(name=name, horizon=h, tariff=tariff_for(s, kvas[k], prices),
                                load_kw=nfl, pv_kw=sun * pv[k] if arrays is None else arrays[k],
                                wind_kw=breeze * wind[k] if turbine is None else turbine.copy(),
                                flexible=flexible,
                                battery=_battery(kinds[k], soc0[k], tpl.battery_end_soc_min),
                                buy_max_kw=float(kvas[k]), sell_max_kw=float(kvas[k]),
                                cdl_kw=np.full(days * h.periods, float(cdl[k])),
                                cdl_factor=s.market.cdl_factor,
                                pil_kw=None if pil is None else np.full(days * h.periods, float(pil[k])),
                                generator=_generator(tpl.generator), chp=_chp(tpl.chp)))
    if tpl.heat_demand_kw == 0:
        return out
    heat = draw_numbers(tpl.heat_demand_kw, n, rng)  # drawn last: the other draws stay
    return [dataclasses.replace(d, heat_demand_kw=np.full(days * h.periods, float(heat[k])))
            for k, d in enumerate(out)]


def _check_cdl(s: Scenario, i: int, d: BuildingData) -> None:
    """A consumer demand limit below the non-flexible load alone (after community.scale) is
    a scenario error."""
    h, name, nfl, cdl_kw = d.horizon, d.name, d.load_kw, float(d.cdl_kw[0])
    peak = int(np.argmax(nfl))
    if cdl_kw < nfl[peak]:
        day, t = divmod(peak, h.periods)
        scaled = f" at community.scale {s.community.scale:g}" if s.community.scale != 1 else ""
        raise ScenarioError([(f"{s.source}: templates.{i}.cdl_kw: {cdl_kw:g} kW is below "
                             f"{name}'s non-flexible load alone{scaled} ({nfl[peak]:.2f} kW on "
                             f"day {day + 1} at {h.label(t)}); raise it above the load's peak")])


def _explicit_building(s: Scenario, a: ExplicitBuilding, prices) -> BuildingData:
    """A producing building (``ExplicitBuilding``): no PV, wind, battery or flexible load;
    its consumer demand limit is its import limit (so never billed). A null import limit
    is its peak load after ``community.scale``, a null export limit the most power its
    generator and CHP unit make together."""
    n = s.horizon.days * s.horizon.periods

    def per_period(values) -> np.ndarray:
        return np.full(n, float(values[0])) if len(values) == 1 else np.asarray(values, float)

    load = per_period(a.load_kw)
    gen, chp = _generator(a.generator), _chp(a.chp)
    made = (gen.p_max_kw if gen else 0.0) + (chp.power_range_kw()[1] if chp else 0.0)
    buy = a.buy_max_kw if a.buy_max_kw is not None else s.community.scale * float(load.max())
    sell = a.sell_max_kw if a.sell_max_kw is not None else made
    tariff = tariff_for(s, a.contracted_kva, prices) if a.contracted_kva is not None \
        else Tariff(*prices, p2v_price(s), 0.0)
    zero = np.zeros(n)
    return BuildingData(name=a.name, horizon=horizon_of(s), tariff=tariff, load_kw=load,
                        pv_kw=zero, wind_kw=zero.copy(), flexible=(), battery=None, buy_max_kw=buy,
                        sell_max_kw=sell, cdl_kw=np.full(n, buy), cdl_factor=s.market.cdl_factor,
                        generator=gen, chp=chp,
                        heat_demand_kw=None if a.heat_demand_kw is None else per_period(a.heat_demand_kw))


def _explicit(s: Scenario, a: ExplicitProsumer | ExplicitEV | ExplicitBuilding,
              prices) -> ProsumerData | EVData | BuildingData:
    if isinstance(a, ExplicitBuilding):
        return _explicit_building(s, a, prices)
    if isinstance(a, ExplicitProsumer):
        return _prosumer(s, a.name, a.contracted_kva, a.load_kw, a.pv_kw,
                         _battery(a.battery, a.battery_initial_soc, a.battery_end_soc_min),
                         prices)
    bat = _ev_battery(a.model, float(a.contracted_kva), a.initial_soc, a.end_soc_min,
                      a.discharge, a.discharge_max_kw)
    return _ev(s=s, name=a.name, kva=a.contracted_kva, model=a.model, away=a.away,
               trip_kwh=a.trip_kwh, battery=bat, prices=prices)


def _template_field(tpl, exc: ValueError) -> str:
    """The part of a template a data generator's complaint is about."""
    if tpl.kind == "ev":
        return ".trips"
    if tpl.kind == "prosumer" and "load" in str(exc):
        return ".load"
    if tpl.kind == "prosumer" and ("PV" in str(exc) or "kWp" in str(exc)):
        return ".pv"
    return ""


def _from_network_loads_template(s: Scenario, tpl: NetworkLoadsTemplate, rng, i: int,
                                 prices) -> list[ProsumerData]:
    """One consumer per published load of the network (``NetworkLoadsTemplate``)."""
    h, days = horizon_of(s), s.horizon.days
    shape = np.asarray(tpl.shape, float)[hour_of_period(h)]
    p_kw = {b: p for b, p, _ in published_loads(s.grid.network)}
    unknown = sorted(set(tpl.pv_kw) - set(p_kw))
    if unknown:
        raise ValueError(f"pv_kw names bus {unknown[0]}, which has no load in network "
                         f"{s.grid.network}; allowed: {', '.join(map(str, sorted(p_kw)))}")
    buy, sell = prices
    out = []
    for name, bus in network_consumers(s, tpl):
        pv_kw = float(tpl.pv_kw.get(bus, 0.0))
        pv = (pv_available_kw(np.random.default_rng([s.seed, i, bus]), days, h.periods,
                              installed_kw=pv_kw, yield_kwh_per_kw_day=tpl.pv_yield_kwh_per_kw_day)
              if pv_kw > 0 else np.zeros(days * h.periods))
        out.append(ProsumerData(name, h, Tariff(buy, sell, p2v_price(s), 0.0),
                                np.tile(p_kw[bus] * shape, days), pv, None,
                                buy_max_kw=tpl.import_factor * p_kw[bus], sell_max_kw=pv_kw,
                                p2v_max_kw=0.0))
    return out


def hourly_per_period(kw_by_hour, h: Horizon) -> np.ndarray:
    """One day of an hourly profile per period: each hour held for the periods it spans,
    the mean of the hours a longer (or straddling) period spans."""
    kw = np.asarray(kw_by_hour, float)
    minutes = round(h.period_h * 60)
    if 60 % minutes == 0:
        return kw[hour_of_period(h)]
    return np.repeat(kw, 60).reshape(h.periods, minutes).mean(axis=1)


def _from_bus_profiles_template(s: Scenario, tpl: BusProfilesTemplate, rng, i: int,
                                prices) -> list[ProsumerData]:
    """One prosumer per bus of the placement (``BusProfilesTemplate``): the load profile on
    a load bus, the PV profile on a PV bus, every day the same. A null connection limit is
    twice the agent's peak after ``community.scale`` (applied later, in build_community)."""
    h, days, k = horizon_of(s), s.horizon.days, s.community.scale
    load = np.tile(hourly_per_period(tpl.load.kw, h), days)
    pv = np.tile(hourly_per_period(tpl.pv.kw, h), days)
    none = np.zeros(days * h.periods)
    buy, sell = prices
    out = []
    for agent in bus_profile_agents(s, tpl):
        load_kw, pv_kw = (load if agent.load else none), (pv if agent.pv else none)
        out.append(ProsumerData(
            agent.name, h, Tariff(buy, sell, p2v_price(s), 0.0), load_kw.copy(), pv_kw.copy(),
            None, buy_max_kw=_limit_kw(tpl.import_kw, load_kw, k),
            sell_max_kw=_limit_kw(tpl.export_kw, pv_kw, k), p2v_max_kw=0.0))
    return out


def _limit_kw(given: float | None, profile_kw: np.ndarray, scale: float) -> float:
    """A connection limit: the one given, else twice the profile's peak after `scale`."""
    return float(given) if given is not None else 2.0 * scale * float(profile_kw.max(initial=0))


def network_buses(s: Scenario) -> dict[str, int]:
    """The buses the scenario fixes by construction (consumers of the network's loads,
    the agents of bus_profiles templates)."""
    out = {name: bus for tpl in s.templates if tpl.kind == "network_loads"
           for name, bus in network_consumers(s, tpl)}
    out.update({a.name: a.bus for tpl in s.templates if tpl.kind == "bus_profiles"
                for a in bus_profile_agents(s, tpl)})
    return out


def scale_profiles(d: ProsumerData | EVData | BuildingData, scale: float):
    """`d` with its load and PV profiles × `scale` (``community.scale``); an EV as it is."""
    if scale == 1.0 or isinstance(d, EVData):
        return d
    return dataclasses.replace(d, load_kw=d.load_kw * scale, pv_kw=d.pv_kw * scale)


def build_community(s: Scenario) -> list[ProsumerData | EVData]:
    """Every agent of the scenario: templates first (in file order), then explicit agents.
    Data the scenario asks for but that cannot be made is a ScenarioError naming the field."""
    agents: list[ProsumerData | EVData] = []
    try:
        prices = grid_prices(s)  # one price series for the run, shared by every agent
    except ValueError as exc:
        raise ScenarioError([f"{s.source}: tariffs: {exc}"]) from None
    for i, tpl in enumerate(s.templates):
        rng = np.random.default_rng([s.seed, i])
        build = {"prosumer": _from_prosumer_template, "ev": _from_ev_template,
                 "building": _from_building_template,
                 "network_loads": _from_network_loads_template,
                 "bus_profiles": _from_bus_profiles_template}[tpl.kind]
        try:
            made = [scale_profiles(d, s.community.scale) for d in build(s, tpl, rng, i, prices)]
            for d in made:
                if isinstance(d, BuildingData):
                    _check_cdl(s, i, d)
            agents += made
        except ScenarioError:
            raise
        except ValueError as exc:
            raise ScenarioError([(f"{s.source}: templates.{i}{_template_field(tpl, exc)}: "
                                 f"{exc}")]) from None
    for k, a in enumerate(s.agents):
        try:
            agents.append(scale_profiles(_explicit(s, a, prices), s.community.scale))
        except ValueError as exc:
            raise ScenarioError([f"{s.source}: agents.{k}: {exc}"]) from None
    names = [a.name for a in agents]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ScenarioError([(f"{s.source}: templates: agent names used twice: "
                             f"{', '.join(duplicates)}; allowed: distinct names")])
    return agents


def build_actuals(s: Scenario, community) -> dict[str, Actuals]:
    """What really happens: each agent's load, PV and wind with the scenario's forecast
    errors (relative standard deviations; none when all are 0)."""
    err = s.forecast_error
    if not (err.load or err.pv or err.wind):
        return {}
    out = {}
    for k, d in enumerate(community):
        rng = np.random.default_rng([s.seed, ACTUALS_STREAM, k])
        out[d.name] = Actuals(**{f"{field}_kw": forecast_actual(rng, getattr(d, f"{field}_kw"),
                                                                sigma)
                                 for field, sigma in (("load", err.load), ("pv", err.pv),
                                                      ("wind", err.wind))
                                 if hasattr(d, f"{field}_kw")})
    return out
