"""A uniform-price call auction, written as a third party would write a lemgrid mechanism:
one module, its parameter model, its pure core and its plug-in, registered through the
entry-point group ``lemgrid.mechanisms``. lemgrid's own code is not changed for it.

Every participant quotes its planned net demand per period (the built-in ``quote``
strategy: + import, − export). Per period, with D the summed demand and G the summed
supply of the quotes, the auction matches M = min(D, G) at one price for everyone,
π = λs + w·(λb − λs) (λb, λs the period's retail buy and feed-in prices, w =
``price_weight``). Each buyer gets its share q·M/D, each seller sells q·M/G; the rest of
each quote, and whatever is realised beyond the cleared position, is retail. Buyers pay
what sellers receive: the traded bills sum to zero in every period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from lemgrid import MarketCore, MarketParams, Mechanism, RunContext
from lemgrid.coordinator.mechanisms.base import RoundRecord, horizon, zero_settlement
from lemgrid.coordinator.protocol import ClearingBody, OfferBody, SignalBody
from lemgrid.scenarios.results.sections import Section

KEY = "net"  # what the quote strategy answers
TITLE = "Call auction"


class AuctionParams(MarketParams):
    mechanism: Literal["call_auction"] = "call_auction"
    price_weight: float = Field(0.5, ge=0, le=1, description="the uniform price's place "
                                "between the feed-in price (0) and the retail buy price (1)")


@dataclass
class AuctionState:
    periods: int
    period_h: float
    day: int
    quotes: dict[str, np.ndarray] = field(default_factory=dict)
    price: np.ndarray | None = None
    share: dict[str, np.ndarray] = field(default_factory=dict)  # cleared kW, signed
    records: list[RoundRecord] = field(default_factory=list)
    converged: bool = True
    round: int = 0


def init(roster, params: AuctionParams, day: int = 0):
    periods, period_h = horizon(roster)
    return {n: SignalBody() for n in roster}, AuctionState(periods, period_h, day)


def step(offers: Mapping[str, OfferBody], state: AuctionState, params: AuctionParams):
    zero = np.zeros(state.periods)
    state.quotes = {n: np.asarray(o.quantities_kw[KEY], float) for n, o in offers.items()}
    q = np.array(list(state.quotes.values())) if state.quotes else np.zeros((0, state.periods))
    demand, supply = np.maximum(q, 0).sum(axis=0), np.maximum(-q, 0).sum(axis=0)
    matched = np.minimum(demand, supply)
    buy, sell = params.data.day(state.day, state.periods)
    state.price = sell + params.price_weight * (buy - sell)
    for name, quote in state.quotes.items():
        side = np.where(quote > 0, demand, supply)
        state.share[name] = np.divide(quote * matched, side, out=zero.copy(), where=side > 0)
    state.round = 1
    state.records.append(RoundRecord(1, float(np.abs(demand - supply).sum()), {
        "demand_kw": demand, "supply_kw": supply, "matched_kw": matched,
        "price_eur_per_kwh": state.price}))
    return {}, state, True


def clear(state: AuctionState, params) -> dict[str, ClearingBody]:
    return {n: ClearingBody(quantities_kw={KEY: s.tolist()},
                            prices_eur_per_kwh={KEY: state.price.tolist()},
                            position_kw=s.tolist(), converged=True)
            for n, s in state.share.items()}


def settle(state: AuctionState, params, meters):
    h = state.period_h
    return {n: zero_settlement(s, s * state.price * h) for n, s in state.share.items()}


def check_offer(body: OfferBody, periods: int) -> str | None:
    q = body.quantities_kw.get(KEY)
    return None if q is not None and len(q) == periods else f"quantities_kw.{KEY}: {periods} values"


CORE = MarketCore(params_type=AuctionParams, kinds=frozenset({"prosumer", "ev", "building"}),
                  init=init, step=step, clear=clear, settle=settle, check_offer=check_offer)


def results(ctx: RunContext) -> dict:
    """``auction.parquet``: per day and period the matched power and the price."""
    rows = [{"day": d.day, "period": t, "matched_kw": float(m), "price_eur_per_kwh": float(p)}
            for d in ctx.days for r in d.rounds[:1]
            for t, (m, p) in enumerate(zip(r.record.per_period["matched_kw"],
                                           r.record.per_period["price_eur_per_kwh"]))]
    table = pd.DataFrame(rows, columns=["day", "period", "matched_kw", "price_eur_per_kwh"])
    table.to_parquet(ctx.out / "auction.parquet")
    return {"matched_kwh": float(table["matched_kw"].sum() * ctx.period_h)}


def sections(run) -> list[Section]:
    table = run.tables.get("auction")
    by_day = table.groupby("day")["matched_kw"].sum() * run.period_h
    return [Section(TITLE, ["day", "matched kWh"],
                    [[str(day + 1), f"{kwh:.3f}"] for day, kwh in by_day.items()])]


MECHANISM = Mechanism(
    core=CORE, description="uniform-price call auction over the quoted net demand",
    strategy="quote", results=results, tables=("auction",), sections=sections,
    kpis={"matched_kwh": ("market", "matched_kwh")})
