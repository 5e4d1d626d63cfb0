"""Typed inputs and outputs of the agent models (plain data, no solver objects)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
    """Prices an agent faces: retail buy and feed-in (sell) price per period, the P2V
    price and the daily fixed cost. A scalar sell price is the same in every period."""

    buy_eur_per_kwh: np.ndarray
    sell_eur_per_kwh: np.ndarray
    p2v_eur_per_kwh: float
    fixed_eur_per_day: float = 0.0

    def __post_init__(self):
        buy = np.asarray(self.buy_eur_per_kwh, float)
        object.__setattr__(self, "buy_eur_per_kwh", buy)
        object.__setattr__(self, "sell_eur_per_kwh",
                           np.broadcast_to(np.asarray(self.sell_eur_per_kwh, float),
                                           buy.shape).copy())


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
    """An electric vehicle with its day of trips (MODELS.md §A, EV).

    ``sell_max_kw`` > 0 makes it a V2G EV: while plugged in it may discharge its battery
    (at most ``battery.discharge_max_kw``) and export up to ``sell_max_kw`` at its
    connection, sold at the tariff's feed-in price; 0 (the default): it only charges."""

    name: str
    horizon: Horizon
    tariff: Tariff
    away: np.ndarray
    trip_kwh: np.ndarray
    battery: BatterySpec
    buy_max_kw: float
    p2v_max_kw: float
    sell_max_kw: float = 0.0  # V2G export limit at the connection; 0: no V2G

    @property
    def v2g(self) -> bool:
        """Whether the EV may discharge into the grid."""
        return self.sell_max_kw > 0


@dataclass(frozen=True)
class FlexibleLoad:
    """An appliance that must run ``duration_periods`` periods (not necessarily
    consecutive) inside its window [window_start, window_end) of the day, at its rating
    when on."""

    name: str
    rating_kw: float
    duration_periods: int
    window_start: int  # first period it may run
    window_end: int  # periods before this one (exclusive)


@dataclass(frozen=True)
class BuildingData:
    """An active building (MODELS.md §E, HEMS): non-flexible load, flexible loads,
    battery, PV, wind, consumer demand limit (CDL) and power injection limit (PIL)."""

    name: str
    horizon: Horizon
    tariff: Tariff  # buy_eur_per_kwh and sell_eur_per_kwh per period
    load_kw: np.ndarray  # non-flexible load per period (the forecast the plan uses)
    pv_kw: np.ndarray  # available PV per period
    wind_kw: np.ndarray  # available wind per period
    flexible: tuple[FlexibleLoad, ...]
    battery: BatterySpec | None
    buy_max_kw: float  # connection limit, import
    sell_max_kw: float  # connection limit, export
    cdl_kw: np.ndarray  # import above it costs cdl_factor x the buy price
    cdl_factor: float = 2.5  # kappa
    pil_kw: np.ndarray | None = None  # export cap per period; None: no PIL


@dataclass(frozen=True)
class OperatorData:
    """What the operator knows: the network (a registered name and its options), the
    limits it keeps, where each peer is connected and its connection's import and export
    limits (kW, the contract the operator holds), the background load per bus (kW,
    constant over the day; its reactive power at the network's own load power factor
    where it comes from the network's loads), the peers' power factor, the price of
    losses over the run (€/kWh per period of every day; empty: losses are free) and the
    model (``socp`` or ``lindistflow``) and the transformers' reverse-power limit (% of
    their rating) the clearance keeps."""

    name: str
    horizon: Horizon
    network: str
    network_options: dict = field(default_factory=dict)
    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    max_loading_pct: float = 100.0
    buses: dict[str, int] = field(default_factory=dict)
    connections_kw: dict[str, list[float]] = field(default_factory=dict)  # [import, export]
    background_kw: list[float] = field(default_factory=list)
    background_kvar: list[float] = field(default_factory=list)
    power_factor: float = 1.0
    loss_price_eur_per_kwh: list[float] = field(default_factory=list)
    model: str = "socp"
    reverse_flow_pct: float = 100.0  # a transformer's reverse-power limit, % of its rating


AgentData = ProsumerData | EVData | BuildingData
KINDS = {ProsumerData: "prosumer", EVData: "ev", BuildingData: "building",
         OperatorData: "operator"}
BUILDING_ARRAYS = ("load_kw", "pv_kw", "wind_kw", "cdl_kw")


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
    costs_eur: dict[str, np.ndarray] = field(default_factory=dict)  # its parts, per period

    @property
    def p2v_kw(self) -> np.ndarray:
        return self.flows_kw["p2v_kw"]


def kind_of(d: AgentData) -> str:
    """The agent kind of a data object: "prosumer", "ev" or "building"."""
    return KINDS[type(d)]


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v.item() if isinstance(v, np.generic) else v


def data_to_dict(d: AgentData) -> dict:
    """JSON-ready form of an agent's data (for simulator start-up parameters)."""
    return {"kind": kind_of(d), **_plain(asdict(d))}


def _building_from_dict(raw: dict) -> BuildingData:
    for key in BUILDING_ARRAYS:
        raw[key] = np.asarray(raw[key], float)
    if raw.get("pil_kw") is not None:
        raw["pil_kw"] = np.asarray(raw["pil_kw"], float)
    raw["flexible"] = tuple(FlexibleLoad(**f) for f in raw["flexible"])
    return BuildingData(**raw)


def data_from_dict(raw: dict) -> AgentData:
    """Inverse of ``data_to_dict``."""
    raw = dict(raw)
    kind = raw.pop("kind")
    raw["horizon"] = Horizon(**raw["horizon"])
    if kind == "operator":
        return OperatorData(**raw)
    tariff = dict(raw["tariff"])
    raw["tariff"] = Tariff(**tariff)
    raw["battery"] = BatterySpec(**raw["battery"]) if raw.get("battery") else None
    if kind == "building":
        return _building_from_dict(raw)
    if kind == "prosumer":
        raw["load_kw"] = np.asarray(raw["load_kw"], float)
        raw["pv_kw"] = np.asarray(raw["pv_kw"], float)
        return ProsumerData(**raw)
    raw["away"] = np.asarray(raw["away"], bool)
    raw["trip_kwh"] = np.asarray(raw["trip_kwh"], float)
    return EVData(**raw)


def net_load_kw(kind: str, flows: dict[str, np.ndarray]) -> np.ndarray:
    """Power drawn from the grid at the agent's connection (negative when exporting):
    retail purchases and P2V purchases in, feed-in and P2V sales out (a V2G EV's feed-in
    where its flows have one), and the net P2P purchase where the agent trades P2P."""
    p2p = flows.get("p2p_kw", 0.0)
    if kind == "prosumer":
        return flows["buy_kw"] - flows["sell_kw"] - flows["p2v_kw"] + p2p
    if kind == "building":
        return flows["buy_kw"] - flows["sell_kw"] + p2p
    net = flows["buy_kw"] + flows["p2v_kw"] + p2p
    return net - flows["sell_kw"] if "sell_kw" in flows else net
