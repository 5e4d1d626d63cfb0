"""Equipment catalogue: home batteries and electric vehicles from their makers' published data.

Faia et al. (2021) list three home battery types (Table 1) and seven EV models (Table 2)
only as images, so the products below are a RECON: real products of 2019-2020 with the
figures their makers publish.  The paper's totals (715 kWh of storage in 50 batteries,
1916.60 kWh in 40 EVs, Tesla Model 3 Standard Range Plus the most common EV) are met
exactly by ``FAIA2021_BATTERY_COUNTS`` and ``FAIA2021_EV_COUNTS``.

Conventions
-----------
- ``capacity_kwh`` is the usable energy the maker publishes.  Home-battery datasheets state
  it at 100 % depth of discharge, so ``soc_min_frac`` is 0 (the maker's reserve is already
  excluded); a scenario may keep its own reserve on top.
- One-way efficiencies are the square root of the published round-trip efficiency.
- EV ``consumption_kwh_per_km`` is battery-side: usable capacity / WLTP range, both
  published by the maker (derived figure).
- EV ``eta_charge`` (AC charging loss) is not in the makers' data: RECON 0.90 for all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import sqrt


@dataclass(frozen=True)
class BatteryType:
    """A stationary home battery (one per prosumer)."""

    key: str
    name: str
    maker: str
    capacity_kwh: float  # usable capacity
    max_charge_kw: float  # continuous power
    max_discharge_kw: float
    eta_charge: float  # one-way efficiencies (sqrt of round-trip)
    eta_discharge: float
    soc_min_frac: float  # minimum state of charge as a fraction of capacity
    source: str  # the maker's datasheet it comes from (name + year)


@dataclass(frozen=True)
class EVModel:
    """An electric vehicle model."""

    key: str
    name: str
    maker: str
    capacity_kwh: float  # usable battery capacity
    max_charge_kw: float  # on-board AC charger limit
    consumption_kwh_per_km: float
    eta_charge: float
    source: str


EV_ETA_CHARGE = 0.90  # RECON: AC charging efficiency, not published by the makers


def _battery(key, name, maker, kwh, kw, round_trip, source) -> BatteryType:
    eta = sqrt(round_trip)
    return BatteryType(key=key, name=name, maker=maker, capacity_kwh=kwh, max_charge_kw=kw,
                       max_discharge_kw=kw, eta_charge=eta, eta_discharge=eta, soc_min_frac=0.0,
                       source=source)


def _ev(key, name, maker, kwh, ac_kw, wltp_km, source) -> EVModel:
    return EVModel(key=key, name=name, maker=maker, capacity_kwh=kwh, max_charge_kw=ac_kw,
                   consumption_kwh_per_km=kwh / wltp_km, eta_charge=EV_ETA_CHARGE, source=source)


BATTERY_TYPES: dict[str, BatteryType] = {
    b.key: b
    for b in (
        # 13.5 kWh usable, 5 kW continuous charge/discharge, 90 % round trip.
        _battery("tesla_powerwall2", "Powerwall 2", "Tesla", 13.5, 5.0, 0.90,
                 "Tesla Powerwall 2 AC datasheet (2019)"),
        # 16.0 kWh usable, 7.0 kW rated power, round trip >= 90 %.
        _battery("lg_resu16h_prime", "RESU16H Prime", "LG Energy Solution", 16.0, 7.0, 0.90,
                 "LG Energy Solution RESU Prime datasheet (2020)"),
        # 5.9 kWh usable of 6.5 kWh, 4.2 kW continuous, round trip >= 95 %: a home battery
        # of the size a household of the transactive-energy locality would install.
        _battery("lg_resu6_5", "RESU 6.5", "LG Chem", 5.9, 4.2, 0.95,
                 "LG Chem RESU 6.5 datasheet (2018)"),
        # 5 HVM modules: 13.8 kWh usable; 40 A max current at 256 V nominal = 10.24 kW;
        # round trip > 96 %.
        _battery("byd_hvm_13_8", "Battery-Box Premium HVM 13.8", "BYD", 13.8, 10.24, 0.96,
                 "BYD Battery-Box Premium HVM datasheet (2020)"),
    )
}

EV_MODELS: dict[str, EVModel] = {
    m.key: m
    for m in (
        # Tesla publishes no kWh figure: 50 kWh usable as tabulated by EV Database (2020);
        # 11 kW three-phase on-board charger, WLTP 409 km.
        _ev("tesla_model3_sr_plus", "Model 3 Standard Range Plus", "Tesla", 50.0, 11.0, 409,
            "Tesla Model 3 SR+ EU specifications (2020); capacity per EV Database"),
        _ev("nissan_leaf_40", "Leaf 40 kWh", "Nissan", 40.0, 6.6, 270,
            "Nissan Leaf price and specifications (2020)"),
        _ev("renault_zoe_ze50", "Zoe ZE50 R110", "Renault", 52.0, 22.0, 395,
            "Renault Zoe ZE50 technical specifications (2020)"),
        _ev("vw_id3_pro", "ID.3 Pro Performance (58 kWh net)", "Volkswagen", 58.0, 11.0, 426,
            "Volkswagen ID.3 technical data (2020)"),
        _ev("hyundai_kona_64", "Kona Electric 64 kWh", "Hyundai", 64.0, 7.2, 484,
            "Hyundai Kona Electric specifications (2019)"),
        _ev("hyundai_ioniq_38", "Ioniq Electric 38.3 kWh", "Hyundai", 38.3, 7.2, 311,
            "Hyundai Ioniq Electric specifications (2020)"),
        # BMW publishes 42.2 kWh gross and 37.9 kWh net; WLTP 285-310 km (300 km taken).
        _ev("bmw_i3_120ah", "i3 120 Ah (37.9 kWh net)", "BMW", 37.9, 11.0, 300,
            "BMW i3 120 Ah technical data (2020)"),
    )
}

# The paper's case (Faia et al. 2021, "Case Study"): 50 prosumers, one battery each, three
# types randomly assigned, 715 kWh installed in total.  These counts reproduce that total
# exactly with the usable capacities above: 12 x 13.5 + 13 x 16.0 + 25 x 13.8 = 715.0 kWh.
FAIA2021_BATTERY_COUNTS: dict[str, int] = {
    "tesla_powerwall2": 12,
    "lg_resu16h_prime": 13,
    "byd_hvm_13_8": 25,
}

# The paper's case: 40 EVs of seven models randomly assigned, 1916.60 kWh in total, the Tesla
# Model 3 Standard Range Plus the most common.  These counts reproduce that total exactly:
# 9 x 50 + 7 x 40 + 5 x 52 + 5 x 58 + 4 x 64 + 4 x 38.3 + 6 x 37.9 = 1916.6 kWh.
FAIA2021_EV_COUNTS: dict[str, int] = {
    "tesla_model3_sr_plus": 9,
    "nissan_leaf_40": 7,
    "renault_zoe_ze50": 5,
    "vw_id3_pro": 5,
    "hyundai_kona_64": 4,
    "hyundai_ioniq_38": 4,
    "bmw_i3_120ah": 6,
}


# ---------------------------------------------------------------- household appliances
# Typical household appliances of the transactive-energy locality (Math. Problems in
# Engineering 2023, 3979662; docs/models.md#the-localitys-households): its table of
# appliances is an image, so these are typical published ratings, each with its source
# (DOE: U.S. Department of Energy, Energy Saver, "Estimating Appliance and Home Electronic
# Energy Use") or marked RECON with its reasoning. ``scenarios/community/households.py``
# builds the non-flexible load from the non-flexible ones; buildings name flexible ones.

HOURS_PER_DAY = 24
_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


def clock_h(hhmm: str) -> float:
    """``"06:15"`` -> 6.25; ``"24:00"`` (end of day) -> 24.0."""
    match = _HHMM.match(hhmm) if isinstance(hhmm, str) else None
    if match is None or int(match[2]) > 59 or int(match[1]) * 60 + int(match[2]) > 1440:
        raise ValueError(f"time must be 'HH:MM' between 00:00 and 24:00, got {hhmm!r}")
    return int(match[1]) + int(match[2]) / 60


@dataclass(frozen=True)
class Appliance:
    """A household appliance.  ``window`` = ("HH:MM", "HH:MM"): for a flexible one, the
    hours the household accepts it running (inside one day, end may be "24:00"); for a
    non-flexible one, the hours it is typically used (an end before the start wraps past
    midnight; equal ends = all day, a cycling appliance such as the refrigerator)."""

    key: str
    name: str
    rating_kw: float  # power while running
    duration_h: float  # running time per day (per cycle for flexible ones)
    window: tuple[str, str]
    flexible: bool  # True: the HEMS may shift it inside its window
    source: str

    @property
    def window_start_h(self) -> float:
        return clock_h(self.window[0])

    @property
    def window_span_h(self) -> float:
        span = (clock_h(self.window[1]) - self.window_start_h) % HOURS_PER_DAY
        return span if span > 0 else float(HOURS_PER_DAY)


_DOE = "U.S. DOE Energy Saver, Estimating Appliance and Home Electronic Energy Use"

APPLIANCES: dict[str, Appliance] = {a.key: a for a in (
    # Flexible.  Windows are RECON: hours a household would accept.
    Appliance("washing_machine", "Washing machine", 0.5, 1.5, ("07:00", "17:00"), True,
              f"{_DOE}: 350-500 W; RECON 1.5 h cycle, daylight so clothes dry outdoors"),
    Appliance("clothes_dryer", "Clothes dryer", 1.8, 1.0, ("10:00", "22:00"), True,
              f"{_DOE}: 1800-5000 W (lower bound, compact dryer); RECON 1 h cycle"),
    Appliance("dishwasher", "Dishwasher", 1.2, 1.0, ("00:00", "06:00"), True,
              f"{_DOE}: 1200-2400 W (lower bound, no heated drying); RECON loaded after "
              "dinner, done before breakfast"),
    Appliance("water_pump", "Water pump (overhead tank)", 0.75, 1.0, ("05:00", "20:00"), True,
              f"{_DOE}: water pump 250-1100 W; RECON 1 HP (0.746 kW) monoblock filling the "
              "roof tank once a day"),
    Appliance("water_heater", "Electric water heater", 2.0, 1.0, ("03:00", "07:00"), True,
              "RECON: 2 kW, the usual element of a 15-25 L Indian storage heater (DOE's "
              "4.5-5.5 kW is for 40-gallon US tanks); hot water before morning baths"),
    # Non-flexible: typical hours of use.
    Appliance("lighting", "LED lighting (10 x 9 W)", 0.09, 5.0, ("18:00", "24:00"), False,
              "RECON: 9 W LED bulbs (the EESL UJALA bulb), 10 points, evening use"),
    Appliance("refrigerator", "Refrigerator (frost-free)", 0.15, 8.0, ("00:00", "00:00"),
              False, f"{_DOE}: runs at full power ~1/3 of the day; RECON 0.15 kW running draw "
              "of a ~250 L frost-free model (DOE lists 725 W for a 16 cu ft US one)"),
    Appliance("ceiling_fans", "Ceiling fans (3 x 75 W)", 0.225, 8.0, ("13:00", "23:00"), False,
              f"{_DOE}: ceiling fan 65-175 W; RECON 3 fans of 75 W, afternoon and evening"),
    Appliance("air_conditioner", "Split air conditioner (1.5 t)", 1.5, 4.0, ("22:00", "06:00"),
              False, "RECON: 1.5 t = 5.3 kW cooling at EER ~3.5 -> 1.5 kW; bedroom, 4 h on "
              "a sleep timer at night"),
    Appliance("television", "Television (flat screen)", 0.12, 4.0, ("18:00", "23:30"), False,
              f"{_DOE}: flat-screen TV 120 W; RECON 4 h evening viewing"),
    Appliance("laptop", "Laptop", 0.05, 6.0, ("09:00", "23:00"), False,
              f"{_DOE}: laptop 50 W; RECON 6 h a day"),
    Appliance("microwave", "Microwave oven", 1.0, 0.5, ("19:00", "21:30"), False,
              f"{_DOE}: 750-1100 W; RECON 30 min around dinner"),
    Appliance("mixer_grinder", "Mixer grinder", 0.5, 0.5, ("06:00", "09:00"), False,
              "RECON: 500-750 W common Indian ratings, morning cooking"),
    Appliance("clothes_iron", "Clothes iron", 1.0, 0.5, ("07:00", "09:30"), False,
              f"{_DOE}: 1000-1800 W; RECON 30 min before work and school"),
)}
