"""Bilateral P2P trading of power and heat with network path penalties (Vahidinasab,
Nasimifar, Mohammadi-Ivatloo, book chapter 12, eqs. 12.1–12.38;
docs/mechanisms/bilateral.md), cleared by consensus ADMM on the trades.

Peers (any kind; buildings may produce power with a generator or a CHP unit, and heat)
trade with each other: P_nm is the power peer n buys from peer m (kW, − when it sells),
H_nm the heat, with reciprocity P_nm + P_mn = 0 and H_nm + H_mn = 0. The main grid is
every peer's retail connection (the chapter's G20: it sells at the retail price). A
trade costs each side a path penalty per kWh in either direction (eqs. 12.12, 12.16):

    pen_nm = α·R_nm + β·θ_nm   (power; heat trades carry none)

with R_nm the series resistance of the feeder path between their buses (Ω), α the loss
price (``loss_price``, €/kWh per Ω), θ_nm = 1 where that path crosses a line the AC power
flow found congested, β the congestion price (``congestion_price``, €/kWh); a peer's
retail energy pays α·R to the slack bus likewise. The network operator (agent kind
``operator``, a process of its own) computes the penalties: it holds the feeder, the
buses and the AC power flow; the coordinator sees only peer names and €/kWh.

ADMM on the trades, in consensus form (Boyd et al. 2011, §7), for each commodity: every
pair k = (n, m) has an agreed trade a_k (n's purchase; m's is −a_k), every side its own
copy (P_nm = a_k, P_mn = −a_k) and its own price of that agreement (y_nk, y_mk, €/kWh).

- every peer n minimises its own cost + Σ_t Δt Σ_m (y_nm P_nm + ρ/2 (P_nm − a_nm)²) (+ its
  retail energy's path penalty): no penalty per counterparty, so, as in the ADMM market
  (``coordinator.mechanisms.admm``), its trades enter its physics only through their sum
  s_n, the best split of s_n is closed form, and its signal carries per commodity the
  mean of its side's prices, its agreed net purchase and how many pairs it has; it
  answers s_n (one column per period: the same problem size as the ADMM market's
  peers) and the coordinator splits it (``_split``);
- the agreement, here in closed form: a_k = argmin 2·pen_k·|a| (both sides' path
  penalties) + ρ/2 [(P_nm − a + y_nk/ρ)² + (P_mn + a + y_mk/ρ)²]
  = shrink(((P_nm − P_mn) + (y_nk − y_mk)/ρ)/2, pen_k/ρ): a trade moves only when the
  sides' willingness to trade clears both penalties;
- prices: y_nk += ρ (P_nm − a_k), y_mk += ρ (P_mn + a_k). At the optimum of a traded pair
  y_nk − y_mk = 2·pen_k: the buyer's price is the pair's price λ_k = (y_nk + y_mk)/2 plus
  its penalty and the seller's λ_k minus its own, the chapter's eqs. 12.12 and 12.16.

Putting the penalties in the agreement rather than in each peer's problem (where the
chapter writes them) is the same centralized problem, so the same optimum (the
centralized QP, ``scenarios.run.central_bilateral``, is the test); it keeps every peer's
problem one column per commodity and period however many counterparties it has (a
peer's problem with a column per counterparty: up to 17,000 columns among faia2021's 90
peers) and its signal one series per commodity. Residuals, their scaling and residual
balancing of ρ are the ADMM market's; one ρ for both commodities.

Rounds: (1) where α or β is set, the operator is asked for the pairs' penalties (no
nets yet: θ = 0); (2) ADMM rounds until the residuals are within ``tolerance`` or
``max_rounds``; (3) where β is set, the operator runs the AC power flow of the peers'
planned nets and answers the penalties again with θ from the lines it finds congested
(above the grid's ``max_loading_pct``) and names them; if none is congested, or after
``congestion_rounds`` such checks, the market is done, else back to (2) from where it
stood. Every check is a round record (its congested lines and the network's losses).
``pool``: no P2P pairs at all, every peer buys at retail (the pool-based comparison:
the main grid the only producer).

The day clears at the last agreed trades, their circulations and pass-through flows
netted out (``cleared_trades``: every trade from a net seller to a net buyer of its
period): each peer's position is its net P2P power purchase, billed at the pair prices
(heat trades are billed at theirs and delivered outside the electric meter); the rest of
its realised power is retail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from lemgrid.coordinator.mechanisms.admm import (
    ConsensusParams,
    Residuals,
    balance_rho,
    norm,
    peer_series,
    relaxed,
    trade_pairs,
)
from lemgrid.coordinator.mechanisms.admm import check_offer as check_admm_offer
from lemgrid.coordinator.mechanisms.base import (
    PEER_KINDS,
    MarketCore,
    RoundRecord,
    bilateral_clearings,
    bilateral_settlements,
    horizon,
    peers_and_operator,
)
from lemgrid.coordinator.protocol import (
    HEAT,
    KW_PER_MW,
    NET,
    POWER,
    ClearingBody,
    OfferBody,
    SignalBody,
    Terms,
    TradeTerms,
)

KINDS = frozenset({*PEER_KINDS, "operator"})
COMMODITY_LIMITS = {POWER: ("import", "export"), HEAT: ("heat_import", "heat_export")}
LOSS, CONGESTION = "loss", "congestion"  # the operator's signal: the penalties' prices


class BilateralParams(ConsensusParams):
    """α (``loss_price``) and β (``congestion_price``), the path penalties that bring the
    network operator in, the AC congestion checks, ``pool`` (no P2P) and over-relaxation."""

    DEFAULT_ROUNDS: ClassVar[int] = 2000
    mechanism: Literal["bilateral"] = "bilateral"
    relaxation: float = Field(1.0, gt=0, lt=2, description="ADMM over-relaxation α (1: plain "
                              "ADMM; 1 < α < 2 over-relaxed, fewer or more rounds case by "
                              "case)")
    loss_price: float = Field(
        0.0, ge=0, description="α, the loss penalty per kWh traded and per Ω of the path's "
        "resistance (€/kWh/Ω), paid by each side; > 0 brings in the network operator")
    congestion_price: float = Field(
        0.0, ge=0, description="β, the penalty per kWh traded on a path through a line the "
        "AC power flow finds above grid.max_loading_pct (€/kWh), paid by each side; > 0: the "
        "operator checks the cleared trades and the market clears again")
    congestion_rounds: int = Field(5, ge=1, description="at most this many AC congestion "
                                   "checks")
    pool: bool = Field(False, description="no peer-to-peer trades, every participant buys at "
                       "retail (the main grid the only producer)")

    def path_penalties(self) -> bool:
        return self.loss_price > 0 or self.congestion_price > 0

    def operator_takes_part(self) -> bool:
        return self.path_penalties() or super().operator_takes_part()


@dataclass
class Book:
    """One commodity's pairs (n, m), n < m (peer indices), the agreed purchase a of n
    from m (kW, m's is −a), each side's price of that agreement (€/kWh), the pair's path
    penalty (€/kWh) and which peers are the pairs' ends."""

    key: str
    pairs: np.ndarray  # (K, 2)
    a: np.ndarray  # (K, T)
    price_n: np.ndarray  # (K, T) n's price (the dual of P_nm = a)
    price_m: np.ndarray  # (K, T) m's price (the dual of P_mn = −a)
    penalty: np.ndarray  # (K, T)
    ends_n: object  # (N, K) scipy.sparse.csr_matrix, 1 at (n, k)
    ends_m: object  # (N, K) scipy.sparse.csr_matrix, 1 at (m, k)
    degree: np.ndarray  # (N,) pairs per peer

    @classmethod
    def empty(cls, key: str, pairs: np.ndarray, peers: int, periods: int) -> Book:
        from scipy import sparse  # here: the scenario schema imports this module's parameters

        k = len(pairs)
        ends = [sparse.csr_matrix((np.ones(k), (pairs[:, side], np.arange(k))),
                                  shape=(peers, k)) for side in (0, 1)]
        degree = np.bincount(pairs.ravel(), minlength=peers)
        return cls(key, pairs, *(np.zeros((k, periods)) for _ in range(4)), *ends, degree)

    @property
    def price(self) -> np.ndarray:
        """The pair's price λ (€/kWh): n pays λ·a to m."""
        return (self.price_n + self.price_m) / 2

    @cached_property
    def _signed(self):
        """(N, K) scipy.sparse.csr_matrix: 1 at (n, k), −1 at (m, k)."""
        return self.ends_n - self.ends_m

    def per_peer(self, x: np.ndarray) -> np.ndarray:
        """(N, T): each peer's sum of x (K, T) over its pairs, + where it is n, − where it
        is m, added in the pairs' order."""
        return self._signed @ x


@dataclass
class BilateralState:
    periods: int
    period_h: float
    peers: list[str]
    operator: str | None
    books: dict[str, Book]
    retail_penalty: np.ndarray  # (N, T) €/kWh on each peer's retail energy
    rho: float
    phase: str = "market"  # penalties -> market -> check -> market ... -> done
    round: int = 0
    checks: int = 0
    converged: bool = False
    stopped: str = ""
    congested: dict[str, list[str]] = field(default_factory=dict)  # last check's lines
    losses_kw: np.ndarray | None = None  # the last AC check's network losses
    net: np.ndarray | None = None  # (N, T) the peers' last planned net imports
    records: list[RoundRecord] = field(default_factory=list)
    cleared: dict[str, np.ndarray] | None = None  # the day's netted trades, once done

    @property
    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.peers)}


