"""Profiles from the field's libraries on a calendar (scenarios/community/library.py):
BDEW standard load profiles from demandlib, PV by pvlib's PVWatts under a clear or a
typical-meteorological-year sky. Second sources: demandlib's own data file read here,
pvlib's functions called directly (and pvlib's ModelChain for a whole TMY year), and
arithmetic by hand."""

import datetime as dt
import math
from pathlib import Path
from types import SimpleNamespace

import demandlib.bdew
import numpy as np
import pandas as pd
import pvlib
import pytest
import windpowerlib
import yaml

from lemgrid.scenarios.community.builder import build_community, community_pv
from lemgrid.scenarios.community.library import (
    clear_sky,
    middles,
    period_starts,
    pvwatts_kw,
    run_dates,
    standard_loads,
    wind_kw,
    year_shape,
)
from lemgrid.scenarios.results.report import month_rows
from lemgrid.scenarios.schema import Scenario, ScenarioError, load_scenario
from lemgrid.scenarios.schema.profiles import PVWatts, Site, StandardLoad, WindTurbine

MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
          "September", "Oktober", "November", "Dezember"]
LISBON = Site(latitude=38.72, longitude=-9.14, altitude_m=50, timezone="Europe/Lisbon")
YEAR = run_dates(dt.date(2026, 1, 1), 365)


def _table(name: str) -> pd.DataFrame:
    """demandlib's own 2025 profile table (kWh per quarter hour for 1 GWh a year)."""
    path = Path(demandlib.bdew.__file__).parent / "bdew_data" / f"{name}.csv"
    return pd.read_csv(path, header=[0, 1], index_col=0)


