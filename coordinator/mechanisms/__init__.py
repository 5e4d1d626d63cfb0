"""Market mechanisms registered by name (see ``coordinator.mechanisms.base``): a new
mechanism is a module with its functions and one entry here."""

from __future__ import annotations

import dataclasses

from coordinator.mechanisms import admm as _admm
from coordinator.mechanisms import amc as _amc
from coordinator.mechanisms import bilateral as _bil
from coordinator.mechanisms import clearance as _clr
from coordinator.mechanisms import gdrmc as _gdrmc
from coordinator.mechanisms import locality as _loc
from coordinator.mechanisms import p2g as _p2g
from coordinator.mechanisms import p2v_rules as _p2v
from coordinator.mechanisms.base import Mechanism, RoundRecord
from coordinator.mechanisms.network_check import checked

__all__ = ["MECHANISMS", "NETWORK_CHECKS", "Mechanism", "RoundRecord", "dump_params",
           "get_mechanism", "load_params"]

MECHANISMS: dict[str, Mechanism] = {m.name: m for m in (
    Mechanism("p2v_rules", _p2v.P2VParams, _p2v.KINDS, "limits", _p2v.init_p2v,
              _p2v.p2v_rules, _p2v.clear_p2v, _p2v.settle_p2v, _p2v.check_offer,
              "prosumers sell PV surplus to EVs at a fixed price, four coordination rules "
              "(Faia et al. 2021)"),
    Mechanism("amc", _loc.LocalityParams, _loc.KINDS, "quote", _loc.init_locality, _amc.step,
              _loc.clear_locality, _loc.settle_locality, _loc.check_offer,
              "locality market, average market clearing prices (seed 004)"),
    Mechanism("gdrmc", _loc.LocalityParams, _loc.KINDS, "quote", _loc.init_locality,
              _gdrmc.step, _loc.clear_locality, _loc.settle_locality, _loc.check_offer,
              "locality market, generation-to-demand-ratio prices (seed 004)"),
    Mechanism("p2g", _loc.LocalityParams, _loc.KINDS, "quote", _loc.init_locality, _p2g.step,
              _p2g.clear, _p2g.settle, _loc.check_offer,
              "no local market: every participant trades with the retailer (seed 004)"),
    Mechanism("admm", _admm.ADMMParams, _admm.KINDS, "admm", _admm.init_admm, _admm.step_admm,
              _admm.clear_admm, _admm.settle_admm, _admm.check_offer,
              "bilateral P2P trades cleared by ADMM, with the network operator's limits "
              "(seed 001)"),
    Mechanism("clearance", _clr.ClearanceParams, _clr.KINDS, "quote", _clr.init_clearance,
              _clr.step_clearance, _clr.clear_clearance, _clr.settle_clearance,
              _clr.check_offer,
              "P2P trades matched by double auction, cleared by the network operator's DC "
              "limits (seed 003)"),
    Mechanism("bilateral", _bil.BilateralParams, _bil.KINDS, "bilateral",
              _bil.init_bilateral, _bil.step_bilateral, _bil.clear_bilateral,
              _bil.settle_bilateral, _bil.check_offer,
              "bilateral power and heat trades by consensus ADMM, with the network "
              "operator's loss and congestion penalties (seed 002)"),
)}


# what may follow any mechanism's market: nothing, or the network operator's clearance of
# its trades (``coordinator.mechanisms.network_check``)
NETWORK_CHECKS = {"none": lambda mech: mech, "clearance": checked}


def get_mechanism(name: str, network_check: str = "none") -> Mechanism:
    try:
        mech = MECHANISMS[name]
    except KeyError:
        raise KeyError(f"unknown mechanism {name!r}; known: {', '.join(MECHANISMS)}") from None
    try:
        return NETWORK_CHECKS[network_check](mech)
    except KeyError:
        raise KeyError(f"unknown network check {network_check!r}; known: "
                       f"{', '.join(NETWORK_CHECKS)}") from None


def dump_params(name: str, params, network_check: str = "none") -> dict:
    """A mechanism and its parameters as JSON-ready data (for a coordinator process)."""
    return {"mechanism": name, "params": dataclasses.asdict(params),
            "network_check": network_check}


def load_params(raw: dict) -> tuple[Mechanism, object]:
    """Inverse of ``dump_params``; a one-line error for anything else."""
    try:
        mech = get_mechanism(raw["mechanism"], raw.get("network_check", "none"))
        return mech, mech.params_type(**raw["params"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a mechanism parameter set ({exc})") from None