def init_bilateral(roster: Mapping, params: BilateralParams, day: int = 0):
    periods, period_h = horizon(roster)
    network = params.path_penalties()
    peers, operator = peers_and_operator(roster, network)
    books = {}
    for key in (POWER, HEAT):
        pairs = (np.zeros((0, 2), int) if params.pool
                 else trade_pairs(roster, peers, periods, COMMODITY_LIMITS[key]))
        books[key] = Book.empty(key, pairs, len(peers), periods)
    state = BilateralState(periods, period_h, peers, operator, books,
                           np.zeros((len(peers), periods)), params.rho0)
    if operator is not None:
        state.phase = "penalties"
        return {operator: _operator_signal(state, params)}, state
    return _peer_signals(state), state


def _operator_signal(state: BilateralState, params: BilateralParams) -> SignalBody:
    """Ask the operator for the power pairs' and the retail paths' penalties; with the
    peers' planned nets (a congestion check) it runs the AC power flow first."""
    t = state.periods
    zeros = [0.0] * t
    book = state.books[POWER]
    trades = [TradeTerms(seller=state.peers[m], buyer=state.peers[n], kw=zeros)
              for n, m in book.pairs]
    terms = {LOSS: Terms(price_eur_per_kwh=[params.loss_price] * t),
             CONGESTION: Terms(price_eur_per_kwh=[params.congestion_price] * t)}
    nets = None
    if state.net is not None:
        nets = {NET: {p: Terms(target_kw=state.net[i].tolist())
                      for i, p in enumerate(state.peers)}}
    else:  # the peers' names, for their retail paths
        nets = {NET: {p: Terms() for p in state.peers}}
    return SignalBody(terms=terms, by_counterparty=nets, trades=trades)


