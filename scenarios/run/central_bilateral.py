"""The centralized counterpart of the bilateral market (``coordinator.mechanisms.bilateral``,
docs/mechanisms/bilateral.md#centralized-counterpart): every peer's own problem and every
pair's trades in one convex QP, solved by HiGHS.

Each peer enters as its settled model (``agents.admm_peer.PeerModel``: binaries relaxed
or fixed as in the market, the P2P power and heat purchases open), as the matrices HiGHS
holds, with its producers' exact quadratic costs on the Hessian's diagonal. Every pair k
= (n, m) of a commodity has columns P_k,t (n buys from m; m's is −P_k,t) and u_k,t ≥
|P_k,t|, and every peer's purchase column equals the sum of its pairs' (+ where it is n,
− where it is m). The objective is the market's welfare: Σ peers' own costs (retail
bills, producers' costs) + Σ_t Δt [Σ_k 2·pen_k,t·u_k,t (each side pays the path
penalty) + Σ_n pen_retail n,t (buy + sell)]; the trade payments cancel. The ADMM market
converges to this optimum; ``welfare_eur`` of its result is the same sum.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from lemgrid.agents.admm_peer import (
    OBJECTIVE_SCALE,
    QP_ITERATION_LIMIT,
    PeerModel,
    interior_point,
    sparse_matrix,
)
from lemgrid.agents.days import day_slice
from lemgrid.coordinator.protocol import HEAT, POWER

INF = highspy.kHighsInf
# Where no penalty tells two paths apart the optimal split of a peer's trades is not
# unique, and HiGHS's active-set QP can cycle on that flat face: a tiny strictly convex
# term ε/2·P² per trade (1e-9 €/kW²h; 1 MW traded all day adds 0.012 €) picks one.
SPLIT_EPS_EUR_PER_KW2H = 1e-9
# Without a producer's quadratic cost the problem is an LP: HiGHS's interior point (with
# crossover) solves it at any size, where its active-set QP does not scale (faia2021's
# 90 peers and 3225 pairs: 709,440 columns, 325 s and 2 GB by interior point; the
# active-set QP had not finished after 17 minutes). The ε term is left out there: an
# LP's optimum is the same welfare whichever split the solver returns.


# The largest centralized counterpart computed (pairs × periods): 300 peers of scale.yaml,
# some 36,000 pairs over 96 periods, solved in a day's results; 1000 peers would be
# 499,500 pairs, 48 million pair-periods, beyond the memory of the machines it runs on.
MAX_PAIR_PERIODS = 4_000_000


@dataclass(frozen=True)
class CentralBilateral:
    welfare_eur: float  # Σ own costs + penalties
    # commodity -> (K, T) P of each pair (n buys from m), where a penalty tells pairs apart
    trades_kw: dict[str, np.ndarray]
    net_kw: dict[str, np.ndarray]  # each peer's net import per period
    own_cost_eur: dict[str, float]
    seconds: float


def _pair_count(pairs: dict[str, np.ndarray], n: int) -> tuple[dict[str, int], dict[str, bool]]:
    power = np.bincount(pairs.get(POWER, np.zeros((0, 2), int)).ravel(), minlength=n)
    heat = np.bincount(pairs.get(HEAT, np.zeros((0, 2), int)).ravel(), minlength=n)
    return power, heat > 0


def solve_central_bilateral(day_data: list, pairs: dict[str, np.ndarray],
                            penalty: dict[str, np.ndarray], retail_penalty: np.ndarray,
                            binaries: str = "relax", split: bool = False) -> CentralBilateral:
    """One day of the bilateral market in one QP. ``pairs[key]``: (K, 2) peer indices
    into ``day_data``; ``penalty[key]``: (K, T) €/kWh; ``retail_penalty``: (N, T).

    A commodity whose pairs carry no penalty at all gets no pair columns (unless
    ``split``): which pairs carry a trade changes no cost there, so its balance is one row
    per period and group of peers the pairs connect (their purchases sum to zero), the
    same feasible purchases as the pairs' columns (any such sums split along the pairs of
    a connected group), without K·T columns (300 peers: 44,850 pairs × 96 periods)."""
    start = time.perf_counter()
    n_peers = len(day_data)
    degree, heat = _pair_count(pairs, n_peers)
    models = [PeerModel(d, int(degree[i]), binaries=binaries, heat=bool(heat[i]))
              for i, d in enumerate(day_data)]
    T, dt = day_data[0].horizon.periods, day_data[0].horizon.period_h
    blocks, costs, penalties, diags, lows, ups, rlows, rups = [], [], [], [], [], [], [], []
    first = []
    col = 0
    for i, m in enumerate(models):
        lp = m.highs.getLp()
        blocks.append(sparse_matrix(lp))
        costs.append(m.convex_cost())
        retail = np.zeros(lp.num_col_)
        for cols in m.retail_columns():
            retail[cols] += dt * retail_penalty[i]
        penalties.append(retail)
        diags.append(m.quadratic_diag())
        lows.append(np.asarray(lp.col_lower_, float))
        ups.append(np.asarray(lp.col_upper_, float))
        rlows.append(np.asarray(lp.row_lower_, float))
        rups.append(np.asarray(lp.row_upper_, float))
        first.append(col)
        col += lp.num_col_
    local = sp.block_diag(blocks, format="csc")
    n_local = col
    first = np.asarray(first)
    # trade columns of the commodities whose pairs a penalty tells apart: P (K·T), u (K·T)
    trade_cols = {}
    for key, kp in pairs.items():
        if split or np.any(np.asarray(penalty[key], float) != 0):
            k = len(kp)
            trade_cols[key] = (col + np.arange(k * T).reshape(k, T),
                               col + k * T + np.arange(k * T).reshape(k, T))
            col += 2 * k * T
    n_cols = col
    extra = _Rows()
    tt = np.arange(T)
    for key, kp in pairs.items():
        kp = np.asarray(kp, int).reshape(-1, 2)
        if not len(kp):
            continue
        purchase = np.array([first[i] + models[i].purchase_columns(key)[:T]
                             if (degree[i] if key == POWER else heat[i]) else np.full(T, -1)
                             for i in range(n_peers)])  # (N, T); −1: no such column
        if key not in trade_cols:  # Σ purchases of a connected group = 0 per period
            for group in _groups(kp, n_peers):
                extra.add(np.repeat(tt[None, :], len(group), 0), purchase[group],
                          np.ones((len(group), T)), 0.0, 0.0)
            continue
        p, u = trade_cols[key]
        k = len(kp)
        # s_i,t − Σ_k ±P_k,t = 0: one row per peer with a purchase column and period
        peers = np.flatnonzero(purchase[:, 0] >= 0)
        row_of = np.full(n_peers, -1)
        row_of[peers] = np.arange(len(peers))
        base = extra.add(row_of[peers][:, None] * T + tt, purchase[peers],
                         np.ones((len(peers), T)), 0.0, 0.0)
        for side, sign in ((0, -1.0), (1, 1.0)):  # −P where the peer is n, +P where m
            extra.entries(base + row_of[kp[:, side]][:, None] * T + tt, p, np.full((k, T), sign))
        cell = np.arange(k * T).reshape(k, T)
        for sign in (-1.0, 1.0):  # u ∓ P ≥ 0
            rows = extra.add(cell, u, np.ones((k, T)), 0.0, INF) + cell
            extra.entries(rows, p, np.full((k, T), sign))
    a = sp.vstack([sp.hstack([local, sp.csc_matrix((local.shape[0], n_cols - n_local))]),
                   extra.matrix(n_cols)]).tocsc()
    own_cost = np.zeros(n_cols)  # the peers' own linear costs (their offsets aside)
    own_cost[:n_local] = np.concatenate(costs)
    paid = np.zeros(n_cols)  # the penalties: retail paths, then each side's on the trades
    paid[:n_local] = np.concatenate(penalties)
    diag = np.zeros(n_cols)
    diag[:n_local] = np.concatenate(diags)
    col_lo = np.concatenate([*lows, np.zeros(n_cols - n_local)])
    col_hi = np.concatenate([*ups, np.full(n_cols - n_local, INF)])
    linear = not diag.any()
    for key, (p, u) in trade_cols.items():
        col_lo[p.ravel()] = -INF
        paid[u.ravel()] = 2 * dt * np.asarray(penalty[key], float).ravel()
        if not linear:
            diag[p.ravel()] = dt * SPLIT_EPS_EUR_PER_KW2H
    row_lo = np.concatenate([*rlows, extra.lower()])
    row_hi = np.concatenate([*rups, extra.upper()])
    x = _solve_qp(a, own_cost + paid, diag, col_lo, col_hi, row_lo, row_hi)
    own, net = {}, {}
    for i, m in enumerate(models):
        xi = m.own(x[first[i]:])
        own[day_data[i].name] = m.own_cost_eur(xi)
        net[day_data[i].name] = m.net_kw(xi)
    welfare = sum(own.values()) + float(paid @ x)
    return CentralBilateral(welfare, {k: x[p] for k, (p, _) in trade_cols.items()}, net, own,
                            time.perf_counter() - start)


class _Rows:
    """Rows appended below the peers' own, as coordinate entries and bounds."""

    def __init__(self):
        self.count = 0
        self._r, self._c, self._v, self._lo, self._hi = [], [], [], [], []

    def add(self, rows, cols, vals, lo: float, hi: float) -> int:
        """New rows numbered ``rows`` from the next free one (0-based among the new) with
        entries (rows, cols, vals) where cols ≥ 0; the first new row's index."""
        base = self.count
        rows = np.asarray(rows)
        self.entries(rows + base, cols, vals)
        n = int(rows.max()) + 1 if rows.size else 0
        self._lo.append(np.full(n, lo))
        self._hi.append(np.full(n, hi))
        self.count += n
        return base

    def entries(self, rows, cols, vals) -> None:
        rows, cols, vals = (np.asarray(x).ravel() for x in (rows, cols, vals))
        keep = cols >= 0
        self._r.append(rows[keep])
        self._c.append(cols[keep])
        self._v.append(vals[keep].astype(float))

    def matrix(self, n_cols: int):
        cat = (lambda xs, dtype: np.concatenate(xs) if xs else np.zeros(0, dtype))
        return sp.csc_matrix((cat(self._v, float), (cat(self._r, int), cat(self._c, int))),
                             shape=(self.count, n_cols))

    def lower(self) -> np.ndarray:
        return np.concatenate(self._lo) if self._lo else np.zeros(0)

    def upper(self) -> np.ndarray:
        return np.concatenate(self._hi) if self._hi else np.zeros(0)


