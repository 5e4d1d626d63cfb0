"""An agent as a market participant over a run of days.

It speaks only protocol messages (``coordinator.protocol``); the transport (in-process
calls, ZeroMQ, mosaik) lives in thin adapters around it. Each day: ``register`` (the
day's model is built from that day's data, starting from the energy the previous day
left), answer ``signal``s with offers (its strategy decides how, re-solving only when
needed), take the ``clearing``, ``realise`` every period (one ``meter`` each) and take
the ``settlement``: the settled day (flows and bill) is ``settled``.
"""

from __future__ import annotations

import time

import numpy as np

from lemgrid.agents.billing import day_bill, settled_flows
from lemgrid.agents.data import MODEL_BUILDS, Schedule, net_load_kw
from lemgrid.agents.days import day_slice, days_covered
from lemgrid.agents.model import AgentModel
from lemgrid.agents.qp import QP_METHODS
from lemgrid.agents.realise import Actuals, observe, realise_period
from lemgrid.agents.solver import agent_kind
from lemgrid.agents.strategies import strategy
from lemgrid.coordinator.protocol import (
    NET,
    Clearing,
    ClearingBody,
    Meter,
    MeterBody,
    Offer,
    OfferBody,
    Register,
    RegisterBody,
    Settlement,
    SettlementBody,
    Signal,
)


def export_cap_kw(day_data) -> np.ndarray:
    """The most the agent may export at its connection per period (P2V sales included;
    a building's power injection limit where it has one; an EV: its V2G export limit
    while plugged in, 0 without V2G)."""
    n = day_data.horizon.periods
    if hasattr(day_data, "trip_kwh"):
        sell = float(getattr(day_data, "sell_max_kw", 0.0))
        return np.where(np.asarray(day_data.away, bool), 0.0, sell) if sell > 0 else np.zeros(n)
    cap = float(getattr(day_data, "sell_max_kw", 0.0) + getattr(day_data, "p2v_max_kw", 0.0))
    pil = getattr(day_data, "pil_kw", None)
    return np.full(n, cap) if pil is None else np.minimum(cap, pil)


def settle_schedule(day_data, kind: str, realised: dict[str, np.ndarray],
                    clearing: ClearingBody | None, settlement: SettlementBody | None,
                    plan: Schedule | None = None) -> Schedule:
    """The settled day: realised flows, the market's quantities and the bill."""
    planned_p2v = None if plan is None else plan.flows_kw.get("p2v_kw")
    flows = settled_flows(realised, clearing, planned_p2v)
    if plan is not None:
        flows["quote_kw"] = net_load_kw(kind, plan.flows_kw)
    soc = flows.pop("soc_kwh", None)
    bill = day_bill(day_data, flows["net_kw"], settlement, flows)
    flows["market_kw"] = bill.pop("market_kw")
    cost = bill.pop("cost_eur")
    return Schedule(agent=day_data.name, kind=kind, status="settled",
                    objective_eur=float(cost.sum()) if plan is None else plan.objective_eur,
                    method="" if plan is None else plan.method,
                    solve_time_s=0.0 if plan is None else plan.solve_time_s, flows_kw=flows,
                    soc_kwh=soc if day_data.battery is not None else None, cost_eur=cost,
                    costs_eur=bill)


def asks_planned_net(msg: Signal) -> bool:
    """An empty ``net`` term and nothing else: "tell me your planned net demand" (a network
    check after the market; an ADMM round's ``net`` terms carry targets and prices)."""
    b = msg.body
    net = b.terms.get(NET)
    return (net is not None and len(b.terms) == 1 and not net.model_dump(exclude_none=True)
            and not b.by_counterparty and not b.trades)


