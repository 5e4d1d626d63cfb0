"""What every mechanism shares: its parameters' base model, the public market data, its
pure core, round records and settlement helpers.

A mechanism's core is pure: ``init(roster, params, day) -> (signals, state)``,
``step(offers, state, params) -> (signals, state, done)``,
``clear(state, params) -> clearings`` (the day-ahead result) and
``settle(state, params, meters) -> settlements`` (the day's bills once the realised
powers are in); ``check_offer(body, periods)`` says what is wrong with an offer, if
anything, before the session accepts it. ``params`` is the mechanism's parameter model
(a ``MarketParams``: the scenario's ``market`` section, the one definition of every
parameter) carrying the run's public ``MarketData``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from lemgrid.coordinator.protocol import ClearingBody, RegisterBody, SettlementBody


@dataclass(frozen=True)
class MarketData:
    """What every participant knows before the market opens: the retail buy and feed-in
    prices of every period of the run (€/kWh, day after day) and the fixed P2V price."""

    buy_eur_per_kwh: tuple[float, ...] = ()
    sell_eur_per_kwh: tuple[float, ...] = ()
    p2v_eur_per_kwh: float = 0.0

    def day(self, day: int, periods: int) -> tuple[np.ndarray, np.ndarray]:
        """(buy, sell) of day ``day``; a one-day series holds for every day."""
        buy = np.asarray(self.buy_eur_per_kwh, float)
        sell = np.asarray(self.sell_eur_per_kwh, float)
        if buy.size == periods and sell.size == periods:
            return buy, sell
        cut = slice(day * periods, (day + 1) * periods)
        if buy[cut].size != periods or sell[cut].size != periods:
            raise ValueError(f"retail prices cover {buy.size // max(periods, 1)} day(s); day "
                             f"{day + 1} has none")
        return buy[cut], sell[cut]


class MarketParams(BaseModel):
    """The parameters every mechanism has. A mechanism's own model adds its fields and
    narrows ``mechanism`` to its name (a ``Literal``): the scenario's ``market`` section
    is the union of the registered models, told apart by ``mechanism``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    DEFAULT_ROUNDS: ClassVar[int] = 5  # the round limit where max_rounds is null

    mechanism: str = Field(description="a registered mechanism (lemgrid mechanisms)")
    mode: Literal["decentralized", "centralized"] = Field(
        "decentralized", description="decentralized: the market; centralized: the "
        "mechanism's centralized counterpart in one model, where it has one")
    max_rounds: int | None = Field(None, ge=1, description="at most this many rounds; null: "
                                   "the mechanism's default")
    network_check: str = Field(
        "none", description="none, or a mechanism that checks another's trades against the "
        "network (clearance: after the market the network operator clears its day-ahead "
        "trades against the network's DC limits; curtailed quantities are retail); for "
        "mechanisms whose trades the network operator does not already clear")
    cdl_factor: float = Field(2.5, ge=1, description="the utility's rule for buildings: "
                              "import above a consumer demand limit costs this × the price")
    pil: bool = Field(True, description="the utility imposes power injection limits: each "
                      "building's own (and, in a locality market, the locality's sum)")
    network_model: Literal["socp", "lindistflow"] = Field(
        "socp", description="where the network operator takes part: its network model, the "
        "relaxed branch-flow SOCP or the LinDistFlow LP")
    network_margin_pu: float = Field(
        0.0005, ge=0, lt=0.05, description="where the network operator takes part: it keeps "
        "voltages this far inside grid.v_min_pu and grid.v_max_pu, so that what the market "
        "leaves open at its tolerance does not show as a violation in the AC power flow")
    _data: MarketData = PrivateAttr(default_factory=MarketData)

    @property
    def rounds(self) -> int:
        """The round limit: ``max_rounds``, or the mechanism's default."""
        return self.max_rounds or self.DEFAULT_ROUNDS

    @property
    def data(self) -> MarketData:
        return self._data

    def with_data(self, data: MarketData):
        """These parameters with the run's public market data."""
        out = self.model_copy()
        out._data = data
        return out

    def operator_takes_part(self) -> bool:
        """Whether the network operator is an agent of this market."""
        return self.network_check != "none"

    def market_open(self) -> bool:
        """Whether there is a local market at all (false: retail only)."""
        return True

    def agents_trade_p2v(self) -> bool:
        """Whether prosumers and EVs model P2V exchange in their own plans."""
        return False

    def agent_options(self) -> dict:
        """Options of every participant's market agent (``agents.market_agent``)."""
        return {}


