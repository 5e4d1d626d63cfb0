"""The local energy market of a locality (docs/mechanisms/locality.md): participants quote their
expected net demand per period day-ahead, the market operator (LEMO) sets one importer
and one exporter price per period from the locality totals, and settles each period on
the realised power.

Shared by the pricing rules (``amc``, ``gdrmc``); each rule is a function
``(grid buy λb, grid sell λs, D, G, limits) -> (π_import, π_export)`` per period.

Day-ahead, with q_i the quote of participant i (+ import, − export):
  D = Σ max(q_i, 0) (locality demand), G = Σ max(−q_i, 0) (locality generation).
The utility sees the locality as one user (RECON of "the individual users' CDL and PIL
should be aggregated"): its demand limit is Σ CDL_i and its injection limit Σ PIL_i.
  - Importer locality (D > G): import above the demand limit, N − Σ CDL with N = D − G,
    costs ``cdl_factor`` × λb; importers share only the demand D' = G + min(N, Σ CDL)
    in the market and pay the penalty on the rest.
  - Exporter locality (G > D): export above the injection limit is not paid (the grid
    does not take it); exporters share the generation G' = D + min(G − D, Σ PIL).
Either way the prices balance the LEMO's budget against the grid on the quotes:
  π_im · D − π_ex · G = grid cost of the locality's net quote.

Price discovery (RECON of "participants optimise ... considering the predicted market
net demand"): with ``price_rounds`` > 1 the operator announces the prices the round's
quotes give, damped (π_r = (1 − a)·π_(r−1) + a·π(quotes_r), a = ``damping``), and the
participants re-plan against them, until the quotes change by at most ``tolerance_kw``
(summed over participants and periods) or ``price_rounds`` is reached. With households that
look alike this tâtonnement oscillates (they all move to the same cheap period); it is a
setting to study, off by default. The day clears at
the prices of the last quotes, so the operator's budget balances on them. One round is
the paper's one-shot market: quotes planned against the grid's prices.

Settlement of period t for participant i with realised power a_i
(docs/mechanisms/locality.md#equations):
  traded    = Δt (q⁺ π_im − q⁻ π_ex)                   (the quote at the cleared prices)
  deviation = Δt [(a⁺ π_im − a⁻ π_ex) − (q⁺ π_im − q⁻ π_ex)]   (actual − quoted)
  violation = ρ · |a − q| · π · Δt, π = π_im for an importer (by its quote), else π_ex
The market covers the whole realised power (the position is a_i): nothing is retail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from lemgrid.coordinator.mechanisms.base import MarketParams, RoundRecord, horizon, limit, realised
from lemgrid.coordinator.protocol import (
    ClearingBody,
    OfferBody,
    RegisterBody,
    SettlementBody,
    SignalBody,
)

KINDS = frozenset({"prosumer", "ev", "building"})
KEY = "net"  # offers quote the signed net demand


class LocalityParams(MarketParams):
    """The locality market's rules (``amc`` and ``gdrmc`` narrow ``mechanism``); the grid's
    prices are the run's retail prices (public data), the CDL factor κ and the power
    injection limits the utility's (``cdl_factor``, ``pil``)."""

    price_rounds: int = Field(1, ge=1, description="rounds of price discovery (participants "
                              "re-plan against the announced prices); 1 is the one-shot "
                              "market, quotes planned at the grid's prices")
    damping: float = Field(0.5, ge=0, le=1, description="weight of a round's prices in the "
                           "prices announced for the next")
    tolerance_kw: float = Field(0.001, ge=0, description="price discovery ends once the "
                                "quotes change by at most this between rounds (kW, summed "
                                "over participants and periods)")
    demand_limit: bool = Field(True, description="the locality's demand limit (the sum of "
                               "the consumer demand limits) applies")
    penalty_rate: float = Field(0.2, ge=0, description="violation cost rate ρ on the "
                                "deviation from the quote")


@dataclass
class Limits:
    """The locality's aggregated utility limits per period (kW; inf: none)."""

    demand_kw: np.ndarray
    injection_kw: np.ndarray
    cdl_factor: float


@dataclass
class LocalityState:
    periods: int
    period_h: float
    buy: np.ndarray  # λb of the day
    sell: np.ndarray  # λs of the day
    limits: Limits
    export_limit_kw: dict[str, np.ndarray]
    quotes: dict[str, np.ndarray] = field(default_factory=dict)
    import_price: np.ndarray | None = None
    export_price: np.ndarray | None = None
    records: list[RoundRecord] = field(default_factory=list)
    converged: bool = True
    round: int = 0
    announced: tuple[np.ndarray, np.ndarray] | None = None  # prices agents last planned with


def init_locality(roster: Mapping[str, RegisterBody], params: LocalityParams,
                  day: int = 0):
    """Round 1: every participant plans under its own power injection limit (a limit at
    its own connection, which trading with neighbours does not lift; the connection's
    export limit when the utility imposes no PILs) and quotes its net demand."""
    export_key = "pil" if params.pil else "export"
    periods, period_h = horizon(roster)
    buy, sell = params.data.day(day, periods)
    inf = np.full(periods, np.inf)
    cdl = sum((limit(r, "cdl", periods) for r in roster.values()), np.zeros(periods))
    pil = sum((limit(r, "pil", periods) for r in roster.values()), np.zeros(periods))
    limits = Limits(cdl if params.demand_limit else inf, pil if params.pil else inf,
                    params.cdl_factor)
    export = {n: limit(r, export_key, periods, limit(r, "export", periods, 0.0))
              for n, r in roster.items()}
    state = LocalityState(periods, period_h, buy, sell, limits, export)
    return {n: SignalBody(terms={"export": {"limit_kw": e.tolist()}})
            for n, e in export.items()}, state


