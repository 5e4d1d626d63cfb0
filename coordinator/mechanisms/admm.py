"""Network-constrained peer-to-peer trading by ADMM (Antunes et al. 2024).

Peers (prosumers, EVs, buildings) trade bilaterally: P_nm is the power peer n buys from
peer m (kW, − when it sells), with reciprocity P_nm + P_mn = 0. A network operator
(agent kind ``operator``) holds the network model and is tied to the peers by consensus
on their nodal injections. Every peer and the operator solve their own problems; the
coordinator only averages and updates prices, so it never sees a cost or a profile.

The split is a two-block ADMM in consensus form (Boyd et al. 2011, §7):

- block 1, solved in parallel: every peer n, given its agreed trades a_nm, their prices
  λ_nm, its agreed injection y_n and the injection's price μ_n, minimises
  f_n(x) + Σ_t Δt [Σ_m (λ_nm P_nm + ρ/2 (P_nm − a_nm)²) + μ_n q_n + ρ/2 (q_n − y_n)²]
  (q_n: its net import at the connection); the operator, given y and its own prices ν,
  minimises its loss cost + Σ_t Δt Σ_n [ν_n z_n + ρ/2 (z_n − y_n)²] subject to the
  network (z_n: the injection the network can take);
- block 2, here in closed form: a_nm = (P_nm − P_mn)/2 (the pair's prices stay equal,
  λ_nm = λ_mn, so the projection onto a_nm = −a_mn needs no price term),
  y_n = (q_n + z_n)/2 + (μ_n + ν_n)/(2ρ);
- prices: λ_nm += ρ (P_nm + P_mn)/2, μ_n += ρ (q_n − y_n), ν_n += ρ (z_n − y_n). λ_nm is
  the price of the pair's trade (€/kWh, n pays λ_nm P_nm), μ_n = −ν_n after the first
  round: the network's price adder at the peer's connection.

Each constraint group has its own ρ: ``trade`` (the pairs' reciprocity, ρ) and ``net``
(the network's consensus, ρ_net; the y, μ and ν updates above use it). Residuals are
scaled (Boyd et al. 2011, §3.3.1), so that a community of households (kW) and one of
feeders (MW) balance alike: a group's primal r (trade: [P_nm − a_nm, P_mn + a_nm]; net:
[q − y, z − y]) relative to the size of all the quantities, max(‖[P_nm, P_mn, q, z]‖,
‖[a, a, y, y]‖); its dual s (ρ·[a − a_prev]·2, ρ_net·[y − y_prev]·2) relative to all the
prices ‖[λ, λ, μ, ν]‖. The market's residuals are the largest of the groups'; the round
records also carry each group's and ‖r‖ in kW (``error_kw``). Residual balancing, per
group on its own residuals: ρ ← τρ when r > μs, ρ ← ρ/τ when s > μr, checked every
``balance_every`` rounds, and every round while r > μ²s (ρ far below its scale).
Changing ρ every round in both directions kept a three-peer day from converging in 300
rounds; this way it converges in 159 from ρ0 = 100. One ρ for both groups does not
suit both: a peer's trade terms weigh ρ/M on its net purchase (M counterparties), its
network term ρ on its net import, so where the network does not bind (faia2021 on
case33bw) the trades drove the one ρ up to 204800 €/MW²h, the network's consensus held
every peer's import as stiffly, and 300 rounds ended 1.3 % from the optimum,
unconverged. The sizes are those of all groups together, because the network's prices
start at zero (its dual alone would read huge and keep ρ_net down). The market stops
when both residuals are at most ``tolerance`` or after ``max_rounds`` (then
``converged`` is false and the residuals say how far it got).

What travels. A peer's trades enter its physics only through their sum, its net P2P
purchase s_n = Σ_m P_nm, and no peer prices one counterparty over another; for a given s_n
the best split is closed form: with v_nm = a_nm − λ_nm/ρ and V_n = Σ_m v_nm over its M_n
counterparties, P_nm = v_nm + (s_n − V_n)/M_n, and the trade terms equal
ρ/(2M_n) (s_n − A_n)² + λ̄_n s_n + a constant, where A_n = Σ_m a_nm is its agreed net
purchase and λ̄_n the mean of its pair prices. So a peer's signal carries A_n, λ̄_n and
M_n (``counterparties``) instead of a series per counterparty, it answers s_n and q_n, and
the coordinator splits s_n by the same formula (``split_purchases``): the iterates are
those of the per-counterparty form, and a round's messages grow with the peers, not the
pairs (antunes2024: 4.0 MB of JSON a round per counterparty, 0.25 MB aggregated).

Only pairs that can trade are in the market: one of them registered an export limit and
the other an import limit in the same period. The day clears at the last agreed trades
a_nm: each peer's position is its net P2P purchase Σ_m a_nm, billed at the pair prices;
whatever else it realises is retail. The operator is cleared and settled at zero (it
has no connection; it meters 0 kW).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

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
    limit,
    peers_and_operator,
)
from lemgrid.coordinator.protocol import (
    KW_PER_MW,
    NET,
    P2P,
    ClearingBody,
    OfferBody,
    RegisterBody,
    SignalBody,
    Terms,
)

KINDS = NETWORK_KINDS
KEY = P2P  # the commodity peers trade; NET: a peer's net import, the network's consensus
TINY_KW = 1e-6  # below this the market's quantities count as nothing
TINY_EUR_PER_KWH = 1e-9


class ConsensusParams(MarketParams):
    """What the consensus ADMM markets (this one and the bilateral market) share: ρ0,
    residual balancing (μ, τ, checked every ``BALANCE_EVERY`` rounds), the stopping
    tolerance on the scaled residuals, how the peers settle their binaries and how they
    solve each round's QP."""

    BALANCE_EVERY: ClassVar[int] = 10
    rho0: float = Field(100.0, gt=0, description="initial penalty ρ (€/MW²h)")
    residual_balancing: bool = Field(True, description="adapt ρ to the residuals")
    balancing_mu: float = Field(10.0, gt=1, description="residual balancing μ (ρ changes "
                                "when one residual exceeds μ × the other)")
    balancing_tau: float = Field(2.0, gt=1, description="residual balancing τ (the factor ρ "
                                 "changes by)")
    residual_tolerance: float = Field(1e-4, gt=0, description="the market stops once the "
                                      "primal and dual residuals (scaled: relative to the "
                                      "quantities and the prices) are at most this")
    binaries: Literal["relax", "fix"] = Field(
        "relax", description="the peers' binaries, relaxed (genuine on/off decisions kept "
        "from the plan without the market) or all fixed from that plan")
    qp: Literal["osqp", "highs"] = Field(
        "osqp", description="how a peer solves each round's QP: OSQP with its factorization "
        "and last iterates kept between rounds (HiGHS solves a round OSQP does not), or "
        "HiGHS's active-set method from scratch every round")

    def agent_options(self) -> dict:
        return {"binaries": self.binaries, "qp": self.qp}


