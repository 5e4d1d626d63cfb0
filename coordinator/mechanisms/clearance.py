"""P2P trades matched by double auction and cleared by the network operator (Vieira
Fernandes, Christin, Kar, SmartGridComm 2024).

Round 1: every participant (prosumer, EV, building) quotes its planned net demand (the
``quote`` strategy; the signal sets no limit). The coordinator then matches, period by
period, the participants short of power (buy orders at ``bid_eur_per_kwh``) with those
with power to spare (sell orders at ``ask_eur_per_kwh``) by the double auction of
``coordinator.mechanisms.matching``: bids high to low against asks low to high, a trade
of the smaller remaining quantity at the seller's ask, a buyer going on to the next
seller until it is served. Trades below ``min_trade_kw`` are dropped. A pair's trades
over the day become one ``TradeTerms`` (kW per period).

Round 2 (with a network operator): the operator gets the trades and every participant's
quote (its net demand, which fixes the network's base injections) and answers the kW it
accepts of each trade (its DC clearance LP, ``grid.clearance``: the largest accepted
quantity within line, transformer and angle limits) and the limits that bind in each
period. Without an operator (``network: false``) every matched trade is accepted. An
operator that does not answer accepts nothing: the market stops, says so, and clears no
trade.

The day clears at the accepted trades: each participant's position is its net accepted
purchase, billed at the trades' prices; the rest of its realised power is retail, as
are the curtailed quantities. The operator is cleared and settled at zero.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import Field

from lemgrid.coordinator.mechanisms.base import (
    NETWORK_KINDS,
    MarketCore,
    MarketParams,
    RoundRecord,
    bilateral_clearings,
    bilateral_settlements,
    horizon,
    peers_and_operator,
)
from lemgrid.coordinator.mechanisms.matching import match_buses
from lemgrid.coordinator.protocol import (
    NET,
    P2P,
    ClearingBody,
    OfferBody,
    RegisterBody,
    SignalBody,
    Terms,
    TradeTerms,
)

KINDS = NETWORK_KINDS
CUT_TOL_KW = 1e-3  # curtailment below 1 W is HiGHS's tolerance (1e-7 MW), not the network


class ClearanceParams(MarketParams):
    """The double auction's bid and ask, the smallest trade kept, and whether the network
    operator clears the trades."""

    mechanism: Literal["clearance"] = "clearance"
    bid_eur_per_kwh: float = Field(0.20, ge=0, description="what every participant short "
                                   "of power bids in the double auction (the paper's 0.20)")
    ask_eur_per_kwh: float = Field(0.05, ge=0, description="what every participant with "
                                   "spare power asks (the paper's 0.05); a trade is priced "
                                   "at the seller's ask")
    min_trade_kw: float = Field(
        0.0, ge=0, description="matched trades below this are dropped before the network "
        "operator clears them; 0 keeps every trade, which is what the authors' code does in "
        "effect (it builds a list filtered at 1e-5 MW = 0.01 kW, then clears the unfiltered "
        "trades)")
    network: bool = Field(True, description="the network operator takes part and clears the "
                          "trades against its network's DC limits; false: every matched "
                          "trade stands")

    def operator_takes_part(self) -> bool:
        return self.network or super().operator_takes_part()


@dataclass
class ClearanceState:
    periods: int
    period_h: float
    peers: list[str]
    operator: str | None
    net: np.ndarray | None = None  # (N, T) quoted net demand (kW)
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (seller, buyer) indices
    offered: np.ndarray | None = None  # (K, T) matched kW
    price: np.ndarray | None = None  # (K, T) €/kWh
    accepted: np.ndarray | None = None  # (K, T) kW
    binding: dict[int, list[str]] = field(default_factory=dict)  # period -> limits
    records: list[RoundRecord] = field(default_factory=list)
    round: int = 0
    converged: bool = False
    stopped: str = ""


def init_clearance(roster: Mapping[str, RegisterBody], params: ClearanceParams, day: int = 0):
    periods, period_h = horizon(roster)
    peers, operator = peers_and_operator(roster, params.network)
    state = ClearanceState(periods, period_h, peers, operator)
    return {n: SignalBody() for n in peers}, state


def check_offer(body: OfferBody, periods: int) -> str | None:
    for key, values in body.quantities_kw.items():
        if len(values) != periods:
            return f"quantities_kw.{key}: expected {periods} values, got {len(values)}"
    for k, values in enumerate(body.accepted_kw or []):
        if len(values) != periods:
            return f"accepted_kw.{k}: expected {periods} values, got {len(values)}"
    return None


def quoted_net(offers, peers: list[str], periods: int) -> np.ndarray:
    """(N, T) the participants' quoted net demand (kW; 0 for one that sent none)."""
    net = np.zeros((len(peers), periods))
    for i, name in enumerate(peers):
        body = offers.get(name)
        if body is not None and NET in body.quantities_kw:
            net[i] = body.quantities_kw[NET]
    return net