def _peer_signals(state: BilateralState) -> dict[str, SignalBody]:
    """Every peer's terms per commodity, aggregated over its pairs (the mean of its
    side's prices, its agreed net purchase, how many pairs), and its retail penalty."""
    construct = Terms.model_construct
    aggregated = {}
    for key, book in state.books.items():
        if not len(book.pairs):
            continue
        mean = ((book.ends_n @ book.price_n + book.ends_m @ book.price_m)
                / np.maximum(book.degree, 1)[:, None])
        agreed = book.ends_n @ book.a - book.ends_m @ book.a
        aggregated[key] = (book.degree, mean.tolist(), agreed.tolist())
    retail = state.retail_penalty.tolist()
    out = {}
    for i, p in enumerate(state.peers):
        terms = {"retail": construct(penalty_eur_per_kwh=retail[i])}
        for key, (degree, mean, agreed) in aggregated.items():
            if degree[i]:
                terms[key] = construct(price_eur_per_kwh=mean[i], target_kw=agreed[i],
                                       counterparties=int(degree[i]))
        out[p] = SignalBody.model_construct(terms=terms, by_counterparty=None,
                                            rho=state.rho, counterparties=None, trades=None)
    return out


def check_offer(body: OfferBody, periods: int) -> str | None:
    """The ADMM market's checks, and the operator's penalties' lengths."""
    problem = check_admm_offer(body, periods)
    if problem:
        return problem
    for other, by in (body.penalties_eur_per_kwh or {}).items():
        for key, values in by.items():
            if len(values) != periods:
                return (f"penalties_eur_per_kwh.{other}.{key}: expected {periods} values, "
                        f"got {len(values)}")
    return None


