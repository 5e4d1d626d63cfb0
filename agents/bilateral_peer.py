"""A peer's local problem in the bilateral market (``coordinator.mechanisms.bilateral``):
its own model plus one trade column per counterparty, commodity and period, held in HiGHS.

The peer's model (``agents.admm_peer.PeerModel``: its day, binaries settled, the net P2P
power purchase s_t and, where it trades heat, the P2P heat purchase open) gets, for every
counterparty m and commodity k, columns P_{m,t} (kW bought from m, − sold) and u_{m,t} ≥
|P_{m,t}| (rows u − P ≥ 0, u + P ≥ 0), linked by s_{k,t} = Σ_m P_{m,t}. A round's terms
are the pair's price λ, the agreed trade a and the path penalty pen per counterparty and
the retail path penalty:

    Σ_t Δt [Σ_m (λ_m P_m + pen_m u_m + ρ/2 (P_m − a_m)²) + pen_retail (buy_t + sell_t)]

on top of the peer's own cost (its retail bill and its producers' costs, quadratic where
they are: ``PeerModel``'s Hessian). Unlike the ADMM market's peers it cannot answer with
its net purchase alone: the penalties differ between counterparties.
"""

from __future__ import annotations

import highspy
import numpy as np

from agents.admm_peer import OBJECTIVE_SCALE, PeerModel
from coordinator.protocol import HEAT, POWER


class BilateralPeer:
    """Build once a day (counterparties per commodity), set each round's terms, solve."""

    def __init__(self, data, partners: dict[str, list[str]], binaries: str = "relax",
                 mip_rel_gap: float = 1e-6, time_limit_s: float = 60.0):
        self.partners = {k: list(v) for k, v in partners.items() if v}
        self.base = PeerModel(data, len(self.partners.get(POWER, [])), mip_rel_gap,
                              time_limit_s, binaries, heat=bool(self.partners.get(HEAT)))
        self.periods = data.horizon.periods
        self.dt = data.horizon.period_h
        self.cols: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # key -> (P, u) (M, T)
        self._add_trades()
        self._hessian_key = None

    @property
    def name(self) -> str:
        return self.base.name

    def _add_trades(self) -> None:
        h, T = self.base.highs, self.periods
        inf = highspy.kHighsInf
        for key, names in self.partners.items():
            m = len(names)
            first = h.getNumCol()
            n = 2 * m * T
            h.addCols(n, np.zeros(n), np.concatenate([np.full(m * T, -inf), np.zeros(m * T)]),
                      np.full(n, inf), 0, np.array([], np.int32), np.array([], np.int32),
                      np.array([], float))
            p = (first + np.arange(m * T, dtype=np.int32)).reshape(m, T)
            u = p + m * T
            s = self.base.purchase_columns(key)
            starts, index, value = [], [], []
            for t in range(T):  # s_t − Σ_m P_{m,t} = 0
                starts.append(len(index))
                index += [int(s[t]), *p[:, t].tolist()]
                value += [1.0, *([-1.0] * m)]
            for j in range(m):  # u − P ≥ 0 and u + P ≥ 0
                for t in range(T):
                    for sign in (-1.0, 1.0):
                        starts.append(len(index))
                        index += [int(u[j, t]), int(p[j, t])]
                        value += [1.0, sign]
            rows = len(starts)
            lower = np.concatenate([np.zeros(T), np.zeros(rows - T)])
            upper = np.concatenate([np.zeros(T), np.full(rows - T, inf)])
            h.addRows(rows, lower, upper, len(index), np.array(starts, np.int32),
                      np.array(index, np.int32), np.array(value, float))
            self.cols[key] = (p, u)

    def set_terms(self, rho_eur_per_mw2h: float, by_counterparty: dict | None,
                  retail_penalty=None) -> None:
        """The round's terms: ``by_counterparty[m][key]`` has price_eur_per_kwh, target_kw
        and penalty_eur_per_kwh per period; ``retail_penalty`` €/kWh per period (or None)."""
        base, dt, T = self.base, self.dt, self.periods
        rho = rho_eur_per_mw2h / 1e6  # €/kW²h
        if self.partners and rho <= 0:
            raise ValueError(f"{self.name}: a bilateral round needs ρ > 0, got {rho_eur_per_mw2h}")
        n = base.highs.getNumCol()
        own = base.convex_cost()
        cost, diag = np.zeros(n), np.zeros(n)
        cost[:len(own)], diag[:len(own)] = own, base.quadratic_diag()
        if retail_penalty is not None:
            for cols in base.retail_columns():
                cost[cols] += dt * _series(retail_penalty, T)
        for key, names in self.partners.items():
            p, u = self.cols[key]
            for j, other in enumerate(names):
                terms = (by_counterparty or {}).get(other, {}).get(key)
                if terms is None:  # the market sent nothing for it: no trade this round
                    base.highs.changeColsBounds(T, p[j], np.zeros(T), np.zeros(T))
                    continue
                base.highs.changeColsBounds(T, p[j], np.full(T, -highspy.kHighsInf),
                                            np.full(T, highspy.kHighsInf))
                price = _series(terms.price_eur_per_kwh, T)
                target = _series(terms.target_kw, T)
                cost[p[j]] = dt * (price - rho * target)
                cost[u[j]] = dt * _series(terms.penalty_eur_per_kwh, T)
                diag[p[j]] = dt * rho
        cols = np.arange(n, dtype=np.int32)
        base.highs.changeColsCost(n, cols, OBJECTIVE_SCALE * cost)
        key = (rho, n)
        if key != self._hessian_key:
            base.pass_hessian(OBJECTIVE_SCALE * diag)
            self._hessian_key = key

    def solve(self):
        """The round's plan (a Schedule whose objective is the peer's own cost)."""
        return self.base.solve()

    def trades_kw(self) -> dict[str, dict[str, list[float]]]:
        """Per commodity, the planned trade with each counterparty (kW, + bought)."""
        x = self.base.x
        return {key: {other: x[self.cols[key][0][j]].tolist()
                      for j, other in enumerate(names)}
                for key, names in self.partners.items()}

    def net_kw(self) -> np.ndarray:
        return self.base.net_kw()


def _series(values, periods: int) -> np.ndarray:
    if values is None:
        return np.zeros(periods)
    return np.broadcast_to(np.asarray(values, float), (periods,)).copy()