def _groups(pairs: np.ndarray, n: int) -> list[np.ndarray]:
    """The peers the pairs connect, one array per connected group (peers in no pair left
    out)."""
    from scipy.sparse.csgraph import connected_components

    graph = sp.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    used = np.zeros(n, bool)
    used[pairs.ravel()] = True
    return [np.flatnonzero((label == g) & used) for g in np.unique(label[used])]


# Above this many columns HiGHS's active-set QP solver takes hours (faia2021's 90 peers
# trade on 4005 pairs × 96 periods: 0.4 million columns; its centralized QP had not
# finished after 25 minutes), so the QP goes to interior point (Clarabel) at once.
ACTIVE_SET_MAX_COLUMNS = 50_000


def _solve_qp(a, cost, diag, col_lo, col_hi, row_lo, row_hi) -> np.ndarray:
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
    lp.col_cost_ = OBJECTIVE_SCALE * cost
    lp.col_lower_, lp.col_upper_ = col_lo, col_hi
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(lp)
    if not diag.any():
        h.setOptionValue("solver", "ipm")
    nz = np.nonzero(diag)[0].astype(np.int32)
    if len(nz):
        start = np.searchsorted(nz, np.arange(a.shape[1])).astype(np.int32)
        h.passHessian(a.shape[1], len(nz), highspy.HessianFormat.kTriangular, start, nz,
                      OBJECTIVE_SCALE * diag[nz])
    if a.shape[1] > ACTIVE_SET_MAX_COLUMNS:  # a large QP: interior point from the start
        return interior_point(h, "centralized bilateral QP")
    h.setOptionValue("qp_iteration_limit", QP_ITERATION_LIMIT)
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return np.asarray(h.getSolution().col_value)
    if status in (highspy.HighsModelStatus.kInfeasible,
                  highspy.HighsModelStatus.kUnboundedOrInfeasible):
        raise RuntimeError(f"centralized bilateral QP: {h.modelStatusToString(status)}")
    h.clearSolver()  # stalled: the same QP by interior point
    return interior_point(h, "centralized bilateral QP")