class MarketAgent:
    """One agent's market behaviour around its MILP, day after day."""

    def __init__(self, data, family: str = "limits", actuals: Actuals | None = None,
                 mip_rel_gap: float = 1e-6, time_limit_s: float = 60.0, lp_first: bool = True,
                 binaries: str = "relax", agent_models: str = MODEL_BUILDS[0],
                 qp: str = QP_METHODS[0], release_models: bool = False):
        self.data, self.strategy = data, strategy(family)
        self.release_models = release_models  # its model lets go of HiGHS between solves
        self.binaries = binaries  # how a convex market's local problem treats binaries
        self.qp = qp  # and how it solves its rounds' QPs (agents.qp)
        self.actuals = actuals or Actuals()
        self.options = {"mip_rel_gap": mip_rel_gap, "time_limit_s": time_limit_s,
                        "build": agent_models}
        self.lp_first = lp_first
        self.days = days_covered(data)
        self.soc_kwh = data.battery.e0_kwh if data.battery is not None else None
        self.day: int | None = None
        self.day_data = self.model = self.plan = self.clearing = self.limit = None
        self.export_limit_kw: np.ndarray | None = None
        self.settled: Schedule | None = None
        self.realised: dict[str, np.ndarray] = {}
        self.last_solve_s = 0.0
        self.round_costs_eur: dict[tuple[int, int], float] = {}  # (day, round) -> planned cost
        self.round_solve_s: dict[tuple[int, int], float] = {}  # (day, round) -> its answer

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def kind(self) -> str:
        return agent_kind(self.data)

    def start_day(self, day: int) -> None:
        """Build the day's model from its data and the energy carried over."""
        self.day, self.plan, self.clearing, self.limit, self.settled = day, None, None, None, None
        self.day_data = day_slice(self.data, day, self.soc_kwh)
        self.model = AgentModel(self.day_data, release=self.release_models, **self.options)
        self.export_limit_kw = export_cap_kw(self.day_data)
        self.realised = {}

    def follow(self, day: int, day_data, plan: Schedule) -> None:
        """Take a plan made elsewhere (the centralized model) for ``day`` and realise it
        like an own plan."""
        self.day, self.day_data, self.plan, self.clearing = day, day_data, plan, None
        self.export_limit_kw = export_cap_kw(day_data)
        self.realised = {}

    def register(self, day: int = 0) -> Register:
        if self.day != day or self.model is None:
            self.start_day(day)
        body = RegisterBody(kind=self.kind, periods=self.day_data.horizon.periods,
                            period_h=self.day_data.horizon.period_h,
                            limits_kw=self.strategy.limits(self.day_data))
        return Register(sender=self.name, day=day, body=body)

    def set_export_limit(self, limit_kw) -> None:
        """A market's export limit (kW per period) for planning and real time."""
        limit = np.asarray(limit_kw, float)
        self.model.set_export_limit(limit)
        if hasattr(self.day_data, "pil_kw"):  # buildings: the market names the export limit
            self.export_limit_kw = np.minimum(limit, self.day_data.sell_max_kw)

    def solve_if_needed(self) -> None:
        if self.plan is None:
            start = time.perf_counter()
            self.plan = self.model.solve(self.lp_first)
            self.last_solve_s = time.perf_counter() - start

    def planned_net_kw(self) -> np.ndarray:
        return net_load_kw(self.kind, self.plan.flows_kw)

    def on_signal(self, msg: Signal) -> Offer:
        """Answer the signal with an offer (the strategy re-plans where it must)."""
        start = time.perf_counter()
        self.last_solve_s = 0.0
        if asks_planned_net(msg):
            self.solve_if_needed()
            body = OfferBody(quantities_kw={NET: self.planned_net_kw().tolist()})
        else:
            body = self.strategy.answer(self, msg)
        self.round_costs_eur[(msg.day, msg.round)] = float(self.plan.objective_eur)
        self.round_solve_s[(msg.day, msg.round)] = time.perf_counter() - start
        return Offer(sender=self.name, day=msg.day, round=msg.round, body=body)

    def on_clearing(self, msg: Clearing) -> Schedule:
        """Take the day-ahead result; the plan stands (realisation follows it) but for the
        export caps of a network operator that curtailed the agent's sales."""
        self.clearing = msg.body
        n = len(self.export_limit_kw)
        for period, kw in (msg.body.export_limit_kw or {}).items():
            t = int(period) if period.isdigit() else -1
            if not 0 <= t < n:
                raise ValueError(f"clearing for {self.name}: export limit for period "
                                 f"{period!r}, outside 0-{n - 1}")
            self.export_limit_kw[t] = min(self.export_limit_kw[t], kw)
        return self.plan

    def realise(self, t: int, observed: dict[str, float] | None = None) -> Meter:
        """Period ``t`` in real time: realised flows, carried energy, the meter reading.
        ``observed``: what a co-simulator reports of the period (``load_kw``, ``pv_kw``,
        ``plugged``), over the agent's own actual profiles."""
        if self.plan is None:
            self.solve_if_needed()  # no market this day: the plan alone
        actual = self.actuals.at(self.day_data, self.day, t) | observe(self.day_data, observed)
        flows = realise_period(self.day_data, self.plan.flows_kw, t, self.soc_kwh, actual,
                               float(self.export_limit_kw[t]))
        n = self.day_data.horizon.periods
        for key, value in flows.items():
            self.realised.setdefault(key, np.zeros(n))[t] = value
        if "soc_kwh" in flows:
            self.soc_kwh = flows["soc_kwh"]
        return Meter(sender=self.name, day=self.day, round=0,
                     body=MeterBody(period=t, p_kw=flows["net_kw"]))

    def realise_day(self) -> list[Meter]:
        return [self.realise(t) for t in range(self.day_data.horizon.periods)]

    def on_settlement(self, msg: Settlement | None) -> Schedule:
        """The settled day (realised flows and the bill); ``None``: no market, all retail."""
        self.settled = settle_schedule(self.day_data, self.kind, self.realised, self.clearing,
                                       None if msg is None else msg.body, self.plan)
        return self.settled
