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

from coordinator.protocol import RegisterBody, SettlementBody


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