def step_bilateral(offers, state: BilateralState, params: BilateralParams):
    state.round += 1
    if state.phase in ("penalties", "check"):
        return _take_penalties(offers, state, params)
    return _market_round(offers, state, params)


def _take_penalties(offers, state: BilateralState, params: BilateralParams):
    """The operator's answer: penalties per pair and retail path, the congested lines and
    the losses of a check. No answer: the market goes on (or ends) without it."""
    body = offers.get(state.operator)
    checking = state.phase == "check"
    if body is None:
        state.stopped = f"the operator {state.operator} did not answer"
        _record_operator(state)
        if checking:
            return {}, state, True
    else:
        _apply_penalties(body, state)
        if checking:
            state.checks += 1
            state.congested = dict(body.binding or {})
            losses = body.quantities_kw.get("losses")
            state.losses_kw = None if losses is None else np.asarray(losses, float)
        _record_operator(state)
        if checking:
            if not state.congested or state.checks >= params.congestion_rounds:
                if state.congested:
                    state.stopped = (f"lines still congested after {state.checks} congestion "
                                     f"checks: {_labels(state.congested)}")
                return {}, state, True
            state.converged = False
    state.phase = "market"
    return _peer_signals(state), state, False


def _labels(congested: Mapping[str, list[str]]) -> str:
    return "; ".join(sorted({label for labels in congested.values() for label in labels}))


def _apply_penalties(body: OfferBody, state: BilateralState) -> None:
    pens = body.penalties_eur_per_kwh or {}
    book = state.books[POWER]
    for k, (n, m) in enumerate(book.pairs):
        values = pens.get(state.peers[n], {}).get(state.peers[m])
        if values is None:
            values = pens.get(state.peers[m], {}).get(state.peers[n])
        if values is not None:
            book.penalty[k] = values
    for i, p in enumerate(state.peers):
        values = pens.get(p, {}).get(state.operator)
        if values is not None:
            state.retail_penalty[i] = values


def _record_operator(state: BilateralState) -> None:
    """An operator round: the penalties' mean; a congestion check (its number, the lines
    it found congested per period and the network's AC losses)."""
    pen = state.books[POWER].penalty
    scalars = {"penalty_mean_eur_per_kwh": float(pen.mean()) if pen.size else 0.0}
    per_period = {}
    if state.phase == "check":
        scalars |= {"congestion_check": state.checks,
                    "congested": json.dumps(state.congested, sort_keys=True)}
        per_period["losses_kw"] = (state.losses_kw if state.losses_kw is not None
                                   else np.full(state.periods, np.nan))
    state.records.append(RoundRecord(state.round, 0.0, per_period=per_period,
                                     scalars=scalars))


