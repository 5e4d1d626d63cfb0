"""Market mechanisms registered by name: pure functions over offers.

A mechanism is ``init(roster, params) -> (signals, state)``,
``step(offers, state, params) -> (signals, state, done)`` and
``settle(state, params) -> clearings``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coordinator.mechanisms import p2v_rules as _p2v


@dataclass(frozen=True)
class Mechanism:
    name: str
    params_type: type
    init: Callable
    step: Callable
    settle: Callable


MECHANISMS: dict[str, Mechanism] = {
    "p2v_rules": Mechanism("p2v_rules", _p2v.P2VParams, _p2v.init_p2v, _p2v.p2v_rules,
                           _p2v.settle_p2v),
}


def get_mechanism(name: str) -> Mechanism:
    try:
        return MECHANISMS[name]
    except KeyError:
        raise KeyError(f"unknown mechanism {name!r}; known: {', '.join(MECHANISMS)}") from None