class ADMMParams(ConsensusParams):
    """The first round's trade prices are public: the midpoint of the retail buy and
    feed-in prices of the run's data (0 without data)."""

    DEFAULT_ROUNDS: ClassVar[int] = 500
    mechanism: Literal["admm"] = "admm"
    network: bool = Field(True, description="the network operator takes part and its network "
                          "limits bind the trades; false: unconstrained P2P")

    def operator_takes_part(self) -> bool:
        return self.network or super().operator_takes_part()


@dataclass
class ADMMState:
    periods: int
    period_h: float
    day: int
    peers: list[str]
    operator: str | None
    pairs: np.ndarray  # (K, 2) peer indices (n, m), n < m
    a: np.ndarray  # (K, T) agreed purchase of n from m (kW); m's is −a
    price: np.ndarray  # (K, T) the pair's price λ (€/kWh)
    y: np.ndarray  # (N, T) agreed net import (kW)
    mu: np.ndarray  # (N, T) peers' injection prices (€/kWh)
    nu: np.ndarray  # (N, T) operator's injection prices (€/kWh)
    rho: float  # €/MW²h, of the pairs' reciprocity
    rho_net: float  # €/MW²h, of the network's consensus
    q: np.ndarray | None = None  # (N, T) peers' last net imports
    z: np.ndarray | None = None  # (N, T) operator's last view of them
    records: list[RoundRecord] = field(default_factory=list)
    round: int = 0
    converged: bool = False
    stopped: str = ""  # why the market stopped before converging, if it did
    partners: dict[str, list[tuple[int, str, int]]] = field(default_factory=dict)
    ends_sign: object = None  # (N, K) sparse: +1 at (n, k), −1 at (m, k) of pair k = (n, m)
    ends_abs: object = None  # (N, K) sparse: 1 at both ends of pair k
    degree: np.ndarray | None = None  # (N,) counterparties per peer

    @property
    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.peers)}