def check_offer(body: OfferBody, periods: int) -> str | None:
    q = body.quantities_kw.get(KEY)
    if q is None:
        return f"quantities_kw: a locality market quote needs {KEY!r} (net demand)"
    if len(q) != periods:
        return f"quantities_kw.{KEY}: expected {periods} values"
    return None


def totals(quotes: Mapping[str, np.ndarray], periods: int) -> tuple[np.ndarray, np.ndarray]:
    """D_t (locality demand) and G_t (locality generation) from the quotes."""
    D, G = np.zeros(periods), np.zeros(periods)
    for q in quotes.values():
        D += np.maximum(q, 0.0)
        G += np.maximum(-q, 0.0)
    return D, G


def shared(D: np.ndarray, G: np.ndarray, limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """(D', G'): the demand and generation shared in the market once the locality's
    demand and injection limits are applied."""
    D_in = np.where(D > G, G + np.minimum(D - G, limits.demand_kw), D)
    G_in = np.where(G > D, D + np.minimum(G - D, limits.injection_kw), G)
    return D_in, G_in


def with_limits(D, G, D_in, G_in, buy, pi_im, pi_ex, limits: Limits):
    """Prices over the whole quoted D and G: importers pay κ λb on demand above the
    demand limit; exporters are paid only for the generation the grid takes."""
    safe_D = np.where(D > 0, D, 1.0)
    safe_G = np.where(G > 0, G, 1.0)
    pi_im = np.where(D > 0, (pi_im * D_in + limits.cdl_factor * buy * (D - D_in)) / safe_D,
                     pi_im)
    pi_ex = np.where(G > 0, pi_ex * G_in / safe_G, pi_ex)
    return pi_im, pi_ex


def step_locality(offers: Mapping[str, OfferBody], state: LocalityState, params,
                  pricing: Callable, max_rounds: int | None = None
                  ) -> tuple[dict, LocalityState, bool]:
    """One round: read the quotes and price every period; announce damped prices for
    another round, or stop (module docstring)."""
    zero = np.zeros(state.periods)
    before = state.quotes
    state.quotes = {n: np.asarray(offers[n].quantities_kw[KEY], float) if n in offers else zero
                    for n in state.export_limit_kw}
    change = float(sum(np.abs(q - before.get(n, zero)).sum() for n, q in state.quotes.items()))
    D, G = totals(state.quotes, state.periods)
    D_in, G_in = shared(D, G, state.limits)
    pi_im, pi_ex = pricing(state.buy, state.sell, D_in, G_in)
    state.import_price, state.export_price = with_limits(D=D, G=G, D_in=D_in, G_in=G_in,
                                                         buy=state.buy, pi_im=pi_im, pi_ex=pi_ex,
                                                         limits=state.limits)
    state.round += 1
    ratio = np.divide(G, D, out=np.full(state.periods, np.nan), where=D > 0)
    state.records.append(RoundRecord(state.round, change, {
        "demand_kw": D, "generation_kw": G, "gdr": ratio,
        "shared_demand_kw": D_in, "shared_generation_kw": G_in,
        "import_price_eur_per_kwh": state.import_price,
        "export_price_eur_per_kwh": state.export_price,
        "grid_buy_eur_per_kwh": state.buy, "grid_sell_eur_per_kwh": state.sell}, {}))
    rounds = params.price_rounds if max_rounds is None else max_rounds
    stable = state.round > 1 and change <= params.tolerance_kw
    if stable or state.round >= rounds:
        state.converged = stable or rounds == 1
        return {}, state, True
    return _announce(state, params.damping), state, False


def _announce(state: LocalityState, damping: float) -> dict[str, SignalBody]:
    """The next round's signals: damped prices and each participant's export limit."""
    new = (state.import_price, state.export_price)
    old = state.announced or new
    state.announced = tuple((1 - damping) * o + damping * n for o, n in zip(old, new))
    im, ex = (p.tolist() for p in state.announced)
    return {n: SignalBody(terms={"import": {"price_eur_per_kwh": im},
                                 "export": {"price_eur_per_kwh": ex, "limit_kw": e.tolist()}})
            for n, e in state.export_limit_kw.items()}


def clear_locality(state: LocalityState, params) -> dict[str, ClearingBody]:
    """Every quote is taken at the period's importer or exporter price."""
    prices = {"import": state.import_price.tolist(), "export": state.export_price.tolist()}
    return {n: ClearingBody(quantities_kw={KEY: q.tolist()}, prices_eur_per_kwh=prices,
                            position_kw=q.tolist(), converged=True)
            for n, q in state.quotes.items()}


def _bill(x: np.ndarray, pi_im: np.ndarray, pi_ex: np.ndarray, h: float) -> np.ndarray:
    return h * (np.maximum(x, 0.0) * pi_im - np.maximum(-x, 0.0) * pi_ex)


def settle_locality(state: LocalityState, params, meters: Mapping[str, np.ndarray]
                    ) -> dict[str, SettlementBody]:
    """Traded bill, deviation cost and violation cost per period (module docstring)."""
    h, pi_im, pi_ex = state.period_h, state.import_price, state.export_price
    out = {}
    for name, q in state.quotes.items():
        a = realised(meters, name, q)
        traded = _bill(q, pi_im, pi_ex, h)
        importer = (q > 0) | ((q == 0) & (a >= 0))
        price = np.where(importer, pi_im, pi_ex)
        out[name] = SettlementBody(
            position_kw=a.tolist(), traded_eur=traded.tolist(),
            deviation_eur=(_bill(a, pi_im, pi_ex, h) - traded).tolist(),
            violation_eur=(params.penalty_rate * np.abs(a - q) * price * h).tolist())
    return out
