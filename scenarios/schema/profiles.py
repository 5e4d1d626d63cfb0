"""The scenario's parts for profiles from the field's libraries: the site, the weather
and, in a template, a load from a BDEW standard load profile (demandlib) or a PV array
by PVWatts (pvlib). Each is the one definition of its parameters and defaults;
``scenarios.community.library`` computes with them."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from lemgrid.scenarios.schema.base import Fraction, NonNeg, Strict, Uniform

# demandlib's profiles: the 2025 editions, then those of 1999 (its ElecSlp)
STANDARD_PROFILES = ("h25", "g25", "l25", "p25", "s25",
                     "h0", "h0_dyn", "g0", "g1", "g2", "g3", "g4", "g5", "g6", "l0", "l1", "l2")
TMY_SHIPPED = ("703165TY.csv", "723170TYA.CSV")  # pvlib's own TMY3 files (pvlib/data)


class Site(Strict):
    """Where the community is: the sun's position and the local clock of every period."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude_m: float = 0.0
    timezone: str = Field("UTC", description="an IANA zone, e.g. Europe/Lisbon: the periods "
                          "are its clock times")


class Clearness(Strict):
    """lemgrid's seeded model of cloudy days: a day is cloudy with probability
    ``cloudy_fraction``, its clearness index (GHI ÷ clear-sky GHI) then uniform in
    ``cloudy_range``; other days are clear."""

    cloudy_fraction: Fraction = 0.0
    cloudy_range: tuple[Fraction, Fraction] = (0.2, 0.8)


class WindModel(Strict):
    """lemgrid's seeded wind: hourly speeds at ``height_m`` from a stationary AR(1)
    Gaussian process (lag-1 correlation ``autocorr``) mapped to a Weibull(``weibull_k``)
    of mean ``mean_speed_m_s`` (``scenarios.community.households.wind_speed_m_s``)."""

    mean_speed_m_s: NonNeg = 4.0
    height_m: float = Field(10.0, gt=0)
    weibull_k: float = Field(2.0, gt=0)
    autocorr: float = Field(0.9, ge=0, lt=1)


class ClearSkyWeather(Strict):
    """pvlib's Ineichen clear sky (its shipped Linke turbidity) × each day's clearness;
    air at ``temp_air_c``, wind at ``wind_speed_m_s``, the ground's ``albedo``."""

    source: Literal["clearsky"]
    clearness: Clearness = Clearness()
    temp_air_c: float = 20.0
    wind_speed_m_s: NonNeg = 1.0
    albedo: Fraction = Field(0.25, description="the ground's reflectance (pvlib's default)")
    wind: WindModel = Field(WindModel(), description="the wind the turbines see (the cells "
                            "are cooled by wind_speed_m_s)")


class TMYWeather(Strict):
    """A typical meteorological year: a TMY3 CSV or an EPW file (pvlib's readers), one of
    pvlib's shipped files by name (703165TY.csv, 723170TYA.CSV) or a path (relative: from
    the scenario's folder). Each period takes the hour containing its middle, matched by
    month, day and hour."""

    source: Literal["tmy"]
    file: str


Weather = Annotated[ClearSkyWeather | TMYWeather, Field(discriminator="source")]


class StandardLoad(Strict):
    """A load from a BDEW standard load profile (demandlib's data, by calendar day type,
    month or season and, for h25, p25, s25 and h0_dyn, the dynamization), scaled so a
    calendar year has ``annual_kwh``. Households drawn from it differ by ``scale_spread``
    (annual energy × uniform 1 ± spread, the template's mean kept), ``shift_minutes``
    (the whole year moved by up to ± this, in quarter hours) and ``noise_sd`` (each
    period × 1 + normal noise, the day's energy kept). Needs horizon.start."""

    profile: Literal[STANDARD_PROFILES]  # type: ignore[valid-type]
    annual_kwh: NonNeg
    scale_spread: Fraction = 0.0
    shift_minutes: int = Field(0, ge=0, le=720)
    noise_sd: NonNeg = 0.0