@pytest.mark.parametrize("profile", ["h25", "g25", "h0"])
def test_a_years_energy_is_annual_kwh(profile):
    """365 days of 2026 at 15 and at 60 minutes: 3500 kWh to 0.1 % (here to 1e-9)."""
    load = StandardLoad(profile=profile, annual_kwh=3500)
    for minutes in (15, 60):
        kw = standard_loads(load, 1, YEAR, minutes, np.random.default_rng(0))
        assert kw.shape == (1, 365 * 1440 // minutes)
        assert math.isclose(kw.sum() * minutes / 60, 3500, rel_tol=1e-9)


def test_households_differ_and_keep_the_energy():
    """Spread, shift and noise: 20 households differ, their mean year is 3500 kWh, and
    the noise moves power within a day only (day energies equal those drawn without it
    from the same seed)."""
    spread = StandardLoad(profile="h25", annual_kwh=3500, scale_spread=0.3, shift_minutes=60)
    noisy = spread.model_copy(update={"noise_sd": 0.2})
    a = standard_loads(spread, 20, YEAR, 15, np.random.default_rng(5))
    b = standard_loads(noisy, 20, YEAR, 15, np.random.default_rng(5))
    years = a.sum(axis=1) / 4
    assert math.isclose(years.mean(), 3500, rel_tol=1e-9)
    assert years.min() < 3500 * 0.85 and years.max() > 3500 * 1.15
    np.testing.assert_allclose(b.reshape(20, 365, 96).sum(axis=2),
                               a.reshape(20, 365, 96).sum(axis=2), rtol=1e-9)
    assert np.abs(b - a).max() > 0.01
    assert (b >= 0).all()


@pytest.mark.parametrize(("day", "kind"), [(dt.date(2026, 1, 14), "WT"),  # a Wednesday
                                           (dt.date(2026, 7, 18), "SA"),  # a Saturday
                                           (dt.date(2026, 10, 4), "FT"),  # a Sunday
                                           (dt.date(2026, 3, 10), "FT")])  # a holiday, below
def test_the_day_shapes_are_demandlibs_tables(day, kind):
    """A day of g25 (static) is its month's day-type column of demandlib's table, × one
    factor (the annual scaling); h25 the same × the dynamization of that day, a smooth
    function of the day of year, so nearly constant across the day."""
    holidays = (dt.date(2026, 3, 10),)
    first = (day - dt.date(2026, 1, 1)).days * 96
    for name, rtol in (("g25", 1e-9), ("h25", 1e-9)):
        ours = year_shape(name, 2026, holidays)[first:first + 96]
        column = _table(name)[(MONTHS[day.month - 1], kind)].to_numpy(float)
        ratio = ours / column
        np.testing.assert_allclose(ratio, ratio[0], rtol=rtol)


@pytest.mark.parametrize(("day", "season", "weekday"), [
    (dt.date(2026, 7, 15), "summer", 3),  # a Wednesday between 15 May and 14 September
    (dt.date(2026, 1, 10), "winter", 6),  # a Saturday between 1 November and 20 March
    (dt.date(2026, 4, 19), "transition", 7)])  # a Sunday in the transition
def test_the_1999_profiles_are_demandlibs_series(day, season, weekday):
    """h0, g0 and l0 (static): a day is the matching season and weekday of demandlib's
    selp_series.csv, read here, to a constant factor."""
    table = pd.read_csv(Path(demandlib.bdew.__file__).parent / "bdew_data" / "selp_series.csv")
    rows = table[(table["period"] == season) & (table["weekday"] == weekday)]
    first = (day - dt.date(2026, 1, 1)).days * 96
    for name in ("h0", "g0", "l0"):
        ratio = year_shape(name, 2026)[first:first + 96] / rows[name].to_numpy(float)
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


def _solar_noon_period(times: pd.DatetimeIndex) -> int:
    zenith = pvlib.solarposition.get_solarposition(times, LISBON.latitude,
                                                   LISBON.longitude)["zenith"]
    return int(np.argmin(zenith.to_numpy()))


def test_clear_sky_pv_at_solar_noon_by_hand():
    """A 4 kWp array facing south at 30° on 2026-06-21 in Lisbon, the period nearest
    solar noon: the plane's irradiance by hand from pvlib's clear-sky components (at
    noon the angle of incidence is zenith − tilt), the cell temperature by the SAPM
    formula, DC by PVWatts' linear model less the losses, AC by pvlib's PVWatts
    inverter."""
    array = PVWatts(model="pvwatts", kwp=4.0, tilt_deg=30, azimuth_deg=180)
    times = middles(period_starts([dt.date(2026, 6, 21)], 15), 15, LISBON)
    sky = clear_sky(LISBON, times, np.ones(96))
    ours = pvwatts_kw(array, 4.0, LISBON, sky, 20.0, 1.0, 0.25)
    k = _solar_noon_period(times)
    pos = pvlib.solarposition.get_solarposition(times[k:k + 1], LISBON.latitude,
                                                LISBON.longitude, LISBON.altitude_m,
                                                temperature=20.0)
    zen, azi = float(pos["apparent_zenith"].iloc[0]), float(pos["azimuth"].iloc[0])
    beta = math.radians(30)
    cos_aoi = (math.cos(math.radians(zen)) * math.cos(beta) + math.sin(math.radians(zen))
               * math.sin(beta) * math.cos(math.radians(azi - 180)))
    dni, ghi, dhi = (float(sky[c].iloc[k]) for c in ("dni", "ghi", "dhi"))
    poa = (dni * cos_aoi + dhi * (1 + math.cos(beta)) / 2
           + ghi * 0.25 * (1 - math.cos(beta)) / 2)
    a, b, dtc = -3.47, -0.0594, 3  # SAPM open rack, glass/glass (King et al. 2004)
    cell = poa * math.exp(a + b * 1.0) + 20.0 + poa / 1000 * dtc
    dc = 4000 * poa / 1000 * (1 - 0.004 * (cell - 25)) * (1 - 0.1408)
    ac = float(pvlib.inverter.pvwatts(dc, 4000, 0.96)) / 1000
    assert 700 < poa < 1100 and abs(math.degrees(math.acos(cos_aoi)) - abs(zen - 30)) < 2
    assert ours[k] == pytest.approx(ac, rel=1e-9)
    assert ours[k] == ours.max() or ours[k] > 0.99 * ours.max()


def _year_scenario(tmp_path, **changes) -> Scenario:
    raw = {"name": "year", "seed": 11,
           "horizon": {"periods": 24, "period_minutes": 60, "days": 365,
                       "start": "2026-01-01"},
           "site": {"latitude": 55.317, "longitude": -160.517, "altitude_m": 7,
                    "timezone": "Etc/GMT+9"},
           "weather": {"source": "tmy", "file": "703165TY.csv"},
           "tariffs": {"fixed_eur_per_day": {"6.90": 0.3},
                       "time_of_use": {"peak_start": "08:00", "peak_end": "22:00"}},
           "templates": [{"kind": "prosumer", "count": 2, "contracted_kva": "6.90",
                          "load": {"profile": "h25", "annual_kwh": 3000},
                          "pv": {"model": "pvwatts", "kwp": 1.0, "tilt_deg": 30,
                                 "azimuth_deg": 180,
                                 "losses_pct": pvlib.pvsystem.pvwatts_losses()}}],
           **changes}
    path = tmp_path / "year.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_scenario(path)


def test_a_tmy_years_yield_is_pvlibs_pvwatts(tmp_path):
    """pvlib's TMY3 file for Sand Point, Alaska (shipped with pvlib), a year of hourly
    periods: the annual yield per kWp equals pvlib's ModelChain with PVWatts DC and AC,
    isotropic transposition, SAPM cells, PVWatts losses and no AOI or spectral loss, run
    on the same file at the hours' middles (TMY3 labels an hour by its end)."""
    s = _year_scenario(tmp_path)
    ours = community_pv(s, s.templates[0].pv, 1.0)
    data, meta = pvlib.iotools.read_tmy3(str(Path(pvlib.__file__).parent / "data" /
                                             "703165TY.csv"), coerce_year=2026,
                                      map_variables=True)
    # the hours' middles; the file's pressure is in mbar where pvlib's solar position
    # takes Pa, so both sides take the pressure of the site's altitude
    weather = data.set_axis(data.index - pd.Timedelta(minutes=30)).drop(columns="pressure")
    location = pvlib.location.Location(meta["latitude"], meta["longitude"], "Etc/GMT+9",
                                       meta["altitude"])
    system = pvlib.pvsystem.PVSystem(
        surface_tilt=30, surface_azimuth=180,
        module_parameters={"pdc0": 1000, "gamma_pdc": -0.004},
        inverter_parameters={"pdc0": 1000, "eta_inv_nom": 0.96},
        temperature_model_parameters=pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS[
            "sapm"]["open_rack_glass_glass"])
    chain = pvlib.modelchain.ModelChain(system, location, transposition_model="isotropic",
                                        dc_model="pvwatts", ac_model="pvwatts",
                                        aoi_model="no_loss", spectral_model="no_loss",
                                        temperature_model="sapm", losses_model="pvwatts")
    chain.run_model(weather)
    theirs = chain.results.ac.clip(lower=0).fillna(0).sum() / 1000
    assert 500 < theirs < 1500  # kWh per kWp in a year: a real yield, not zeros
    assert ours.sum() == pytest.approx(theirs, rel=1e-9)


def test_the_same_seed_gives_the_same_community(tmp_path):
    short = {"horizon": {"periods": 96, "period_minutes": 15, "days": 3, "start": "2026-06-15"},
             "weather": {"source": "clearsky", "clearness": {"cloudy_fraction": 0.5}}}
    first = build_community(_year_scenario(tmp_path, **short))
    again = build_community(_year_scenario(tmp_path, **short))
    other = build_community(_year_scenario(tmp_path, **short, seed=12))
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a.load_kw, b.load_kw)
        np.testing.assert_array_equal(a.pv_kw, b.pv_kw)
        assert a.load_kw.shape == (3 * 96,)
    assert not np.array_equal(first[0].pv_kw, other[0].pv_kw)  # another sky


