"""Synthetic profiles and equipment catalogue against the figures of Faia et al. (2021)."""

from __future__ import annotations

import numpy as np
import pytest

from lemgrid.scenarios.catalog import (
    BATTERY_TYPES,
    EV_MODELS,
    FAIA2021_BATTERY_COUNTS,
    FAIA2021_EV_COUNTS,
)
from lemgrid.scenarios.community.profiles import (
    generate_ev_trips,
    generate_prosumers,
    period_index,
    period_label,
)

H = 0.25
PAPER_PROSUMERS = {
    "total_load_kwh": 2001.89, "total_pv_kwh": 1417.82, "total_pv_installed_kw": 248.8,
}


def paper_prosumers(seed: int = 1):
    return generate_prosumers(50, np.random.default_rng(seed), **PAPER_PROSUMERS)


def paper_ev_consumption() -> list[float]:
    keys = [k for k, c in FAIA2021_EV_COUNTS.items() for _ in range(c)]
    return [EV_MODELS[k].consumption_kwh_per_km for k in keys]


def paper_trips(seed: int = 1):
    return generate_ev_trips(40, np.random.default_rng(seed), paper_ev_consumption(),
                             away_periods_total=780, peak_count=36)


def away_matrix(trips) -> np.ndarray:
    return np.array([t.away for t in trips])