@dataclass(frozen=True, kw_only=True)
class MarketCore:
    """A mechanism's pure part, what the coordinator runs: its parameter model, the agent
    kinds it serves and its functions (module docstring). It lives at module level beside
    its parameter model, so that a coordinator process can import it by name."""

    params_type: type[MarketParams]
    kinds: frozenset[str]
    init: Callable
    step: Callable
    clear: Callable
    settle: Callable
    check_offer: Callable  # (OfferBody, periods) -> what is wrong with it, or None

    @property
    def name(self) -> str:
        return mechanism_name(self.params_type)


def mechanism_name(params_type: type[MarketParams]) -> str:
    """The name a parameter model's ``mechanism`` field is narrowed to."""
    annotation = params_type.model_fields["mechanism"].annotation
    names = getattr(annotation, "__args__", ())
    if len(names) != 1 or not isinstance(names[0], str):
        raise TypeError(f"{params_type.__name__}.mechanism must be a Literal of one name")
    return names[0]


def core_path(core: MarketCore) -> str:
    """``module:attribute`` of a core that lives at module level beside its parameter
    model (how a coordinator process finds it)."""
    module = importlib.import_module(core.params_type.__module__)
    for attr, value in vars(module).items():
        if value is core:
            return f"{module.__name__}:{attr}"
    raise ValueError(f"the core of {core.name} is not a module-level name of "
                     f"{module.__name__}, beside its parameter model")


def load_object(path: str):
    """What ``module:name`` (a dotted name inside the module) names, importing it."""
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_core(path: str) -> MarketCore:
    """The core at ``module:attribute``; a one-line error for anything else."""
    try:
        core = load_object(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"no mechanism core at {path!r} ({exc})") from None
    if not isinstance(core, MarketCore):
        raise TypeError(f"{path!r} is not a mechanism core")
    return core


@dataclass(frozen=True)
class RoundRecord:
    """What one round saw: the mechanism's convergence measure, per-period columns and
    round-level figures (the rows of ``market.parquet``)."""

    round: int
    error_kw: float
    per_period: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, object] = field(default_factory=dict)


def horizon(roster: Mapping[str, RegisterBody]) -> tuple[int, float]:
    """(periods, period_h) shared by the roster; a mixed roster is refused."""
    shapes = {(r.periods, r.period_h) for r in roster.values()}
    if len(shapes) > 1:
        raise ValueError(f"agents registered different horizons: {sorted(shapes)}")
    return next(iter(shapes)) if shapes else (0, 1.0)


def limit(body: RegisterBody, key: str, periods: int, default: float = np.inf) -> np.ndarray:
    """A registered per-period limit (a single value holds for every period)."""
    values = body.limits_kw.get(key)
    if values is None:
        return np.full(periods, default)
    arr = np.asarray(values, float)
    return np.full(periods, arr[0]) if arr.size == 1 else arr


def realised(meters: Mapping[str, np.ndarray], name: str, fallback: np.ndarray) -> np.ndarray:
    """An agent's metered power per period; a period without a reading counts as the
    ``fallback`` (its day-ahead position)."""
    m = meters.get(name)
    if m is None:
        return fallback
    return np.where(np.isnan(m), fallback, m)


def zero_settlement(position_kw: np.ndarray, traded_eur: np.ndarray) -> SettlementBody:
    """A bill with no deviation or violation cost (deviations go to retail)."""
    zero = np.zeros(len(position_kw))
    return SettlementBody(position_kw=position_kw.tolist(), traded_eur=traded_eur.tolist(),
                          deviation_eur=zero.tolist(), violation_eur=zero.tolist())


# -- bilateral markets with a network operator (admm, clearance) ----------------------------
PEER_KINDS = ("prosumer", "ev", "building")
NETWORK_KINDS = frozenset({*PEER_KINDS, "operator"})  # peers and the network operator