def test_a_calendar_profile_without_a_date_is_one_line(tmp_path):
    with pytest.raises(ScenarioError) as exc:
        _year_scenario(tmp_path, horizon={"days": 2}, weather=None, site=None)
    assert [line.split(": ", 1)[1] for line in exc.value.lines] == [
        ("templates.0.load: profile h25 is drawn for dates; allowed: with horizon.start "
         "(YYYY-MM-DD)"),
        ("templates.0.pv: a pvwatts array needs horizon.start, site, weather; allowed: a "
         "scenario with horizon.start, site and weather")]


def test_a_building_takes_a_standard_profile(tmp_path):
    """A building template's non-flexible load from g25 over a week from Monday 15 June
    2026: Saturday's day has the shape of demandlib's June Saturday column, and the
    weekdays' the June workday column (each × one factor)."""
    s = _year_scenario(tmp_path, horizon={"periods": 96, "period_minutes": 15, "days": 7,
                                          "start": "2026-06-15"},
                       market={"mechanism": "gdrmc"},
                       templates=[{"kind": "building", "count": 1, "contracted_kva": "6.90",
                                   "cdl_kw": 50, "load": {"profile": "g25",
                                                          "annual_kwh": 20000}}])
    (building,) = build_community(s)
    days = building.load_kw.reshape(7, 96)
    table = _table("g25")
    for day, kind in ((0, "WT"), (4, "WT"), (5, "SA"), (6, "FT")):
        ratio = days[day] / table[("Juni", kind)].to_numpy(float)
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)


