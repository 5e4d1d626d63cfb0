"""Seeded month-long inputs for a residential locality near Vellore, Tamil Nadu (12.9 N).

The community of the transactive-energy study with AMC and GDRMC clearing (Hindawi Math.
Problems in Engineering 2023, 3979662): ten residential participants over one month.  The
paper gives only those figures (and the CDL factor 2.5 and penalty rate 0.2, used
elsewhere); its appliance table and price series are images, so everything here is
synthesized.  Each figure names its published source or is marked RECON with its reasoning.

Every random draw comes from the ``numpy.random.Generator`` passed in, so the same seed
gives identical arrays.  Pure functions: numpy only, no files.  Arrays are 1-D of length
``days * periods`` (day-major), ``period_h = 24 / periods``; ``periods`` must divide or be
a multiple of 24, because wind speeds and prices are hourly series held (or averaged) per
period.  Day 0 is a Monday.

Sources
-------
- DOE: U.S. Department of Energy, Energy Saver, "Estimating Appliance and Home Electronic
  Energy Use" (typical nameplate wattages; a refrigerator runs at full power about a third
  of the time it is plugged in).
- NOAA: NOAA Global Monitoring Laboratory solar-position equations, evaluated for Vellore
  (12.92 N, 79.13 E, IST = UTC+5:30).
- EPJ-PV 2023: EPJ Photovoltaics 14 (2023), article pv220042, Table 1: Chennai (13 N),
  1941.8 kWh/m2 a year on a 15-degree tilt.  Front. Energy Res. 10:857948 (2022): a 1 MWp
  rooftop plant at Visakhapatnam (GITAM) yields 1684.881 MWh a year.
- TNERC: Tamil Nadu Electricity Regulatory Commission: domestic tariff effective
  10 Sep 2022 (8 INR/kWh for 501-600 units in two months); time of day for commercial
  and industrial consumers (not yet for households): peak 06-10 and 18-22 at +25 %, a
  5 % rebate 22-05; generic feed-in tariff for 1-10 kW rooftop PV of 3.61 INR/kWh, with
  a higher evening-peak rate (Order No. 8 of 2021, 22 Oct 2021); the 2017 consultative
  paper on solar power ("around 300 clear sunny days in a year").
- MoP 2023: Ministry of Power (India), Electricity (Rights of Consumers) Amendment Rules
  2023 (G.S.R. 437(E), 14 June 2023): domestic peak tariff at least 1.1 x normal, solar-
  hour tariff below normal.
- Bergey: Excel 15 ICC-SWCC certification SWCC-16-05 (2016, to AWEA 9.1): 15.6 kW at
  11 m/s; Excel 10 product description: no output below 7 mph (3.1 m/s); the Excel 10
  owner's manual: it furls in high winds (AutoFurl) rather than stopping.
- IEC 61400-12-1: annual energy production is computed over Rayleigh (Weibull k = 2) wind
  distributions.  Brown, Katz & Murphy, J. Climate Appl. Meteorol. 23 (1984) 1184-1195:
  hourly wind speed as an autoregressive Gaussian process transformed to its marginal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lemgrid.scenarios.catalog import APPLIANCES, HOURS_PER_DAY, Appliance, clock_h

BASE_LOAD_KW = 0.04  # RECON: router, set-top box, chargers and standby electronics
DAY_FACTOR_SD = 0.075  # RECON: day-to-day energy factor N(1, 7.5 %) clipped to +-15 %
WEEKEND_FACTOR = 1.08  # RECON: everyone at home on Saturday and Sunday
DURATION_JITTER = 0.2  # RECON: daily running time uniform in +-20 % of the typical hours
LOAD_NOISE_SD = 0.05  # RECON: 5 % lognormal period-to-period noise
FRIDGE_SWING = 0.2  # RECON: compressor duty +-20 % over the day, highest at 15:00 (warmest)

# PV: NOAA sunrise/sunset for Vellore on 15 September: 06:02 / 18:15 (over the year
# 05:47-06:38 and 17:44-18:43); the defaults 06:00 / 18:15 are that day, to the quarter.
PV_YIELD_KWH_PER_KW_DAY = 4.5  # EPJ-PV 2023: 1941.8/365 = 5.3 kWh/m2/day x RECON performance
# ratio 0.8 = 4.3; GITAM 1684.881 MWh / 1 MWp / 365 = 4.6; default between the two
PV_SHAPE_EXPONENT = 1.3  # RECON: sin(.)**1.3 bell, as for the Portuguese profiles
CLOUDY_DAY_PROB = 0.18  # TNERC 2017: ~300 clear days a year -> 65/365 not clear
CLOUDY_CLEARNESS = (0.3, 0.7)  # RECON: an overcast or rainy day gives 30-70 % of clear sky
CLEAR_CLEARNESS = (0.85, 1.0)  # RECON: haze and thin cloud on a clear day
PV_NOISE_SD = 0.03  # RECON: 3 % per-period noise, clipped to +-10 %

# Wind.
WIND_MEAN_SPEED_M_S = 4.0  # RECON: inland Tamil Nadu plain is a low-wind site; 4 m/s at an
# 18-20 m small-turbine tower is a windy (south-west monsoon) month, calm months are nearer 3
WEIBULL_K = 2.0  # IEC 61400-12-1: Rayleigh distribution
WIND_HOURLY_AUTOCORR = 0.9  # RECON: lag-1 correlation of the hourly Gaussian process
# (Brown, Katz & Murphy 1984 method; hourly persistence is typically 0.85-0.95)
CUT_IN_M_S = 3.0  # Bergey: Excel 10, no output below 7 mph (3.1 m/s)
RATED_M_S = 11.0  # Bergey: Excel 15 certified at its rated power at 11 m/s
CUT_OUT_M_S = 25.0  # RECON: the usual shutdown speed of large turbines (the Bergey furls
# instead); hourly means at this site practically never reach it

# Prices.  Levels: TNERC domestic slab 501-600 units (bi-monthly) = 8 INR/kWh, the marginal
# price of a household using 8-10 kWh a day, at ~89 INR/EUR (ECB reference rate, 2023
# average) = 0.09 EUR/kWh.  Feed-in: TNERC 3.61 INR/kWh = 0.0405 EUR/kWh = 0.45 x buy.
BUY_MEAN_EUR_PER_KWH = 0.09
SELL_RATIO = 0.45
SELL_RATIO_SPREAD = 0.10  # RECON: daily sell/buy ratio uniform in 0.35-0.55
DAY_LEVEL_SD = 0.08  # RECON: day-to-day price level, lognormal AR(1) with sd 8 % ...
DAY_LEVEL_AUTOCORR = 0.7  # ... and day-to-day persistence 0.7 (weekly swings over the month)
PRICE_NOISE_SD = 0.04  # RECON: 4 % hour-to-hour noise of the real-time price
# Time-of-day multipliers by hour (normalised to a mean of 1 below): TNERC peak hours
# 18-22 at +25 % (06-10 at the MoP 2023 domestic minimum +10 %, the morning shoulder),
# MoP 2023 solar hours 10-18 at -10 %; night 22-05 at -20 % (RECON: deeper than TNERC's
# 5 % rebate so that the real-time price has a clear night valley), 05-06 at -10 % (RECON).
_TOD_BLOCKS = ((0, 5, 0.80), (5, 6, 0.90), (6, 10, 1.10), (10, 18, 0.90), (18, 22, 1.25),
               (22, 24, 0.80))
_TOD_RAW = np.array([m for a, b, m in _TOD_BLOCKS for _ in range(a, b)])
TOD_MULTIPLIER = _TOD_RAW / _TOD_RAW.mean()


# --------------------------------------------------------------------------- time grid


def _period_h(days: int, periods: int) -> float:
    if days < 1 or periods < 1 or (periods % HOURS_PER_DAY and HOURS_PER_DAY % periods):
        raise ValueError(f"need days >= 1 and periods dividing or a multiple of 24, got "
                         f"days={days!r}, periods={periods!r}")
    return HOURS_PER_DAY / periods


def _mid_hours(periods: int) -> np.ndarray:
    return (np.arange(periods) + 0.5) * HOURS_PER_DAY / periods


def hourly_to_periods(hourly: np.ndarray, periods: int) -> np.ndarray:
    """An hourly series held over shorter periods, or averaged over longer ones."""
    hours = hourly.reshape(-1, HOURS_PER_DAY)
    if periods % HOURS_PER_DAY == 0:
        return np.repeat(hours, periods // HOURS_PER_DAY, axis=1).ravel()
    return hours.reshape(hours.shape[0], periods, -1).mean(axis=2).ravel()


def _scaled_to_kwh(kw: np.ndarray, total_kwh: float, period_h: float) -> np.ndarray:
    energy_kwh = float(np.sum(kw)) * period_h
    if total_kwh < 0:
        raise ValueError(f"energy total must be >= 0, got {total_kwh!r}")
    if energy_kwh <= 0:
        if total_kwh == 0:
            return kw * 0.0
        raise ValueError(f"cannot scale an all-zero profile to {total_kwh} kWh")
    return kw * (total_kwh / energy_kwh)


# --------------------------------------------------------------------------- load


def _block_kw(start_h: float, duration_h: float, rating_kw: float, periods: int) -> np.ndarray:
    """Mean power per period of one run from ``start_h`` (wrapping past midnight)."""
    step_h = HOURS_PER_DAY / periods
    edges = np.arange(periods) * step_h
    overlap_h = np.zeros(periods)
    for shift in (0.0, -HOURS_PER_DAY):
        begin, end = start_h + shift, start_h + shift + duration_h
        overlap_h += np.clip(np.minimum(end, edges + step_h) - np.maximum(begin, edges), 0, None)
    return rating_kw * overlap_h / step_h


def _appliance_day_kw(app: Appliance, rng: np.random.Generator, periods: int) -> np.ndarray:
    """One day of a non-flexible appliance: an all-day window is a cycling compressor
    (duty = duration / 24, swinging with the afternoon heat); otherwise one run of
    +-20 % the typical hours, starting uniformly where it fits in the window."""
    span_h = app.window_span_h
    if span_h >= HOURS_PER_DAY:
        swing = 1 + FRIDGE_SWING * np.cos(2 * np.pi * (_mid_hours(periods) - 15) / 24)
        return app.rating_kw * app.duration_h / HOURS_PER_DAY * swing
    run_h = min(app.duration_h * rng.uniform(1 - DURATION_JITTER, 1 + DURATION_JITTER), span_h)
    start_h = (app.window_start_h + rng.uniform(0, span_h - run_h)) % HOURS_PER_DAY
    return _block_kw(start_h, run_h, app.rating_kw, periods)


def _non_flexible(appliances: Sequence[Appliance] | None) -> list[Appliance]:
    if appliances is None:
        return [a for a in APPLIANCES.values() if not a.flexible]
    chosen = list(appliances)
    flexible = [a.key for a in chosen if a.flexible]
    if flexible:
        raise ValueError(f"flexible appliances {flexible} are scheduled by the HEMS, not here")
    return chosen


def nonflexible_load_kw(rng: np.random.Generator, days: int, periods: int, *,
                        mean_kwh_per_day: float,
                        appliances: Sequence[Appliance] | None = None) -> np.ndarray:
    """A household's non-flexible load: the non-flexible appliances (all of the catalogue
    by default) plus ``BASE_LOAD_KW``, each day times a factor N(1, 7.5 %) clipped to
    +-15 % (x1.08 on weekends), 5 % period noise; then scaled so that the mean daily
    energy over the ``days`` equals ``mean_kwh_per_day`` exactly.

    Shape with the full catalogue: a morning bump (mixer grinder, iron), a low daytime
    (fridge, laptop, fans from 13:00), an evening peak (lights, TV, microwave) and the
    largest block at night from the air conditioner (22:00-06:00)."""
    period_h = _period_h(days, periods)
    chosen = _non_flexible(appliances)
    rows = np.empty((days, periods))
    for day in range(days):
        kw = np.full(periods, BASE_LOAD_KW)
        for app in chosen:
            kw += _appliance_day_kw(app, rng, periods)
        factor = np.clip(rng.normal(1.0, DAY_FACTOR_SD), 0.85, 1.15)
        rows[day] = kw * factor * (WEEKEND_FACTOR if day % 7 >= 5 else 1.0)
    rows *= rng.lognormal(0.0, LOAD_NOISE_SD, rows.shape)
    return _scaled_to_kwh(rows.ravel(), mean_kwh_per_day * days, period_h)


# --------------------------------------------------------------------------- PV


def _clearness(rng: np.random.Generator, days: int, cloudy_day_prob: float) -> np.ndarray:
    cloudy = rng.random(days) < cloudy_day_prob
    return np.where(cloudy, rng.uniform(*CLOUDY_CLEARNESS, days),
                    rng.uniform(*CLEAR_CLEARNESS, days))


def pv_available_kw(rng: np.random.Generator, days: int, periods: int, *, installed_kw: float,
                    yield_kwh_per_kw_day: float = PV_YIELD_KWH_PER_KW_DAY,
                    sunrise: str = "06:00", sunset: str = "18:15",
                    cloudy_day_prob: float = CLOUDY_DAY_PROB) -> np.ndarray:
    """Available PV power: a clear-sky ``sin**1.3`` bell between sunrise and sunset (zero
    at night), times a daily clearness factor (cloudy with ``cloudy_day_prob``), times 3 %
    period noise.  Scaled so that the mean daily yield is ``yield_kwh_per_kw_day`` per
    installed kW, then capped at ``installed_kw``; the cap only lowers the yield when more
    is asked than the bell holds under the cap (above ~5.5 kWh/kW/day on 06:00-18:15)."""
    period_h = _period_h(days, periods)
    rise_h, set_h = clock_h(sunrise), clock_h(sunset)
    if not rise_h < set_h:
        raise ValueError(f"sunrise {sunrise} must come before sunset {sunset}")
    phase = (_mid_hours(periods) - rise_h) / (set_h - rise_h)
    bell = np.where((phase > 0) & (phase < 1), np.sin(np.pi * np.clip(phase, 0, 1)), 0.0)
    noise = np.clip(1 + rng.normal(0.0, PV_NOISE_SD, (days, periods)), 0.9, 1.1)
    shape = _clearness(rng, days, cloudy_day_prob)[:, None] * bell**PV_SHAPE_EXPONENT * noise
    total_kwh = installed_kw * yield_kwh_per_kw_day * days
    return np.minimum(_scaled_to_kwh(shape.ravel(), total_kwh, period_h), installed_kw)


# --------------------------------------------------------------------------- wind


def power_curve_kw(speed_m_s: np.ndarray | float, rated_kw: float, *,
                   cut_in_m_s: float = CUT_IN_M_S, rated_m_s: float = RATED_M_S,
                   cut_out_m_s: float = CUT_OUT_M_S) -> np.ndarray:
    """Small-turbine power: 0 below cut-in, ``rated_kw * (v**3 - vi**3) / (vr**3 - vi**3)``
    up to the rated speed (RECON cubic rise between the Bergey points), rated
    power up to cut-out, 0 from cut-out on."""
    v = np.asarray(speed_m_s, dtype=float)
    if not (rated_kw >= 0 and 0 <= cut_in_m_s < rated_m_s <= cut_out_m_s):
        raise ValueError("need rated_kw >= 0 and 0 <= cut_in < rated <= cut_out wind speeds")
    rising = (v**3 - cut_in_m_s**3) / (rated_m_s**3 - cut_in_m_s**3)
    frac = np.where(v < rated_m_s, rising, 1.0)
    return rated_kw * np.where((v < cut_in_m_s) | (v >= cut_out_m_s), 0.0, frac)


def wind_speed_m_s(rng: np.random.Generator, hours: int, *,
                   mean_speed_m_s: float = WIND_MEAN_SPEED_M_S, weibull_k: float = WEIBULL_K,
                   autocorr: float = WIND_HOURLY_AUTOCORR) -> np.ndarray:
    """Hourly wind speed: a stationary AR(1) standard Gaussian process (lag-1 correlation
    ``autocorr``) mapped through the Weibull quantile function, so the marginal is
    Weibull(k) with mean ``mean_speed_m_s``."""
    if not (mean_speed_m_s >= 0 and weibull_k > 0 and 0 <= autocorr < 1):
        raise ValueError("need mean_speed_m_s >= 0, weibull_k > 0 and 0 <= autocorr < 1")
    shocks = rng.standard_normal(hours)
    z = np.empty(hours)
    z[0] = shocks[0]
    for t in range(1, hours):
        z[t] = autocorr * z[t - 1] + math.sqrt(1 - autocorr**2) * shocks[t]
    survival = 0.5 * np.array([math.erfc(x / math.sqrt(2)) for x in z])
    scale_m_s = mean_speed_m_s / math.gamma(1 + 1 / weibull_k)
    return scale_m_s * (-np.log(np.maximum(survival, np.finfo(float).tiny))) ** (1 / weibull_k)


def wind_available_kw(rng: np.random.Generator, days: int, periods: int, *, rated_kw: float,
                      mean_speed_m_s: float = WIND_MEAN_SPEED_M_S,
                      weibull_k: float = WEIBULL_K,
                      autocorr: float = WIND_HOURLY_AUTOCORR) -> np.ndarray:
    """Available wind power in [0, rated_kw]: hourly speeds (``wind_speed_m_s``) through
    ``power_curve_kw``, held over shorter periods or averaged over longer ones."""
    _period_h(days, periods)
    speed = wind_speed_m_s(rng, days * HOURS_PER_DAY, mean_speed_m_s=mean_speed_m_s,
                           weibull_k=weibull_k, autocorr=autocorr)
    return hourly_to_periods(power_curve_kw(speed, rated_kw), periods)


# --------------------------------------------------------------------------- prices


def _day_levels(rng: np.random.Generator, days: int) -> np.ndarray:
    """Lognormal AR(1) daily price level (sd ``DAY_LEVEL_SD``, persistence 0.7)."""
    shocks = rng.standard_normal(days)
    log_level = np.empty(days)
    log_level[0] = DAY_LEVEL_SD * shocks[0]
    innovation_sd = DAY_LEVEL_SD * math.sqrt(1 - DAY_LEVEL_AUTOCORR**2)
    for d in range(1, days):
        log_level[d] = DAY_LEVEL_AUTOCORR * log_level[d - 1] + innovation_sd * shocks[d]
    return np.exp(log_level)


def month_prices_eur_per_kwh(rng: np.random.Generator, days: int, periods: int, *,
                             buy_mean_eur_per_kwh: float = BUY_MEAN_EUR_PER_KWH,
                             sell_ratio: float = SELL_RATIO,
                             sell_ratio_spread: float = SELL_RATIO_SPREAD,
                             ) -> tuple[np.ndarray, np.ndarray]:
    """(buy, sell) real-time prices: hourly ``TOD_MULTIPLIER`` x a daily level x 4 % hour
    noise, scaled so the buy price's mean over all periods is ``buy_mean_eur_per_kwh``
    exactly; sell = buy x a daily ratio uniform in ``sell_ratio +- sell_ratio_spread``
    (feed-in also follows the time of day, like TNERC's peak feed-in tariff)."""
    _period_h(days, periods)
    low, high = sell_ratio - sell_ratio_spread, sell_ratio + sell_ratio_spread
    if not (buy_mean_eur_per_kwh > 0 and 0 < low <= high < 1):
        raise ValueError("need buy_mean_eur_per_kwh > 0 and sell ratios inside (0, 1)")
    hourly = _day_levels(rng, days)[:, None] * TOD_MULTIPLIER[None, :]
    hourly = hourly * rng.lognormal(0.0, PRICE_NOISE_SD, hourly.shape)
    buy = hourly * (buy_mean_eur_per_kwh / hourly.mean())
    sell = buy * rng.uniform(low, high, days)[:, None]
    return hourly_to_periods(buy, periods), hourly_to_periods(sell, periods)


# --------------------------------------------------------------------------- forecasts


def forecast_actual(rng: np.random.Generator, forecast: np.ndarray, sigma: float) -> np.ndarray:
    """Realised profile = forecast x (1 + e), e ~ N(0, sigma) i.i.d. per period, clipped
    at 0.  The draws are made for any sigma, so the stream does not depend on it; with
    ``sigma == 0`` the result equals a non-negative forecast exactly (a new array)."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    values = np.asarray(forecast, dtype=float)
    errors = rng.normal(0.0, sigma, values.shape)
    return np.maximum(values * (1.0 + errors), 0.0)