def _split(offers, state: BilateralState, book: Book,
           rho_kw: float) -> tuple[np.ndarray, np.ndarray]:
    """(P_nm, P_mn) per pair: each peer's net purchase s_n split among its pairs as its
    own problem splits it, P_nm = v_nm + (s_n − V_n)/M_n with v_nm = a_nm − y_nm/ρ (its
    side's agreed trade and price) and V_n = Σ v_nm over its M_n pairs
    (``coordinator.mechanisms.admm``'s split, with a price per side); a peer that sent
    no purchase trades nothing."""
    s, sent = peer_series(offers, state, book.key)
    n, m = book.pairs[:, 0], book.pairs[:, 1]
    v_nm = book.a - book.price_n / rho_kw
    v_mn = -book.a - book.price_m / rho_kw
    share = (s - book.ends_n @ v_nm - book.ends_m @ v_mn) / np.maximum(book.degree, 1)[:, None]
    p_nm, p_mn = v_nm + share[n], v_mn + share[m]
    p_nm[~sent[n]] = 0.0
    p_mn[~sent[m]] = 0.0
    return p_nm, p_mn


def _penalties_eur(offers, state: BilateralState) -> float:
    """The round's path penalties (€): each side's on every agreed trade, and every peer's
    on its planned retail energy |q − s| (net import less net P2P purchase: a peer never
    buys and sells at retail at once at its optimum). With the peers' own planned costs,
    the market's welfare, the centralized problem's objective."""
    dt = state.period_h
    paid = sum(2 * dt * float(np.sum(b.penalty * np.abs(b.a))) for b in state.books.values())
    if state.net is not None and state.retail_penalty.any():
        retail = np.abs(state.net - peer_series(offers, state, POWER)[0])
        paid += dt * float(np.sum(state.retail_penalty * retail))
    return paid


def _market_round(offers, state: BilateralState, params: BilateralParams):
    """One ADMM iteration (module docstring) over both commodities."""
    rho_kw = state.rho / KW_PER_MW ** 2
    res = Residuals(rho_kw)
    traded = np.zeros(state.periods)
    for book in state.books.values():
        if not len(book.pairs):
            continue
        p_nm, p_mn = _split(offers, state, book, rho_kw)
        a_prev = book.a
        h_nm, h_mn = relaxed(p_nm, a_prev, params.relaxation), relaxed(p_mn, -a_prev,
                                                                       params.relaxation)
        c = ((h_nm - h_mn) + (book.price_n - book.price_m) / rho_kw) / 2
        book.a = np.sign(c) * np.maximum(np.abs(c) - book.penalty / rho_kw, 0.0)
        book.price_n = book.price_n + rho_kw * (h_nm - book.a)
        book.price_m = book.price_m + rho_kw * (h_mn + book.a)
        res.add(primal=[p_nm - book.a, p_mn + book.a], local=[p_nm, p_mn],
                agreed=[book.a, book.a], change=[book.a - a_prev] * 2,
                duals=[book.price_n, book.price_m])
        if book.key == POWER:
            traded = np.abs(book.a).sum(axis=0)
    state.net = _nets(offers, state)
    r, s = res.scaled() if res.primal else (0.0, 0.0)
    state.converged = bool(r <= params.residual_tolerance and s <= params.residual_tolerance)
    state.records.append(RoundRecord(
        state.round, norm(*res.primal) if res.primal else 0.0,
        per_period={"traded_kw": traded},
        scalars={"primal_residual": r, "dual_residual": s, "rho": state.rho,
                 "penalties_eur": _penalties_eur(offers, state)}))
    if res.primal:
        state.rho = balance_rho(state.rho, r, s, state.round, params)
    market_rounds = sum(1 for rec in state.records if "primal_residual" in rec.scalars)
    if not state.converged and market_rounds < params.rounds:
        return _peer_signals(state), state, False
    if not state.converged:
        state.stopped = (f"no convergence in {market_rounds} rounds (primal residual "
                         f"{r:.3g}, dual residual {s:.3g}, tolerance {params.residual_tolerance:g})")
        return {}, state, True
    if state.operator is not None and params.congestion_price > 0:
        state.phase = "check"
        return {state.operator: _operator_signal(state, params)}, state, False
    return {}, state, True


def _nets(offers, state: BilateralState) -> np.ndarray:
    out = np.zeros((len(state.peers), state.periods)) if state.net is None else state.net.copy()
    for i, p in enumerate(state.peers):
        body = offers.get(p)
        if body is not None and NET in body.quantities_kw:
            out[i] = body.quantities_kw[NET]
    return out


