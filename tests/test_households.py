"""Month-long household inputs for the Vellore locality (appliances, load, PV, wind, prices)."""

from __future__ import annotations

import numpy as np
import pytest

from lemgrid.scenarios.community.households import (
    APPLIANCES,
    CUT_IN_M_S,
    CUT_OUT_M_S,
    clock_h,
    forecast_actual,
    month_prices_eur_per_kwh,
    nonflexible_load_kw,
    power_curve_kw,
    pv_available_kw,
    wind_available_kw,
    wind_speed_m_s,
)

DAYS, PERIODS = 31, 96
H = 24 / PERIODS

GENERATORS = {
    "load": lambda rng, p: nonflexible_load_kw(rng, DAYS, p, mean_kwh_per_day=9.0),
    "pv": lambda rng, p: pv_available_kw(rng, DAYS, p, installed_kw=5.0),
    "wind": lambda rng, p: wind_available_kw(rng, DAYS, p, rated_kw=3.0),
    "buy": lambda rng, p: month_prices_eur_per_kwh(rng, DAYS, p)[0],
    "sell": lambda rng, p: month_prices_eur_per_kwh(rng, DAYS, p)[1],
}


def by_hour_of_day(values: np.ndarray) -> np.ndarray:
    """Mean over the days of each hour of the day (24 values, 15-min periods)."""
    return values.reshape(-1, PERIODS).mean(axis=0).reshape(24, -1).mean(axis=1)


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_arrays_other_seed_differs(name):
    make = GENERATORS[name]
    a, b = make(np.random.default_rng(7), PERIODS), make(np.random.default_rng(7), PERIODS)
    c = make(np.random.default_rng(8), PERIODS)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("periods", [12, 24, 48, 96])
@pytest.mark.parametrize("name", GENERATORS)
def test_shape_finite_non_negative(name, periods):
    values = GENERATORS[name](np.random.default_rng(1), periods)
    assert values.shape == (DAYS * periods,)
    assert np.all(np.isfinite(values)) and np.all(values >= 0)


@pytest.mark.parametrize("periods", [0, 7, 25])
def test_grid_must_fit_hours(periods):
    with pytest.raises(ValueError, match="periods"):
        pv_available_kw(np.random.default_rng(1), DAYS, periods, installed_kw=5.0)


# --------------------------------------------------------------------------- appliances


def test_catalogue_has_four_to_six_flexible_appliances_fitting_their_windows():
    flexible = [a for a in APPLIANCES.values() if a.flexible]
    assert 4 <= len(flexible) <= 6
    for app in flexible:
        start, end = clock_h(app.window[0]), clock_h(app.window[1])
        assert start < end, f"{app.key}: a flexible window lies inside one day"
        assert end - start == app.window_span_h >= app.duration_h
    for app in APPLIANCES.values():
        assert app.rating_kw > 0 and 0 < app.duration_h <= app.window_span_h and app.source


def test_window_spans():
    """22:00-06:00 wraps midnight: 8 h; equal ends mean all day."""
    assert APPLIANCES["air_conditioner"].window_span_h == 8.0
    assert APPLIANCES["refrigerator"].window_span_h == 24.0
    assert clock_h("24:00") == 24.0 and clock_h("06:15") == 6.25
    with pytest.raises(ValueError):
        clock_h("24:30")


# --------------------------------------------------------------------------- load


@pytest.mark.parametrize("mean_kwh", [0.0, 4.2, 12.5])
def test_nonflexible_mean_daily_energy_is_exact(mean_kwh):
    load = nonflexible_load_kw(np.random.default_rng(3), DAYS, PERIODS, mean_kwh_per_day=mean_kwh)
    assert np.sum(load) * H / DAYS == pytest.approx(mean_kwh, abs=1e-9)


def test_nonflexible_days_differ_within_about_15_percent():
    load = nonflexible_load_kw(np.random.default_rng(3), DAYS, PERIODS, mean_kwh_per_day=10.0)
    daily = load.reshape(DAYS, PERIODS).sum(axis=1) * H
    assert len(np.unique(daily.round(9))) == DAYS
    assert 0.75 < daily.min() / daily.mean() and daily.max() / daily.mean() < 1.3


def test_nonflexible_subset_and_rejects_flexible():
    """Only a refrigerator (cycling all day) and the base load: never zero, never spiky."""
    fridge = nonflexible_load_kw(np.random.default_rng(1), DAYS, PERIODS, mean_kwh_per_day=1.5,
                                 appliances=[APPLIANCES["refrigerator"]])
    assert fridge.min() > 0 and fridge.max() < 2.5 * fridge.mean()
    with pytest.raises(ValueError, match="washing_machine"):
        nonflexible_load_kw(np.random.default_rng(1), DAYS, PERIODS, mean_kwh_per_day=5.0,
                            appliances=[APPLIANCES["washing_machine"]])


def test_nonflexible_evening_above_midday():
    load = nonflexible_load_kw(np.random.default_rng(5), DAYS, PERIODS, mean_kwh_per_day=10.0)
    hourly = by_hour_of_day(load)
    assert hourly[19:22].mean() > hourly[10:13].mean()


# --------------------------------------------------------------------------- PV


def test_pv_zero_at_night_and_never_above_installed():
    """Sunrise 06:00, sunset 18:15 (defaults): with 15-min periods, 00:00-06:00 and
    18:15-24:00 (periods 0-23 and 73-95) are dark; periods are judged at their midpoints,
    so 06:00-06:15 and 18:00-18:15 (periods 24 and 72) carry a little power."""
    pv = pv_available_kw(np.random.default_rng(2), DAYS, PERIODS, installed_kw=4.0)
    days = pv.reshape(DAYS, PERIODS)
    assert np.all(days[:, :24] == 0) and np.all(days[:, 73:] == 0)
    assert np.all(days[:, 24:73] > 0)
    assert pv.max() <= 4.0