class PairSeries:
    """Trades gathered per pair (seller, buyer) in the order first seen: kW and €/kWh per
    period."""

    def __init__(self, periods: int):
        self.periods = periods
        self.index: dict[tuple[int, int], int] = {}
        self.kw: list[np.ndarray] = []
        self.price: list[np.ndarray] = []

    def row(self, seller: int, buyer: int) -> int:
        k = self.index.setdefault((seller, buyer), len(self.index))
        if k == len(self.kw):
            self.kw.append(np.zeros(self.periods))
            self.price.append(np.zeros(self.periods))
        return k

    def arrays(self) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
        """(pairs, kW (K, T), €/kWh (K, T))."""
        if not self.index:
            return [], np.zeros((0, self.periods)), np.zeros((0, self.periods))
        return list(self.index), np.array(self.kw), np.array(self.price)


def match_day(net: np.ndarray, params: ClearanceParams) -> tuple[list[tuple[int, int]],
                                                                  np.ndarray, np.ndarray]:
    """(pairs (seller, buyer), matched kW (K, T), price (K, T)) of the double auction of
    every period's quotes (participants in roster order; net < 0 sells, > 0 buys)."""
    N, T = net.shape
    found = PairSeries(T)
    for t in range(T):
        surplus = {i: float(-net[i, t]) for i in range(N) if net[i, t] < 0}
        deficit = {i: float(net[i, t]) for i in range(N) if net[i, t] > 0}
        for m in match_buses(surplus, deficit, params.bid_eur_per_kwh, params.ask_eur_per_kwh,
                             params.min_trade_kw):
            k = found.row(m.seller_bus, m.buyer_bus)
            found.kw[k][t] += m.q_mw  # kW here: the matching keeps the caller's unit
            found.price[k][t] = m.price_eur_per_kwh
    return found.arrays()


def record_round(state: ClearanceState) -> None:
    """Append the round's record: offered and accepted kW per period, the trades and the
    binding limits (what ``scenarios.results.clearance`` reads)."""
    accepted = state.accepted if state.accepted is not None else np.zeros_like(state.offered)
    offered = state.offered.sum(axis=0)
    state.records.append(RoundRecord(
        state.round, float(np.abs(offered - accepted.sum(axis=0)).max(initial=0.0)),
        per_period={"offered_kw": offered, "accepted_kw": accepted.sum(axis=0)},
        scalars={"trades": len(state.pairs),
                 "binding_periods": float(sum(1 for b in state.binding.values() if b)),
                 # period -> the limits that bind, and every trade offered and accepted,
                 # as JSON text (table columns)
                 "binding": json.dumps({str(t): v for t, v in sorted(state.binding.items())}),
                 "trades_json": json.dumps([
                     {"seller": state.peers[s], "buyer": state.peers[b],
                      "offered_kw": state.offered[k].tolist(),
                      "accepted_kw": accepted[k].tolist()}
                     for k, (s, b) in enumerate(state.pairs)])}))


def step_clearance(offers, state: ClearanceState, params: ClearanceParams):
    """Round 1: match the quotes (and ask the operator); round 2: take its answer."""
    state.round += 1
    if state.round == 1:
        state.net = quoted_net(offers, state.peers, state.periods)
        state.pairs, state.offered, state.price = match_day(state.net, params)
        if state.operator is None or not state.pairs:
            state.accepted = state.offered.copy()
            state.converged = True
            record_round(state)
            return {}, state, True
        record_round(state)
        return {state.operator: operator_signal(state)}, state, False
    take_answer(offers.get(state.operator), state)
    return {}, state, True


def take_answer(body: OfferBody | None, state: ClearanceState) -> None:
    """The operator's answer: the kW it accepts of each trade (at most what was offered)
    and the limits that bind; no answer accepts nothing and says so. Records the round."""
    accepted = np.zeros_like(state.offered)
    if body is None or body.accepted_kw is None or len(body.accepted_kw) != len(state.pairs):
        state.stopped = (f"the operator {state.operator} did not answer the clearance; "
                         "no trade is cleared")
    else:
        accepted = np.clip(np.asarray(body.accepted_kw, float), 0.0, state.offered)
        state.binding = {int(t): list(v) for t, v in (body.binding or {}).items()
                         if t.isdigit() and int(t) < state.periods}
        state.converged = True
    state.accepted = accepted
    record_round(state)