def central_bilateral_days(s, community, days, bus_of: dict[str, int]) -> list[float | None]:
    """The centralized welfare of each market day on the market's own data: its peers (the
    batteries as the day before left them), the pairs it cleared and the loss penalties
    α·R of their paths (None where the congestion checks added penalties, or where it
    cannot be computed: the reason goes to the day's notes)."""
    from lemgrid.scenarios.results.checkpoint import carried_over

    out: list[float | None] = []
    paths = _feeder(s) if s.market.loss_price > 0 else None
    for k, day in enumerate(days):
        if _congestion_penalised(day):
            day.notes.append(f"centralized counterpart of day {day.day + 1}: not computed, "
                             "congestion checks added penalties to the market's paths")
            out.append(None)
            continue
        start = {d.name: d for d in carried_over(community, days[:k])}
        names = [n for n in start if n in day.clearings]
        if not names:
            out.append(None)
            continue
        datas = [day_slice(start[n], day.day) for n in names]
        pairs = market_pairs(s, datas)
        size = sum(len(p) for p in pairs.values()) * s.horizon.periods
        if size > MAX_PAIR_PERIODS:
            day.notes.append(f"centralized counterpart of day {day.day + 1}: not computed, "
                             f"{size:,} pair-periods (at most {MAX_PAIR_PERIODS:,}: its QP "
                             "would not fit this size)")
            out.append(None)
            continue
        penalty, retail = _loss_penalties(s, paths, pairs, [bus_of[n] for n in names])
        try:
            central = solve_central_bilateral(datas, pairs, penalty, retail, s.market.binaries)
            out.append(central.welfare_eur)
        except (RuntimeError, ValueError) as exc:
            day.notes.append(f"centralized counterpart of day {day.day + 1}: {exc}")
            out.append(None)
    return out