def positions(state: BilateralState, key: str = POWER) -> dict[str, np.ndarray]:
    """Each peer's net purchase of ``key`` per period (kW) at the agreed trades."""
    book = state.books[key]
    return dict(zip(state.peers, book.per_peer(book.a)))


def cleared_trades(state: BilateralState) -> dict[str, np.ndarray]:
    """Per commodity, the trades the day clears (K, T): the agreed trades with their
    circulations and pass-through flows netted out (``net_trades``), so that no peer buys
    and sells one commodity in one period; every position is the agreed one.

    The netting belongs to the clearing, not only to the reported table: the bills,
    ``trades.parquet`` and a ``network_check`` market's operator (every positive entry a
    physical trade to accept) all read the clearings' trades per counterparty, and they
    must agree. The bills are the netted trades at their pairs' prices; the community's
    total is unchanged (each trade's payment cancels between its ends, the positions are
    the agreed ones), a peer's bill need not be:

    - without path penalties the agreed split is not unique (a peer's problem sees only
      its net purchase) and circulates power at no cost. At the optimum a pair's two
      prices agree and a peer's prices agree over its pairs: one price per period wherever
      pairs connect peers, so a bill is that price times the position whatever the split,
      and netting moves it only by the convergence residual (vahidinasab's basic case: 11
      peers bought and sold, 755.5 kW of 3957.5 kW traded circulated; no bill moved by
      more than 5.1e-4 €);
    - with path penalties a cycle costs its pairs' penalties, so it carries nothing at the
      optimum, and a flow through a third peer is optimal only where the direct pair's
      penalty equals the two legs' (on a radial feeder it is never more: resistances add
      along the tree, and a congested line on the direct path lies on one of the legs).
      Netting then never raises the penalties, and each peer's bill plus the penalties on
      its trades stays as it was; the bill alone moves by the penalties moved: the
      passing peer's margin, which paid its legs' penalties, goes to the direct trade's
      ends (vahidinasab at α = 3.5e-2: C3 and G16 passed 66.1 kW from G14 to C2; their
      bills rise by 10.16 € each, G14's and C2's fall by as much, the penalties stay
      427.21 €)."""
    if state.cleared is None:
        state.cleared = {key: net_trades(book.pairs, book.a)
                         for key, book in state.books.items()}
    return state.cleared


