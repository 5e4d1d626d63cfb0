"""The network operator as a market agent (kind ``operator``, docs/mechanisms/admm.md).

It holds the network model (``grid.branchflow``: the relaxed branch-flow SOCP, or the
LinDistFlow LP) and answers an ADMM market's signals: given the agreed net import y_n of
every peer, its own prices ν_n and ρ, it returns the imports z_n the network can carry
at least cost (its losses at the loss price plus the consensus terms). It knows where
each peer is connected and the network's own background load, never a peer's costs or
profiles. It has no connection of its own: it is cleared and billed at zero and
meters 0 kW every period, like any participant, so every runtime treats it alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from lemgrid.agents.data import OperatorData
from lemgrid.coordinator.protocol import (
    INFEASIBLE,
    KW_PER_MW,
    NET,
    Meter,
    MeterBody,
    Offer,
    OfferBody,
    Register,
    RegisterBody,
    Signal,
)
from lemgrid.grid.branchflow import OperatorModel, radial_network
from lemgrid.grid.clearance import (
    ClearanceInfeasible,
    Trade,
    clear_trades,
    dc_network,
    residual_injection_mw,
)
from lemgrid.grid.networks import load_network
from lemgrid.grid.paths import feeder_paths, path_penalties, root_bus
from lemgrid.grid.powerflow import GridLimits, GridModel

LOSS, CONGESTION = "loss", "congestion"  # a bilateral market's penalty prices (signal terms)


def operator_network(data: OperatorData):
    """The network the operator holds, with the limits it keeps."""
    return radial_network(load_network(data.network, **data.network_options),
                          data.v_min_pu, data.v_max_pu, data.max_loading_pct)


def bus_background(data: OperatorData, values: list[float], buses: int) -> np.ndarray:
    """A constant background (kW or kvar per bus) as buses × periods; none: zeros."""
    periods = data.horizon.periods
    if not values:
        return np.zeros((buses, periods))
    return np.tile(np.asarray(values, float)[:, None], (1, periods))


def day_loss_price(data: OperatorData, day: int) -> np.ndarray | None:
    """The price of losses in each period of ``day`` (€/kWh), or None: free."""
    run = np.asarray(data.loss_price_eur_per_kwh, float)
    if not run.size:
        return None
    periods = data.horizon.periods
    one = run[day * periods:(day + 1) * periods] if run.size > periods else run
    return np.resize(one, periods)


@dataclass
class OperatorPlan:
    """The operator's answer in one round: its loss cost and the network's state."""

    objective_eur: float
    losses_kw: np.ndarray
    import_kw: np.ndarray
    v_pu: np.ndarray
    solve_time_s: float

    @classmethod
    def idle(cls, periods: int, solve_time_s: float = 0.0) -> OperatorPlan:
        """No loss cost of its own and no network state: a clearance answer, or a market
        that never asked the operator."""
        zero = np.zeros(periods)
        return cls(0.0, zero, zero.copy(), np.zeros((0, periods)), solve_time_s)


class OperatorAgent:
    """The network operator in a market over a run of days."""

    kind = "operator"

    def __init__(self, data: OperatorData):
        self.data = data
        self._network = None  # the branch-flow model, built when a market first needs it
        self._dc = None  # the DC model of the clearance, likewise
        self._paths = None  # the feeder's paths and AC model of a bilateral market, likewise
        self._bus_ids: list[int] = []
        self.day: int | None = None
        self.model: OperatorModel | None = None
        self.peers: list[str] = []
        self.plan: OperatorPlan | None = None
        self.last_solve_s = 0.0
        self.round_costs_eur: dict[tuple[int, int], float] = {}
        self.round_solve_s: dict[tuple[int, int], float] = {}
        self.settled = None
        self.clearing = None
        self.realised: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def network(self):
        if self._network is None:
            self._network = operator_network(self.data)
        return self._network

    @property
    def dc(self):
        if self._dc is None:
            net = load_network(self.data.network, **self.data.network_options)
            self._dc = dc_network(net, name=self.data.network,
                                  reverse_flow_pct=self.data.reverse_flow_pct)
            self._bus_ids = [int(b) for b in net.bus.index]  # the background's order
        return self._dc

    @property
    def day_data(self) -> OperatorData:
        return self.data

    def start_day(self, day: int) -> None:
        self.day, self.model, self.plan, self.clearing = day, None, None, None
        self.realised = {}

    def register(self, day: int = 0) -> Register:
        if day != self.day:
            self.start_day(day)
        h = self.data.horizon
        return Register(sender=self.name, day=day,
                        body=RegisterBody(kind="operator", periods=h.periods,
                                          period_h=h.period_h))

    def _build(self, peers: list[str]) -> None:
        d = self.data
        missing = [p for p in peers if p not in d.buses]
        if missing:
            raise ValueError(f"operator {d.name}: no bus for {', '.join(missing[:5])}")
        tan_phi = float(np.tan(np.arccos(d.power_factor)))
        self.peers = list(peers)
        self.model = OperatorModel(
            self.network, d.horizon.periods, d.horizon.period_h,
            [d.buses[p] for p in peers], model=d.model,
            background_kw=bus_background(d, d.background_kw, self.network.n_buses),
            background_kvar=bus_background(d, d.background_kvar, self.network.n_buses),
            peer_tan_phi=tan_phi, loss_price_eur_per_kwh=day_loss_price(d, self.day),
            z_min_kw=[-d.connections_kw[p][1] for p in peers] if d.connections_kw else None,
            z_max_kw=[d.connections_kw[p][0] for p in peers] if d.connections_kw else None)

    def on_signal(self, msg: Signal) -> Offer:
        """Clear the signal's trades, or re-solve the network block (ADMM) with the
        round's targets, prices and ρ."""
        if LOSS in msg.body.terms:
            return self._penalties(msg)
        if msg.body.trades is not None:
            return self._clear(msg)
        begin = time.perf_counter()
        by = (msg.body.by_counterparty or {}).get(NET, {})
        peers = list(by)
        if self.model is None or peers != self.peers:
            self._build(peers)
        y = np.array([by[p].target_kw for p in peers], float)
        price = np.array([by[p].price_eur_per_kwh for p in peers], float)
        start = time.perf_counter()
        result = self.model.update(y, price, (msg.body.rho or 0.0) / KW_PER_MW ** 2)
        self.last_solve_s = time.perf_counter() - start
        h = self.data.horizon.period_h
        price = day_loss_price(self.data, self.day)
        cost = 0.0 if price is None else float(h * np.dot(price, result.losses_kw))
        self.plan = OperatorPlan(cost, result.losses_kw, result.import_kw, result.v_pu,
                                 self.last_solve_s)
        self.round_costs_eur[(msg.day, msg.round)] = cost
        self.round_solve_s[(msg.day, msg.round)] = time.perf_counter() - begin
        z = {p: result.z_kw[i].tolist() for i, p in enumerate(peers)}
        return Offer(sender=self.name, day=msg.day, round=msg.round,
                     body=OfferBody(quantities_kw={"losses": result.losses_kw.tolist()},
                                    by_counterparty_kw={NET: z}))

    def _clear(self, msg: Signal) -> Offer:
        """The DSO's clearance, period by period (``grid.clearance``): the base
        injections from every participant's quoted net demand and the network's
        background load (the paper's residual baseline), the trades on their buses; the kW
        accepted of each trade and the limits that bind. A period whose base injections
        alone overload the network accepts nothing and says why."""
        begin = time.perf_counter()
        d, trades = self.data, msg.body.trades
        nets = {p: np.asarray(t.target_kw, float)
                for p, t in (msg.body.by_counterparty or {}).get(NET, {}).items()}
        named = {p for t in trades for p in (t.seller, t.buyer)} | set(nets)
        missing = sorted(p for p in named if p not in d.buses)
        if missing:
            raise ValueError(f"operator {d.name}: no bus for {', '.join(missing[:5])}")
        periods = d.horizon.periods
        dc = self.dc
        background = bus_background(d, d.background_kw, len(d.background_kw))
        kw = np.array([t.kw for t in trades], float).reshape(len(trades), periods)
        accepted = np.zeros_like(kw)
        binding: dict[str, list[str]] = {}
        solve = 0.0
        for t in range(periods):
            gen, load = {}, {}
            for p, net in nets.items():
                bus = d.buses[p]
                gen[bus] = gen.get(bus, 0.0) + max(-net[t], 0.0) / KW_PER_MW
                load[bus] = load.get(bus, 0.0) + max(net[t], 0.0) / KW_PER_MW
            for bus, value in zip(self._bus_ids, background[:, t], strict=False):
                if value:
                    load[bus] = load.get(bus, 0.0) + value / KW_PER_MW
            live = [k for k in range(len(trades)) if kw[k, t] > 0]
            period = [Trade(d.buses[trades[k].seller], d.buses[trades[k].buyer],
                            kw[k, t] / KW_PER_MW) for k in live]
            try:
                result = clear_trades(dc, period, residual_injection_mw(gen, load, period),
                                      label=f"period {t}")
            except ClearanceInfeasible as exc:
                binding[str(t)] = [f"{INFEASIBLE} {exc}"[:200]]
                continue
            solve += result.solve_time_s
            accepted[live, t] = result.accepted_mw * KW_PER_MW
            if result.binding:
                binding[str(t)] = [b.label[:200] for b in result.binding]
        self.last_solve_s = solve
        self.plan = OperatorPlan.idle(periods, solve)
        self.round_costs_eur[(msg.day, msg.round)] = 0.0
        self.round_solve_s[(msg.day, msg.round)] = time.perf_counter() - begin
        return Offer(sender=self.name, day=msg.day, round=msg.round,
                     body=OfferBody(quantities_kw={}, accepted_kw=accepted.tolist(),
                                    binding=binding or None))

    def _penalty_model(self):
        """(feeder paths, the AC model of the peers on their buses, the root bus)."""
        if self._paths is None:
            d = self.data
            net = load_network(d.network, **d.network_options)
            background = bus_background(d, d.background_kw, len(net.bus)).T
            ac = GridModel(net, d.buses, background_kw=background if d.background_kw else None,
                           power_factor=d.power_factor,
                           limits=GridLimits(max_loading_pct=d.max_loading_pct),
                           keep_network_loads=False)
            self._paths = (feeder_paths(net, d.network), ac, root_bus(net))
        return self._paths

    def _penalties(self, msg: Signal) -> Offer:
        """A bilateral market's path penalties (``grid.paths``): per pair of the signal's
        trades and per peer's retail path, α·R + β·θ, where θ marks paths through lines
        the AC power flow of the peers' planned nets (when the signal has them) finds
        above ``max_loading_pct``; those lines per period and the losses."""
        begin = time.perf_counter()
        d, body = self.data, msg.body
        paths, ac, root = self._penalty_model()
        periods = d.horizon.periods
        alpha = np.broadcast_to(np.asarray(body.terms[LOSS].price_eur_per_kwh, float), periods)
        beta = np.broadcast_to(np.asarray(body.terms[CONGESTION].price_eur_per_kwh, float),
                               periods)
        by = (body.by_counterparty or {}).get(NET, {})
        peers = list(by)
        named = {p for t in body.trades or () for p in (t.seller, t.buyer)} | set(peers)
        missing = sorted(p for p in named if p not in d.buses)
        if missing:
            raise ValueError(f"operator {d.name}: no bus for {', '.join(missing[:5])}")
        congested: list[set[int]] = [set() for _ in range(periods)]
        binding: dict[str, list[str]] = {}
        losses = None
        if peers and all(by[p].target_kw is not None for p in peers):
            losses = np.zeros(periods)
            for t in range(periods):
                result = ac.step(t, {p: float(by[p].target_kw[t]) for p in peers})
                losses[t] = result.losses_kw
                over = np.flatnonzero(result.loading_pct > ac.limits.max_loading_pct)
                lines = [ac.line_ids[k] for k in over]
                congested[t] = set(lines)
                if lines:
                    binding[str(t)] = [f"line {line} at {result.loading_pct[k]:.1f} %"
                                       for line, k in zip(lines, over)]
        trades = body.trades or []
        pair_pen, retail_pen = path_penalties(
            paths, [(d.buses[t.buyer], d.buses[t.seller]) for t in trades],
            [d.buses[p] for p in peers], root, alpha, beta, congested)
        penalties: dict[str, dict[str, list[float]]] = {}
        for k, t in enumerate(trades):
            penalties.setdefault(t.buyer, {})[t.seller] = pair_pen[k].tolist()
        for i, p in enumerate(peers):
            penalties.setdefault(p, {})[self.name] = retail_pen[i].tolist()
        self.last_solve_s = time.perf_counter() - begin
        self.plan = OperatorPlan(0.0, np.zeros(periods) if losses is None else losses,
                                 np.zeros(periods), np.zeros((0, periods)), self.last_solve_s)
        self.round_costs_eur[(msg.day, msg.round)] = 0.0
        self.round_solve_s[(msg.day, msg.round)] = self.last_solve_s
        return Offer(sender=self.name, day=msg.day, round=msg.round, body=OfferBody(
            quantities_kw={} if losses is None else {"losses": losses.tolist()},
            penalties_eur_per_kwh=penalties, binding=binding or None))

    def on_clearing(self, msg) -> OperatorPlan:
        """The day is cleared. A market that never asked the operator (no trade to clear,
        say) leaves it an idle plan: no losses of its own, nothing to solve."""
        self.clearing = msg.body
        if self.plan is None:
            self.plan = OperatorPlan.idle(self.data.horizon.periods)
        return self.plan

    def planned_net_kw(self) -> np.ndarray:
        return np.zeros(self.data.horizon.periods)

    def realise(self, t: int, observed: dict[str, float] | None = None) -> Meter:
        """No connection: 0 kW (what co-simulators report changes nothing)."""
        self.realised.setdefault("net_kw", np.zeros(self.data.horizon.periods))
        return Meter(sender=self.name, day=self.day, round=0, body=MeterBody(period=t, p_kw=0.0))

    def realise_day(self) -> list[Meter]:
        return [self.realise(t) for t in range(self.data.horizon.periods)]

    def on_settlement(self, msg) -> None:
        return None
