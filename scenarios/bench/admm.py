"""``lemgrid bench`` of an ADMM scenario (e.g. antunes2024): the whole run distributed,
with and without residual balancing, beside the figures of the poster (Antunes, Soares,
Morais 2024; docs/mechanisms/admm.md#reproduction).

Per run: ADMM rounds, wall time end to end, the gap to the centralized optimum, EV
discharge as a share of the community's imports, and the wire and coordinator overhead
per round beyond the slowest answer (the coordinator's round time, from sending the
signals to the last offer, minus the slowest agent's answer that round: its wall time
from taking the signal to the offer, as the agent recorded it), and, measured apart
in-process, the mechanism step and the encoding of a round's messages. Medians of the
runs. On a machine with fewer cores than agents the overhead beyond the slowest answer
also holds the other agents' solves queued on the cores; the scripted run over the wire
(``scenarios.bench.admm_wire``, 90 peers and the operator answering at once) measures
the wire and coordinator alone."""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from lemgrid.coordinator.records import read_days
from lemgrid.scenarios.bench.admm_wire import print_wire, run_wire

POSTER = {"rounds": 1169, "wall_s": 3927.0, "gap_to_centralized_pct": 9.12,
          "ev_discharge_share_of_imports_pct": 3.75}
WIRE_PEERS, WIRE_ROUNDS = 90, 300  # the scripted run's size (the goal: 90 peers)
GOALS = {"rounds": "≤ 300", "wall_s": "≤ 60", "gap_to_centralized_pct": "≤ 1",
         "overhead_ms_per_round": "see below"}


def ev_discharge_share_pct(agents: pd.DataFrame, period_h: float) -> float:
    """EV discharge (kWh) as a share of the community's net import from the upstream
    grid (Σ over periods of the positive community net, kWh)."""
    ev = agents[agents["kind"] == "ev"]
    discharge = float(ev["dis_kw"].fillna(0).sum()) * period_h if "dis_kw" in ev else 0.0
    community = agents.groupby(["day", "period"])["net_kw"].sum()
    imports = float(community.clip(lower=0).sum()) * period_h
    return 100 * discharge / imports if imports else float("nan")


def overhead_ms(out: Path) -> tuple[float, float, int]:
    """(median overhead per round beyond the slowest answer in ms, median slowest answer
    in ms, peers) from the coordinator's records and the agents' files."""
    rounds = [r for day in read_days(out / "rounds") for r in day["rounds"]]
    solves: dict[str, list[float]] = {}
    files = list((out / "agent_results").glob("*.json"))
    for path in files:
        for day in json.loads(path.read_text())["days"].values():
            for r, sec in day.get("round_solve_s", {}).items():
                solves.setdefault(r, []).append(sec)
    over = [r["seconds"] - max(solves.get(str(r["round"]), [0.0])) for r in rounds]
    slowest = [max(solves.get(str(r["round"]), [0.0])) for r in rounds]
    return (1e3 * statistics.median(over), 1e3 * statistics.median(slowest), len(files) - 1)


def one_run(s, out: Path) -> dict[str, float]:
    from lemgrid.scenarios.run.world import run_scenario

    summary = run_scenario(s, out)
    m = summary["market"]
    agents = pd.read_parquet(out / "agents.parquet")
    over, slowest, peers = overhead_ms(out)
    return {"rounds": m["rounds"], "converged": float(bool(m["converged"])),
            "wall_s": summary["timing_s"]["wall"],
            "gap_to_centralized_pct": m["gap_to_centralized_pct"]
            if m["gap_to_centralized_pct"] is not None else float("nan"),
            "ev_discharge_share_of_imports_pct": ev_discharge_share_pct(
                agents, s.horizon.period_minutes / 60),
            "overhead_ms_per_round": over, "slowest_answer_ms_per_round": slowest,
            "peers": peers, "voltage_violations": summary["grid"]["voltage_violations"]}