def _congestion_penalised(day) -> bool:
    return any(r.record.scalars.get("congested") not in (None, "{}") for r in day.rounds)


def market_pairs(s, datas) -> dict[str, np.ndarray]:
    """Every pair the market offered (traded or not), per commodity, as peer indices into
    ``datas``: the coordinator's own rule (``trade_pairs``) on the limits each peer
    registers (``BilateralStrategy.limits``); none in the pool comparison."""
    from lemgrid.agents.data import kind_of
    from lemgrid.agents.strategies import BilateralStrategy
    from lemgrid.coordinator.mechanisms.admm import trade_pairs
    from lemgrid.coordinator.mechanisms.bilateral import COMMODITY_LIMITS
    from lemgrid.coordinator.protocol import RegisterBody

    if s.market.pool:
        return {}
    periods = s.horizon.periods
    names = [d.name for d in datas]
    roster = {d.name: RegisterBody(kind=kind_of(d), periods=periods,
                                   period_h=d.horizon.period_h,
                                   limits_kw=BilateralStrategy().limits(d)) for d in datas}
    found = {key: trade_pairs(roster, names, periods, limits)
             for key, limits in COMMODITY_LIMITS.items()}
    return {key: pairs for key, pairs in found.items() if key == POWER or len(pairs)}


def _feeder(s):
    """(the feeder's paths, its root bus), as the network operator builds them."""
    from lemgrid.grid.networks import load_network
    from lemgrid.grid.paths import feeder_paths, root_bus
    from lemgrid.scenarios.run.network import network_options

    net = load_network(s.grid.network, **network_options(s))
    return feeder_paths(net, s.grid.network), root_bus(net)


def _loss_penalties(s, paths, pairs: dict[str, np.ndarray], buses: list[int]):
    """α·R per power pair and per peer's retail path (€/kWh per period), as the network
    operator computes them (``grid.paths``; ``paths``: ``_feeder``'s, None without a loss
    price); heat trades carry none."""
    from lemgrid.grid.paths import path_penalties

    T = s.horizon.periods
    penalty = {key: np.zeros((len(kp), T)) for key, kp in pairs.items()}
    retail = np.zeros((len(buses), T))
    if paths is None:
        return penalty, retail
    power = pairs.get(POWER, np.zeros((0, 2), int))
    pair_pen, retail = path_penalties(
        paths[0], [(buses[n], buses[m]) for n, m in power], buses, paths[1],
        np.full(T, s.market.loss_price), np.zeros(T), [set() for _ in range(T)])
    if len(power):
        penalty[POWER] = pair_pen
    return penalty, retail
