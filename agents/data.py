"""Typed inputs and outputs of the agent models (plain data, no solver objects)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Horizon:
    """The planning horizon: ``periods`` periods of ``period_h`` hours each."""

    periods: int = 96
    period_h: float = 0.25

    def label(self, t: int) -> str:
        """Start time of period ``t`` as ``HH:MM``."""
        minutes = round(t * self.period_h * 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Tariff:
    """Prices an agent faces: time-of-use buy price per period, feed-in and P2V prices."""

    buy_eur_per_kwh: np.ndarray
    sell_eur_per_kwh: float
    p2v_eur_per_kwh: float
    fixed_eur_per_day: float = 0.0


@dataclass(frozen=True)
class BatterySpec:
    """A stationary or EV battery; energies in kWh, powers in kW, one-way efficiencies."""

    capacity_kwh: float
    soc_min_kwh: float
    charge_max_kw: float
    discharge_max_kw: float
    eta_charge: float
    eta_discharge: float
    e0_kwh: float
    e_end_min_kwh: float


@dataclass(frozen=True)
class ProsumerData:
    """A PV + battery household (MODELS.md §A, prosumer)."""

    name: str
    horizon: Horizon
    tariff: Tariff
    load_kw: np.ndarray
    pv_kw: np.ndarray
    battery: BatterySpec | None
    buy_max_kw: float
    sell_max_kw: float
    p2v_max_kw: float


@dataclass(frozen=True)
class EVData:
    """An electric vehicle with its day of trips (MODELS.md §A, EV)."""

    name: str
    horizon: Horizon
    tariff: Tariff
    away: np.ndarray
    trip_kwh: np.ndarray
    battery: BatterySpec
    buy_max_kw: float
    p2v_max_kw: float


@dataclass
class Schedule:
    """An agent's optimal plan for one day, as returned by a solve."""

    agent: str
    kind: str
    status: str
    objective_eur: float
    method: str
    solve_time_s: float
    flows_kw: dict[str, np.ndarray] = field(default_factory=dict)
    soc_kwh: np.ndarray | None = None
    cost_eur: np.ndarray | None = None  # per period, the fixed cost spread evenly

    @property
    def p2v_kw(self) -> np.ndarray:
        return self.flows_kw["p2v_kw"]