def traded_eur(state: BilateralState, trades: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
    """Each peer's payment per period for ``trades`` (per commodity, (K, T) over its
    book's pairs) at the pair prices (€, + it pays)."""
    out = {p: np.zeros(state.periods) for p in state.peers}
    for key, book in state.books.items():
        if len(book.pairs):
            for p, paid in zip(state.peers, book.per_peer(state.period_h * book.price
                                                          * trades[key])):
                out[p] += paid
    return out


def clear_bilateral(state: BilateralState, params: BilateralParams) -> dict[str, ClearingBody]:
    """Every peer's power trades per counterparty (``cleared_trades``) at their prices and
    its position; heat trades as a commodity of their own in ``quantities_kw`` and per
    counterparty. Only the counterparties a peer trades with are named, and of each only
    the periods they trade in (``SparseSeries``): after the netting most pairs of a full
    mesh trade nothing, and the others in a period or two (1000 peers on random trades:
    743 counterparties a peer, 96 values each as lists)."""
    cleared = cleared_trades(state)
    by_kw, by_price = _by_counterparty(state, POWER, cleared[POWER])
    out = bilateral_clearings(key=POWER, peers=state.peers, operator=state.operator,
                              periods=state.periods, period_h=state.period_h, pos=positions(state),
                              pay=traded_eur(state, cleared), by_kw=by_kw, by_price=by_price,
                              converged=state.converged)
    if len(state.books[HEAT].pairs):
        held = positions(state, HEAT)
        heat_of, _ = _by_counterparty(state, HEAT, cleared[HEAT])
        for p in state.peers:
            body, heat_by = out[p], heat_of[p]
            out[p] = body.model_copy(update={
                "quantities_kw": {**body.quantities_kw, HEAT: held[p].tolist()},
                "by_counterparty_kw": {**(body.by_counterparty_kw or {}), HEAT: heat_by}
                if heat_by else body.by_counterparty_kw})
    return out


def _by_counterparty(state: BilateralState, key: str, a: np.ndarray
                     ) -> tuple[dict[str, dict], dict[str, dict]]:
    """Per peer, its trades (kW: + bought) and their prices (€/kWh) with each
    counterparty it trades with, as ``SparseSeries``: only the periods they trade in,
    from the netted trades a (K, T)."""
    by_kw: dict[str, dict] = {p: {} for p in state.peers}
    by_price: dict[str, dict] = {p: {} for p in state.peers}
    book = state.books[key]
    k, t = np.nonzero(a)
    if not len(k):
        return by_kw, by_price
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])  # each traded pair's first entry
    ends = np.r_[starts[1:], len(k)]
    periods, kw, price = t.tolist(), a[k, t].tolist(), book.price[k, t].tolist()
    for (n, m), lo, hi in zip(book.pairs[k[starts]].tolist(), starts.tolist(), ends.tolist()):
        pn, pm, when = state.peers[n], state.peers[m], periods[lo:hi]
        by_kw[pn][pm] = dict(zip(when, kw[lo:hi]))
        by_kw[pm][pn] = {p: -v for p, v in zip(when, kw[lo:hi])}
        by_price[pn][pm] = by_price[pm][pn] = dict(zip(when, price[lo:hi]))
    return by_kw, by_price


def settle_bilateral(state: BilateralState, params: BilateralParams, meters):
    """The cleared trades' bill (``bilateral_settlements``, ``cleared_trades``): power and
    heat at their pair prices; realised power beyond the power position is retail."""
    return bilateral_settlements(state.peers, state.operator, state.periods,
                                 positions(state), traded_eur(state, cleared_trades(state)))


# -- the cleared trades: wash trades netted out ---------------------------------------------
def net_trades(pairs: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The agreed trades a (K, T) over ``pairs`` with their circulations and pass-through
    flows cancelled, period by period (``netting.net_period``): every peer's net purchase
    stays as agreed (to ``netting.NET_MIN_KW``), and every trade goes from a net seller of that
    period to a net buyer. A period whose trades cannot be placed on the pairs (a seller
    and a buyer that are no pair) keeps its agreed trades."""
    out = a.copy()
    if not len(pairs):
        return out
    from .netting import net_period  # here: numba loads with the first clearing that nets

    peers = int(pairs.max()) + 1
    keys = pairs[:, 0].astype(np.int64) * peers + pairs[:, 1]
    order = np.argsort(keys, kind="stable")
    for t in range(a.shape[1]):
        held = _held(pairs, a[:, t], peers)
        sellers, buyers, kw = net_period(pairs, a[:, t], held)
        wanted = np.minimum(sellers, buyers) * peers + np.maximum(sellers, buyers)
        at = order[np.minimum(np.searchsorted(keys[order], wanted), len(keys) - 1)]
        if not np.array_equal(keys[at], wanted):
            continue  # a seller and a buyer that are no pair
        netted = np.zeros(len(pairs))
        np.add.at(netted, at, np.where(buyers < sellers, kw, -kw))
        if np.allclose(_held(pairs, netted, peers), held, rtol=0.0, atol=1e-6):
            out[:, t] = netted
    return out


def _held(pairs: np.ndarray, a_t: np.ndarray, peers: int) -> np.ndarray:
    """Each peer's net purchase (kW) at one period's trades."""
    return (np.bincount(pairs[:, 0], a_t, minlength=peers)
            - np.bincount(pairs[:, 1], a_t, minlength=peers))


CORE = MarketCore(params_type=BilateralParams, kinds=KINDS, init=init_bilateral,
                  step=step_bilateral, clear=clear_bilateral, settle=settle_bilateral,
                  check_offer=check_offer)
