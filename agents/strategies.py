"""How an agent answers a mechanism: one strategy per family of mechanisms (a mechanism's
plug-in names its family, or a ``module:Class`` of its own with ``family``, ``limits``
and ``answer`` as here).

- ``limits`` (P2V rules): the coordinator sends per-period P2V limits; the agent re-plans
  under them (only when they changed) and offers its P2V quantities.
- ``quote`` (AMC, GDRMC, P2G): the agent plans its day against its retail tariff, under
  the export limit the signal names (its own PIL where the utility imposes one, else its
  connection's limit), and quotes its planned net demand; when the market announces
  importer and exporter prices (price discovery), it re-plans against them.

- ``commodity_consensus`` (bilateral P2P with path penalties): as ``peer_consensus``, per commodity (power
  and heat, whose limits it registers too), with a path penalty on its retail energy;
  the market's agreement step carries the pairs' penalties.

- ``peer_consensus`` (ADMM P2P): the agent registers its import and export limits, then every
  round re-solves its local problem (``agents.admm_peer``) with the round's trade
  target, mean pair price and ρ and offers its net P2P purchase and its net import.

A strategy also says which connection limits the agent registers with, and which
modules its answers import (``preload``): the agent launcher imports them once before it
forks the agent processes, instead of every process on its first answer.
"""

from __future__ import annotations

import importlib

import numpy as np

from lemgrid.agents.admm_peer import PEER, PeerModel, connection_limits, heat_limits
from lemgrid.agents.model import AGENT
from lemgrid.agents.qp import PRELOAD
from lemgrid.coordinator.protocol import HEAT, NET, P2P, POWER, OfferBody, Signal


def _series(value, periods: int) -> list[float]:
    arr = np.broadcast_to(np.asarray(value, float), (periods,))
    return [float(v) for v in arr]


class LimitsStrategy:
    family = "limits"
    variant = AGENT  # the model it solves (agents.model)
    KEY = "p2v"

    def limits(self, day_data) -> dict[str, list[float]]:
        return {self.KEY: [float(day_data.p2v_max_kw)]}

    def answer(self, agent, msg: Signal) -> OfferBody:
        terms = msg.body.terms.get(self.KEY)
        limit = None if terms is None else terms.limit_kw
        if limit is not None and (agent.limit is None or not np.array_equal(limit, agent.limit)):
            agent.limit = np.asarray(limit, float)
            agent.model.set_p2v_limit(np.minimum(agent.limit, agent.day_data.p2v_max_kw))
            agent.plan = None
        agent.solve_if_needed()
        return OfferBody(quantities_kw={self.KEY: agent.plan.flows_kw["p2v_kw"].tolist()})


class QuoteStrategy:
    family = "quote"
    variant = AGENT  # the model it solves (agents.model)

    def limits(self, day_data) -> dict[str, list[float]]:
        n = day_data.horizon.periods
        export = float(getattr(day_data, "sell_max_kw", 0.0))
        pil = getattr(day_data, "pil_kw", None)
        cdl = getattr(day_data, "cdl_kw", None)
        return {"import": [float(day_data.buy_max_kw)], "export": [export],
                "cdl": _series(day_data.buy_max_kw if cdl is None else cdl, n),
                "pil": _series(export if pil is None else np.minimum(pil, export), n)}

    def answer(self, agent, msg: Signal) -> OfferBody:
        """Apply the signal's export limit and, when the market announces prices, plan
        against them (the market bills the locality's demand limit in its prices, not the
        agent's own); quote the planned net demand."""
        imp, exp = msg.body.terms.get("import"), msg.body.terms.get("export")
        if exp is not None and exp.limit_kw is not None and (
                agent.limit is None or not np.array_equal(exp.limit_kw, agent.limit)):
            agent.limit = np.asarray(exp.limit_kw, float)
            agent.set_export_limit(agent.limit)
            agent.plan = None
        if imp is not None and exp is not None and imp.price_eur_per_kwh is not None:
            agent.model.set_prices(imp.price_eur_per_kwh, exp.price_eur_per_kwh,
                                   demand_limit=False)
            agent.plan = None
        agent.solve_if_needed()
        return OfferBody(quantities_kw={"net": agent.planned_net_kw().tolist()})


