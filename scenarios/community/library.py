"""Profiles from the field's own libraries, on a calendar: loads from the BDEW standard
load profiles (demandlib) and PV from pvlib (solar position, clear sky or a typical
meteorological year, transposition to the module plane, PVWatts DC and AC).

A template that names a standard profile or a PVWatts array gets its days from here; the
paper scenarios keep their own synthesizers (``profiles.py``, ``households.py``). Every
random draw comes from the generator the caller passes (the scenario's seed).

Times are the site's local clock (the scenario's ``site.timezone``): a period is labelled
by its start, and solar quantities are taken at its middle.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from lemgrid.scenarios.community.households import hourly_to_periods, wind_speed_m_s
from lemgrid.scenarios.schema.profiles import (
    STANDARD_PROFILES,
    TMY_SHIPPED,
    Clearness,
    PVWatts,
    Site,
    StandardLoad,
    WindTurbine,
)

QUARTER_MIN = 15  # the BDEW profiles' resolution
ALBEDO = 0.25  # pvlib's default ground albedo (get_total_irradiance)
BDEW25 = STANDARD_PROFILES[:5]  # the 2025 editions: demandlib.bdew.H25, G25, ...


# --- the calendar --------------------------------------------------------------------

def run_dates(start: dt.date, days: int) -> list[dt.date]:
    return [start + dt.timedelta(days=d) for d in range(days)]


def period_starts(dates: list[dt.date], period_minutes: int) -> pd.DatetimeIndex:
    """Every period's start on the local clock (naive), day after day."""
    per_day = 1440 // period_minutes
    return pd.DatetimeIndex([pd.Timestamp(d) + pd.Timedelta(minutes=period_minutes * k)
                             for d in dates for k in range(per_day)])


# --- loads: the BDEW standard load profiles ------------------------------------------

@functools.cache
def year_shape(profile: str, year: int, holidays: tuple[dt.date, ...] = ()) -> np.ndarray:
    """The profile's quarter hours of ``year`` in kW for 1 kWh in the year (the BDEW day
    types, seasons or months and, for h25/p25/s25/h0_dyn, the dynamization; ``holidays``
    are Sundays). Normalized on the whole year, so any annual energy is kept exactly."""
    from demandlib import bdew

    days = {d: "holiday" for d in holidays if d.year == year}
    if profile in BDEW25:
        index = pd.date_range(f"{year}-01-01", f"{year}-12-31 23:45", freq="15min")
        kw = getattr(bdew, profile.upper())(index, holidays=days or None).to_numpy(float)
    else:
        kwh = bdew.ElecSlp(year, holidays=days or None).get_scaled_profiles({profile: 1.0})
        kw = kwh[profile].to_numpy(float) * 60 / QUARTER_MIN
    return kw / (kw.sum() * QUARTER_MIN / 60)


def standard_loads(load: StandardLoad, n: int, dates: list[dt.date], period_minutes: int,
                   rng: np.random.Generator, holidays: tuple[dt.date, ...] = ()) -> np.ndarray:
    """``n`` households' loads (kW) over ``dates``, (n, days × periods): the profile's
    quarter hours of each date scaled to ``annual_kwh`` a year; each household's annual
    energy × a factor uniform in 1 ± ``scale_spread`` (the factors rescaled to mean 1, so
    the households keep n × annual_kwh), its year moved by whole quarter hours uniform in
    ± ``shift_minutes``, and each period × (1 + normal noise of ``noise_sd``), each day
    rescaled to its energy before the noise (the noise moves power within a day)."""
    factors = 1 + load.scale_spread * rng.uniform(-1, 1, n)
    factors = factors / factors.mean()
    steps = load.shift_minutes // QUARTER_MIN
    shifts = rng.integers(-steps, steps + 1, n) if steps else np.zeros(n, int)
    quarters = []
    for d in dates:
        shape = year_shape(load.profile, d.year, tuple(holidays))
        first = (d - dt.date(d.year, 1, 1)).days * 96
        rows = (first + np.arange(96)[None, :] - shifts[:, None]) % shape.size
        quarters.append(shape[rows])
    kw = np.concatenate(quarters, axis=1) * (load.annual_kwh * factors)[:, None]
    kw = to_periods(kw, period_minutes)
    if load.noise_sd > 0:
        days = kw.reshape(n, len(dates), -1)
        noisy = np.clip(days * (1 + load.noise_sd * rng.standard_normal(days.shape)), 0, None)
        before, after = days.sum(axis=2, keepdims=True), noisy.sum(axis=2, keepdims=True)
        kw = (noisy * (before / np.where(after > 0, after, np.inf))).reshape(n, -1)
    return kw