def operator_signal(state: ClearanceState) -> SignalBody:
    """The operator's signal: the trades and every participant's quote (its net demand)."""
    trades = [TradeTerms.model_construct(seller=state.peers[s], buyer=state.peers[b],
                                         kw=state.offered[k].tolist(),
                                         price_eur_per_kwh=state.price[k].tolist())
              for k, (s, b) in enumerate(state.pairs)]
    quotes = {n: Terms.model_construct(target_kw=state.net[i].tolist())
              for i, n in enumerate(state.peers)}
    return SignalBody.model_construct(terms={}, by_counterparty={NET: quotes}, rho=None,
                                      counterparties=None, trades=trades)


def trade_positions(state: ClearanceState, kw: np.ndarray | None = None
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each participant's net accepted purchase (kW) and its payment (€) per period (of the
    trades' quantities ``kw`` where given, e.g. those offered)."""
    pos = {n: np.zeros(state.periods) for n in state.peers}
    pay = {n: np.zeros(state.periods) for n in state.peers}
    accepted = state.accepted if state.accepted is not None else np.zeros((0, state.periods))
    accepted = accepted if kw is None else kw
    for k, (s, b) in enumerate(state.pairs):
        euros = state.period_h * state.price[k] * accepted[k]
        seller, buyer = state.peers[s], state.peers[b]
        pos[buyer] += accepted[k]
        pos[seller] -= accepted[k]
        pay[buyer] += euros
        pay[seller] -= euros
    return pos, pay


def curtailed_purchase(state: ClearanceState) -> dict[str, np.ndarray]:
    """Per participant, kW per period: its offered less its accepted net purchase (< 0: the
    operator curtailed its net sales)."""
    pos_off, _ = trade_positions(state, state.offered)
    pos_acc, _ = trade_positions(state)
    return {n: pos_off[n] - pos_acc[n] for n in state.peers}


def export_caps(state: ClearanceState, curtailed: Mapping[str, np.ndarray]
                ) -> dict[str, dict[str, float]]:
    """Where the operator curtailed a participant's net sales, the most it may feed in
    (period index → kW): its quoted export less the curtailed sales. That is the injection
    the operator's flows assume (``grid.clearance``: a refused trade is not delivered), so
    the realised power follows the clearance, not the plan (the buyer's refused purchase is
    retail and comes through the network as before)."""
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(state.peers):
        cut = np.asarray(curtailed.get(name, ()), float)
        periods = np.flatnonzero(cut < -CUT_TOL_KW)
        if periods.size and state.net is not None:
            export = np.maximum(-state.net[i], 0.0)
            out[name] = {str(t): float(max(export[t] + cut[t], 0.0)) for t in periods}
    return out


def with_export_caps(clearings: dict[str, ClearingBody], caps: Mapping[str, dict[str, float]]
                     ) -> dict[str, ClearingBody]:
    """``clearings`` with each capped participant's ``export_limit_kw``."""
    return {n: (c.model_copy(update={"export_limit_kw": caps[n]}) if n in caps else c)
            for n, c in clearings.items()}


def clear_clearance(state: ClearanceState, params: ClearanceParams) -> dict[str, ClearingBody]:
    """Every participant's accepted trades per counterparty at their prices, its position
    (net accepted purchase), its average price and, where its sales were curtailed, its
    export cap (``export_caps``)."""
    by_kw: dict[str, dict[str, list[float]]] = {n: {} for n in state.peers}
    by_price: dict[str, dict[str, list[float]]] = {n: {} for n in state.peers}
    accepted = state.accepted if state.accepted is not None else np.zeros((0, state.periods))
    for k, (s, b) in enumerate(state.pairs):
        seller, buyer = state.peers[s], state.peers[b]
        by_kw[buyer][seller] = accepted[k].tolist()
        by_kw[seller][buyer] = (-accepted[k]).tolist()
        by_price[buyer][seller] = by_price[seller][buyer] = state.price[k].tolist()
    pos, pay = trade_positions(state)
    clearings = bilateral_clearings(key=P2P, peers=state.peers, operator=state.operator,
                                    periods=state.periods, period_h=state.period_h, pos=pos,
                                    pay=pay, by_kw=by_kw, by_price=by_price,
                                    converged=state.converged)
    if state.accepted is None:
        return clearings
    return with_export_caps(clearings, export_caps(state, curtailed_purchase(state)))


def settle_clearance(state: ClearanceState, params: ClearanceParams, meters):
    """The accepted trades' bill (``bilateral_settlements``)."""
    pos, pay = trade_positions(state)
    return bilateral_settlements(state.peers, state.operator, state.periods, pos, pay)


CORE = MarketCore(params_type=ClearanceParams, kinds=KINDS, init=init_clearance,
                  step=step_clearance, clear=clear_clearance, settle=settle_clearance,
                  check_offer=check_offer)
