"""Any mechanism's day-ahead trades cleared against the network (``market.network_check:
clearance``): ``checked(mech)`` wraps a mechanism so that the network operator clears its
trades, as in the clearance market (``coordinator.mechanisms.clearance``).

While the inner mechanism runs, the wrapper only passes its rounds through (the operator
takes no part in them). When the inner market is done, two more rounds:

1. **Plan.** Every participant is asked for its planned net demand (a ``net`` term with
   nothing in it); it answers ``net`` without re-planning. These fix the network's base
   injections.
2. **Operator.** The inner clearing's trades go to the operator with those quotes. A
   bilateral market's trades are its own (every positive ``by_counterparty_kw`` entry: the
   agent buys from that counterparty); a pooled market's are the double auction of its
   positions per period (``position_kw`` < 0 sells, > 0 buys; one price, so who trades
   with whom does not change a bill). The operator answers the kW it accepts of each.

Clearing and settlement are the inner mechanism's less the curtailed trades: a
participant's position loses its net curtailed purchase (what the operator refused goes
to the retailer: the agent's realised power beyond its position is retail), and its
traded bill loses the curtailed trades (bilateral: at their own prices; pooled: in
proportion, accepted / offered of that participant in the period). Rounds are recorded
with the clearance market's keys, so ``clearance.parquet`` is written alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from lemgrid.coordinator.mechanisms.base import (
    MarketCore,
    RoundRecord,
    horizon,
    operator_clearing,
    operator_settlement,
)
from lemgrid.coordinator.mechanisms.clearance import (
    ClearanceParams,
    ClearanceState,
    PairSeries,
    curtailed_purchase,
    export_caps,
    match_day,
    operator_signal,
    quoted_net,
    record_round,
    take_answer,
    trade_positions,
    with_export_caps,
)
from lemgrid.coordinator.mechanisms.clearance import check_offer as check_quantities
from lemgrid.coordinator.protocol import (
    NET,
    ClearingBody,
    OfferBody,
    SettlementBody,
    SignalBody,
    Terms,
    series_array,
)

OPERATOR_KIND = "operator"
MIN_TRADE_KW = 1e-9  # positions and trades below this are rounding, not trades
# a pooled market's trades carry one price, 0 (its bills are scaled, not repriced)
POOLED = ClearanceParams(bid_eur_per_kwh=0.0, ask_eur_per_kwh=0.0, min_trade_kw=MIN_TRADE_KW)


@dataclass
class CheckState:
    inner: object
    participants: list[str]
    operator: str | None
    periods: int
    period_h: float
    phase: str = "inner"  # inner -> plan -> operator
    round: int = 0
    clearings: dict[str, ClearingBody] = field(default_factory=dict)  # the inner market's
    bilateral: bool = False
    check: ClearanceState | None = None

    @property
    def records(self) -> list[RoundRecord]:
        return [*getattr(self.inner, "records", []), *(self.check.records if self.check else [])]

    @property
    def converged(self) -> bool:
        return bool(getattr(self.inner, "converged", True))

    @property
    def stopped(self) -> str:
        return self.check.stopped if self.check else ""


def checked(mech: MarketCore) -> MarketCore:
    """``mech`` with its trades cleared by the network operator (module docstring)."""

    def init(roster, params, day: int = 0):
        operators = [n for n, b in roster.items() if b.kind == OPERATOR_KIND]
        if len(operators) > 1:
            raise ValueError(f"more than one operator registered: {', '.join(operators)}")
        inner_roster = {n: b for n, b in roster.items() if b.kind != OPERATOR_KIND}
        periods, period_h = horizon(inner_roster)
        signals, inner = mech.init(inner_roster, params, day)
        state = CheckState(inner, list(inner_roster), operators[0] if operators else None,
                           periods, period_h)
        return signals, state

    def step(offers, state: CheckState, params):
        state.round += 1
        if state.phase == "inner":
            signals, state.inner, done = mech.step(offers, state.inner, params)
            if not done:
                return signals, state, False
            state.clearings = mech.clear(state.inner, params)
            state.phase = "plan"
            return {n: SignalBody(terms={NET: Terms()}) for n in state.participants}, state, False
        if state.phase == "plan":
            return _plan_round(offers, state)
        state.check.round = state.round
        take_answer(offers.get(state.operator), state.check)
        return {}, state, True

    def clear(state: CheckState, params):
        return clear_checked(state)

    def settle(state: CheckState, params, meters):
        return settle_checked(state, mech.settle(state.inner, params, meters))

    def check_offer(body: OfferBody, periods: int) -> str | None:
        if body.accepted_kw is not None or set(body.quantities_kw) == {NET}:
            return check_quantities(body, periods)
        return mech.check_offer(body, periods)

    return dataclasses.replace(
        mech, kinds=mech.kinds | {OPERATOR_KIND}, init=init, step=step, clear=clear,
        settle=settle, check_offer=check_offer)


# -- the trades ----------------------------------------------------------------------------
def _plan_round(offers, state: CheckState):
    """Take the planned nets, derive the trades and put them to the operator (none to put,
    or no operator: every trade stands)."""
    net = quoted_net(offers, state.participants, state.periods)
    state.bilateral = any(c.by_counterparty_kw for c in state.clearings.values())
    pairs, offered, price = (bilateral_trades if state.bilateral else pooled_trades)(
        state.clearings, state.participants, state.periods)
    cs = ClearanceState(periods=state.periods, period_h=state.period_h, peers=state.participants,
                        operator=state.operator, net=net, pairs=pairs, offered=offered,
                        price=price, round=state.round)
    state.check = cs
    if state.operator is None or not pairs:
        cs.accepted, cs.converged = offered.copy(), True
        record_round(cs)
        return {}, state, True
    record_round(cs)
    state.phase = "operator"
    return {state.operator: operator_signal(cs)}, state, False


def bilateral_trades(clearings: Mapping[str, ClearingBody], names: list[str], periods: int):
    """(pairs (seller, buyer), kW (K, T), €/kWh (K, T)): every positive per-counterparty
    entry of a bilateral clearing is a purchase from that counterparty."""
    index = {n: i for i, n in enumerate(names)}
    found = PairSeries(periods)
    for buyer in names:
        c = clearings.get(buyer)
        for key, by in ((c.by_counterparty_kw or {}).items() if c else ()):
            prices = (c.by_counterparty_price or {}).get(key, {})
            for seller, values in by.items():
                q = np.maximum(series_array(values, periods), 0.0)
                if seller not in index or q.max(initial=0.0) <= MIN_TRADE_KW:
                    continue
                k = found.row(index[seller], index[buyer])
                found.kw[k] += np.where(q > MIN_TRADE_KW, q, 0.0)
                p = series_array(prices.get(seller, {}), periods)
                found.price[k] = np.where(q > MIN_TRADE_KW, p, found.price[k])
    return found.arrays()


def pooled_trades(clearings: Mapping[str, ClearingBody], names: list[str], periods: int):
    """The double auction of the positions, period by period (participants in roster
    order, one price: ``POOLED``)."""
    pos = np.array([clearings[n].position_kw if n in clearings else np.zeros(periods)
                    for n in names], float).reshape(len(names), periods)
    return match_day(np.where(np.abs(pos) > MIN_TRADE_KW, pos, 0.0), POOLED)


# -- clearing and settlement less the curtailed trades -------------------------------------
def _curtailed(state: CheckState) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                           dict[str, np.ndarray]]:
    """Per participant: net curtailed purchase (kW), the bill of its curtailed trades at
    their prices (€) and the share of its traded kW accepted (1 where it offered none)."""
    cs = state.check
    accepted = cs.accepted
    _, pay_acc = trade_positions(cs)
    _, pay_off = trade_positions(cs, cs.offered)
    gross_off = {n: np.zeros(cs.periods) for n in cs.peers}
    gross_acc = {n: np.zeros(cs.periods) for n in cs.peers}
    for k, (s, b) in enumerate(cs.pairs):
        for i in (s, b):
            gross_off[cs.peers[i]] += cs.offered[k]
            gross_acc[cs.peers[i]] += accepted[k]
    share = {n: np.where(gross_off[n] > MIN_TRADE_KW,
                         gross_acc[n] / np.maximum(gross_off[n], MIN_TRADE_KW), 1.0)
             for n in cs.peers}
    return (curtailed_purchase(cs), {n: pay_off[n] - pay_acc[n] for n in cs.peers}, share)


def _ratio(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    return np.where(np.abs(old) > MIN_TRADE_KW, new / np.where(old == 0, 1.0, old), 1.0)


def clear_checked(state: CheckState) -> dict[str, ClearingBody]:
    """The inner clearings less the curtailed trades: positions, cleared quantities (in
    proportion), bilateral, the trades per counterparty, and the export caps of those
    whose sales were curtailed (``export_caps``)."""
    out = dict(state.clearings)
    if state.operator is not None:  # no connection: cleared at zero, like the admm's
        out[state.operator] = operator_clearing(state.periods, state.converged)
    if state.check is None:
        return out
    curtailed, _, _ = _curtailed(state)
    cs = state.check
    for name in cs.peers:
        body = out.get(name)
        if body is None:
            continue
        old = np.asarray(body.position_kw, float)
        pos = old - curtailed[name]
        f = _ratio(pos, old)
        out[name] = body.model_copy(update={
            "position_kw": pos.tolist(),
            "quantities_kw": {k: (np.asarray(v, float) * f).tolist()
                              for k, v in body.quantities_kw.items()},
            "by_counterparty_kw": _by_counterparty(body, name, cs)})
    return with_export_caps(out, export_caps(cs, curtailed))


def _by_counterparty(body: ClearingBody, name: str, cs: ClearanceState):
    """A bilateral clearing's trades per counterparty less the curtailed ones."""
    if not body.by_counterparty_kw:
        return body.by_counterparty_kw
    out = {key: {o: series_array(v, cs.periods) for o, v in by.items()}
           for key, by in body.by_counterparty_kw.items()}
    key = next(iter(out))
    for k, (s, b) in enumerate(cs.pairs):
        cut = cs.offered[k] - cs.accepted[k]
        seller, buyer = cs.peers[s], cs.peers[b]
        if name == buyer and seller in out[key]:
            out[key][seller] = out[key][seller] - cut
        elif name == seller and buyer in out[key]:
            out[key][buyer] = out[key][buyer] + cut
    return {key: {o: v.tolist() for o, v in by.items()} for key, by in out.items()}


def settle_checked(state: CheckState, bodies: dict[str, SettlementBody]
                   ) -> dict[str, SettlementBody]:
    """The inner bills less the curtailed trades (module docstring); deviation and
    violation costs stand."""
    out = dict(bodies)
    if state.operator is not None:
        out[state.operator] = operator_settlement(state.periods)
    if state.check is None:
        return out
    curtailed, curtailed_eur, share = _curtailed(state)
    for name in state.check.peers:
        body = out.get(name)
        if body is None:
            continue
        traded = np.asarray(body.traded_eur, float)
        traded = traded - curtailed_eur[name] if state.bilateral else traded * share[name]
        out[name] = body.model_copy(update={
            "position_kw": (np.asarray(body.position_kw, float) - curtailed[name]).tolist(),
            "traded_eur": traded.tolist()})
    return out
