"""The DSO clearance of seed 003 without agents: the authors' community, hour by hour
(matching, the residual baseline, the DSO's LP), for reproducing their published days
and for ``lemgrid bench --clearance`` (clearance time per hour on CIGRE LV, village_1 and
a case of 1000 trades). A run of the market mechanism ``clearance`` does the same work
through agents, the coordinator and the operator."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.mechanisms.matching import (
    ASK_EUR_PER_KWH,
    BID_EUR_PER_KWH,
    MIN_TRADE_MW,
    match_buses,
)
from grid.clearance import (
    Clearance,
    ClearanceInfeasible,
    DcNetwork,
    Trade,
    clear_trades,
    residual_injection_mw,
)
from grid.community_lv import HOURS, Placement, Profiles, hourly_mw


@dataclass(frozen=True)
class HourResult:
    """One hour of the community: totals in MW and the DSO's clearance (None if it failed).

    The authors' published columns are ``grid_import_mw`` ("Inverted Slack Power
    Adjustments"), ``grid_import_mw + accepted_mw`` ("Top Line of Stack (P2P trades)") and
    ``total_load_mw`` ("Total Load (MWh)").
    """

    hour: int
    total_load_mw: float
    total_pv_mw: float
    offered_mw: float
    accepted_mw: float
    grid_import_mw: float
    clearance: Clearance | None
    error: str | None = None




def clear_hour(network: DcNetwork, placement: Placement, profiles: Profiles, hour: int,
               scale: float = 1.0, bid_eur_per_kwh: float = BID_EUR_PER_KWH,
               ask_eur_per_kwh: float = ASK_EUR_PER_KWH, min_trade_mw: float = MIN_TRADE_MW,
               one_seller_per_buyer: bool = False) -> HourResult:
    """Match, then clear, one hour; ClearanceInfeasible names the hour and the branch."""
    gen, load = hourly_mw(placement, profiles, hour, scale)
    matches = match_buses(gen, load, bid_eur_per_kwh, ask_eur_per_kwh, min_trade_mw,
                          one_seller_per_buyer)
    trades = [Trade(m.seller_bus, m.buyer_bus, m.q_mw, m.price_eur_per_kwh) for m in matches]
    base = residual_injection_mw(gen, load, trades)
    clearance = clear_trades(network, trades, base, label=f"hour {hour}")
    return HourResult(hour, sum(load.values()), sum(gen.values()), clearance.offered_mw,
                      clearance.accepted_total_mw, clearance.grid_import_mw, clearance)


def clear_day(network: DcNetwork, placement: Placement, profiles: Profiles,
              scale: float = 1.0, strict: bool = True, **options) -> list[HourResult]:
    """`clear_hour` for hours 0..23 (`options` go to it). With strict=False an infeasible
    hour is recorded (clearance None, error set) and the day goes on."""
    out = []
    for hour in range(HOURS):
        try:
            out.append(clear_hour(network, placement, profiles, hour, scale, **options))
        except ClearanceInfeasible as err:
            if strict:
                raise
            gen, load = hourly_mw(placement, profiles, hour, scale)
            nan = float("nan")
            out.append(HourResult(hour, sum(load.values()), sum(gen.values()), nan, nan, nan,
                                  None, str(err)))
    return out