def _can(body: RegisterBody, key: str, periods: int) -> np.ndarray:
    return limit(body, key, periods, default=0.0) > 0


def trade_pairs(roster: Mapping[str, RegisterBody], peers: list[str], periods: int,
                limits: tuple[str, str] = ("import", "export")) -> np.ndarray:
    """Pairs (n, m), n < m, that can trade: in some period one of them may export and the
    other import (``limits``: the registered limits' keys, import first)."""
    imp_key, exp_key = limits
    exp = np.array([_can(roster[p], exp_key, periods) for p in peers]).reshape(len(peers), -1)
    imp = np.array([_can(roster[p], imp_key, periods) for p in peers]).reshape(len(peers), -1)
    ok = (exp.astype(int) @ imp.T.astype(int) > 0)
    ok = ok | ok.T
    n, m = np.nonzero(np.triu(ok, k=1))
    return np.stack([n, m], axis=1).astype(int) if len(n) else np.zeros((0, 2), int)


def init_admm(roster: Mapping[str, RegisterBody], params: ADMMParams, day: int = 0):
    periods, period_h = horizon(roster)
    peers, operator = peers_and_operator(roster, params.network)
    pairs = trade_pairs(roster, peers, periods)
    K, N = len(pairs), len(peers)
    price0 = np.zeros(periods)
    if params.data.buy_eur_per_kwh:
        buy, sell = params.data.day(day, periods)
        price0 = (buy + sell) / 2
    state = ADMMState(periods, period_h, day, peers, operator, pairs,
                      a=np.zeros((K, periods)), price=np.tile(price0, (K, 1)),
                      y=np.zeros((N, periods)), mu=np.zeros((N, periods)),
                      nu=np.zeros((N, periods)), rho=params.rho0,
                      rho_net=params.rho0)
    for k, (n, m) in enumerate(pairs):
        state.partners.setdefault(peers[n], []).append((k, peers[m], +1))
        state.partners.setdefault(peers[m], []).append((k, peers[n], -1))
    from scipy import sparse  # here: the scenario schema imports this module's parameters

    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([np.arange(K), np.arange(K)])
    sign = np.concatenate([np.ones(K), -np.ones(K)])
    state.ends_sign = sparse.csr_matrix((sign, (rows, cols)), shape=(N, K))
    state.ends_abs = sparse.csr_matrix((np.abs(sign), (rows, cols)), shape=(N, K))
    state.degree = np.bincount(rows, minlength=N)
    return _signals(state, params), state