def test_the_month_view_by_hand():
    """Two agents over 30 January to 2 February 2026, one-hour periods, one period a day
    each: January has 2 days, February 2; self-sufficiency = 1 − import ÷ consumption."""
    agents = pd.DataFrame({
        "agent": ["p1", "e1"] * 4, "kind": ["prosumer", "ev"] * 4,
        "day": [0, 0, 1, 1, 2, 2, 3, 3], "period": 0,
        "cost_eur": [1.0, 2.0, 1.0, 2.0, 0.5, 0.5, 0.5, 0.5],
        "traded_eur": 0.0, "retail_eur": [1.0, 2.0, 1.0, 2.0, 0.5, 0.5, 0.5, 0.5],
        "buy_kw": [2.0, 1.0, 2.0, 1.0, 0.0, 1.0, 0.0, 1.0],
        "sell_kw": [0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 3.0, 0.0],
        "load_kw": [4.0, 0.0, 4.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        "ch_kw": [0.0, 2.0, 0.0, 2.0, 0.0, 1.0, 0.0, 1.0]})
    run = SimpleNamespace(agents=agents, period_h=1.0,
                          config={"horizon": {"start": "2026-01-30"}})
    assert month_rows(run) == [
        # January: bill 6, import 6 kWh, consumption 12 kWh → 50 %
        ["2026-01", "2", "6.00", "0.00", "6.00", "6.00", "0.00", "12.00", "50.0"],
        # February: bill 2, import 2, export 6, consumption 4 → 50 %
        ["2026-02", "2", "2.00", "0.00", "2.00", "2.00", "6.00", "4.00", "50.0"],
        ["total", "4", "8.00", "0.00", "8.00", "8.00", "6.00", "16.00", "50.0"]]
    run.config = {"horizon": {}}
    assert month_rows(run) == []  # no calendar, no months


def test_a_small_turbines_own_curve_by_hand():
    """6 m/s measured at 10 m, hub at 20 m over roughness 0.15 m: the logarithmic profile
    gives 6 · ln(20/0.15) / ln(10/0.15) = 6.989 m/s; the curve is 0 kW at 3 m/s rising
    linearly to 10 kW at 11 m/s: 10 · (6.989 − 3) / 8 = 4.986 kW. Outside the curve:
    0 (2 m/s and 30 m/s at 10 m)."""
    turbine = WindTurbine(power_curve={"wind_speed_m_s": [3, 11], "kw": [0, 10]},
                          hub_height_m=20)
    hub = 6 * math.log(20 / 0.15) / math.log(10 / 0.15)
    np.testing.assert_allclose(wind_kw(turbine, np.array([6.0, 2.0, 30.0]), 10.0),
                               [10 * (hub - 3) / 8, 0.0, 0.0], rtol=1e-12)


def test_a_library_turbine_is_windpowerlibs_curve(tmp_path):
    """An E-53/800 at 60 m in a building template under a TMY year's wind (10 m, the
    file's hourly speeds read here with pvlib's reader): every period's power is
    windpowerlib's own curve for that turbine at the hub speed of the logarithmic profile
    computed here."""
    s = _year_scenario(tmp_path, market={"mechanism": "gdrmc"}, templates=[
        {"kind": "building", "count": 1, "contracted_kva": "6.90", "cdl_kw": 50,
         "wind": {"turbine": "E-53/800", "hub_height_m": 60}}])
    (building,) = build_community(s)
    data, _ = pvlib.iotools.read_tmy3(str(Path(pvlib.__file__).parent / "data" /
                                          "703165TY.csv"), map_variables=True)
    speed = data["wind_speed"].to_numpy(float)  # its rows are 2026's hours in order
    hub = speed * np.log(60 / 0.15) / np.log(10 / 0.15)
    curve = windpowerlib.WindTurbine(hub_height=60, turbine_type="E-53/800").power_curve
    expected = np.interp(hub, curve["wind_speed"], curve["value"] / 1000, left=0, right=0)
    np.testing.assert_allclose(building.wind_kw, expected, rtol=1e-9, atol=1e-9)
    assert building.wind_kw.max() > 100  # the file's wind turns it: not zeros against zeros


def test_a_turbine_not_in_the_library_is_one_line(tmp_path):
    with pytest.raises(ScenarioError) as exc:
        _year_scenario(tmp_path, market={"mechanism": "gdrmc"}, templates=[
            {"kind": "building", "count": 1, "contracted_kva": "6.90", "cdl_kw": 50,
             "wind": {"turbine": "Bergey Excel 10", "hub_height_m": 20}}])
    assert exc.value.lines[0].split(": ", 1)[1].startswith(
        "templates.0.wind.turbine: 'Bergey Excel 10' is not a turbine of windpowerlib's "
        "library with a power curve; allowed: AD116/5000, ")