def peers_and_operator(roster: Mapping[str, RegisterBody], network: bool
                       ) -> tuple[list[str], str | None]:
    """The roster's peers (in roster order) and its network operator (None without
    ``network``); a second operator, or none where the network takes part, is an error."""
    peers = [n for n, b in roster.items() if b.kind in PEER_KINDS]
    operators = [n for n, b in roster.items() if b.kind == "operator"]
    if len(operators) > 1:
        raise ValueError(f"more than one operator registered: {', '.join(operators)}")
    operator = operators[0] if operators and network else None
    if network and operator is None:
        raise ValueError("market.network is on but no operator agent registered")
    return peers, operator


def operator_clearing(periods: int, converged: bool) -> ClearingBody:
    """The network operator's clearing: it has no connection, the market delivers it
    nothing."""
    return ClearingBody(position_kw=[0.0] * periods, converged=converged)


def operator_settlement(periods: int) -> SettlementBody:
    """The network operator's bill: zero."""
    zero = np.zeros(periods)
    return zero_settlement(zero, zero)


def bilateral_clearings(key: str, peers: list[str], operator: str | None, periods: int,
                        period_h: float, pos: Mapping[str, np.ndarray], pay: Mapping[str, np.ndarray],
                        by_kw: Mapping[str, dict], by_price: Mapping[str, dict],
                        converged: bool) -> dict[str, ClearingBody]:
    """Each peer's clearing of a bilateral market: its position (net purchase, kW) in
    commodity ``key``, its average price (€/kWh), and its trades and their prices per
    counterparty; the operator's, which delivers nothing (it has no connection).

    The per-counterparty series are set on the validated body without being validated
    again: they are the pairs' trades and prices the position and the average price were
    computed from, and validating them (a copy of 192,000 values a peer at 1000 peers)
    took half a minute of a 1000-peer clearing."""
    out = {}
    for name in peers:
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(np.abs(pos[name]) > 1e-9, pay[name] / (period_h * pos[name]), 0.0)
        body = ClearingBody(
            quantities_kw={key: pos[name].tolist()}, prices_eur_per_kwh={key: avg.tolist()},
            position_kw=pos[name].tolist(), converged=converged)
        kw, price = by_kw.get(name), by_price.get(name)
        if kw or price:
            body = body.model_copy(update={"by_counterparty_kw": {key: kw} if kw else None,
                                            "by_counterparty_price": {key: price} if price
                                            else None})
        out[name] = body
    if operator is not None:
        out[operator] = operator_clearing(periods, converged)
    return out


def bilateral_settlements(peers: list[str], operator: str | None, periods: int,
                          pos: Mapping[str, np.ndarray], pay: Mapping[str, np.ndarray]
                          ) -> dict[str, SettlementBody]:
    """The traded bill of a bilateral market's trades; the realised power beyond the
    position is retail (no deviation charge: the trades are physical contracts the
    retailer balances); the operator's bill is zero."""
    out = {name: zero_settlement(pos[name], pay[name]) for name in peers}
    if operator is not None:
        out[operator] = operator_settlement(periods)
    return out


def _path_of(fn: Callable) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def dump_market(core: MarketCore, params: MarketParams, check: Callable | None = None) -> dict:
    """A market (its core, wrapped by a network ``check`` where one follows it) and its
    parameters as JSON-ready data, for a coordinator process."""
    data = params.data
    return {"core": core_path(core), "check": None if check is None else _path_of(check),
            "params": params.model_dump(mode="json"),
            "data": {"buy_eur_per_kwh": list(data.buy_eur_per_kwh),
                     "sell_eur_per_kwh": list(data.sell_eur_per_kwh),
                     "p2v_eur_per_kwh": data.p2v_eur_per_kwh}}


def load_market(raw: dict) -> tuple[MarketCore, MarketParams]:
    """Inverse of ``dump_market``; a one-line error for anything else."""
    try:
        core = load_core(raw["core"])
        if raw.get("check"):
            core = load_object(raw["check"])(core)
        data = MarketData(**{k: tuple(v) if isinstance(v, list) else v
                             for k, v in raw.get("data", {}).items()})
        return core, core.params_type.model_validate(raw["params"]).with_data(data)
    except (KeyError, TypeError, AttributeError, ImportError, ValueError) as exc:
        raise ValueError(f"not a market description ({str(exc).splitlines()[0]})") from None