class ADMMStrategy:
    family = "peer_consensus"
    variant = PEER  # the model it solves (agents.model)
    preload = PRELOAD  # the rounds' QP solver (agents.qp)

    def limits(self, day_data) -> dict[str, list[float]]:
        imp, exp = connection_limits(day_data)
        return {"import": imp.tolist(), "export": exp.tolist()}

    def answer(self, agent, msg: Signal) -> OfferBody:
        """Build the day's peer model at the first round (with as many counterparties as
        the signal names), apply the round's terms and solve; offer the net P2P purchase
        and the net import."""
        body = msg.body
        count = body.counterparties or 0
        model = agent.model
        if not isinstance(model, PeerModel) or model.counterparties != count:
            agent.model = model = PeerModel(agent.day_data, count, binaries=agent.binaries,
                                            qp=agent.qp, **agent.options)
        trade, net = body.terms.get(P2P), body.terms.get(NET)
        model.set_terms(body.rho or 0.0,
                        None if trade is None else (trade.price_eur_per_kwh, trade.target_kw),
                        None if net is None else (net.price_eur_per_kwh, net.target_kw),
                        None if net is None else net.rho)
        agent.plan = model.solve()
        agent.last_solve_s = agent.plan.solve_time_s
        quantities = {NET: model.net_kw().tolist()}
        if count:
            quantities[P2P] = model.purchase_kw().tolist()
        return OfferBody(quantities_kw=quantities)


class BilateralStrategy:
    family = "commodity_consensus"
    variant = PEER  # the model it solves (agents.model)
    preload = PRELOAD

    def limits(self, day_data) -> dict[str, list[float]]:
        imp, exp = connection_limits(day_data)
        heat_imp, heat_exp = heat_limits(day_data)
        return {"import": imp.tolist(), "export": exp.tolist(),
                "heat_import": heat_imp.tolist(), "heat_export": heat_exp.tolist()}

    def answer(self, agent, msg: Signal) -> OfferBody:
        """Build the day's peer model (``agents.admm_peer``) for the pairs the terms
        aggregate per commodity, apply the round's terms and the retail path penalty,
        solve; offer the net purchase of each commodity and the net import."""
        body = msg.body
        power, heat = body.terms.get(POWER), body.terms.get(HEAT)
        count = power.counterparties or 0 if power is not None else 0
        heat_count = heat.counterparties or 0 if heat is not None else 0
        model = agent.model
        if (not isinstance(model, PeerModel) or model.counterparties != count
                or model.heat != bool(heat_count)):
            agent.model = model = PeerModel(agent.day_data, count, binaries=agent.binaries,
                                            heat=bool(heat_count), qp=agent.qp,
                                            **agent.options)
        retail = body.terms.get("retail")
        model.set_terms(body.rho or 0.0,
                        (power.price_eur_per_kwh, power.target_kw) if count else None,
                        heat=((heat.price_eur_per_kwh, heat.target_kw, heat_count)
                              if heat_count else None),
                        retail_penalty=None if retail is None else retail.penalty_eur_per_kwh)
        agent.plan = model.solve()
        agent.last_solve_s = agent.plan.solve_time_s
        quantities = {NET: model.net_kw().tolist()}
        if count:
            quantities[POWER] = model.purchase_kw().tolist()
        if heat_count:
            quantities[HEAT] = model.x[model.purchase_columns(HEAT)].tolist()
        return OfferBody(quantities_kw=quantities)


STRATEGIES = {s.family: s for s in (LimitsStrategy(), QuoteStrategy(), ADMMStrategy(),
                                    BilateralStrategy())}


def strategy(family: str):
    """The strategy of ``family``: a family name, or ``module:Class`` of a mechanism's
    own strategy (instantiated without arguments)."""
    if family in STRATEGIES:
        return STRATEGIES[family]
    module, sep, attr = family.partition(":")
    if sep:
        try:
            return getattr(importlib.import_module(module), attr)()
        except (ImportError, AttributeError, TypeError) as exc:
            raise ValueError(f"strategy {family!r} cannot be loaded ({exc})") from None
    raise ValueError(f"unknown strategy family {family!r}; known: {', '.join(STRATEGIES)}, "
                     "or module:Class")
