"""Peer-to-grid (P2G, docs/mechanisms/locality.md, cases 1 and 2): no local market. Every
participant plans under its own power injection limit (when the utility imposes PILs) and
trades its whole realised power with the retailer at its own tariff; the market takes
nothing and bills nothing."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from lemgrid.coordinator.mechanisms import locality
from lemgrid.coordinator.mechanisms.base import MarketCore, MarketParams, zero_settlement
from lemgrid.coordinator.protocol import ClearingBody


class P2GParams(MarketParams):
    """No parameters of its own: each building's power injection limit is the utility's
    (``pil``); there is no locality, so no locality demand limit."""

    mechanism: Literal["p2g"] = "p2g"
    demand_limit: ClassVar[bool] = False


def step(offers, state, params):
    """Record the quotes and the grid prices; there is nothing to clear."""
    def retail(buy, sell, D, G):
        return buy, sell
    return locality.step_locality(offers, state, params, retail, max_rounds=1)


def clear(state, params):
    zero = [0.0] * state.periods
    return {n: ClearingBody(quantities_kw={locality.KEY: q.tolist()}, position_kw=zero,
                            converged=True) for n, q in state.quotes.items()}


def settle(state, params, meters):
    zero = np.zeros(state.periods)
    return {n: zero_settlement(zero, zero) for n in state.quotes}


CORE = MarketCore(params_type=P2GParams, kinds=locality.KINDS, init=locality.init_locality,
                  step=step, clear=clear, settle=settle, check_offer=locality.check_offer)