def to_periods(quarter_kw: np.ndarray, period_minutes: int) -> np.ndarray:
    """Quarter-hour powers as the scenario's periods: the mean over longer periods (energy
    kept), repeated for shorter ones."""
    if period_minutes >= QUARTER_MIN:
        k = period_minutes // QUARTER_MIN
        return quarter_kw.reshape(*quarter_kw.shape[:-1], -1, k).mean(axis=-1)
    return np.repeat(quarter_kw, QUARTER_MIN // period_minutes, axis=-1)


# --- the sky and PV: pvlib ------------------------------------------------------------

def middles(starts: pd.DatetimeIndex, period_minutes: int, site: Site) -> pd.DatetimeIndex:
    """The periods' middles, localized to the site (a clock time that does not exist on
    a daylight-saving day moves forward, a repeated one is the later)."""
    mid = starts + pd.Timedelta(minutes=period_minutes / 2)
    return mid.tz_localize(site.timezone, nonexistent="shift_forward", ambiguous=False)


def clear_sky(site: Site, times: pd.DatetimeIndex, clearness: np.ndarray) -> pd.DataFrame:
    """Ineichen clear-sky irradiance (pvlib, its shipped Linke turbidity) × each
    period's clearness index: GHI scaled, split into DNI and DHI by Erbs where the
    index is below 1 (clear periods keep the clear-sky split). W/m²."""
    import pvlib

    loc = pvlib.location.Location(site.latitude, site.longitude, site.timezone,
                                  site.altitude_m)
    sky = loc.get_clearsky(times, model="ineichen")
    solpos = loc.get_solarposition(times)
    ghi = sky["ghi"].to_numpy() * clearness
    split = pvlib.irradiance.erbs(ghi, solpos["zenith"].to_numpy(), times.dayofyear)
    clear = clearness >= 1
    return pd.DataFrame({"ghi": ghi,
                         "dni": np.where(clear, sky["dni"], split["dni"]),
                         "dhi": np.where(clear, sky["dhi"], split["dhi"])}, index=times)


def daily_clearness(days: int, rng: np.random.Generator, model: Clearness) -> np.ndarray:
    """Each day's clearness index: a day is cloudy with probability ``cloudy_fraction``
    (its index uniform in ``cloudy_range``), clear (1) otherwise."""
    cloudy = rng.random(days) < model.cloudy_fraction
    return np.where(cloudy, rng.uniform(*model.cloudy_range, days), 1.0)


def tmy_path(file: str) -> Path:
    """A TMY file: one pvlib ships (by name) or a path."""
    if file in TMY_SHIPPED:
        import pvlib

        return Path(pvlib.__file__).parent / "data" / file
    return Path(file)


@functools.cache
def read_tmy(file: str) -> tuple[pd.DataFrame, dict]:
    """A TMY3 (or EPW) file by pvlib's readers: hourly ghi, dni, dhi, temp_air,
    wind_speed, albedo (where the file has it), and the file's metadata."""
    import pvlib

    path = tmy_path(file)
    reader = pvlib.iotools.read_epw if path.suffix.lower() == ".epw" else pvlib.iotools.read_tmy3
    data, meta = reader(str(path), map_variables=True)
    return data, meta


def tmy_sky(file: str, times: pd.DatetimeIndex) -> pd.DataFrame:
    """The TMY's weather at each period: the hour that contains its middle (TMY3 and
    EPW label an hour by its end), matched by month, day and hour on the local clock;
    29 February takes 28 February's; the ground's albedo where the file has none is
    pvlib's default."""
    data, _ = read_tmy(file)
    start = data.index - pd.Timedelta(hours=1)  # an hour's values, by its start
    key = pd.MultiIndex.from_arrays([start.month, start.day, start.hour])
    if "albedo" not in data:
        data = data.assign(albedo=ALBEDO)
    table = data.set_axis(key)[["ghi", "dni", "dhi", "temp_air", "wind_speed", "albedo"]]
    table = table[~table.index.duplicated()]
    local = times.tz_localize(None)
    day = np.where((local.month == 2) & (local.day == 29), 28, local.day)
    want = pd.MultiIndex.from_arrays([local.month, day, local.hour])
    return table.reindex(want).set_axis(times).astype(float)


def pvwatts_kw(array: PVWatts, kwp: float, site: Site, sky: pd.DataFrame,
               temp_air_c: pd.Series | float, wind_speed_m_s: pd.Series | float,
               albedo: pd.Series | float = 0.25) -> np.ndarray:
    """AC power (kW, ≥ 0) of ``array`` at ``kwp`` under ``sky`` (ghi, dni, dhi; its
    index the times in the site's zone): the isotropic sky on the plane, SAPM open-rack
    glass/glass cells, PVWatts DC less ``losses_pct``, PVWatts' inverter sized at the DC
    rating."""
    import pvlib

    times = sky.index
    solpos = pvlib.solarposition.get_solarposition(times, site.latitude, site.longitude,
                                                   site.altitude_m, temperature=temp_air_c)
    poa = pvlib.irradiance.get_total_irradiance(
        array.tilt_deg, array.azimuth_deg, solpos["apparent_zenith"], solpos["azimuth"],
        sky["dni"], sky["ghi"], sky["dhi"], albedo=albedo)["poa_global"].fillna(0.0)
    params = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_glass"]
    cell = pvlib.temperature.sapm_cell(poa, temp_air_c, wind_speed_m_s, **params)
    pdc0 = kwp * 1000
    dc = pvlib.pvsystem.pvwatts_dc(poa, cell, pdc0, array.gamma_pdc)
    dc = dc * (1 - array.losses_pct / 100)
    ac = pvlib.inverter.pvwatts(dc, pdc0, array.inverter_efficiency)
    return np.clip(np.nan_to_num(np.asarray(ac, float) / 1000), 0.0, None)


# --- wind: windpowerlib ----------------------------------------------------------------

TMY_WIND_HEIGHT_M = 10.0  # TMY3 and EPW give the wind speed at 10 m


def turbine_curve(turbine: WindTurbine) -> tuple[np.ndarray, np.ndarray]:
    """(wind speeds m/s, kW) of the turbine's power curve: windpowerlib's library curve
    of the turbine named, or the scenario's own."""
    if turbine.power_curve is not None:
        return (np.asarray(turbine.power_curve.wind_speed_m_s, float),
                np.asarray(turbine.power_curve.kw, float))
    from windpowerlib import WindTurbine as LibraryTurbine

    curve = LibraryTurbine(hub_height=turbine.hub_height_m,
                           turbine_type=turbine.turbine).power_curve
    return curve["wind_speed"].to_numpy(float), curve["value"].to_numpy(float) / 1000


def wind_kw(turbine: WindTurbine, speed_m_s: np.ndarray, height_m: float) -> np.ndarray:
    """The turbine's power (kW) at wind speeds measured at ``height_m``: carried to the hub
    by windpowerlib's logarithmic profile, then through the power curve (windpowerlib's
    power_curve: interpolated, 0 outside the curve)."""
    from windpowerlib import power_output, wind_speed

    hub = wind_speed.logarithmic_profile(pd.Series(speed_m_s, dtype=float), height_m,
                                         turbine.hub_height_m, turbine.roughness_length_m)
    speeds, kw = turbine_curve(turbine)
    return np.asarray(power_output.power_curve(hub, speeds, kw), float)


# --- the community's one sky ------------------------------------------------------------

SKY_STREAM = 1_000_017  # the community's cloudy days and wind: [seed, SKY_STREAM]


class Sky(NamedTuple):
    """The weather the whole community shares over the run's periods."""

    irradiance: pd.DataFrame  # ghi, dni, dhi (W/m²); index: the periods' middles
    temp_air_c: pd.Series | float  # °C
    cooling_wind_m_s: pd.Series | float  # m/s at the cells
    albedo: pd.Series | float
    wind_m_s: np.ndarray  # per period, at wind_height_m: what turbines see
    wind_height_m: float


def community_sky(seed: int, horizon, site: Site, weather) -> Sky:
    """The sky over the run's periods: a TMY file's, or the clear sky × seeded cloudy days
    with lemgrid's seeded hourly wind (``households.wind_speed_m_s``); the last one made
    is kept (every template of a scenario shares it)."""
    key = (seed, *(part.model_dump_json() for part in (horizon, site, weather)))
    if _LAST[0] != key:
        _LAST[:] = [key, _make_sky(seed, horizon, site, weather)]
    return _LAST[1]


_LAST: list = [None, None]


def _make_sky(seed: int, h, site: Site, w) -> Sky:
    times = middles(period_starts(run_dates(h.start, h.days), h.period_minutes),
                    h.period_minutes, site)
    if w.source == "tmy":
        sky = tmy_sky(w.file, times)
        return Sky(sky, sky["temp_air"], sky["wind_speed"], sky["albedo"],
                   sky["wind_speed"].to_numpy(float), TMY_WIND_HEIGHT_M)
    rng = np.random.default_rng([seed, SKY_STREAM])
    clear = daily_clearness(h.days, rng, w.clearness)
    sky = clear_sky(site, times, np.repeat(clear, h.periods))
    hourly = wind_speed_m_s(rng, h.days * 24, mean_speed_m_s=w.wind.mean_speed_m_s,
                            weibull_k=w.wind.weibull_k, autocorr=w.wind.autocorr)
    return Sky(sky, w.temp_air_c, w.wind_speed_m_s, w.albedo,
               hourly_to_periods(hourly, h.periods), w.wind.height_m)