def _signals(state: ADMMState, params: ADMMParams) -> dict[str, SignalBody]:
    """Each peer's trade terms, aggregated over its counterparties (their mean price λ̄_n
    and its agreed net purchase A_n = Σ_m a_nm; the module docstring says why that is
    all its problem needs), its agreed net import and that one's price; the operator's
    targets and prices per peer."""
    out = {}
    # The coordinator's own finite numbers: built without re-validating each series.
    terms = Terms.model_construct
    deg = state.degree
    mean_price = (state.ends_abs @ state.price) / np.maximum(deg, 1)[:, None]
    agreed = state.ends_sign @ state.a
    mean_price, agreed = mean_price.tolist(), agreed.tolist()
    mu, nu, y = state.mu.tolist(), state.nu.tolist(), state.y.tolist()
    for i, name in enumerate(state.peers):
        own = {} if state.operator is None else {
            NET: terms(price_eur_per_kwh=mu[i], target_kw=y[i], rho=state.rho_net)}
        if deg[i]:
            own[KEY] = terms(price_eur_per_kwh=mean_price[i], target_kw=agreed[i])
        out[name] = SignalBody.model_construct(terms=own, by_counterparty=None, rho=state.rho,
                                               counterparties=int(deg[i]))
    if state.operator is not None:
        by = {n: terms(price_eur_per_kwh=nu[i], target_kw=y[i])
              for i, n in enumerate(state.peers)}
        out[state.operator] = SignalBody.model_construct(terms={}, by_counterparty={NET: by},
                                                         rho=state.rho_net, counterparties=None)
    return out


def check_offer(body: OfferBody, periods: int) -> str | None:
    for key, values in body.quantities_kw.items():
        if len(values) != periods:
            return f"quantities_kw.{key}: expected {periods} values, got {len(values)}"
    for key, by in (body.by_counterparty_kw or {}).items():
        for other, values in by.items():
            if len(values) != periods:
                return (f"by_counterparty_kw.{key}.{other}: expected {periods} values, "
                        f"got {len(values)}")
    return None