def bench_admm(s, runs: int, info: dict, out: str) -> int:
    """Distributed runs with and without residual balancing; a table and a JSON file."""
    variants = {"balancing": s, "no balancing": s.model_copy(
        update={"market": s.market.model_copy(update={"residual_balancing": False})})}
    rows: dict[str, list[dict]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            for name, scenario in variants.items():
                rows[name].append(one_run(scenario, Path(tmp) / f"{name}-{i}"))
    keys = list(next(iter(rows.values()))[0])
    med = {name: {k: float(np.nanmedian([r[k] for r in rs])) for k in keys}
           for name, rs in rows.items()}
    print(f"lemgrid bench: {s.name} (admm, distributed), {runs} run(s) each; machine: "
          f"{info['cpu']}, {info['cores']} cores, Python {info['python']}")
    print(f"\n{'median of runs':34} {'balancing':>12} {'no balancing':>13} {'poster':>9} "
          f"{'goal':>16}")
    for k in keys:
        print(f"{k:34} {med['balancing'][k]:12.4g} {med['no balancing'][k]:13.4g} "
              f"{POSTER.get(k, float('nan')):9.4g} {GOALS.get(k, ''):>16}")
    ratio = med["no balancing"]["wall_s"] / med["balancing"]["wall_s"]
    print(f"\nwall time without / with balancing (same runs): {ratio:.2f}")
    wire = wire_ms_per_round(s)
    print("\nper round besides the solves (in-process, one day, medians over rounds):")
    for k, v in wire.items():
        print(f"  {k:32} {v:10.4g}")
    with tempfile.TemporaryDirectory() as tmp:
        scripted = run_wire(WIRE_PEERS, WIRE_ROUNDS, Path(tmp))
    print_wire(scripted)
    Path(out).write_text(json.dumps({"scenario": s.name, "runs": runs, "machine": info,
                                     "poster": POSTER, "goals": GOALS, "values": rows,
                                     "medians": med, "per_round": wire,
                                     "wire_scripted": scripted.medians()}, indent=2) + "\n")
    print(f"written: {out}")
    return 0


def wire_ms_per_round(s) -> dict[str, float]:
    """The market's cost per round besides the agents' solves, measured in-process on one
    day: the coordinator's mechanism step (averaging, prices, residuals, next signals)
    and every message of the round encoded and decoded once (what the wire carries both
    ways: the coordinator's signals and the agents' offers), with the bytes sent. ZeroMQ's
    own transfer time on loopback is not in it."""
    import dataclasses
    import time

    from lemgrid.coordinator.protocol import Offer, Signal, decode, encode
    from lemgrid.scenarios.community.builder import build_actuals, build_community
    from lemgrid.scenarios.run.inprocess import make_agents, run_day
    from lemgrid.scenarios.run.market import mechanism_setup, plugin

    community = build_community(s)
    mech, params = mechanism_setup(s)
    steps: list[float] = []

    def timed_step(offers, state, p):
        t0 = time.perf_counter()
        out = mech.step(offers, state, p)
        steps.append(time.perf_counter() - t0)
        return out

    agents = make_agents(s, community, build_actuals(s, community), plugin(s).strategy)
    day = run_day(agents, dataclasses.replace(mech, step=timed_step), params, 0, {})
    per_round: dict[int, list] = {}
    for msg in day.messages:
        if isinstance(msg, (Signal, Offer)):
            per_round.setdefault(msg.round, []).append(msg)
    wire, size = [], []
    for msgs in per_round.values():
        t0 = time.perf_counter()
        frames = [encode(m) for m in msgs]
        for f in frames:
            decode(f)
        wire.append(time.perf_counter() - t0)
        size.append(sum(len(f) for f in frames))
    return {"mechanism_step_ms": 1e3 * statistics.median(steps),
            "encode_decode_ms": 1e3 * statistics.median(wire),
            "megabytes_per_round": statistics.median(size) / 1e6,
            "peers": float(len(community))}
