"""Typed inputs and outputs of the agent models (plain data, no solver objects)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

MODEL_BUILDS = ("template", "pyomo")  # how an agent's model is built (agents.model)


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
    """A PV + battery household (docs/models.md#prosumer, docs/mechanisms/p2v_rules.md)."""

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
    """An electric vehicle with its day of trips (docs/models.md#electric-vehicle,
    docs/mechanisms/p2v_rules.md).

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
class GeneratorSpec:
    """A dispatchable generator: output g ∈ [p_min_kw, p_max_kw] (kW) in every period (no
    on/off decision: p_min_kw > 0 makes it must-run) at the cost rate
    ½·a·g² + b·g + c (€/h; the chapter's ½a(ΣP)² + bΣP + c, Eq. 12.4), so a period of
    Δt hours costs Δt × the rate."""

    p_min_kw: float
    p_max_kw: float
    a_eur_per_kw2h: float = 0.0  # ≥ 0: the cost is convex
    b_eur_per_kwh: float = 0.0
    c_eur_per_h: float = 0.0

    def __post_init__(self):
        if self.p_min_kw < 0:
            raise ValueError(f"p_min_kw: {self.p_min_kw:g} is negative; allowed: ≥ 0")
        if self.p_min_kw > self.p_max_kw:
            raise ValueError(f"p_min_kw: {self.p_min_kw:g} is above p_max_kw "
                             f"{self.p_max_kw:g}; allowed: p_min_kw ≤ p_max_kw")
        if self.a_eur_per_kw2h < 0:
            raise ValueError(f"a_eur_per_kw2h: {self.a_eur_per_kw2h:g} is negative; allowed: "
                             "≥ 0 (a convex cost)")


def _cross(o, a, b) -> float:
    """z of (a − o) × (b − o): > 0 where o → a → b turns counter-clockwise."""
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _area2(vertices) -> float:
    """Twice the signed area (shoelace): > 0 for counter-clockwise vertices."""
    n = len(vertices)
    return sum(vertices[k][0] * vertices[(k + 1) % n][1] - vertices[(k + 1) % n][0]
               * vertices[k][1] for k in range(n))


def _segments_cross(a, b, c, d) -> bool:
    """Whether segments ab and cd share a point (touching counts)."""
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if (d1 > 0 > d2 or d1 < 0 < d2) and (d3 > 0 > d4 or d3 < 0 < d4):
        return True

    def on(p, q, r):  # r on segment pq, given collinear
        return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and \
            min(p[1], q[1]) <= r[1] <= max(p[1], q[1])

    return any(x == 0 and on(p, q, r) for x, p, q, r in
               ((d1, c, d, a), (d2, c, d, b), (d3, a, b, c), (d4, a, b, d)))


def polygon_problem(vertices) -> str | None:
    """What keeps ``vertices`` (in order, clockwise or counter-clockwise, each listed once)
    from being a convex polygon, as the end of a sentence ("is not convex: ..."), or None.
    Vertices are numbered from 1 in the messages."""
    pts = [(float(p), float(h)) for p, h in vertices]
    n = len(pts)
    if n < 3:
        return f"is not closed: it has {n} vertices; allowed: at least 3"
    for k in range(n):
        if pts[k] == pts[(k + 1) % n]:
            j = (k + 1) % n
            return (f"is not closed: vertex {max(k, j) + 1} repeats vertex {min(k, j) + 1} "
                    f"({pts[k][0]:g}, {pts[k][1]:g}); allowed: each vertex once (the polygon "
                    "closes itself)")
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent edges (the last closes on the first)
            if _segments_cross(pts[i], pts[i + 1], pts[j], pts[(j + 1) % n]):
                return (f"is not convex: it crosses itself (edges {i + 1}–{i + 2} and "
                        f"{j + 1}–{(j + 1) % n + 1})")
    if _area2(pts) == 0:
        return "is not closed: its vertices lie on one line (zero area)"
    sign = 1.0 if _area2(pts) > 0 else -1.0
    for k in range(n):
        prev, here, nxt = pts[k - 1], pts[k], pts[(k + 1) % n]
        turn = sign * _cross(prev, here, nxt)
        back = (here[0] - prev[0]) * (nxt[0] - here[0]) + (here[1] - prev[1]) * (nxt[1] - here[1])
        if turn < 0 or (turn == 0 and back < 0):
            return (f"is not convex: it turns the other way at vertex {k + 1} "
                    f"({here[0]:g}, {here[1]:g})")
    return None


def polygon_halfplanes(vertices) -> list[tuple[float, float, float]]:
    """The half-planes cp·p + ch·h ≤ rhs whose intersection is the convex polygon with
    these vertices (p, h), one per edge (the chapter's Eqs 12.24–12.26 for A, B, C, D).

    For counter-clockwise vertices the polygon lies left of each edge v_k → v_{k+1}
    (Δp, Δh): Δh·p − Δp·h ≤ Δh·p_k − Δp·h_k; clockwise vertices are reversed first.
    The polygon must be valid (``polygon_problem`` None)."""
    pts = [(float(p), float(h)) for p, h in vertices]
    if _area2(pts) < 0:
        pts.reverse()
    out = []
    for k, (p0, h0) in enumerate(pts):
        p1, h1 = pts[(k + 1) % len(pts)]
        dp, dh = p1 - p0, h1 - h0
        out.append((dh, -dp, dh * p0 - dp * h0))
    return out


@dataclass(frozen=True)
class ChpSpec:
    """A combined heat and power unit: power p (kW_el) and heat h (kW_th) in every period
    inside a convex polygon given by its vertices (p, h) in order (Fig. 12.9: A, B, C, D),
    at the cost rate ½·a_p·p² + b_p·p + ½·a_h·h² + b_h·h + c (€/h; Eq. 12.22 with the
    ½ of Eq. 12.4); a_p, a_h in €/kW²h (≥ 0), b_p, b_h in €/kWh, c in €/h."""

    vertices: tuple[tuple[float, float], ...]
    a_p: float = 0.0
    b_p: float = 0.0
    a_h: float = 0.0
    b_h: float = 0.0
    c: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "vertices",
                           tuple((float(p), float(h)) for p, h in self.vertices))
        if problem := polygon_problem(self.vertices):
            raise ValueError(f"CHP polygon {problem}")
        if any(p < 0 or h < 0 for p, h in self.vertices):
            raise ValueError("CHP polygon has a vertex with negative power or heat; allowed: "
                             "p ≥ 0 and h ≥ 0")
        for field_name in ("a_p", "a_h"):
            if getattr(self, field_name) < 0:
                raise ValueError(f"{field_name}: {getattr(self, field_name):g} is negative; "
                                 "allowed: ≥ 0 (a convex cost)")

    def power_range_kw(self) -> tuple[float, float]:
        return min(p for p, _ in self.vertices), max(p for p, _ in self.vertices)

    def heat_range_kw(self) -> tuple[float, float]:
        return min(h for _, h in self.vertices), max(h for _, h in self.vertices)


@dataclass(frozen=True)
class BuildingData:
    """An active building (docs/models.md#building, HEMS): non-flexible load, flexible loads,
    battery, PV, wind, consumer demand limit (CDL) and power injection limit (PIL); and
    (docs/models.md#producing-buildings-generator-chp-unit-and-heat) a generator, a CHP unit
    and a heat demand."""

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
    generator: GeneratorSpec | None = None  # its power is supply like PV
    chp: ChpSpec | None = None  # its power is supply like PV, its heat meets heat demand
    heat_demand_kw: np.ndarray | None = None  # kW_th per period; None: no heat demand

    @property
    def has_heat(self) -> bool:
        """Whether the building has a heat balance: a CHP unit or some heat demand."""
        demand = self.heat_demand_kw
        return self.chp is not None or (demand is not None and bool(np.any(demand > 0)))


@dataclass(frozen=True, kw_only=True)
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
    for key in ("pil_kw", "heat_demand_kw"):
        if raw.get(key) is not None:
            raw[key] = np.asarray(raw[key], float)
    if raw.get("generator") is not None:
        raw["generator"] = GeneratorSpec(**raw["generator"])
    if raw.get("chp") is not None:
        raw["chp"] = ChpSpec(**raw["chp"])
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
