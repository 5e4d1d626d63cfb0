"""The DSO clearance of Vieira Fernandes, Christin, Kar (SmartGridComm 2024;
docs/mechanisms/clearance.md) without agents: the authors' community, hour by hour
(matching, the residual baseline, the DSO's LP), for reproducing their published days
and for ``lemgrid bench --clearance`` (clearance time per hour on CIGRE LV, village_1 and
a case of 1000 trades). A run of the market mechanism ``clearance`` does the same work
through agents, the coordinator and the operator."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lemgrid.coordinator.mechanisms.matching import (
    ASK_EUR_PER_KWH,
    BID_EUR_PER_KWH,
    MIN_TRADE_MW,
    match_buses,
)
from lemgrid.grid.clearance import (
    Clearance,
    ClearanceInfeasible,
    DcNetwork,
    Trade,
    clear_trades,
    dc_network,
    residual_injection_mw,
)
from lemgrid.grid.community_lv import (
    HOURS,
    Placement,
    Profiles,
    hourly_mw,
    place_community,
    read_profiles,
)
from lemgrid.grid.networks import load_network

DATA = Path(__file__).resolve().parents[1] / "data" / "fernandes2024"
NETWORKS = {"cigre_lv": 44, "village_1": 80}  # the paper's networks and their buses
AC_SCALE = 6.0  # village_1's profiles × this: the clearance curtails (from ≈ 4.8)


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
            out.append(HourResult(hour=hour, total_load_mw=sum(load.values()),
                                  total_pv_mw=sum(gen.values()), offered_mw=nan, accepted_mw=nan,
                                  grid_import_mw=nan, clearance=None, error=str(err)))
    return out


def random_trades(network: DcNetwork, n_trades: int, q_max_mw: float,
                  seed: int = 0) -> list[Trade]:
    """n_trades between random distinct in-service buses, q uniform in (0, q_max_mw]."""
    rng = np.random.default_rng(seed)
    buses = np.array(sorted(network.bus_node))
    pairs = [rng.choice(buses, size=2, replace=False) for _ in range(n_trades)]
    q = q_max_mw * (1.0 - rng.random(n_trades))
    return [Trade(int(s), int(d), float(v)) for (s, d), v in zip(pairs, q)]


def bench_clearance(n_trades: int = 1000, repeats: int = 20, q_max_mw: float = 0.5,
                    seed: int = 0) -> dict[str, float]:
    """Median seconds of `clear_trades` (define + solve + extract; network building
    excluded) on CIGRE LV (44 buses) with 12 trades and village_1 (80 buses) with 20, then
    on each with `n_trades`: random seeded trades of up to `q_max_mw` (at 0.5 MW the
    transformers bind) over a random base of ±5 kW per bus."""
    nets = {"cigre_lv_44": (load_network("cigre_lv"), 12),
            "village_1_80": (load_network("village_1"), 20)}
    cases = [(key, net, n) for key, (net, n) in nets.items()]
    cases += [(f"{key}_{n_trades}_trades", net, n_trades) for key, (net, _) in nets.items()]
    out = {}
    for key, net, n in cases:
        network = dc_network(net)
        rng = np.random.default_rng(seed)
        base = {b: float(v) for b, v in zip(network.bus_node,
                                            rng.uniform(-5e-3, 5e-3, len(network.bus_node)))}
        trades = random_trades(network, n, q_max_mw, seed)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            clear_trades(network, trades, base)
            times.append(time.perf_counter() - start)
        out[key] = float(np.median(times))
    return out


def hour_times(network_name: str, scale: float, runs: int) -> dict[str, float]:
    """The authors' community on ``network_name`` at ``scale``: the median time of one
    hour's clearance (matching, baseline, the LP) over the day's hours and ``runs`` runs,
    with the curtailed energy and the hours that are infeasible."""
    net = load_network(network_name)
    network, placement = dc_network(net), place_community(net)
    profiles = read_profiles(DATA)
    times, curtailed, infeasible = [], 0.0, 0
    for _ in range(runs):
        for hour in range(HOURS):
            start = time.perf_counter()
            try:
                r = clear_hour(network, placement, profiles, hour, scale, min_trade_mw=0.0)
            except ClearanceInfeasible:
                infeasible += 1
                continue
            times.append(time.perf_counter() - start)
            curtailed += r.offered_mw - r.accepted_mw
    return {"hour_ms": 1e3 * statistics.median(times) if times else float("nan"),
            "curtailed_mwh": curtailed / runs, "infeasible_hours": infeasible / runs}


def run_clearance_bench(runs: int, info: dict, out: str, scales=(1.0, 6.0)) -> int:
    """``lemgrid bench fernandes2024_cigre`` (or _village): the clearance time per hour on
    both networks at each scale, and on 1000 random trades."""
    print(f"lemgrid bench: DSO clearance, {runs} run(s); machine: {info['cpu']}, "
          f"{info['cores']} cores, Python {info['python']}\n")
    rows = {}
    print(f"{'network':12} {'buses':>5} {'scale':>6} {'ms per hour':>12} {'curtailed MWh':>14} "
          f"{'infeasible h':>13}")
    for name, buses in NETWORKS.items():
        for scale in scales:
            r = hour_times(name, scale, runs)
            rows[f"{name}@{scale:g}"] = r
            print(f"{name:12} {buses:5d} {scale:6g} {r['hour_ms']:12.3f} "
                  f"{abs(r['curtailed_mwh']):14.6f} {r['infeasible_hours']:13g}")
    many = bench_clearance(n_trades=1000, repeats=max(runs, 3))
    print("\nclear_trades alone (median ms; 1000 random trades of up to 0.5 MW):")
    for key, sec in many.items():
        print(f"  {key:32} {1e3 * sec:10.3f}")
    residue = ac_residue("village_1", AC_SCALE)
    print(f"\nwhat the DC model misses (village_1 at scale {AC_SCALE:g}, the hours it curtails; "
          "the DC injections in an AC power flow):")
    for r in residue:
        print(f"  hour {r['hour']:2d}: curtailed {r['curtailed_mw']:.6f} MW; DC flow "
              f"{r['dc_flow_over_rating_pct']:.1f} % of the transformer's rating, AC loading "
              f"{r['ac_trafo_loading_pct']:.1f} %; AC voltages {r['ac_v_min_pu']:.4f}-"
              f"{r['ac_v_max_pu']:.4f} pu")
    Path(out).write_text(json.dumps({"runs": runs, "machine": info, "hours": rows,
                                     "clear_trades_s": many, "ac_residue": residue},
                                    indent=2) + "\n")
    print(f"written: {out}")
    return 0


def ac_residue(network_name: str, scale: float) -> list[dict]:
    """What the DC clearance misses, hour by hour where it curtails: the network's
    injections as the DC model has them after the clearance (the residual baseline plus
    the accepted trades) in pandapower's AC power flow, at the community's power factor
    (0.99). Per hour: the curtailed MW, the DC flow through the binding transformer
    against its rating, the AC loading of every transformer and line (the highest), and
    the lowest and highest AC voltage."""
    import pandapower as pp

    from lemgrid.grid.community_lv import with_injections

    net = load_network(network_name)
    network, placement = dc_network(net), place_community(net)
    profiles = read_profiles(DATA)
    rows = []
    for hour in range(HOURS):
        try:
            r = clear_hour(network, placement, profiles, hour, scale, min_trade_mw=0.0)
        except ClearanceInfeasible:
            continue
        c = r.clearance
        if r.offered_mw - r.accepted_mw <= 1e-9:
            continue
        gen, load = hourly_mw(placement, profiles, hour, scale)
        p = residual_injection_mw(gen, load, c.trades)
        for t, q in zip(c.trades, c.accepted_mw, strict=True):
            p[t.seller_bus] = p.get(t.seller_bus, 0.0) + q
            p[t.buyer_bus] = p.get(t.buyer_bus, 0.0) - q
        ac = with_injections(net, {b: -v for b, v in p.items() if v < 0},
                             {b: v for b, v in p.items() if v > 0})
        pp.runpp(ac)
        binding = [b for b in c.binding if b.kind == "transformer"]
        rows.append({"hour": hour, "curtailed_mw": r.offered_mw - r.accepted_mw,
                     "binding": "; ".join(b.label for b in c.binding),
                     "dc_flow_over_rating_pct": max(
                         (100 * abs(b.flow_mw) / b.limit_mw for b in binding), default=float("nan")),
                     "ac_trafo_loading_pct": float(ac.res_trafo.loading_percent.max()),
                     "ac_line_loading_pct": float(ac.res_line.loading_percent.max()),
                     "ac_v_min_pu": float(ac.res_bus.vm_pu.min()),
                     "ac_v_max_pu": float(ac.res_bus.vm_pu.max())})
    return rows