def peer_series(offers, state, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(values (N, T), whether the peer sent them) of commodity ``key`` in the offers."""
    out = np.zeros((len(state.peers), state.periods))
    sent = np.zeros(len(state.peers), bool)
    for i, name in enumerate(state.peers):
        body = offers.get(name)
        if body is not None and key in body.quantities_kw:
            out[i], sent[i] = body.quantities_kw[key], True
    return out, sent


def split_purchases(state: ADMMState, s: np.ndarray, rho_kw: float) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """(P_nm, P_mn) per pair: each peer's net purchase s_n split among its counterparties
    as its own problem would split it, P_nm = v_nm + (s_n − V_n)/M_n with v_nm = a_nm −
    λ_nm/ρ and V_n = Σ_m v_nm (the module docstring)."""
    n, m = state.pairs[:, 0], state.pairs[:, 1]
    v_nm = state.a - state.price / rho_kw
    v_mn = -state.a - state.price / rho_kw
    V = state.ends_sign @ state.a - (state.ends_abs @ state.price) / rho_kw
    share = (s - V) / np.maximum(state.degree, 1)[:, None]
    return v_nm + share[n], v_mn + share[m]


def _purchases(offers, state: ADMMState, rho_kw: float) -> tuple[np.ndarray, np.ndarray]:
    """(P_nm, P_mn) per pair from this round's offers; a peer that did not offer its net
    purchase (it left the market) trades nothing."""
    s, sent = peer_series(offers, state, KEY)
    p_nm, p_mn = split_purchases(state, s, rho_kw)
    n, m = state.pairs[:, 0], state.pairs[:, 1]
    p_nm[~sent[n]] = 0.0
    p_mn[~sent[m]] = 0.0
    return p_nm, p_mn


def _net(offers, state: ADMMState) -> np.ndarray:
    q, sent = peer_series(offers, state, NET)
    q[~sent] = state.y[~sent]  # a silent peer keeps the agreed value
    return q


def _operator_view(offers, state: ADMMState) -> np.ndarray | None:
    body = offers.get(state.operator)
    if body is None:
        return None
    by = (body.by_counterparty_kw or {}).get(NET, {})
    z = np.array(state.y, copy=True)
    for i, name in enumerate(state.peers):
        if name in by:
            z[i] = by[name]
    return z


def norm(*parts: np.ndarray) -> float:
    return float(np.sqrt(sum(float(np.sum(p * p)) for p in parts)))


def step_admm(offers, state: ADMMState, params: ADMMParams):
    """One ADMM iteration on the round's offers: agreed trades and injections, prices,
    residuals, ρ per group; the next round's signals, or done."""
    state.round += 1
    rho_kw = state.rho / KW_PER_MW ** 2  # €/kW²h
    p_nm, p_mn = _purchases(offers, state, rho_kw)
    a_prev, y_prev = state.a, state.y
    state.a = (p_nm - p_mn) / 2
    state.price = state.price + rho_kw * (p_nm + p_mn) / 2
    trade = Residuals(rho_kw)
    trade.add(primal=[(p_nm + p_mn) / 2] * 2, local=[p_nm, p_mn], agreed=[state.a, state.a],
              change=[state.a - a_prev] * 2, duals=[state.price] * 2)
    groups = {"trade": trade}
    if state.operator is not None:
        z = _operator_view(offers, state)
        if z is None:
            state.stopped = f"the operator {state.operator} left the market"
            return _finish(state, params, groups)
        rho_net = state.rho_net / KW_PER_MW ** 2
        q = _net(offers, state)
        state.q, state.z = q, z
        state.y = (q + z) / 2 + (state.mu + state.nu) / (2 * rho_net)
        state.mu = state.mu + rho_net * (q - state.y)
        state.nu = state.nu + rho_net * (z - state.y)
        groups["net"] = net = Residuals(rho_net)
        net.add(primal=[q - state.y, z - state.y], local=[q, z], agreed=[state.y, state.y],
                change=[state.y - y_prev] * 2, duals=[state.mu, state.nu])
    else:
        state.q = _net(offers, state)
    return _finish(state, params, groups)


@dataclass
class Residuals:
    """One constraint group's ADMM residuals, stacked (kW and €/kWh), at its ρ (€/kW²h)."""

    rho_kw: float
    primal: list = field(default_factory=list)
    local: list = field(default_factory=list)
    agreed: list = field(default_factory=list)
    change: list = field(default_factory=list)
    duals: list = field(default_factory=list)

    def add(self, primal, local, agreed, change, duals) -> None:
        self.primal += primal
        self.local += local
        self.agreed += agreed
        self.change += change
        self.duals += duals

    def scaled(self, scale: Residuals | None = None) -> tuple[float, float]:
        """(primal, dual), each relative to the size of what it measures (Boyd et al.
        2011, §3.3.1): ‖r‖ / max(‖Ax‖, ‖z‖) and ρ‖Δz‖ / ‖λ‖, the sizes those of ``scale``
        (default: this group). Dimensionless, so kW and MW communities and €/kWh prices
        balance alike; NaN for a group without members."""
        if not self.primal or not any(p.size for p in self.primal):
            return float("nan"), float("nan")
        scale = scale or self
        r = norm(*self.primal) / max(norm(*scale.local), norm(*scale.agreed), TINY_KW)
        s = self.rho_kw * norm(*self.change) / max(norm(*scale.duals), TINY_EUR_PER_KWH)
        return r, s


def relaxed(local: np.ndarray, agreed: np.ndarray, alpha: float) -> np.ndarray:
    """Over-relaxation (Boyd et al. 2011, §3.4.3): the local copy the agreement and the
    price update see, α·x + (1 − α)·z with z the agreement before this round; α = 1 is
    plain ADMM (with residual balancing, 1.3–1.8 took fewer or more rounds case by case:
    docs/mechanisms/bilateral.md)."""
    return local if alpha == 1.0 else alpha * local + (1.0 - alpha) * agreed


RHO_OF = {"trade": "rho", "net": "rho_net"}  # the state's ρ of each constraint group


def balance_rho(rho: float, r: float, s: float, round_: int, params: ConsensusParams) -> float:
    """Residual balancing of one group's ρ: far apart (one residual above μ² × the other)
    every round, ρ is far off its scale; otherwise every ``balance_every`` rounds."""
    if not (params.residual_balancing and np.isfinite(r) and np.isfinite(s)):
        return rho
    if r > params.balancing_mu ** 2 * s or round_ % params.BALANCE_EVERY == 0:
        if r > params.balancing_mu * s:
            return rho * params.balancing_tau
        if s > params.balancing_mu * r:
            return rho / params.balancing_tau
    return rho


def _finish(state: ADMMState, params: ADMMParams, groups: dict[str, Residuals]):
    whole = Residuals(0.0)  # the sizes of every group's quantities and prices together
    for res in groups.values():
        whole.add([], res.local, res.agreed, [], res.duals)
    scaled = {g: res.scaled(whole) for g, res in groups.items()}
    finite = [rs for rs in scaled.values() if np.isfinite(rs[0])]
    r = max((rs[0] for rs in finite), default=float("nan"))
    s = max((rs[1] for rs in finite), default=float("nan"))
    state.converged = bool(not state.stopped and r <= params.residual_tolerance and s <= params.residual_tolerance)
    traded = np.abs(state.a).sum(axis=0) if len(state.a) else np.zeros(state.periods)
    primal = [p for res in groups.values() for p in res.primal]
    scalars = {"primal_residual": r, "dual_residual": s}
    for g, (rg, sg) in scaled.items():
        scalars[RHO_OF[g]] = getattr(state, RHO_OF[g])
        scalars[f"primal_{g}"], scalars[f"dual_{g}"] = rg, sg
    state.records.append(RoundRecord(state.round, norm(*primal) if primal else float("inf"),
                                     per_period={"traded_kw": traded}, scalars=scalars))
    for g, (rg, sg) in scaled.items():
        setattr(state, RHO_OF[g], balance_rho(getattr(state, RHO_OF[g]), rg, sg, state.round,
                                           params))
    done = state.converged or bool(state.stopped) or state.round >= params.rounds
    if done and not state.converged and not state.stopped:
        state.stopped = (f"no convergence in {state.round} rounds (primal residual {r:.3g}, "
                         f"dual residual {s:.3g}, tolerance {params.residual_tolerance:g})")
    return ({} if done else _signals(state, params)), state, done


def positions(state: ADMMState) -> dict[str, np.ndarray]:
    """Each peer's net P2P purchase per period (kW) at the agreed trades."""
    return dict(zip(state.peers, state.ends_sign @ state.a, strict=True))


def traded_eur(state: ADMMState) -> dict[str, np.ndarray]:
    """Each peer's payment for its trades per period (€, + it pays)."""
    pay = state.ends_sign @ (state.period_h * state.price * state.a)
    return dict(zip(state.peers, pay, strict=True))


def clear_admm(state: ADMMState, params: ADMMParams) -> dict[str, ClearingBody]:
    """Every peer's trades per counterparty at the pair prices, its position (net P2P
    purchase) and its average purchase price."""
    by_kw = {n: {} for n in state.peers}
    by_price = {n: {} for n in state.peers}
    for name in state.peers:
        for k, other, sign in state.partners.get(name, []):
            by_kw[name][other] = (sign * state.a[k]).tolist()
            by_price[name][other] = state.price[k].tolist()
    return bilateral_clearings(key=KEY, peers=state.peers, operator=state.operator,
                               periods=state.periods, period_h=state.period_h,
                               pos=positions(state), pay=traded_eur(state), by_kw=by_kw,
                               by_price=by_price, converged=state.converged)


def settle_admm(state: ADMMState, params: ADMMParams, meters):
    """The agreed trades' bill (``bilateral_settlements``)."""
    return bilateral_settlements(state.peers, state.operator, state.periods, positions(state),
                                 traded_eur(state))


CORE = MarketCore(params_type=ADMMParams, kinds=KINDS, init=init_admm, step=step_admm,
                  clear=clear_admm, settle=settle_admm, check_offer=check_offer)
