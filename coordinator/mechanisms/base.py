"""What every mechanism shares: its registry entry, round records and settlement helpers.

A mechanism is pure: ``init(roster, params, day) -> (signals, state)``,
``step(offers, state, params) -> (signals, state, done)``,
``clear(state, params) -> clearings`` (the day-ahead result) and
``settle(state, params, meters) -> settlements`` (the day's bills once the realised
powers are in); ``check_offer(body, periods)`` says what is wrong with an offer, if
anything, before the session accepts it. It states the agent kinds it serves and the strategy family agents use
to answer it (``limits``: re-plan under per-period limits; ``quote``: quote the planned
net demand).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from coordinator.protocol import ClearingBody, RegisterBody, SettlementBody


@dataclass(frozen=True)
class Mechanism:
    name: str
    params_type: type
    kinds: frozenset[str]
    family: str
    init: Callable
    step: Callable
    clear: Callable
    settle: Callable
    check_offer: Callable  # (OfferBody, periods) -> what is wrong with it, or None
    description: str = ""


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
    counterparty; the operator's, which delivers nothing (it has no connection)."""
    out = {}
    for name in peers:
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(np.abs(pos[name]) > 1e-9, pay[name] / (period_h * pos[name]), 0.0)
        out[name] = ClearingBody(
            quantities_kw={key: pos[name].tolist()}, prices_eur_per_kwh={key: avg.tolist()},
            by_counterparty_kw={key: by_kw[name]} if by_kw.get(name) else None,
            by_counterparty_price={key: by_price[name]} if by_price.get(name) else None,
            position_kw=pos[name].tolist(), converged=converged)
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
