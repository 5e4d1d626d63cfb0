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
    return BatteryType(key, name, maker, kwh, kw, kw, eta, eta, 0.0, source)


def _ev(key, name, maker, kwh, ac_kw, wltp_km, source) -> EVModel:
    return EVModel(key, name, maker, kwh, ac_kw, kwh / wltp_km, EV_ETA_CHARGE, source)


BATTERY_TYPES: dict[str, BatteryType] = {
    b.key: b
    for b in (
        # 13.5 kWh usable, 5 kW continuous charge/discharge, 90 % round trip.
        _battery("tesla_powerwall2", "Powerwall 2", "Tesla", 13.5, 5.0, 0.90,
                 "Tesla Powerwall 2 AC datasheet (2019)"),
        # 16.0 kWh usable, 7.0 kW rated power, round trip >= 90 %.
        _battery("lg_resu16h_prime", "RESU16H Prime", "LG Energy Solution", 16.0, 7.0, 0.90,
                 "LG Energy Solution RESU Prime datasheet (2020)"),
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
