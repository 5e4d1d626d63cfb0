"""The centralized benchmark: one MILP of all agents plus the market balance.

min Σ_a cost_a subject to every agent's own constraints and, for every period,
Σ_sellers p2v_t = Σ_buyers p2v_t (Eq. 34). The agents' blocks are filled by callables
the composition root passes in, so this module needs no agent code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyomo.environ as pyo

BlockFiller = Callable[[pyo.Block], object]


def build_centralized(fillers: Mapping[str, BlockFiller], sides: Mapping[str, str],
                      periods: int, balance: bool = True) -> pyo.ConcreteModel:
    """A model with one block per agent (``m.agents[name]``) and the P2V balance."""
    m = pyo.ConcreteModel(name="centralized")
    names = list(fillers)
    m.agents = pyo.Block(names)
    for name in names:
        fillers[name](m.agents[name])
    sellers = [n for n in names if sides[n] == "seller"]
    buyers = [n for n in names if sides[n] == "buyer"]
    if balance:
        m.p2v_balance = pyo.Constraint(range(periods), rule=lambda m, t: (
            sum(m.agents[n].p2v_kw[t] for n in sellers)
            == sum(m.agents[n].p2v_kw[t] for n in buyers)))
    m.obj = pyo.Objective(expr=sum(m.agents[n].cost_eur for n in names))
    return m