class PVWatts(Strict):
    """A PV array by pvlib's PVWatts: ``kwp`` DC at 1000 W/m² and 25 °C cells (a number,
    or drawn uniform per agent), facing ``azimuth_deg`` (180 south) at ``tilt_deg``; the
    isotropic sky on the plane, SAPM open-rack glass/glass cells, ``gamma_pdc`` per °C,
    ``losses_pct`` of DC (14.08: pvlib's pvwatts_losses() with its defaults, 14.0757, to two
    decimals), an inverter
    of nominal efficiency ``inverter_efficiency`` sized at the DC rating. Needs
    horizon.start, site and weather."""

    model: Literal["pvwatts"]
    kwp: NonNeg | Uniform
    tilt_deg: float = Field(30.0, ge=0, le=90)
    azimuth_deg: float = Field(180.0, ge=0, lt=360)
    gamma_pdc: float = Field(-0.004, le=0)
    losses_pct: float = Field(14.08, ge=0, lt=100)
    inverter_efficiency: float = Field(0.96, gt=0, le=1)

    @model_validator(mode="after")
    def _kwp(self):
        if isinstance(self.kwp, Uniform) and self.kwp.uniform[0] < 0:
            raise ValueError("kwp: a negative low; allowed: uniform [low, high] with low ≥ 0")
        return self


def _either(synthetic, library, key: str):
    """A template's field that is lemgrid's synthesizer (``synthetic``) or, where the
    value has ``key``, a model from the libraries (``library``); the union's tags are the
    models' names, as pydantic's own, so error lines name the field alone."""
    def pick(value):
        has = key in value if isinstance(value, dict) else hasattr(value, key)
        return library.__name__ if has else synthetic.__name__
    return Annotated[Annotated[synthetic, Tag(synthetic.__name__)]
                     | Annotated[library, Tag(library.__name__)], Discriminator(pick)]


def load_field(synthetic):
    """A template's ``load``: lemgrid's synthesizer, or a standard profile where it names
    one."""
    return _either(synthetic, StandardLoad, "profile")


def pv_field(synthetic):
    """A template's ``pv``: lemgrid's synthesizer, or PVWatts where it names a model."""
    return _either(synthetic, PVWatts, "model")


class PowerCurve(Strict):
    """A turbine's power curve: kW at each wind speed (m/s), speeds increasing; power is
    interpolated between them and 0 outside."""

    wind_speed_m_s: list[NonNeg] = Field(min_length=2)
    kw: list[NonNeg] = Field(min_length=2)

    @model_validator(mode="after")
    def _pairs(self):
        if len(self.kw) != len(self.wind_speed_m_s):
            raise ValueError(f"kw has {len(self.kw)} values, wind_speed_m_s "
                             f"{len(self.wind_speed_m_s)}; allowed: one kw per speed")
        if any(b <= a for a, b in zip(self.wind_speed_m_s, self.wind_speed_m_s[1:])):
            raise ValueError("wind_speed_m_s: not increasing; allowed: increasing speeds")
        return self


class WindTurbine(Strict):
    """A wind turbine by windpowerlib: a turbine of its library by name (``turbine``, e.g.
    E-53/800; the library holds utility-scale turbines of 800 kW and more) or a power
    curve of one's own (``power_curve``, for a small turbine), at ``hub_height_m``; the
    weather's wind speed is carried to the hub by the logarithmic wind profile over
    ``roughness_length_m``. Needs horizon.start and weather."""

    turbine: str | None = None
    power_curve: PowerCurve | None = None
    hub_height_m: float = Field(gt=0)
    roughness_length_m: float = Field(0.15, gt=0, description="0.15 m: farmland with "
                                      "hedges, scattered buildings (windpowerlib's example)")

    @model_validator(mode="after")
    def _one_curve(self):
        if (self.turbine is None) == (self.power_curve is None):
            raise ValueError("give exactly one of turbine and power_curve")
        return self


@functools.cache
def library_turbines() -> list[str]:
    """The turbines of windpowerlib's library that have a power curve (its shipped data,
    read without importing windpowerlib)."""
    import csv
    import importlib.util

    spec = importlib.util.find_spec("windpowerlib")
    if spec is None or spec.origin is None:
        return []
    table = Path(spec.origin).parent / "data" / "default_turbine_data" / "turbine_data.csv"
    with table.open(newline="") as f:
        return sorted(row["turbine_type"] for row in csv.DictReader(f)
                      if row["has_power_curve"] == "True")
