"""The four-rule iterative prosumer-to-vehicle market (Faia et al. 2021, Eqs 34–39).

Sellers are prosumers, buyers are EVs; each round they answer the coordinator's
per-period limits with offers (P2V quantities). With S_t = Σ_p p2v_pt and
B_t = Σ_v p2v_vt, the error is Σ_t |S_t − B_t| (Eq. 35). While it exceeds the
tolerance, round r applies rule r (at most ``max_rounds`` rounds):

1. buyer limit  L_vt := L_vt if S_t > 0 else 0
2. seller limit L_pt := L_pt if B_t > 0 else 0
3. buyer limit  L_vt := S_t · p2v_vt / B_t   (supply shared pro rata; 0 where B_t = 0)
4. seller limit L_pt := B_t · p2v_pt / S_t   (demand shared pro rata; 0 where S_t = 0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field

from lemgrid.coordinator.mechanisms.base import (
    MarketCore,
    MarketParams,
    RoundRecord,
    horizon,
    limit,
    zero_settlement,
)
from lemgrid.coordinator.protocol import ClearingBody, OfferBody, RegisterBody, SignalBody

KINDS = frozenset({"prosumer", "ev"})
SIDE = {"prosumer": "seller", "ev": "buyer"}
KEY = "p2v"  # the commodity key in limits, offers and clearings


class P2VParams(MarketParams):
    """The P2V market's parameters; its price is the tariffs' P2V price (public data)."""

    mechanism: Literal["p2v_rules"] = "p2v_rules"
    p2v: bool = Field(True, description="false: no P2V market, retail and export only "
                      "(the paper's scenario A)")
    tolerance_kw: float = Field(0.001, ge=0, description="the market stops once Σ_t |S_t − "
                                "B_t|, the supply-demand error, is at most this (kW)")

    def market_open(self) -> bool:
        return self.p2v

    def agents_trade_p2v(self) -> bool:
        return self.p2v


@dataclass
class P2VState:
    sides: dict[str, str]
    limits_kw: dict[str, np.ndarray]
    periods: int
    period_h: float = 0.25
    round: int = 0
    converged: bool = False
    records: list[RoundRecord] = field(default_factory=list)
    last_offers: dict[str, np.ndarray] = field(default_factory=dict)
    cleared: dict[str, np.ndarray] = field(default_factory=dict)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, num / safe, 0.0)


def _rule1(L, q, S, B):
    return np.where(S > 0, L, 0.0)


def _rule2(L, q, S, B):
    return np.where(B > 0, L, 0.0)


def _rule3(L, q, S, B):
    return S * _ratio(q, B)


def _rule4(L, q, S, B):
    return B * _ratio(q, S)


# rule number -> (side it limits, update(L, own quantity, S, B))
RULES: dict[int, tuple[str, Callable]] = {
    1: ("buyer", _rule1), 2: ("seller", _rule2), 3: ("buyer", _rule3), 4: ("seller", _rule4),
}


def totals(quantities: Mapping[str, np.ndarray], sides: Mapping[str, str], periods: int):
    """S_t and B_t: the per-period sums of sellers' and buyers' quantities."""
    S, B = np.zeros(periods), np.zeros(periods)
    for name, q in quantities.items():
        if sides[name] == "seller":
            S += q
        else:
            B += q
    return S, B


def init_p2v(roster: Mapping[str, RegisterBody], params: P2VParams, day: int = 0):
    """First signals: every agent may trade up to its connection's P2V limit."""
    periods, period_h = horizon(roster)
    state = P2VState(
        sides={n: SIDE[r.kind] for n, r in roster.items()},
        limits_kw={n: limit(r, KEY, periods, 0.0) for n, r in roster.items()},
        periods=periods, period_h=period_h)
    return _signals(state.limits_kw), state


def _signals(limits: Mapping[str, np.ndarray]) -> dict[str, SignalBody]:
    return {n: SignalBody(terms={KEY: {"limit_kw": lim.tolist()}}) for n, lim in limits.items()}


