"""An agent as a market participant: answers signals with offers, applies the clearing.

It speaks only protocol messages (``coordinator.protocol``); the transport (in-process
calls, ZeroMQ, mosaik) lives in thin adapters around it. It re-solves only when its
limits change; otherwise it repeats its last offer.
"""

from __future__ import annotations

import time

import numpy as np

from agents.data import EVData, ProsumerData, Schedule
from agents.solver import AgentModel
from coordinator.protocol import (
    Clearing,
    ClearingBody,
    Offer,
    OfferBody,
    Register,
    RegisterBody,
    Signal,
)


def period_costs_eur(data: ProsumerData | EVData, flows: dict[str, np.ndarray]) -> np.ndarray:
    """Cost in each period (€): energy at the agent's prices plus the fixed cost spread
    evenly over the day's periods."""
    tr, h = data.tariff, data.horizon.period_h
    cost = h * (tr.buy_eur_per_kwh * flows["buy_kw"])
    if isinstance(data, ProsumerData):
        cost -= h * (tr.sell_eur_per_kwh * flows["sell_kw"] + tr.p2v_eur_per_kwh * flows["p2v_kw"])
    else:
        cost += h * tr.p2v_eur_per_kwh * flows["p2v_kw"]
    return cost + tr.fixed_eur_per_day / data.horizon.periods


def settle_schedule(data: ProsumerData | EVData, plan: Schedule,
                    clearing: ClearingBody) -> Schedule:
    """The plan after clearing: P2V as cleared; a seller's unsold rest is exported to the
    retailer (feed-in), a buyer's unmet rest is bought from the retailer (time of use)."""
    flows = dict(plan.flows_kw)
    residual = np.asarray(clearing.residual_kw, float)
    flows["p2v_offered_kw"] = flows["p2v_kw"]
    flows["p2v_kw"] = np.asarray(clearing.p2v_kw, float)
    key = "sell_kw" if isinstance(data, ProsumerData) else "buy_kw"
    flows[key] = flows[key] + residual
    return Schedule(plan.agent, plan.kind, plan.status, plan.objective_eur, plan.method,
                    plan.solve_time_s, flows, plan.soc_kwh, period_costs_eur(data, flows))


class MarketAgent:
    """One agent's market behaviour around its MILP."""

    def __init__(self, data: ProsumerData | EVData, mip_rel_gap: float = 1e-6,
                 time_limit_s: float = 60.0, lp_first: bool = True):
        self.data = data
        self.model = AgentModel(data, mip_rel_gap, time_limit_s)
        self.lp_first = lp_first
        self.plan: Schedule | None = None
        self.settled: Schedule | None = None
        self.last_solve_s = 0.0
        self.round_costs_eur: dict[int, float] = {}  # round -> planned cost of the day
        self._limit: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def side(self) -> str:
        return "seller" if self.model.kind == "prosumer" else "buyer"

    def register(self, day: int = 0) -> Register:
        body = RegisterBody(kind=self.model.kind, side=self.side,
                            periods=self.data.horizon.periods, p2v_max_kw=self.data.p2v_max_kw)
        return Register(sender=self.name, day=day, body=body)

    def on_signal(self, msg: Signal) -> Offer:
        """Apply the signal's limits, re-solve if they changed, offer the P2V quantities."""
        limit = msg.body.p2v_limit_kw
        self.last_solve_s, start = 0.0, time.perf_counter()
        if limit is not None and (self._limit is None or not np.array_equal(limit, self._limit)):
            self._limit = np.asarray(limit, float)
            self.model.set_p2v_limit(np.minimum(self._limit, self.data.p2v_max_kw))
            self.plan = None
        if self.plan is None:
            self.plan = self.model.solve(self.lp_first)
            self.last_solve_s = time.perf_counter() - start  # limit update + solve
        self.round_costs_eur[msg.round] = float(self.plan.objective_eur)
        return Offer(sender=self.name, day=msg.day, round=msg.round,
                     body=OfferBody(p2v_kw=self.plan.p2v_kw.tolist()))

    def on_clearing(self, msg: Clearing) -> Schedule:
        self.settled = settle_schedule(self.data, self.plan, msg.body)
        return self.settled