def blocks(away: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of True as (first, last) periods."""
    edges = np.diff(np.r_[0, away.astype(int), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


# ------------------------------------------------------------------ catalogue


def test_catalog_has_four_batteries_and_seven_evs():
    """Faia et al.'s three home batteries, a smaller one for the locality's households
    (LG RESU 6.5: 5.9 kWh usable, 4.2 kW, one-way √0.95), and seven EV models."""
    assert len(BATTERY_TYPES) == 4 and len(EV_MODELS) == 7
    small = BATTERY_TYPES["lg_resu6_5"]
    assert (small.capacity_kwh, small.max_charge_kw) == (5.9, 4.2)
    assert small.eta_charge == pytest.approx(0.95 ** 0.5, rel=1e-15)
    assert "tesla_model3_sr_plus" in EV_MODELS
    for key, b in BATTERY_TYPES.items():
        assert b.key == key and b.source and b.capacity_kwh > 0
        assert 0 < b.eta_charge <= 1 and 0 < b.eta_discharge <= 1 and 0 <= b.soc_min_frac < 1
    for key, m in EV_MODELS.items():
        assert m.key == key and m.source and m.capacity_kwh > 0 and m.max_charge_kw > 0
        assert 0.08 < m.consumption_kwh_per_km < 0.25 and 0 < m.eta_charge <= 1


def test_battery_counts_reproduce_paper():
    assert set(FAIA2021_BATTERY_COUNTS) <= set(BATTERY_TYPES)
    assert sum(FAIA2021_BATTERY_COUNTS.values()) == 50
    kwh = sum(BATTERY_TYPES[k].capacity_kwh * c for k, c in FAIA2021_BATTERY_COUNTS.items())
    assert kwh == pytest.approx(715.0, abs=0.01)


def test_ev_counts_reproduce_paper():
    assert set(FAIA2021_EV_COUNTS) == set(EV_MODELS)
    assert sum(FAIA2021_EV_COUNTS.values()) == 40
    kwh = sum(EV_MODELS[k].capacity_kwh * c for k, c in FAIA2021_EV_COUNTS.items())
    assert kwh == pytest.approx(1916.60, abs=0.01)
    counts = dict(FAIA2021_EV_COUNTS)
    top = counts.pop("tesla_model3_sr_plus")
    assert all(top > c for c in counts.values())


# ------------------------------------------------------------------ prosumers


def test_prosumer_paper_totals():
    ps = paper_prosumers()
    assert len(ps) == 50
    assert sum(p.load_kw.sum() * H for p in ps) == pytest.approx(2001.89, abs=1e-6)
    assert sum(p.pv_kw.sum() * H for p in ps) == pytest.approx(1417.82, abs=1e-6)
    assert sum(p.pv_installed_kw for p in ps) == pytest.approx(248.8, abs=1e-6)


def test_prosumer_profiles_are_physical():
    for p in paper_prosumers(7):
        assert p.load_kw.shape == (96,) and p.pv_kw.shape == (96,)
        assert np.all(p.load_kw >= 0) and np.all(p.pv_kw >= 0)
        assert np.all(p.pv_kw <= p.pv_installed_kw + 1e-9)
        assert p.pv_kw[0] == 0 and p.pv_kw[period_index("23:45")] == 0
        assert p.pv_kw[period_index("03:00")] == 0 and p.pv_kw[period_index("13:00")] > 0


def test_prosumer_means_without_totals():
    ps = generate_prosumers(300, np.random.default_rng(5))
    assert len(ps) == 300
    kwp = np.array([p.pv_installed_kw for p in ps])
    assert kwp.min() >= 2.0 - 1e-9 and kwp.max() <= 8.0 + 1e-9
    assert kwp.mean() == pytest.approx(5.0, rel=0.1)
    assert np.mean([p.load_kw.sum() * H for p in ps]) == pytest.approx(40.0, rel=0.1)
    assert np.mean([p.pv_kw.sum() * H for p in ps]) == pytest.approx(5.0 * 5.7, rel=0.1)


def test_prosumer_totals_scale_to_300():
    ps = generate_prosumers(300, np.random.default_rng(5), total_load_kwh=12000.0,
                            total_pv_kwh=8500.0, total_pv_installed_kw=1500.0)
    assert sum(p.load_kw.sum() * H for p in ps) == pytest.approx(12000.0, abs=1e-6)
    assert sum(p.pv_kw.sum() * H for p in ps) == pytest.approx(8500.0, abs=1e-6)
    assert sum(p.pv_installed_kw for p in ps) == pytest.approx(1500.0, abs=1e-6)
    assert all(np.all(p.pv_kw <= p.pv_installed_kw + 1e-9) for p in ps)


def test_prosumers_deterministic():
    a, b, c = paper_prosumers(11), paper_prosumers(11), paper_prosumers(12)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.load_kw, y.load_kw) and np.array_equal(x.pv_kw, y.pv_kw)
        assert x.pv_installed_kw == y.pv_installed_kw
    assert not all(np.array_equal(x.load_kw, z.load_kw) for x, z in zip(a, c, strict=True))
    assert not all(np.array_equal(x.pv_kw, z.pv_kw) for x, z in zip(a, c, strict=True))


# ------------------------------------------------------------------ EV trips


def test_ev_paper_trip_counts():
    count = away_matrix(paper_trips()).sum(axis=0)
    assert count.sum() == 780
    morning, evening = period_index("08:15"), period_index("19:45")
    assert count[morning] == 36 and count[evening] == 36
    others = np.delete(count, [morning, evening])
    assert count.max() == 36 and others.max() < 36
    first, last = period_index("06:15"), period_index("23:30")
    assert not count[:first].any() and not count[last + 1:].any()
    assert count[first] > 0 and count[last] > 0


def test_ev_paper_defaults_scale_from_n():
    count = away_matrix(generate_ev_trips(40, np.random.default_rng(2), [0.15] * 40)).sum(0)
    assert count.sum() == 780 and count.max() == 36


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_ev_has_at_most_a_morning_and_an_evening_block(seed):
    morning, evening = period_index("08:15"), period_index("19:45")
    for trip in paper_trips(seed):
        runs = blocks(trip.away)
        assert len(runs) <= 2
        assert all(not a <= morning < evening <= b for a, b in runs)
        if len(runs) == 2:
            assert runs[0][1] < evening and runs[1][0] > morning


def test_trip_energy_only_while_away_and_bounded():
    cons = paper_ev_consumption()
    for v, trip in enumerate(paper_trips()):
        assert trip.away.dtype == bool and trip.away.shape == (96,)
        assert np.all(trip.trip_kwh[~trip.away] == 0)
        assert np.all(trip.trip_kwh[trip.away] > 0)
        assert trip.trip_kwh.sum() <= 16.0 + 1e-9
        if trip.away.any():  # one speed per EV: energy per period constant while away
            assert np.allclose(trip.trip_kwh[trip.away] / (H * cons[v]),
                               trip.trip_kwh[trip.away][0] / (H * cons[v]))


def test_ev_trips_deterministic():
    a, b, c = paper_trips(21), paper_trips(21), paper_trips(22)
    assert np.array_equal(away_matrix(a), away_matrix(b))
    assert all(np.array_equal(x.trip_kwh, y.trip_kwh) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(away_matrix(a), away_matrix(c))


def test_ev_trips_scale_to_300():
    trips = generate_ev_trips(300, np.random.default_rng(4), [0.15] * 300)
    count = away_matrix(trips).sum(axis=0)
    assert len(trips) == 300
    assert count.sum() == round(19.5 * 300)
    assert count[period_index("08:15")] == count[period_index("19:45")] == 270
    assert count.max() == 270
    assert all(len(blocks(t.away)) <= 2 for t in trips)


@pytest.mark.parametrize("n", [1, 2, 5, 13])
def test_ev_trips_small_fleets(n):
    trips = generate_ev_trips(n, np.random.default_rng(0), [0.15] * n)
    count = away_matrix(trips).sum(axis=0)
    assert count.sum() == round(19.5 * n)
    assert count.max() == count[period_index("08:15")] == count[period_index("19:45")]
    assert all(len(blocks(t.away)) <= 2 for t in trips)


def test_ev_trips_reject_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        generate_ev_trips(3, rng, [0.15] * 2)
    with pytest.raises(ValueError):
        generate_ev_trips(4, rng, [0.15] * 4, peak_count=5)
    with pytest.raises(ValueError):
        generate_ev_trips(4, rng, [0.15] * 4, away_periods_total=10_000)
    with pytest.raises(ValueError):
        generate_ev_trips(4, rng, [0.15] * 4, peak_times=("05:00",))


# ------------------------------------------------------------------ period labels


def test_period_index_and_label():
    assert period_index("08:15") == 33 and period_label(33) == "08:15"
    assert period_index("00:00") == 0 and period_label(95) == "23:45"
    assert all(period_index(period_label(t)) == t for t in range(96))
    assert period_index("13:00", period_h=1.0) == 13 and period_label(13, 1.0) == "13:00"


@pytest.mark.parametrize("bad", ["8:15", "08:07", "24:00", "08:60", "noon", "", " 08:15", 815])
def test_period_index_rejects_bad_text(bad):
    with pytest.raises(ValueError):
        period_index(bad)


@pytest.mark.parametrize("bad", [-1, 96])
def test_period_label_rejects_out_of_day(bad):
    with pytest.raises(ValueError):
        period_label(bad)