def test_pv_mean_daily_yield_matches_target_when_uncapped():
    pv = pv_available_kw(np.random.default_rng(2), DAYS, PERIODS, installed_kw=4.0,
                         yield_kwh_per_kw_day=4.5)
    assert np.sum(pv) * H / DAYS / 4.0 == pytest.approx(4.5, rel=1e-9)


def test_pv_cap_binds_for_impossible_yield():
    pv = pv_available_kw(np.random.default_rng(2), DAYS, PERIODS, installed_kw=1.0,
                         yield_kwh_per_kw_day=10.0)
    assert pv.max() == 1.0 and np.sum(pv) * H / DAYS < 10.0


def test_pv_has_cloudy_days():
    pv = pv_available_kw(np.random.default_rng(4), DAYS, PERIODS, installed_kw=1.0,
                         cloudy_day_prob=0.5)
    daily = pv.reshape(DAYS, PERIODS).sum(axis=1) * H
    assert daily.min() < 0.75 * daily.max()


# --------------------------------------------------------------------------- wind


def test_power_curve_at_hand_computed_points():
    """rated 10 kW, cut-in 3, rated 11, cut-out 25 m/s; between 3 and 11 m/s
    P = 10 (v^3 - 27) / (1331 - 27): v=5 -> 980/1304, v=7 -> 3160/1304."""
    speeds = np.array([0.0, 2.99, 3.0, 5.0, 7.0, 11.0, 15.0, 24.99, 25.0, 30.0])
    expected = [0, 0, 0, 980 / 1304, 3160 / 1304, 10, 10, 10, 0, 0]
    assert power_curve_kw(speeds, 10.0) == pytest.approx(expected, abs=1e-12)


def test_power_curve_zero_outside_operating_range():
    speeds = np.concatenate([np.linspace(0, CUT_IN_M_S, 50, endpoint=False),
                             np.linspace(CUT_OUT_M_S, 40, 50)])
    assert np.all(power_curve_kw(speeds, 3.0) == 0.0)


def test_wind_within_rated_and_held_per_hour():
    wind = wind_available_kw(np.random.default_rng(6), DAYS, PERIODS, rated_kw=2.5,
                             mean_speed_m_s=7.0)
    assert wind.min() >= 0 and wind.max() <= 2.5
    quarters = wind.reshape(-1, 4)
    assert np.all(quarters == quarters[:, :1])
    assert np.any(wind == 0) and np.any(wind == 2.5)


def test_wind_speed_weibull_mean_and_persistence():
    speed = wind_speed_m_s(np.random.default_rng(9), 100_000, mean_speed_m_s=4.0,
                           autocorr=0.9)
    assert speed.mean() == pytest.approx(4.0, rel=0.03)
    assert np.corrcoef(speed[:-1], speed[1:])[0, 1] == pytest.approx(0.9, abs=0.03)
    # Rayleigh (k = 2): P(v > mean) = exp(-pi / 4) = 0.456
    assert np.mean(speed > 4.0) == pytest.approx(np.exp(-np.pi / 4), abs=0.02)


# --------------------------------------------------------------------------- prices


def test_sell_below_buy_by_a_clear_margin():
    buy, sell = month_prices_eur_per_kwh(np.random.default_rng(11), DAYS, PERIODS)
    ratio = sell / buy
    assert np.all(sell < buy)
    assert ratio.min() >= 0.30 and ratio.max() <= 0.60


def test_buy_mean_exact_and_evening_peak_above_night():
    buy, sell = month_prices_eur_per_kwh(np.random.default_rng(11), DAYS, PERIODS,
                                         buy_mean_eur_per_kwh=0.12)
    assert buy.mean() == pytest.approx(0.12, rel=1e-12)
    hourly = by_hour_of_day(buy)
    assert hourly[18:22].mean() > 1.3 * hourly[0:5].mean()
    assert hourly[18:22].mean() > hourly[6:10].mean() > hourly[0:5].mean()
    assert by_hour_of_day(sell)[18:22].mean() > by_hour_of_day(sell)[0:5].mean()


def test_prices_vary_from_day_to_day():
    buy, _ = month_prices_eur_per_kwh(np.random.default_rng(12), DAYS, PERIODS)
    daily_mean = buy.reshape(DAYS, PERIODS).mean(axis=1)
    assert daily_mean.std() / daily_mean.mean() > 0.02


def test_sell_ratio_must_stay_below_one():
    with pytest.raises(ValueError, match="sell ratios"):
        month_prices_eur_per_kwh(np.random.default_rng(1), DAYS, PERIODS, sell_ratio=0.95)


# --------------------------------------------------------------------------- forecasts


def test_forecast_actual_sigma_zero_is_an_exact_copy():
    forecast = np.array([0.0, 1.5, 2.25, 3.0])
    actual = forecast_actual(np.random.default_rng(1), forecast, 0.0)
    assert np.array_equal(actual, forecast) and actual is not forecast


def test_forecast_actual_mean_ratio_and_spread():
    forecast = np.full(200_000, 2.0)
    actual = forecast_actual(np.random.default_rng(1), forecast, 0.1)
    assert actual.mean() / forecast.mean() == pytest.approx(1.0, abs=0.002)
    assert (actual / forecast).std() == pytest.approx(0.1, rel=0.02)
    assert actual.min() >= 0


def test_forecast_actual_clips_at_zero():
    actual = forecast_actual(np.random.default_rng(1), np.ones(10_000), 1.0)
    assert actual.min() == 0.0 and np.any(actual > 1.0)
    with pytest.raises(ValueError):
        forecast_actual(np.random.default_rng(1), np.ones(3), -0.1)