def check_offer(body: OfferBody, periods: int) -> str | None:
    q = body.quantities_kw.get(KEY)
    if q is None:
        return f"quantities_kw: a P2V offer needs {KEY!r}"
    if len(q) != periods or min(q, default=0.0) < 0:
        return f"quantities_kw.{KEY}: expected {periods} values >= 0"
    return None


def offered(offers: Mapping[str, OfferBody], state: P2VState) -> dict[str, np.ndarray]:
    """Offered quantities by agent; an agent that did not answer offers nothing."""
    zero = np.zeros(state.periods)
    return {n: np.asarray(offers[n].quantities_kw[KEY], float) if n in offers else zero
            for n in state.sides}


def p2v_rules(offers: Mapping[str, OfferBody], state: P2VState, params: P2VParams):
    """One coordinator step: record the round, stop or apply the next rule.

    Returns ``(signals, state, done)``: every agent's limits for the next round.
    """
    q = offered(offers, state)
    S, B = totals(q, state.sides, state.periods)
    state.round += 1
    state.last_offers = q
    error = float(np.abs(S - B).sum())
    state.converged = error <= params.tolerance_kw
    done = state.converged or state.round >= params.rounds
    rule = None if done else (state.round - 1) % len(RULES) + 1
    changed, n_changed = {}, 0
    if rule is not None:
        side, update = RULES[rule]
        for name in (n for n, s in state.sides.items() if s == side):
            new = update(state.limits_kw[name], q[name], S, B)
            diff = int(np.count_nonzero(new != state.limits_kw[name]))
            if diff:
                changed[name], n_changed = new, n_changed + diff
        state.limits_kw.update(changed)
    state.records.append(RoundRecord(
        state.round, error,
        {"sold_kw": S, "bought_kw": B, "imbalance_kw": S - B, "matched_kw": np.minimum(S, B),
         "price_eur_per_kwh": np.full(state.periods, params.data.p2v_eur_per_kwh)},
        {"rule_applied": rule, "limits_changed": n_changed}))
    return _signals(state.limits_kw), state, done


def _sign(state: P2VState, name: str) -> float:
    """+1 for a buyer (the market delivers), −1 for a seller (the market takes)."""
    return 1.0 if state.sides[name] == "buyer" else -1.0


def clear_p2v(state: P2VState, params: P2VParams) -> dict[str, ClearingBody]:
    """Final quantities from the last offers, balanced in every period.

    Where sellers offered more than buyers took (S_t > B_t), every seller's sale is
    scaled by B_t / S_t; where buyers wanted more (B_t > S_t), every buyer's purchase is
    scaled by S_t / B_t. The rest of each offer is retail: a seller exports it at the
    feed-in tariff, a buyer buys it at its time-of-use price (``position_kw`` is the
    cleared quantity, signed, so the agent's realised power minus it is retail).
    """
    S, B = totals(state.last_offers, state.sides, state.periods)
    matched = np.minimum(S, B)
    price = [params.data.p2v_eur_per_kwh] * state.periods
    out = {}
    for name, q in state.last_offers.items():
        total = S if state.sides[name] == "seller" else B
        cleared = q * _ratio(matched, total)
        state.cleared[name] = cleared
        out[name] = ClearingBody(quantities_kw={KEY: cleared.tolist()},
                                 prices_eur_per_kwh={KEY: price},
                                 position_kw=(_sign(state, name) * cleared).tolist(),
                                 converged=state.converged)
    return out


def settle_p2v(state: P2VState, params: P2VParams, meters: Mapping[str, np.ndarray]):
    """The P2V contract stands whatever was realised: the buyer pays the seller the P2V
    price for the cleared quantity; deviations go to retail (no market charge)."""
    h = state.period_h
    out = {}
    for name, cleared in state.cleared.items():
        position = _sign(state, name) * cleared
        out[name] = zero_settlement(position, position * params.data.p2v_eur_per_kwh * h)
    return out


CORE = MarketCore(params_type=P2VParams, kinds=KINDS, init=init_p2v, step=p2v_rules,
                  clear=clear_p2v, settle=settle_p2v, check_offer=check_offer)
